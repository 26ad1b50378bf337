-- bench/method_echo.lua - the shape of lepoll's framework API with none
-- of its checks: a coroutine per connection whose handler calls
-- conn:read() and conn:write(data) on a connection table (state in array
-- slots, read and write in its own hash part), and an epoll loop that
-- makes the recv(2) for a parked reader and resumes it with the data, as
-- lepoll.conn does. What it leaves out is what makes the framework safe
-- to use: argument checks, closing, end of stream and errors, write
-- queues and backpressure, timeouts, other waiters, the loop's timers.
-- So it is a floor for any framework of this shape, between
-- bench/coroutine_echo.lua (no connection objects, no method calls) and
-- examples/echo.lua. Not a default row of `make bench`; compare it with
--   BENCH_EXTRA='echo:method floor=lua5.4 bench/method_echo.lua' make bench
-- It takes the port as its first argument and prints "listening on HOST:PORT".
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.cpath = root .. "build/?.so;" .. package.cpath

local epoll = require "lepoll.epoll"
local net = require "lepoll.net"
local lio = require "lepoll.io"

local recv, send, accept = net.recv, net.send, net.accept
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local FLAGS = epoll.IN | epoll.OUT | epoll.RDHUP | epoll.ET
local READ_SIZE = 16384
-- the connection's slots (as in lua/lepoll/_conn.lua)
local CO <const>, N <const>, S <const>, RT <const> = 1, 3, 4, 6
local DRAINED <const>, READY <const> = 0, 1
local RWAIT = {}

local port = math.tointeger(tonumber(arg[1] or "0"))
assert(port and port >= 0 and port <= 65535, "usage: method_echo.lua [PORT]")
local listener = assert(net.socket(net.INET, net.STREAM, net.NONBLOCK))
assert(net.setsockopt(listener, "reuseaddr", true))
assert(net.bind(listener, "127.0.0.1", port))
assert(net.listen(listener, 1024))
local host, bound = assert(net.getsockname(listener))
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

local ep = assert(epoll.create())
assert(ep:add(listener, -1, epoll.IN))
local events = epoll.events(256)
local wait, get = ep.wait, events.get
local conns = {}  -- fd number -> connection

-- Park until the loop has read for us (S = -max), unless data may be
-- waiting: then one recv(2) first.
local function read(self, max)
  max = max or READ_SIZE
  if self[S] ~= DRAINED then
    local s = recv(self[N], max)
    if s and #s > 0 then
      if #s < max then self[S] = DRAINED end
      return s
    end
  end
  self[S] = -max
  local _, data = co_yield(RWAIT, self)
  return data
end

local function write(self, s)
  return send(self[N], s) == #s
end

local function handler(conn)
  while true do
    local data = conn:read()
    if not data or not conn:write(data) then break end
  end
  conns[conn[N]] = nil
  lio.close(conn[N])  -- also leaves the epoll set
end

while true do
  local n = assert(wait(ep, events, -1))
  for i = 1, n do
    local tok = get(events, i)
    if tok < 0 then
      while true do
        local sock = accept(listener, net.NONBLOCK)
        if not sock then break end
        local fd = sock:release()
        assert(ep:add(fd, fd, FLAGS))
        local c = { false, false, fd, READY, false, false, false, read = read, write = write }
        conns[fd] = c
        c[CO] = co_create(handler)
        local _, r, rc = co_resume(c[CO], c)
        if r == RWAIT then rc[RT] = c end
      end
    else
      local c = conns[tok]
      local t = c and c[RT]
      if t then
        local want = -c[S]
        local s = recv(c[N], want)
        if s then
          local len = #s
          c[S] = len < want and DRAINED or READY
          c[RT] = false
          local _, r, rc = co_resume(t[CO], nil, len > 0 and s or nil)
          if r == RWAIT then rc[RT] = t end
        end
      end
    end
  end
end
