-- wrk script for bench/run.sh.
--   WRK_METHOD=POST WRK_BODY='{"email":..}'   method and JSON body (optional)
--   WRK_COOKIES=file                          one Cookie header value per line; requests
--                                             cycle through them (each thread from its own
--                                             offset) instead of sending one fixed request
-- Extra headers come from wrk -H. At the end it prints one line: WRKJSON {...}
local method = os.getenv("WRK_METHOD")
local body = os.getenv("WRK_BODY")
if method then wrk.method = method end
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local cookie_file = os.getenv("WRK_COOKIES")
if cookie_file and cookie_file ~= "" then
  local cookies = {}
  for line in io.lines(cookie_file) do
    if line ~= "" then cookies[#cookies + 1] = line end
  end
  local n = #cookies
  local i
  request = function()
    if not i then i = ((id or 1) * 7919) % n end
    i = i % n + 1
    local h = {}
    for k, v in pairs(wrk.headers) do h[k] = v end
    h["Cookie"] = cookies[i]
    return wrk.format(nil, nil, h)
  end
end

function done(summary, latency, requests)
  local s = summary
  local secs = s.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_timeout":%d,"non2xx":%d,"lat_mean_ms":%.3f,"lat_p50_ms":%.3f,"lat_p90_ms":%.3f,' ..
    '"lat_p99_ms":%.3f,"lat_p999_ms":%.3f,"lat_max_ms":%.3f}\n',
    s.requests, secs, s.requests / secs, s.bytes, s.errors.connect, s.errors.read, s.errors.write,
    s.errors.timeout, s.errors.status, latency.mean / 1000, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000))
end
