--- An echo server on lepoll's C layer alone (no framework): persistent
-- connections, whatever arrives is sent back, closed at EOF or on error.
--
--   lua5.4 examples/echo_epoll.lua [PORT]      (0, the default, picks one)
--
-- Prints "listening on 127.0.0.1:PORT" first; runs until SIGINT/SIGTERM.
-- Written to be fast (bench/ compares it with a raw C server): level-
-- triggered IN, one reused events buffer, plain fd numbers on the hot path,
-- locals only, nothing allocated per event but the received string.
-- When the peer does not take all of it, the rest is kept and the
-- connection waits for OUT instead of IN (reading stops: backpressure).
local epoll = require "lepoll.epoll"
local net = require "lepoll.net"

local recv, send, accept = net.recv, net.send, net.accept
local IN, OUT, NONBLOCK = epoll.IN, epoll.OUT, net.NONBLOCK
local EAGAIN, EINTR = net.errno.EAGAIN, epoll.errno.EINTR
local EMFILE, ENFILE = net.errno.EMFILE, net.errno.ENFILE
local ECONNABORTED, EPROTO = net.errno.ECONNABORTED, net.errno.EPROTO
local LISTENER = -1        -- event data of the listener; a connection's is its fd
local RECV_MAX = 16384
local BACKOFF_MS = 100     -- longest pause in accepting after EMFILE

local port = math.tointeger(tonumber(arg[1] or "0"))
assert(port and port >= 0 and port <= 65535, "usage: echo_epoll.lua [PORT]")

local listener = assert(net.socket(net.INET, net.STREAM, NONBLOCK))
assert(net.setsockopt(listener, "reuseaddr", true))
assert(net.bind(listener, "127.0.0.1", port))
assert(net.listen(listener, 1024))
local host, bound = assert(net.getsockname(listener))
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

local ep = assert(epoll.create())
assert(ep:add(listener, LISTENER, IN))
local events = epoll.events(256)                  -- reused by every wait
local wait, modify, get = ep.wait, ep.modify, events.get   -- methods as locals

local sockets = {}         -- fd number -> Fd object (owns the socket)
local unsent = {}          -- fd number -> string not yet sent back
local offset = {}          -- fd number -> bytes of unsent[fd] already sent
local paused, freed = false, false   -- accepting paused after EMFILE

local function drop(fd)
  ep:delete(fd)
  sockets[fd]:close()
  sockets[fd], unsent[fd] = nil, nil
  freed = true
end

local function accept_all()
  while true do
    local sock, err, code = accept(listener, NONBLOCK)
    if sock then
      local fd = sock:fileno()
      if ep:add(fd, fd, IN) then
        sockets[fd] = sock
      else
        sock:close()
      end
    elseif code == EAGAIN then
      return                 -- drained
    elseif code ~= ECONNABORTED and code ~= EPROTO and code ~= EINTR then
      -- Out of fds (EMFILE, ENFILE) or memory: stop watching the listener
      -- until a connection closes or BACKOFF_MS pass, instead of spinning.
      if code ~= EMFILE and code ~= ENFILE then
        io.stderr:write("echo_epoll: accept: ", err, "\n")
      end
      modify(ep, listener, LISTENER, 0)
      paused, freed = true, false
      return
    end                      -- else that client gave up already: next
  end
end

-- Send data from byte `from` on. When the peer's window is full, keep the
-- rest and wait for OUT (`waiting`: already doing so); when all is out,
-- go back to IN. Returns false when the connection failed.
local function send_from(fd, data, from, waiting)
  repeat
    local n, _, code = send(fd, data, from)
    if not n then
      if code ~= EAGAIN then return false end
      if not waiting then modify(ep, fd, fd, OUT) end
      unsent[fd], offset[fd] = data, from
      return true
    end
    from = from + n
  until from > #data
  if waiting then
    unsent[fd] = nil
    modify(ep, fd, fd, IN)
  end
  return true
end

while true do
  local n, werr, wcode = wait(ep, events, paused and BACKOFF_MS or -1)
  if not n then
    assert(wcode == EINTR, werr)
    n = 0
  end
  for i = 1, n do
    local fd = get(events, i)
    if fd == LISTENER then
      accept_all()
    else
      local rest = unsent[fd]
      if rest then                           -- writable again: the rest
        if not send_from(fd, rest, offset[fd], true) then drop(fd) end
      else
        local data, _, code = recv(fd, RECV_MAX)
        if data and data ~= "" then
          local sent = send(fd, data)        -- almost always all of it
          if sent ~= #data and not send_from(fd, data, (sent or 0) + 1) then
            drop(fd)
          end
        elseif data == "" or code ~= EAGAIN then
          drop(fd)                           -- EOF, or an error
        end
      end
    end
  end
  if paused and (freed or n == 0) then
    modify(ep, listener, LISTENER, IN)
    paused = false
  end
end
