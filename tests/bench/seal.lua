-- POST /v1/reporters with a fresh, valid identity per request (GB 11643 check character
-- computed here), so every request is a real seal: blind index, envelope, pseudonym, event.
local token = os.getenv("RV_TOKEN")
local counter = 0
local tid = 0
local weights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
local checks = "10X98765432"
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
end

local function id_number()
  local s = string.format("110105%04d%02d%02d%03d", math.random(1950, 2005),
    math.random(1, 12), math.random(1, 28), math.random(0, 999))
  local sum = 0
  for i = 1, 17 do sum = sum + tonumber(s:sub(i, i)) * weights[i] end
  local c = (sum % 11) + 1
  return s .. checks:sub(c, c)
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"jurisdiction":"140100","case_ref":"BENCH-%d-%d","received_at":"2026-11-20T08:00:00+08:00",' ..
    '"channel":"web","employee_of_reported_unit":false,"identity":{"name":"测试人","id_number":"%s",' ..
    '"phone":"138%08d"}}', tid, counter, id_number(), math.random(0, 99999999))
  return wrk.format("POST", "/v1/reporters",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

done = function(summary, latency, requests)
  local errs = summary.errors
  io.stderr:write(string.format("non2xx=%d\n", errs.status))
end
