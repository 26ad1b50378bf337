-- app.lua - the Lua side of examples/embed: the hello server plus a Lua timer, run by embed.c.
--
--   embed [-t seconds] examples/embed/app.lua [port [host]]
--
-- It does what examples/hello.lua does (accept, write "hello\n", close)
-- but returns instead of calling lepoll.run(): the C program's own loop
-- drives lepoll through lepoll.fileno() and lepoll.step(0). `host` is the
-- table of C functions the program registers (host.count).
local lepoll = require "lepoll"

local host = assert(rawget(_G, "host"), "run me with examples/embed/embed")
local port = tonumber(arg[1]) or 8080
local addr = arg[2] or "127.0.0.1"

local server = lepoll.listen({ host = addr, port = port }, function(conn)
  conn:write("hello\n")
  host.count("served")
end)

-- A Lua timer that calls into C: it fires only if the C loop steps lepoll
-- when lepoll's fd says a timer is due. The first few report the C side's
-- tick count they see, so both loops can be seen making progress.
local function tick()
  local n, ticks = host.count("timer")
  if n <= 3 then
    print(("timer %d ticks %d"):format(n, ticks))
    io.stdout:flush()
  end
  lepoll.after(0.05, tick)
end
lepoll.after(0.05, tick)

local h, p = server:address()
print(("listening on %s:%d"):format(h, p))
io.stdout:flush()
