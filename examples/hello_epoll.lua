--- The seed's accept-and-write example (rustix's epoll module docs), on
-- lepoll's C layer alone: every client gets "hello\n" and is closed.
--
--   lua5.4 examples/hello_epoll.lua [PORT]      (0, the default, picks one)
--
-- Prints "listening on 127.0.0.1:PORT" first; runs until SIGINT/SIGTERM.
-- What it fixes in the seed: the listener is non-blocking and each wakeup
-- accepts until EAGAIN (not one connection per wakeup); a partial write is
-- finished on the next OUT edge; a client that resets costs only its own
-- connection (send uses MSG_NOSIGNAL, so no SIGPIPE); running out of fds
-- (EMFILE) pauses accepting instead of spinning on the listener.
local epoll = require "lepoll.epoll"
local net = require "lepoll.net"

local HELLO = "hello\n"
local accept, send, NONBLOCK = net.accept, net.send, net.NONBLOCK
local OUT_ET = epoll.OUT | epoll.ET
local EAGAIN, EINTR = net.errno.EAGAIN, epoll.errno.EINTR
local EMFILE, ENFILE = net.errno.EMFILE, net.errno.ENFILE
local ECONNABORTED, EPROTO = net.errno.ECONNABORTED, net.errno.EPROTO
local LISTENER = -1        -- event data of the listener; a connection's is its fd
local BACKOFF_MS = 100     -- longest pause in accepting after EMFILE

local port = math.tointeger(tonumber(arg[1] or "0"))
assert(port and port >= 0 and port <= 65535, "usage: hello_epoll.lua [PORT]")

-- Create a non-blocking socket and listen on it.
local listener = assert(net.socket(net.INET, net.STREAM, net.NONBLOCK))
assert(net.setsockopt(listener, "reuseaddr", true))
assert(net.bind(listener, "127.0.0.1", port))
assert(net.listen(listener, 1024))
local host, bound = assert(net.getsockname(listener))
io.stdout:write("listening on ", host, ":", bound, "\n")
io.stdout:flush()

-- Create an epoll object and register the listener with it.
local ep = assert(epoll.create())
assert(ep:add(listener, LISTENER, epoll.IN))

-- The sockets we have opened, keyed by fd number (the event data). An fd
-- number is unique while its socket is open, and a socket leaves epoll
-- before it is closed, so no event can name a reused number by mistake.
local sockets = {}
local sent = {}            -- fd number -> bytes sent, after a partial write
local paused = false       -- accepting paused after EMFILE
local freed = false        -- a connection was closed while paused

local function finish(fd)
  local sock = sockets[fd]
  ep:delete(fd)
  sock:close()
  sockets[fd], sent[fd] = nil, nil
  freed = true
end

-- Accept everything that is waiting; register each connection for OUT|ET.
-- accept4 with NONBLOCK is the seed's accept + ioctl_fionbio in one call.
local function accept_all()
  while true do
    local sock, err, code = accept(listener, NONBLOCK)
    if sock then
      local fd = sock:fileno()
      if ep:add(fd, fd, OUT_ET) then
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
        io.stderr:write("hello_epoll: accept: ", err, "\n")
      end
      ep:modify(listener, LISTENER, 0)
      paused, freed = true, false
      return
    end                      -- else that client gave up already: next
  end
end

-- Write "hello\n" (the rest of it after a partial write), then unregister
-- and close. EAGAIN waits for the next OUT edge; any error just closes.
local function say_hello(fd)
  local done = sent[fd] or 0
  while done < #HELLO do
    local n, _, code = send(fd, HELLO, done + 1)
    if not n then
      if code == EAGAIN then
        sent[fd] = done
        return
      end
      break                -- reset by the peer, or another error
    end
    done = done + n
  end
  finish(fd)
end

-- Process events.
local events = epoll.events(256)
while true do
  local n, err, code = ep:wait(events, paused and BACKOFF_MS or -1)
  if not n then
    assert(code == EINTR, err)
    n = 0
  end
  for i = 1, n do
    local data = events:get(i)
    if data == LISTENER then
      accept_all()
    else
      say_hello(data)
    end
  end
  if paused and (freed or n == 0) then   -- an fd came free, or time is up
    ep:modify(listener, LISTENER, epoll.IN)
    paused = false
  end
end
