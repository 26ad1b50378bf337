--- lepoll.listen: listening sockets (TCP over IPv4/IPv6, unix) that
-- accept in batches and start one handler coroutine per connection.
-- Private to the framework: the public entry point is lepoll.listen.
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local heap = require "lepoll.timer"
local connm = require "lepoll.conn"
local logm = require "lepoll._log"

local accept, setsockopt = net.accept, net.setsockopt
local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local math_type = math.type
local errno = net.errno
local EAGAIN, EINTR, ECONNABORTED, EPROTO = errno.EAGAIN, errno.EINTR,
  errno.ECONNABORTED, errno.EPROTO
local AFLAGS = net.NONBLOCK | net.CLOEXEC
local conn_new = connm.new
local log = logm.log

local M = {}

local Server = {}
Server.__index = Server
M.Server = Server

local function bad(msg)
  error("bad argument #1 to 'listen' (" .. msg .. ")", 4)
end

-- Stop watching the listener for a while (EMFILE and friends): the
-- backlog keeps the clients waiting, nothing spins.
local function pause(s, msg)
  local loop = s.loop
  if not s.paused then
    s.paused = true
    loop.ep:delete(s.fd)
    log(("accept on %s: %s; pausing accepts for %gs"):format(s.name, msg, s.backoff))
  end
  s.at = loop.now + s.backoff
  heap.push(loop.heap, s)
end

-- A back-off ended: watch the listener again (level-triggered, so a
-- waiting backlog reports itself at once).
function Server:_expire(loop)
  if self.closed or not self.paused then return end
  self.paused = false
  assert(loop.ep:add(self.fd, self.tok, epoll.IN))
end

local function on_accept(s)
  local lfd, loop, cfg, handler = s.fd, s.loop, s.cfg, s.handler
  local stats = cfg.stats
  local nodelay = s.nodelay
  for _ = 1, s.batch do
    local fd, msg, en = accept(lfd, AFLAGS)
    if fd then
      stats.accepted = stats.accepted + 1
      if nodelay then setsockopt(fd, "nodelay", true) end
      local c = conn_new(loop, fd, cfg)
      loop:_task(c, handler, c)  -- the connection is its handler's task
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

local function check_opts(opts)
  if type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  local port, path = opts.port, opts.path
  if path ~= nil then
    if type(path) ~= "string" or path == "" then bad("option 'path' must be a non-empty string") end
    if port ~= nil then bad("options 'path' and 'port' exclude each other") end
  else
    if math_type(port) ~= "integer" or port < 0 or port > 65535 then
      bad("option 'port' must be an integer 0..65535, got " .. tostring(port))
    end
    if opts.host ~= nil and type(opts.host) ~= "string" then
      bad("option 'host' must be a string")
    end
  end
  for _, k in ipairs({ "backlog", "accept_batch" }) do
    local v = opts[k]
    if v ~= nil and (math_type(v) ~= "integer" or v < 1) then
      bad(("option '%s' must be a positive integer"):format(k))
    end
  end
  local b = opts.accept_backoff
  if b ~= nil and (type(b) ~= "number" or b ~= b or b <= 0 or b == math.huge) then
    bad("option 'accept_backoff' must be a positive number")
  end
end

--- Listen and serve: opts {host = "127.0.0.1", port = n (0: any free
-- port) | path = "/unix/socket", backlog = 1024, reuseaddr = true,
-- reuseport = false, v6only = nil, nodelay = false, accept_batch = 64,
-- accept_backoff = 0.1, unlink = false, plus the connection options}.
-- handler(conn) runs in its own coroutine per connection.
-- Returns the server, or nil, message, errno if the socket cannot be set up.
function M.listen(loop, opts, handler)
  check_opts(opts)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'listen' (function expected, got " .. type(handler) .. ")", 3)
  end
  local path, host, port = opts.path, opts.host or "127.0.0.1", opts.port
  local s = setmetatable({ loop = loop, handler = handler, path = path,
    batch = opts.accept_batch or 64, backoff = opts.accept_backoff or 0.1,
    nodelay = opts.nodelay and true or false, closed = false, paused = false,
    at = 0, seq = 0, hi = false, tok = false, fd = false,
    name = path or (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port,
  }, Server)
  s.cfg = connm.config(loop, opts, s, "listen")
  local family = path and net.UNIX or (host:find(":", 1, true) and net.INET6) or net.INET
  local fd, err, en = net.socket(family, net.STREAM, net.NONBLOCK | net.CLOEXEC)
  if not fd then return nil, "socket: " .. err, en end
  local function fail(what, e, n)
    fd:close()
    return nil, ("%s %s: %s"):format(what, s.name, e), n
  end
  local ok
  if not path then
    if opts.reuseaddr ~= false then
      ok, err, en = setsockopt(fd, "reuseaddr", true)
      if not ok then return fail("setsockopt reuseaddr", err, en) end
    end
    if opts.reuseport then
      ok, err, en = setsockopt(fd, "reuseport", true)
      if not ok then return fail("setsockopt reuseport", err, en) end
    end
    if family == net.INET6 and opts.v6only ~= nil then
      ok, err, en = setsockopt(fd, "v6only", opts.v6only and true or false)
      if not ok then return fail("setsockopt v6only", err, en) end
    end
    ok, err, en = net.bind(fd, host, port)
  else
    if opts.unlink then os.remove(path) end
    ok, err, en = net.bind(fd, path)
  end
  if not ok then return fail("bind", err, en) end
  ok, err, en = net.listen(fd, opts.backlog or 1024)
  if not ok then return fail("listen", err, en) end
  s.fd = fd
  s.tok = loop:_token(s, on_accept)
  ok, err, en = loop.ep:add(fd, s.tok, epoll.IN)
  if not ok then
    loop:_release(s.tok)
    return fail("epoll add", err, en)
  end
  loop.servers[s] = true
  loop.nactive = loop.nactive + 1
  if not path then
    local h, p = net.getsockname(fd)
    if h then s.name = (h:find(":", 1, true) and "[" .. h .. "]" or h) .. ":" .. p end
  end
  return s
end

--- The bound address: host, port (the real port when port 0 was asked),
-- or the unix path.
function Server:address()
  if self.closed then return nil, "closed" end
  if self.path then return self.path end
  return net.getsockname(self.fd)
end

--- Counters: {accepted = total accepted, active = open connections,
-- max_queued = the most output ever queued on one connection}. Live table.
function Server:stats()
  return self.cfg.stats
end

--- The listening socket's fd number (-1 once closed).
function Server:fileno()
  if self.closed then return -1 end
  return self.fd:fileno()
end

--- Stop listening (connections already accepted carry on). A unix
-- socket's path is removed. Idempotent; returns true.
function Server:close()
  if self.closed then return true end
  self.closed = true
  local loop = self.loop
  heap.remove(loop.heap, self)
  self.fd:close()
  loop:_release(self.tok)
  loop.servers[self] = nil
  loop.nactive = loop.nactive - 1
  if self.path then os.remove(self.path) end
  return true
end

function Server:__tostring()
  return "lepoll.Server (" .. self.name .. (self.closed and ", closed)" or ")")
end

return M
