-- wrk script: as envoy/wrk-keys.lua (one of 10,000 sticky keys in x-user-id per request), with
-- the headers a browser sends besides, so a request's header map is the size of a real one.
-- For `BENCH_WRK_SCRIPT=envoy/wrk-browser-keys.lua make bench-host-calls` (BENCHMARKS.md).
local counter = 0
local headers = {
  ["user-agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  ["accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
  ["accept-language"] = "en-GB,en;q=0.9,de;q=0.8",
  ["accept-encoding"] = "gzip, deflate, br, zstd",
  ["referer"] = "https://shop.example.com/catalog/shoes?page=2",
  ["sec-fetch-dest"] = "document",
  ["sec-fetch-mode"] = "navigate",
  ["sec-fetch-site"] = "same-origin",
  ["sec-ch-ua"] = "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
  ["sec-ch-ua-platform"] = "\"Linux\"",
  ["upgrade-insecure-requests"] = "1",
  ["cookie"] = "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=analytics%3D0%26ads%3D0",
}
request = function()
  counter = counter + 1
  headers["x-user-id"] = "user-" .. (counter % 10000)
  return wrk.format("GET", "/", headers)
end
