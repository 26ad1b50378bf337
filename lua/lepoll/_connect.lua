--- lepoll._connect: outbound connections, lepoll.connect (private; the
-- inbound side is lepoll._listen).
local net = require "lepoll.net"
local connm = require "lepoll._conn"
local optionsm = require "lepoll._options"
local listenm = require "lepoll._listen"
local resolvem = require "lepoll._resolve"
local resolver = require "lepoll.resolver"
local timerm = require "lepoll._timer"

local type, error, pcall = type, error, pcall
local math_type = math.type
local numeric, now = resolver.numeric, timerm.now
local errno = net.errno
local EINPROGRESS, EINTR, EAGAIN, EISCONN, EALREADY = errno.EINPROGRESS,
  errno.EINTR, errno.EAGAIN, errno.EISCONN, errno.EALREADY

local M = {}

local NOTCO = "lepoll.connect must be called from a coroutine (a connection"
  .. " handler or lepoll.spawn)"

-- The settings of a loop's outbound connections made without options,
-- one set per kind of socket.
local function shared_config(loop, unix)
  local key = unix and "unix" or "tcp"
  local cfg = loop.outbound_configs[key]
  if not cfg then
    cfg = connm.config(loop, optionsm.check(nil, "connect"), false, unix)
    loop.outbound_configs[key] = cfg
  end
  return cfg
end

-- One connect(2) to addr (a numeric address, "*", "localhost" or a unix
-- path; port nil for a path) until deadline (false: none): the
-- connection, or nil, message, errno ("timeout" alone). name is what
-- messages call it; host what the connection records (see connect).
local function attempt(loop, addr, port, o, name, host, deadline)
  local path = not port and addr
  local fd, err, en = net.socket(path and net.UNIX
    or (addr:find(":", 1, true) and net.INET6) or net.INET,
    net.STREAM, net.NONBLOCK | net.CLOEXEC)
  if not fd then return nil, "socket: " .. err, en end
  -- the Fd owns the socket until the connection takes it: an address the
  -- C layer refuses raises here with nothing left open
  local pok, ok
  if path then
    pok, ok, err, en = pcall(net.connect, fd, path)
  else
    pok, ok, err, en = pcall(net.connect, fd, addr, port)
  end
  if not pok then
    fd:close()
    error(("bad argument #1 to 'connect' (%s)"):format(listenm.reason(ok)), 3)
  end
  if not ok and en ~= EINPROGRESS and en ~= EINTR and en ~= EAGAIN then
    fd:close()
    return nil, "connect " .. name .. ": " .. err, en
  end
  local cfg = o and connm.config(loop, o, false, path and true) or shared_config(loop, path)
  if o and o.tls then require("lepoll._tls").config(cfg) end
  local c = connm.new(loop, fd, cfg)
  if not ok then
    local w = connm.wait_connected(c, deadline)
    if w then
      connm.close(c, true)
      return nil, w
    end
    -- connect(2) again tells how the first one ended: EISCONN is success,
    -- anything else its error (and clears it), with the C layer's message
    local fdn = c:fileno()
    if path then
      ok, err, en = net.connect(fdn, path)
    else
      ok, err, en = net.connect(fdn, addr, port)
    end
    if not ok and en ~= EISCONN then
      connm.close(c, true)
      if en == EALREADY then err = "connection still in progress" end
      return nil, "connect " .. name .. ": " .. err, en
    end
  end
  if o and o.nodelay then net.setsockopt(c:fileno(), "nodelay", true) end
  -- host: the user's name (a TLS layer's server name); addr: whom it called
  ok, err, en = connm.connected(c, host, port, addr)
  if not ok then
    connm.close(c, true)
    return nil, "connect " .. name .. ": " .. err, en
  end
  return c
end

-- After an attempt (c, or nil, err, en): with the tls option, the TLS
-- client's handshake with host's name (lepoll._tls), bounded by its own
-- handshake_timeout within the whole call's deadline.
local function secure(c, err, en, host, o, tlsm, deadline)
  if not c then return nil, err, en end
  if not tlsm then return c end
  local dl = now() + o.handshake_timeout
  if deadline and deadline < dl then dl = deadline end
  local ok
  ok, err, en = tlsm.connect(c, host, o.tls, dl)
  if not ok then
    connm.close(c, true)
    return nil, err, en
  end
  return c
end

--- Connect to host, port (or a unix path) from a coroutine. host: a
-- numeric address ("[::1]" too), "*", "localhost", or a name, resolved
-- first (lepoll._resolve) and its addresses tried in order until one
-- connects. opts: a number (the timeout, seconds: it bounds the lookup
-- and every attempt together) or a table {timeout = s, nodelay = bool,
-- family = "inet" | "inet6", tls = true | a context | {ctx, server_name,
-- verify, alpn, session} (lepoll._tls), handshake_timeout = s, and the
-- connection options}. Returns a
-- connection, or nil, message, errno: the message names the address
-- ("connect 127.0.0.1:1: Connection refused"; for a name, the last
-- attempt's error under the name); a timeout is nil, "timeout"; a name
-- that does not resolve is resolve's nil, "resolve NAME: ...", "EAI_...".
function M.connect(loop, host, port, opts)
  loop:_check_open("connect")
  local function bad(arg, msg)
    error(("bad argument #%d to 'connect' (%s)"):format(arg, msg), 3)
  end
  if type(host) ~= "string" then bad(1, "string expected, got " .. type(host)) end
  local path
  if port == nil or type(port) == "table" then
    if type(port) == "table" then opts = port end
    path = host
  elseif math_type(port) ~= "integer" or port < 0 or port > 65535 then
    bad(2, "port 0..65535 expected, got " .. optionsm.shown(port))
  end
  if type(opts) == "number" then
    opts = { timeout = opts }
  elseif opts ~= nil and type(opts) ~= "table" then
    bad(path and 2 or 3, "number or table expected, got " .. type(opts))
  end
  local o = opts and optionsm.check(opts, "connect", "connect", path and 2 or 3)
  local tlsm = o and o.tls and require("lepoll._tls")
  if tlsm then
    local ok, expected = tlsm.check_client(o.tls)
    if not ok then bad(path and 2 or 3, "option 'tls' must be " .. expected) end
  end
  local t = connm.current(loop, 2, NOTCO)
  local timeout = o and o.timeout
  local deadline = timeout and now() + timeout or false
  local c, err, en  -- no tail calls: attempt's argument errors name our caller
  if path then
    c, err, en = attempt(loop, path, nil, o, path, path, deadline)
    return secure(c, err, en, path, o, tlsm, deadline)
  end
  if host:find("\0", 1, true) then bad(1, "host name without NUL expected") end
  local family = o and o.family
  local addr, fam = numeric(host)
  if addr or host == "*" or host == "localhost" then
    -- no lookup: the C layer knows "*" and "localhost" (of the family)
    addr = addr or host
    if family and fam and fam ~= family then
      return nil, "resolve " .. host .. ": Address family for hostname not supported",
        "EAI_ADDRFAMILY"
    end
    if not fam and family == "inet6" then addr = host == "*" and "::" or "::1" end
    c, err, en = attempt(loop, addr, port, o, listenm.display(addr, port), addr, deadline)
    return secure(c, err, en, addr, o, tlsm, deadline)
  end
  local addrs
  addrs, err, en = resolvem.lookup(loop, t, host, family,
    deadline or now() + resolvem.DEFAULT_TIMEOUT)
  if not addrs then return nil, err, en end
  local name = host .. ":" .. port
  for i = 1, #addrs do
    c, err, en = attempt(loop, addrs[i], port, o, name, host, deadline)
    if c or err == "timeout" then break end
  end
  return secure(c, err, en, host, o, tlsm, deadline)
end

return M
