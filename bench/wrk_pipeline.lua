-- wrk script for bench/run's http_pipeline workload: each write carries
-- DEPTH `GET /` requests (wrk's first script argument, default 16), and wrk
-- sends the next batch on a connection once all of them are answered (it
-- counts the requests in what request() returns).
--   wrk -s bench/wrk_pipeline.lua URL -- 16
-- wrk's own globals (wrk, init, request) are what it calls.
-- luacheck: globals wrk init request
local batch

function init(args)
  local depth = math.floor(tonumber(args[1]) or 16)  -- wrk runs LuaJIT (5.1)
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/") end
  batch = table.concat(r)
end

function request()
  return batch
end
