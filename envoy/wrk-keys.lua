-- wrk script: each request carries one of 10,000 sticky keys in x-user-id, in turn, so a
-- canary split sees many distinct users. Used by the benchmarks and the guide's sessions:
--   wrk -t1 -c8 -d60s -s envoy/wrk-keys.lua http://127.0.0.1:10000/
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/", { ["x-user-id"] = "user-" .. (counter % 10000) })
end
