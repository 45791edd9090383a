-- wrk script for bench/run.sh: POSTs one fixed body and checks every answer.
--   wrk ... -s bench/post.lua URL -- BODY_FILE EXPECT [HEADER ...]
-- BODY_FILE: the request body (`-`: a GET without a body, e.g. for /livez); every `__ID__` in it becomes a JSON-RPC id unique to
-- this run (thread number and counter), as independent clients would send; EXPECT: a substring every good answer contains;
-- HEADER: "Name: value" pairs added to each request. An `__ID__` in the URL's path or query
-- becomes a token unique to the run as well (e.g. a ClickHouse query_id, which must not
-- repeat while a query with the same id runs).
-- done() prints one line of JSON: requests, seconds, rps, p50_ms, p99_ms, bad (status
-- not 2xx or body without EXPECT), socket errors (connect, read, write, timeout).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  local method, body = "POST", ""
  if args[1] == "-" then
    method = "GET"
  else
    local f = assert(io.open(args[1], "rb"))
    body = f:read("*a")
    f:close()
  end
  expect = args[2]
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream" }
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  bad = 0
  n = 0
  if method == "GET" then
    headers["Content-Type"] = nil
    body = nil
  end
  if (body and body:find("__ID__", 1, true)) or wrk.path:find("__ID__", 1, true) then
    verb, template, hdrs = method, body, headers
  else
    req = wrk.format(method, nil, headers, body)
  end
end

function request()
  if req then return req end
  n = n + 1
  local id = string.format("%d-%d", tid, n)
  local b = template and (template:gsub("__ID__", '"' .. id .. '"'))
  return wrk.format(verb, (wrk.path:gsub("__ID__", id)), hdrs, b)
end

function response(status, headers, body)
  if status < 200 or status > 299 or not body:find(expect, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"bad":%d,"socket_errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    bad_total, e.connect + e.read + e.write + e.timeout))
end
