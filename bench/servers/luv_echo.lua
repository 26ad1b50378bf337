-- The echo workload on luv (Debian's lua-luv, libuv), for bench/run's
-- comparison rows: persistent connections, whatever arrives is sent back.
--   lua5.4 bench/servers/luv_echo.lua PORT   (0 picks one)
-- uv.new_tcp / listen / accept / read_start / write, callbacks only. Prints
-- "listening on HOST:PORT" first.
local uv = require "luv"

local port = tonumber(arg[1] or "0")
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(1024, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:read_start(function(rerr, data)
    if rerr or not data then         -- error or EOF
      client:close()
    else
      client:write(data)
    end
  end)
end))
local addr = server:getsockname()
io.stdout:write("listening on ", addr.ip, ":", addr.port, "\n")
io.stdout:flush()

uv.run()
