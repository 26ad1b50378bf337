--- lepoll._connect: outbound connections, lepoll.connect (private; the
-- inbound side is lepoll._listen).
local net = require "lepoll.net"
local connm = require "lepoll._conn"
local optionsm = require "lepoll._options"
local listenm = require "lepoll._listen"

local type, error, pcall = type, error, pcall
local math_type = math.type
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

--- Connect to host, port (or a unix path) from a coroutine. opts: a number
-- (the connect timeout, seconds) or a table {timeout = s, nodelay = bool,
-- and the connection options}. Returns a connection, or nil, message,
-- errno: the message names the address ("connect 127.0.0.1:1: Connection
-- refused"); a timeout is nil, "timeout".
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
  local start = loop.now
  connm.current(loop, 2, NOTCO)
  local name = path or listenm.display(host, port)
  local fd, err, en = net.socket(path and net.UNIX
    or (host:find(":", 1, true) and net.INET6) or net.INET,
    net.STREAM, net.NONBLOCK | net.CLOEXEC)
  if not fd then return nil, "socket: " .. err, en end
  -- the Fd owns the socket until the connection takes it: an address the
  -- C layer refuses raises here with nothing left open
  local pok, ok
  if path then
    pok, ok, err, en = pcall(net.connect, fd, path)
  else
    pok, ok, err, en = pcall(net.connect, fd, host, port)
  end
  if not pok then
    fd:close()
    bad(1, listenm.reason(ok))
  end
  if not ok and en ~= EINPROGRESS and en ~= EINTR and en ~= EAGAIN then
    fd:close()
    return nil, "connect " .. name .. ": " .. err, en
  end
  local cfg = o and connm.config(loop, o, false, path ~= nil) or shared_config(loop, path ~= nil)
  if tlsm then tlsm.config(cfg) end
  local c = connm.new(loop, fd, cfg)
  if not ok then
    local timeout = o and o.timeout
    local w = connm.wait_connected(c, timeout and loop.now + timeout or false)
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
      ok, err, en = net.connect(fdn, host, port)
    end
    if not ok and en ~= EISCONN then
      connm.close(c, true)
      if en == EALREADY then err = "connection still in progress" end
      return nil, "connect " .. name .. ": " .. err, en
    end
  end
  if o and o.nodelay then net.setsockopt(c:fileno(), "nodelay", true) end
  ok, err, en = connm.connected(c, host, not path and port or nil)
  if not ok then
    connm.close(c, true)
    return nil, "connect " .. name .. ": " .. err, en
  end
  if tlsm then
    -- the handshake has its own timeout, within the whole call's
    local dl = loop.now + o.handshake_timeout
    if o.timeout and start + o.timeout < dl then dl = start + o.timeout end
    ok, err, en = tlsm.connect(c, host, o.tls, dl)
    if not ok then
      connm.close(c, true)
      return nil, err, en
    end
  end
  return c
end

return M
