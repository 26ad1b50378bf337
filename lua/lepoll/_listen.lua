--- lepoll._listen: listening sockets (TCP over IPv4/IPv6, unix) that
-- accept in batches and start one handler coroutine per connection
-- (private: the public entry point is lepoll.listen).
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local heap = require "lepoll._heap"
local connm = require "lepoll._conn"
local optionsm = require "lepoll._options"
local logm = require "lepoll._log"
local activation = require "lepoll._activation"
local role = require "lepoll._role"

local accept, setsockopt = net.accept, net.setsockopt
local type, error, tostring, setmetatable, pcall = type, error, tostring,
  setmetatable, pcall
local errno = net.errno
local EAGAIN, EINTR, ECONNABORTED, EPROTO = errno.EAGAIN, errno.EINTR,
  errno.ECONNABORTED, errno.EPROTO
local AFLAGS = net.NONBLOCK | net.CLOEXEC
local conn_new, start = connm.new, connm.start
local CONFIG = connm.layout.CONFIG
local log = logm.log

local M = {}

local Server = {}
Server.__index = Server
M.Server = Server

-- Stop watching the listener for a while (EMFILE and friends): the
-- backlog keeps the clients waiting, nothing spins. The first pause of a
-- run of them is reported; the recovery reports how many there were.
local function pause(s, msg)
  local loop = s.loop
  if not s.paused then
    s.paused = true
    for _, sk in ipairs(s.reg) do loop.ep:delete(sk.fd) end
  end
  if s.pauses == 0 then
    s.paused_since = loop.now
    log(("accept on %s: %s; pausing accepts, retrying every %gs"):format(s.name, msg,
      s.backoff))
  end
  s.pauses = s.pauses + 1
  s.at = loop.now + s.backoff
  heap.push(loop.heap, s)
end

-- A back-off ended: watch the listener again (level-triggered, so a
-- waiting backlog reports itself at once).
function Server:_expire(loop)
  if self.closed or not self.paused then return end
  self.paused = false
  for _, sk in ipairs(self.reg) do assert(loop.ep:add(sk.fd, sk.token, sk.flags)) end
end

local function resumed(s)
  log(("accept on %s: accepting again after %d pause%s (%.1fs)"):format(s.name,
    s.pauses, s.pauses == 1 and "" or "s", s.loop.now - s.paused_since))
  s.pauses = 0
end

-- sk: one listening socket of a server, as registered in the loop.
local function on_accept(sk)
  local s = sk.server
  local lfd, loop, cfg, handler = sk.fd, s.loop, s.cfg, s.handler
  local stats = cfg.stats
  local nodelay = s.nodelay
  for _ = 1, s.batch do
    local fd, msg, en = accept(lfd, AFLAGS)
    if fd then
      if s.pauses > 0 then resumed(s) end
      stats.accepted = stats.accepted + 1
      if nodelay then setsockopt(fd, "nodelay", true) end
      local c = conn_new(loop, fd, cfg)
      start(loop, c, handler, c)  -- the connection is its handler's task
      if s.closed then return end
    elseif en == EAGAIN then
      return
    elseif en ~= ECONNABORTED and en ~= EINTR and en ~= EPROTO then
      -- EMFILE, ENFILE, ENOBUFS, ENOMEM, ...: retry later, not in a loop
      pause(s, msg)
      return
    end
  end
  -- batch used up: the listener stays ready (level-triggered) and is
  -- served again after the events already fetched
end

-- Watch the sockets socks (Fds of s.socks) in s's loop; exclusive: with
-- EPOLLEXCLUSIVE, for a socket other workers' loops watch too (one of
-- them wakes per connection, not all). true, or nil, message, errno.
local function register(s, socks, exclusive)
  local loop = s.loop
  local flags = exclusive and (epoll.IN | epoll.EXCLUSIVE) or epoll.IN
  for _, fd in ipairs(socks) do
    local sk = { server = s, fd = fd, flags = flags, token = false }
    sk.token = loop:_token(sk, on_accept)
    local ok, err, en = loop.ep:add(fd, sk.token, flags)
    if not ok then
      loop:_release(sk.token)
      return nil, err, en
    end
    s.reg[#s.reg + 1] = sk
  end
  return true
end

-- Stop watching every registered socket. The epoll set must be told: a
-- socket another process holds too (the master, other workers) stays
-- open after this process closes its fd, and so would its registration.
local function unregister(s)
  local loop = s.loop
  for i, sk in ipairs(s.reg) do
    if not s.paused and not loop.closed then loop.ep:delete(sk.fd) end
    loop:_release(sk.token)
    s.reg[i] = nil
  end
end

--- In a worker just forked (_workers.lua): keep this worker's share of
-- the listener's sockets, close the rest (the master keeps them), and
-- watch them in the worker's loop. With as many sockets as workers (or
-- more), each socket belongs to one worker (SO_REUSEPORT: the kernel
-- spreads connections over them); with fewer, workers share them, woken
-- one at a time (EPOLLEXCLUSIVE).
function Server:_assign(id, count)
  local socks, k = self.socks, #self.socks
  local mine, shared = {}, k < count
  for j = 1, k do
    if (shared and (id % k) + 1 == j) or (not shared and (j - 1) % count == id) then
      mine[#mine + 1] = socks[j]
    else
      socks[j]:close()
    end
  end
  self.socks, self.fd = mine, mine[1]
  self.reg = {}
  return register(self, mine, shared)
end

local function display(host, port)
  return (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
end
M.display = display

--- The reason inside a C argument error ("bad argument #2 to 'bind'
-- ('x' is not a numeric IPv4 address)" -> "'x' is not ..."): the C layer
-- judges addresses and paths, the framework names the user's argument.
function M.reason(msg)
  return type(msg) == "string" and msg:match("%((.*)%)$") or tostring(msg)
end

--- Listen and serve: opts {host = "127.0.0.1", port = n (0: any free
-- port) | path = "/unix/socket", backlog = 1024, reuseaddr = true,
-- reuseport = false, v6only, nodelay = false, accept_batch = 64,
-- accept_backoff = 0.1, unlink = false, plus the connection options}.
-- handler(conn) runs in its own coroutine per connection.
-- Returns the server, or nil, message, errno if the socket cannot be set up.
--- The handler of a TLS listener (option tls, a context): the server's
-- handshake within timeout seconds, then handler(conn). A failed
-- handshake (a scanner, a client that distrusts the certificate) ends
-- the connection silently; the listener's stats count it
-- (tls_failures).
function M.tls_handler(ctx, timeout, handler)
  local tlsm = require "lepoll._tls"
  local tls_accept = tlsm.accept
  return function(c)
    if not tls_accept(c, ctx, timeout) then
      local stats = c[CONFIG].stats
      stats.tls_failures = (stats.tls_failures or 0) + 1
      return
    end
    return handler(c)
  end
end

function M.listen(loop, opts, handler)
  loop:_check_open("listen")
  local o = optionsm.check(opts, "listen", "listen", 1)
  local path, host, port = o.path, o.host or "127.0.0.1", o.port
  local function bad(msg, depth)  -- depth: calls between listen and bad's caller
    error("bad argument #1 to 'listen' (" .. msg .. ")", 3 + (depth or 0))
  end
  if path then
    if port ~= nil then bad("options 'path' and 'port' exclude each other") end
    if o.host ~= nil then bad("options 'path' and 'host' exclude each other") end
  elseif port == nil then
    bad("option 'port' must be an integer 0..65535, got nil")
  end
  if type(handler) ~= "function" then
    error("bad argument #2 to 'listen' (function expected, got " .. type(handler) .. ")", 2)
  end
  if o.trusted and not o.proxy_protocol then
    bad("option 'trusted' needs option 'proxy_protocol'")
  end
  if o.tls then handler = M.tls_handler(o.tls, o.handshake_timeout, handler) end
  -- the PROXY header comes before everything, a TLS handshake included
  if o.proxy_protocol then
    handler = require("lepoll._proxy").handler(o, handler, path ~= nil)
  end
  local s = setmetatable({ loop = loop, handler = handler, path = path,
    batch = o.accept_batch, backoff = o.accept_backoff, nodelay = o.nodelay,
    closed = false, paused = false, pauses = 0, paused_since = 0,
    at = 0, seq = 0, heap_index = false, fd = false, socks = false, reg = false,
    name = path or display(host, port),
    fdname = o.name, serial = loop.servers_made + 1,
  }, Server)
  loop.servers_made = s.serial
  local family = path and net.UNIX or (host:find(":", 1, true) and net.INET6) or net.INET
  local socks, inherited, en, owned = M.sockets(o, family, host, port, path, bad, s.serial)
  if not socks then return nil, inherited, en end
  s.socks, s.fd = socks, socks[1]
  if not path then
    local h, p = net.getsockname(socks[1])
    if h then s.name = display(h, p) end
  elseif inherited and not owned then
    s.path = false  -- not ours to remove (systemd's)
  end
  s.cfg = connm.config(loop, o, s, path ~= nil)
  if o.tls then require("lepoll._tls").config(s.cfg) end
  if o.proxy_protocol then
    local stats = s.cfg.stats
    stats.proxy_failures, stats.proxy_untrusted, stats.proxy_reasons = 0, 0, {}
  end
  s.reg = {}
  -- a master binds, its workers watch (Server:_assign after fork)
  if role.role ~= "master" then
    local ok, err
    ok, err, en = register(s, socks, false)
    if not ok then
      unregister(s)
      for _, fd in ipairs(socks) do fd:close() end
      return nil, ("epoll add %s: %s"):format(s.name, err), en
    end
  end
  loop.servers[s] = true
  loop.nactive = loop.nactive + 1
  return s
end

-- One new listening socket (nonblocking, CLOEXEC), bound and listening;
-- or nil, message, errno.
local function open_socket(o, family, host, port, path, reuseport, bad)
  local name = path or display(host, port)
  local fd, err, en = net.socket(family, net.STREAM, net.NONBLOCK | net.CLOEXEC)
  if not fd then return nil, "socket: " .. err, en end
  local function fail(what, e, n)
    fd:close()
    return nil, ("%s %s: %s"):format(what, name, e), n
  end
  local ok
  if not path then
    if o.reuseaddr then
      ok, err, en = setsockopt(fd, "reuseaddr", true)
      if not ok then return fail("setsockopt reuseaddr", err, en) end
    end
    if reuseport then
      ok, err, en = setsockopt(fd, "reuseport", true)
      if not ok then return fail("setsockopt reuseport", err, en) end
    end
    if family == net.INET6 and o.v6only ~= nil then
      ok, err, en = setsockopt(fd, "v6only", o.v6only)
      if not ok then return fail("setsockopt v6only", err, en) end
    end
    local pok
    pok, ok, err, en = pcall(net.bind, fd, host, port)
    if not pok then
      fd:close()
      bad("option 'host': " .. M.reason(ok), 2)
    end
  else
    if o.unlink then os.remove(path) end
    local pok
    pok, ok, err, en = pcall(net.bind, fd, path)
    if not pok then
      fd:close()
      bad("option 'path': " .. M.reason(ok), 2)
    end
  end
  if not ok then return fail("bind", err, en) end
  ok, err, en = net.listen(fd, o.backlog)
  if not ok then return fail("listen", err, en) end
  return fd
end

--- The listening sockets of a listen call: the ones this process
-- inherited for it (LISTEN_FDS: _activation.lua), else new ones - one,
-- or in a workers master one per worker, bound with SO_REUSEPORT to one
-- address (a unix path, or the "shared" mode: one socket all share).
-- Returns the array, whether it was inherited, nil, and whether an
-- earlier image of this process made them (a reload); or nil, message,
-- errno.
function M.sockets(o, family, host, port, path, bad, serial)
  local got = activation.claim(o, host, port, path, serial)
  if got then
    local socks, owned = {}, true
    for i, g in ipairs(got) do
      socks[i] = g.fd
      owned = owned and g.owned
    end
    return socks, true, nil, owned
  end
  local count = 1
  if role.role == "master" and role.mode == "reuseport" and not path then
    count = role.count
  end
  local socks = {}
  for i = 1, count do
    local fd, err, en = open_socket(o, family, host, port, path, o.reuseport or count > 1, bad)
    if not fd then
      for j = 1, i - 1 do socks[j]:close() end
      return nil, err, en
    end
    socks[i] = fd
    if i == 1 and port == 0 and count > 1 then
      local _, p = net.getsockname(fd)
      port = p  -- the others join the port the kernel gave the first
    end
  end
  return socks, false
end

--- The bound address: host, port (the real port when port 0 was asked),
-- or the unix path.
function Server:address()
  if self.closed then return nil, "closed" end
  if self.path then return self.path end
  return net.getsockname(self.fd)
end

--- Counters: {accepted = total accepted, active = open connections,
-- max_queued = the most output ever queued on one connection; with TLS
-- tls_failures; with proxy_protocol proxy_failures, proxy_untrusted and
-- proxy_reasons = {reason -> count}}. Live table.
function Server:stats()
  return self.cfg.stats
end

--- The listening socket's fd number (-1 once closed).
function Server:fileno()
  if self.closed then return -1 end
  return self.fd:fileno()
end

--- Stop listening (connections already accepted carry on). A unix
-- socket's path is removed by the process that made it (not a worker,
-- and not for an inherited socket). Idempotent; returns true.
function Server:close()
  if self.closed then return true end
  local loop = self.loop
  unregister(self)
  self.closed = true
  heap.remove(loop.heap, self)
  for _, fd in ipairs(self.socks) do fd:close() end
  loop.servers[self] = nil
  loop.nactive = loop.nactive - 1
  if self.path and role.role ~= "worker" then os.remove(self.path) end
  return true
end

function Server:__tostring()
  return "lepoll.Server (" .. self.name .. (self.closed and ", closed)" or ")")
end

return M
