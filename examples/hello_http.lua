-- The seed's hello over HTTP/1.1 with lepoll.http: GET / answers 200
-- "hello\n" (keep-alive, pipelining and the limits are the server's);
-- any other path is 404.
--   lua5.4 examples/hello_http.lua [port [host]]   (default 8080 127.0.0.1)
--   curl http://127.0.0.1:8080/
-- Prints "listening on HOST:PORT" first; SIGINT/SIGTERM shut it down
-- gracefully (requests in flight finish).
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local lepoll = require "lepoll"
local http = require "lepoll.http"

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"

local server = assert(http.listen({ host = host, port = port }, function(req, res)
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
