-- The hello workload on cqueues (Debian's lua-cqueues), for bench/run's
-- comparison rows: every client gets "hello\n", then the connection closes.
--   lua5.4 bench/servers/cqueues_hello.lua PORT   (0 picks one)
-- One controller (cqueues.new), a listener from cqueues.socket.listen, and one
-- coroutine per connection. Prints "listening on HOST:PORT" first.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

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
      con:write("hello\n")
      con:close()
    end)
  end
end)

assert(cq:loop())
