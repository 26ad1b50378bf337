-- PLACEHOLDER for bench/run's http rows, until lepoll.http lands: the seed's
-- hello over HTTP/1.1 keep-alive, `GET /` -> 200 "hello\n", on the raw
-- framework. It is not an HTTP server: it reads header lines until the empty
-- one and answers every request with the same fixed response, whatever it
-- asked for (no parsing, no limits, no body handling). The lead's
-- examples/hello_http.lua, on lepoll.http, replaces this file.
--   lua5.4 examples/hello_http.lua [port [host]]  (default 8080 127.0.0.1)
-- Prints "listening on HOST:PORT" first; SIGINT/SIGTERM shut it down.
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"

local RESPONSE <const> = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
  .. "Content-Length: 6\r\n\r\nhello\n"

-- nodelay as nginx's tcp_nodelay: pipelined responses go out one write each,
-- and Nagle would hold the second until the client's delayed ACK (40 ms)
local server = assert(lepoll.listen({ host = host, port = port, nodelay = true }, function(conn)
  local in_head = false          -- a request line has been read
  while true do
    local line = conn:readline()
    if not line then return end  -- closed, or a line too long
    if line ~= "" then
      in_head = true
    elseif in_head then          -- the empty line ends a request's head
      in_head = false
      if not conn:write(RESPONSE) then return end
    end
  end
end))

local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()

lepoll.run()                   -- until SIGINT or SIGTERM
