-- GET /v1/pseudonyms/{p}, cycling through pseudonyms sealed before the run.
local token = os.getenv("RV_TOKEN")
local pseudonyms = {}
for line in io.lines(os.getenv("RV_PSEUDONYMS")) do pseudonyms[#pseudonyms + 1] = line end
local i = 0

request = function()
  i = i % #pseudonyms + 1
  return wrk.format("GET", "/v1/pseudonyms/" .. pseudonyms[i],
    {["Authorization"] = "Bearer " .. token})
end

done = function(summary, latency, requests)
  io.stderr:write(string.format("non2xx=%d\n", summary.errors.status))
end
