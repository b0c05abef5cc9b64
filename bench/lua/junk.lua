-- wrk script of the `junk` scenario (bench/scenarios/junk.py): hostile requests, math.random.
--   wrk -t1 ... -s junk.lua URL -- LIMIT SEED
-- Each request picks one of five families (about a fifth each):
--   slug         /articles/<random 20..200 chars>/
--   id           /api/articles/<random big int>/   (a quarter of them 19..30 digits)
--   search       /api/search/?q=<random word>
--   buster       /api/articles/?page=1&cb=<n>  or  ?page=1&utm_source=<n>
--   negotiation  /api/articles/?page=1&format=xml, Accept: text/html, or a random page value
-- The thread stops after LIMIT responses and prints JUNKSTOP (wrk's main thread sleeps for the
-- whole -d: the harness interrupts it then). done() prints one line "JUNKJSON {...}": wrk's
-- counts and latency percentiles (us), the status codes and the mix (requests per sub-kind).

local limit = 100000
local seen = 0
statuses = {}  -- globals: done() reads them with thread:get
mix = {}
local threads = {}

local SLUG = "abcdefghijklmnopqrstuvwxyz0123456789-"
local WORD = "abcdefghijklmnopqrstuvwxyz"
local JUNK_PAGES = { "0", "-1", "abc", "1e9", "99999999999999999999", "", "1.5", "%00" }

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  limit = tonumber(args[1]) or limit
  math.randomseed(tonumber(args[2]) or os.time())
end

local function random_chars(alphabet, n)
  local out = {}
  local size = #alphabet
  for i = 1, n do
    local k = math.random(1, size)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

local function digits(n)
  local out = { tostring(math.random(1, 9)) }
  for i = 2, n do out[i] = tostring(math.random(0, 9)) end
  return table.concat(out)
end

local function count(kind)
  mix[kind] = (mix[kind] or 0) + 1
end

function request()
  local family = math.random(1, 5)
  if family == 1 then
    count("slug")
    return wrk.format("GET", "/articles/" .. random_chars(SLUG, math.random(20, 200)) .. "/")
  elseif family == 2 then
    count("id")
    local id
    if math.random(1, 4) == 1 then id = digits(math.random(19, 30)) else id = tostring(math.random(100000, 2147483647)) end
    return wrk.format("GET", "/api/articles/" .. id .. "/")
  elseif family == 3 then
    count("search")
    return wrk.format("GET", "/api/search/?q=" .. random_chars(WORD, math.random(3, 12)))
  elseif family == 4 then
    local n = math.random(1, 2147483647)
    if math.random(1, 2) == 1 then
      count("cb")
      return wrk.format("GET", "/api/articles/?page=1&cb=" .. n)
    end
    count("utm_source")
    return wrk.format("GET", "/api/articles/?page=1&utm_source=" .. n)
  end
  local pick = math.random(1, 3)
  if pick == 1 then
    count("format=xml")
    return wrk.format("GET", "/api/articles/?page=1&format=xml")
  elseif pick == 2 then
    count("accept_html")
    return wrk.format("GET", "/api/articles/?page=1", { ["Accept"] = "text/html" })
  end
  count("page")
  local page
  if math.random(1, 4) == 1 then page = JUNK_PAGES[math.random(1, #JUNK_PAGES)] else page = tostring(math.random(1, 100000)) end
  return wrk.format("GET", "/api/articles/?page=" .. page)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  seen = seen + 1
  if seen == limit then
    io.write("JUNKSTOP\n")
    io.flush()
    wrk.thread:stop()
  end
end

local function json_map(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = string.format('"%s":%d', tostring(k), v) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_status, all_mix = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses") or {}) do all_status[k] = (all_status[k] or 0) + v end
    for k, v in pairs(thread:get("mix") or {}) do all_mix[k] = (all_mix[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    'JUNKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status_errors":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d,"statuses":%s,"mix":%s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max,
    json_map(all_status), json_map(all_mix)))
end
