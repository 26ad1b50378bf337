-- The hello workload on copas (Debian's lua-copas with LuaSocket), for
-- bench/run's comparison rows: every client gets "hello\n", then the
-- connection closes.
--   lua5.1 bench/servers/copas_hello.lua PORT   (0 picks one)
-- Debian builds copas for Lua 5.1 and 5.2 only, so this file is Lua 5.1.
-- copas.addserver with a copas-wrapped socket per connection (copas closes
-- it when the handler returns). Prints "listening on HOST:PORT" first.
local copas = require "copas"
local socket = require "socket"

local port = tonumber(arg[1] or "0")
local server = assert(socket.bind("127.0.0.1", port, 1024))
local host, bound = server:getsockname()
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

copas.addserver(server, function(skt)
  skt = copas.wrap(skt)
  skt:send("hello\n")
end)

copas.loop()
