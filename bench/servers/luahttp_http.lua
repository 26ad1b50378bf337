-- The http workloads on lua-http 0.4 (Debian's lua-http, cqueues underneath),
-- for bench/run's comparison row: GET / -> 200 "hello\n", keep-alive.
--   lua5.3 bench/servers/luahttp_http.lua PORT   (0 picks one)
-- http.server.listen with an onstream handler that reads the request head
-- and answers with a Content-Length, as its documentation shows. Prints
-- "listening on HOST:PORT" first.

-- Debian 12's lua-fifo (0.2-3.1, a dependency of lua-http) installs fifo.lua
-- for Lua 5.1 and 5.2 only; it is plain Lua that runs on 5.3 unchanged.
if not package.searchpath("fifo", package.path) then
  package.path = package.path .. ";/usr/share/lua/5.2/?.lua"
end
local http_server = require "http.server"
local http_headers = require "http.headers"

local port = tonumber(arg[1] or "0")
local server = assert(http_server.listen({
  host = "127.0.0.1",
  port = port,
  tls = false,
  -- the default (10 s) would close connections the idle workload holds
  intra_stream_timeout = 75,
  onstream = function(_, stream)
    -- a failure here is the client leaving (wrk at the end of a run)
    if not stream:get_headers() then return end
    local res = http_headers.new()
    res:append(":status", "200")
    res:append("content-type", "text/plain")
    res:append("content-length", "6")
    if stream:write_headers(res, false) then stream:write_chunk("hello\n", true) end
  end,
  onerror = function(_, _, op, err)
    io.stderr:write("luahttp_http: ", tostring(op), ": ", tostring(err), "\n")
  end,
}))
assert(server:listen())
local _, host, bound = server:localname()
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

assert(server:loop())
