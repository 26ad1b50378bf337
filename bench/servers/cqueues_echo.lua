-- The echo workload on cqueues (Debian's lua-cqueues), for bench/run's
-- comparison rows: persistent connections, whatever arrives is sent back.
--   lua5.4 bench/servers/cqueues_echo.lua PORT   (0 picks one)
-- One controller (cqueues.new), a listener from cqueues.socket.listen, and one
-- coroutine per connection. Prints "listening on HOST:PORT" first.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local RECV_MAX = 16384
local port = tonumber(arg[1] or "0")
-- A peer that resets is that connection's problem: return errors from the
-- socket methods instead of raising them out of cq:loop().
socket.onerror(function(_, _, why) return why end)
local cq = cqueues.new()
local srv = assert(socket.listen {
  host = "127.0.0.1", port = port, reuseaddr = true, backlog = 1024,
})
assert(srv:listen())                 -- bind now: the real port is known
local _, host, bound = srv:localname()
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

cq:wrap(function()
  for con in srv:clients() do
    cq:wrap(function()
      con:setmode("b", "bn")         -- binary, unbuffered output
      while true do
        local data = con:read(-RECV_MAX)   -- whatever has arrived, up to RECV_MAX
        if not data or not con:write(data) then break end
      end
      con:close()
    end)
  end
end)

assert(cq:loop())
