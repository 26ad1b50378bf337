-- bench/run's lepoll row of the TLS workloads (https, tls_handshake,
-- https_idle): examples/hello_http.lua's server and handler over TLS.
-- GET / answers 200 "hello\n" (keep-alive as the client asks); any other
-- path is 404.
--   BENCH_TLS_CERT=c.pem BENCH_TLS_KEY=k.pem lua5.4 bench/servers/lepoll_https.lua PORT
-- The context issues no session tickets (tickets = false) and keeps no
-- session cache, so every connection is a full handshake, as the nginx
-- rows are configured. Prints "listening on HOST:PORT" first.
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"
local http = require "lepoll.http"
local tls = require "lepoll.tls"

local cert = assert(os.getenv("BENCH_TLS_CERT"), "BENCH_TLS_CERT: the certificate's path")
local key = assert(os.getenv("BENCH_TLS_KEY"), "BENCH_TLS_KEY: its key's path")
local ctx = assert(tls.context{ cert = cert, key = key, tickets = false })
local port = math.tointeger(tonumber(arg[1] or "0"))

local server = assert(http.listen({ host = "127.0.0.1", port = port, tls = ctx },
  function(req, res)
    if req.path ~= "/" then
      res:status(404)
      return res:finish("not found\n")
    end
    res:header("Content-Type", "text/plain")
    res:finish("hello\n")
  end))

local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()

lepoll.run()
