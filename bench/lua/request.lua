-- wrk script for every workload of the benchmark (bench/loadgen.py builds the arguments).
--   wrk ... -s request.lua URL -- fixed PREFIX PATH
--   wrk ... -s request.lua URL -- zipf  PREFIX IDS_FILE EXPONENT   (ids one a line, hottest first)
--   wrk ... -s request.lua URL -- feed  PREFIX PAGES
-- done() prints one line "BENCHJSON {...}" with counts and latency percentiles (microseconds).

local kind, prefix, path, pages
local ids, cdf, n
local thread_no = 0

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  kind = args[1]
  prefix = args[2] or ""
  if prefix == "-" then prefix = "" end
  if kind == "fixed" then
    path = prefix .. args[3]
  elseif kind == "zipf" then
    ids = {}
    for line in io.lines(args[3]) do ids[#ids + 1] = line end
    n = #ids
    local s = tonumber(args[4])
    cdf = {}
    local acc = 0
    for k = 1, n do
      acc = acc + k ^ (-s)
      cdf[k] = acc
    end
    for k = 1, n do cdf[k] = cdf[k] / acc end
  elseif kind == "feed" then
    pages = tonumber(args[3])
  else
    error("unknown workload kind " .. tostring(kind))
  end
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

local function zipf_index()
  local u = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function request()
  if kind == "fixed" then
    return wrk.format("GET", path)
  elseif kind == "zipf" then
    return wrk.format("GET", prefix .. "/api/articles/" .. ids[zipf_index()] .. "/")
  else
    return wrk.format("GET", prefix .. "/api/articles/?page=" .. math.random(1, pages))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
