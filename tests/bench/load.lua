-- The wrk script of tests/bench/run, one scenario per run, chosen by environment variables:
--
--   RV_SCENARIO   seal | get | open | quote
--   RV_PATH       request path (seal: POST target; get: prefix the id is appended to)
--   RV_TOKEN      bearer token (optional: baseline A takes none)
--   RV_IDS        file of ids, one a line (get: cycled through; open: each used once)
--   RV_ID_BASE    seal: first identity number of this run (distinct runs, distinct people)
--   RV_THREADS    wrk's -t (open: the id file is split between threads)
--   RV_QUOTE_BODY quote: the request body
--   RV_WRK_OUT    file the summary is written to (JSON, one object)
--
-- seal: every request carries a new person: a valid GB 11643 resident ID (province code,
-- real date of birth, check character) and mobile number, both derived from a counter that
-- is distinct per run and per thread, so no request takes the "same person again" path.
-- open: every id is opened once; a thread that runs out stops and the summary says so.
--
-- Errors: wrk itself counts only statuses above 399 (summary.errors.status); response()
-- below counts every answer outside 200-299 (a redirect or a 1xx is not a success either),
-- and the summary's "non_2xx" is that count.

local scenario = os.getenv("RV_SCENARIO") or "seal"
local path = os.getenv("RV_PATH") or "/v1/reporters"
local token = os.getenv("RV_TOKEN")
local nthreads = tonumber(os.getenv("RV_THREADS") or "1")
local id_base = tonumber(os.getenv("RV_ID_BASE") or "0")

local STRIDE = 250000 -- people per thread per run
local DAYS = 20000    -- dates of birth from 1950-01-01 on
local REGIONS = {"110105", "310104", "440305", "370102", "510107", "330106", "420106", "320106"}
local WEIGHTS = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
local CHECKS = "10X98765432"

local headers = {["Content-Type"] = "application/json"}
if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end

-- Main state: the threads, for the summary.
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  threads[thread_count] = thread
end

-- Thread state.
tid = 1
local counter = 0
local ids = {}
local pos = 0
exhausted = 0
opened = 0
non2xx = 0

local function floor(x) return math.floor(x) end

-- Days since 1970-01-01 to (y, m, d) (H. Hinnant's civil_from_days).
local function civil(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- Person number n -> (resident ID, mobile). Mirrored by identity() in run.py.
function person(n)
  local region = REGIONS[floor(n / (DAYS * 1000)) % #REGIONS + 1]
  local y, m, d = civil(-7305 + floor(n / 1000) % DAYS) -- -7305: 1950-01-01
  local body = string.format("%s%04d%02d%02d%03d", region, y, m, d, n % 1000)
  local sum = 0
  for i = 1, 17 do sum = sum + tonumber(body:sub(i, i)) * WEIGHTS[i] end
  local c = (sum % 11) + 1
  return body .. CHECKS:sub(c, c), string.format("13%09d", n % 1000000000)
end

local function read_ids(file, every, offset)
  local out = {}
  local k = 0
  for line in io.lines(file) do
    if line ~= "" then
      if every <= 1 or k % every == offset then out[#out + 1] = line end
      k = k + 1
    end
  end
  return out
end

function init(args)
  if scenario == "get" then
    ids = read_ids(os.getenv("RV_IDS"), 1, 0)
    -- Threads start at different places so they do not walk the set in step.
    pos = floor((tid - 1) * #ids / nthreads)
  elseif scenario == "open" then
    ids = read_ids(os.getenv("RV_IDS"), nthreads, tid - 1)
  end
end

local quote_body = os.getenv("RV_QUOTE_BODY")

request = function()
  if scenario == "seal" then
    counter = counter + 1
    local n = id_base + (tid - 1) * STRIDE + counter
    local id, phone = person(n)
    local body = string.format(
      '{"jurisdiction":"110105","case_ref":"BENCH-%d","received_at":"2026-11-20T08:00:00+08:00",' ..
      '"channel":"web","employee_of_reported_unit":false,"identity":{"name":"测试人",' ..
      '"id_number":"%s","phone":"%s"}}', n, id, phone)
    return wrk.format("POST", path, headers, body)
  elseif scenario == "get" then
    pos = pos % #ids + 1
    return wrk.format("GET", path .. ids[pos], headers)
  elseif scenario == "open" then
    pos = pos + 1
    if pos > #ids then
      -- Out of approved disclosures: stop this thread rather than measure refusals.
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
    end
    opened = pos
    return wrk.format("POST", path .. ids[pos] .. "/open", headers, "")
  else
    return wrk.format("POST", path, headers, quote_body)
  end
end

response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
  local ex, op, bad = 0, 0, 0
  for _, t in ipairs(threads) do
    ex = ex + (t:get("exhausted") or 0)
    op = op + (t:get("opened") or 0)
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  local f = assert(io.open(os.getenv("RV_WRK_OUT"), "w"))
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"non_2xx":%d},"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,' ..
    '"max":%d,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d},"threads_exhausted":%d,"opened":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, bad, latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), ex, op))
  f:close()
end
