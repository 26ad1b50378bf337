-- bench/coroutine_echo.lua - the floor of a coroutine-per-connection echo
-- server on lepoll's C layer: epoll edge-triggered, one coroutine per
-- connection doing recv/send and yielding when drained, no framework. Not
-- a default row of `make bench`; compare it in the same run with
--   BENCH_EXTRA='echo:coroutine floor=lua5.4 bench/coroutine_echo.lua' make bench
-- It takes the port as its first argument and prints "listening on HOST:PORT".
local root = (arg and arg[0] or ""):match("^(.-)[^/]*$") .. "../"
package.cpath = root .. "build/?.so;" .. package.cpath

local epoll = require "lepoll.epoll"
local net = require "lepoll.net"

local recv, send, accept = net.recv, net.send, net.accept
local EAGAIN = net.errno.EAGAIN
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local RECV_MAX = 16384
local FLAGS = epoll.IN | epoll.OUT | epoll.RDHUP | epoll.ET

local port = math.tointeger(tonumber(arg[1] or "0"))
assert(port and port >= 0 and port <= 65535, "usage: coroutine_echo.lua [PORT]")
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
local tasks, sockets = {}, {}   -- fd number -> coroutine, Fd

local function serve(fd)
  while true do
    local s, _, code = recv(fd, RECV_MAX)
    if s then
      if #s == 0 then break end
      send(fd, s)
      if #s < RECV_MAX then co_yield() end  -- drained: wait for the edge
    elseif code == EAGAIN then
      co_yield()
    else
      break
    end
  end
  sockets[fd]:close()
  sockets[fd], tasks[fd] = nil, nil
end

while true do
  local n = assert(wait(ep, events, -1))
  for i = 1, n do
    local data = get(events, i)
    if data < 0 then
      while true do
        local sock = accept(listener, net.NONBLOCK)
        if not sock then break end
        local fd = sock:fileno()
        sockets[fd] = sock
        assert(ep:add(fd, fd, FLAGS))
        local co = co_create(serve)
        tasks[fd] = co
        co_resume(co, fd)
      end
    else
      local co = tasks[data]
      if co then co_resume(co) end
    end
  end
end
