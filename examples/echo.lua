-- An echo server on the lepoll framework: sends back whatever it receives.
--   lua5.4 examples/echo.lua [port [host]]       (default 8081 127.0.0.1)
-- Prints "listening on HOST:PORT" first; SIGINT/SIGTERM shut it down.
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"

local port = tonumber(arg and arg[1]) or 8081
local host = arg and arg[2] or "127.0.0.1"

local server = assert(lepoll.listen({ host = host, port = port }, function(conn)
  while true do
    local data = conn:read()   -- whatever has arrived (up to 16 KiB)
    if not data or not conn:write(data) then return end
  end
end))

local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()

lepoll.run()
