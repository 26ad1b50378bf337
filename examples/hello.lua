-- The seed's accept-and-write example on the lepoll framework: every client
-- gets "hello\n", then the connection closes.
--   lua5.4 examples/hello.lua [port [host]]      (default 8080 127.0.0.1)
-- Prints "listening on HOST:PORT" first; SIGINT/SIGTERM shut it down.
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"

local server = assert(lepoll.listen({ host = host, port = port }, function(conn)
  conn:write("hello\n")        -- accept, write, done:
end))                          -- the connection closes when the handler returns

local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()

lepoll.run()                   -- until SIGINT or SIGTERM
