-- bench/method_http.lua - the objects of lepoll.http's API with none of
-- its logic: on the framework (examples/hello.lua's lepoll.listen), each
-- request's head is parsed by lepoll.http1 into a request table shaped as
-- lepoll.http's (its slots and fields), a response table of its size is
-- made, an empty handler is called through xpcall, and a fixed reply goes
-- out with one conn:write. What it leaves out is what lepoll.http does for
-- the handler: checking headers, building the head (Date, Server,
-- framing, keep-alive), bodies, limits and deadlines, idle bookkeeping and
-- the worker coroutines that keep idle connections small. So it is a
-- floor for a server with this API on this framework. Not a default row
-- of `make bench`; compare it with
--   BENCH_EXTRA='http:method floor=lua5.4 bench/method_http.lua' make bench
-- It takes the port as its last argument and prints "listening on HOST:PORT".
-- With "tls" before the port it serves over TLS, as the https rows do
-- (BENCH_TLS_CERT, BENCH_TLS_KEY; no tickets): the floor of the https
-- workload,
--   BENCH_EXTRA='https:method floor=lua5.4 bench/method_http.lua tls' make bench
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"
local http1 = require "lepoll.http1"

local parse, setmetatable, xpcall, traceback = http1.request, setmetatable, xpcall,
  debug.traceback
local Req, Res = {}, {}
local REPLY = "HTTP/1.1 200 OK\r\nServer: lepoll\r\nDate: Mon, 07 Dec 2026 02:01:27 GMT\r\n"
  .. "Content-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"
local function handler() end

local ctx
if arg[1] == "tls" then
  local tls = require "lepoll.tls"
  ctx = assert(tls.context{ cert = assert(os.getenv("BENCH_TLS_CERT"), "BENCH_TLS_CERT"),
    key = assert(os.getenv("BENCH_TLS_KEY"), "BENCH_TLS_KEY"), tickets = false })
end
local port = math.tointeger(tonumber(arg[#arg] or "0"))
local server = assert(lepoll.listen({ host = "127.0.0.1", port = port, nodelay = true, tls = ctx },
  function(c)
    while true do
      local d = c:read()
      if not d then return end
      local pos = 1
      while pos <= #d do
        local req = setmetatable({ c, false, false, false, 0, 0, 0, 0, false, false, false,
          method = false, target = false, path = false, query = false, version = false,
          headers = false, trailers = false }, Req)
        local nxt = parse(d, pos, pos, req, 8192, 16384, 100)
        if not nxt then return end
        pos = nxt
        local res = setmetatable({ c, false, req, 200, false, 0, false, false, false, false,
          false, false, false }, Res)
        xpcall(handler, traceback, req, res)
        c:write(REPLY)
      end
    end
  end))
local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()
lepoll.run()
