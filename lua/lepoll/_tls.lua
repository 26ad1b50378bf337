--- lepoll._tls: TLS under a connection (private; users give listen a
-- `tls` context and connect a `tls` table, and call conn:tls()). The
-- reference is docs/tls.md.
--
-- A TLS connection is a connection (lepoll._conn) whose read and write
-- go through an OpenSSL session (lepoll.tls) on the same fd. What differs:
--
-- * Readiness. OpenSSL may hold decrypted bytes the kernel no longer
--   shows, and reads records, not what recv(2) has: a short read proves
--   nothing. A read waits only after SSL_read asked for more input
--   (false, "read"), and a write only after SSL_write could not go on;
--   either may ask for the other direction (false, "write" from a read),
--   so each waiter records which edge it needs (rwant, wwant).
-- * Dispatch. The connection joins epoll under a token of its own, so the
--   loop's inline recv for plain connections never touches its bytes:
--   on_event resumes the reader and the writer whose edge came.
-- * Waiting. The reader and the writer park in the connection's own slots
--   (READER, extras.writer) with the same deadlines, so timeouts, close()
--   and a graceful shutdown reach them as on plain TCP.
-- * Ending. close_notify goes out before the fd closes (when the session
--   is sound); EOF without it reads as nil, "closed", "truncated".
local tlsc = require "lepoll.tls"
local net = require "lepoll.net"
local connm = require "lepoll._conn"

local type, error, pairs, tostring, getmetatable, rawget = type, error, pairs,
  tostring, getmetatable, rawget
local math_type, sub = math.type, string.sub
local co_yield = coroutine.yield
local I = connm.internal
local L = connm.layout
local CONFIG, FD, STATE, INBUF, READER, EXTRAS = L.CONFIG, L.FD, L.STATE,
  L.INBUF, L.READER, L.EXTRAS
local ENDED, READ_SIZE = L.ENDED, L.READ_SIZE
local RMASK, WMASK, REGFLAGS = I.RMASK, I.WMASK, I.REGFLAGS
local xnode, set_deadline, deadline, fail, recorded, rare = I.xnode,
  I.set_deadline, I.deadline, I.fail, I.recorded, I.rare
local write_slow, flush_background, check_count = I.write_slow,
  I.flush_background, I.check_count
local resume, current = connm.resume, connm.current
local WAIT = connm.WAIT
local EAGAIN = net.errno.EAGAIN
local recv = net.recv
local datalen = net.datalen

local M = {}

-- The contexts' metatable, under the name lepoll.tls gives it (none is
-- made here to find it: a client context loads the CA store).
local CTX_MT = debug.getregistry()["lepoll.tls.context"]

-- Whether v is a TLS context (lepoll.tls.context).
local function is_context(v)
  return type(v) == "userdata" and getmetatable(v) == CTX_MT
end
M.is_context = is_context

-- Waiting ------------------------------------------------------------------

-- Park the calling task until the edge want ("read" or "write") comes,
-- deadline dl (false: none) passes ("timeout"), or the connection closes
-- ("closed") or, for a server's reader, the loop begins a shutdown
-- ("shutdown"). The reader's slot serves reads and the handshake.
local function wait_reader(c, T, want, dl, idle)
  local t = current(c[CONFIG].loop, 2)
  if c[READER] then error(I.TWO_READERS, 3) end
  T.rwant = want
  set_deadline(c, false, dl, idle)
  c[READER] = t
  return co_yield(WAIT)
end

-- An edge (or hangup, error) on a TLS connection: the writer first, then
-- the reader, each only for the edge it waits for (an error or hangup is
-- both: HUP and ERR are in both masks).
local function on_event(c, fl)
  local T = c._tls
  if not T then return end  -- closed in this batch
  local x = c[EXTRAS]
  local loop = c[CONFIG].loop
  local wmask = T.wwant == "read" and RMASK or WMASK
  if fl & wmask ~= 0 then
    local t = x.writer
    if t then
      x.writer = false
      resume(loop, t)
    else
      local q = x.outq
      if q and q.bytes > 0 then flush_background(c, q) end
    end
  end
  local t = c[READER]
  if t and fl & (T.rwant == "write" and WMASK or RMASK) ~= 0 then
    c[READER] = false
    resume(loop, t)
  end
end

-- The session failed: later reads and writes get the same error, and no
-- close_notify follows a fatal alert.
local function failed(c, T, err, en)
  T.sound = false
  return fail(c, err, en)
end

-- Reading ------------------------------------------------------------------

--- conn:read over TLS: as Conn:read (nil, "closed" after close_notify;
-- nil, "closed", "truncated" when the stream ended without it).
local function tls_read(self, max)
  if max == nil then
    max = self[CONFIG][READ_SIZE]
  elseif math_type(max) ~= "integer" or max < 1 then
    check_count(max, "read")
  end
  local b = self[INBUF]
  if b then
    if #b <= max then
      self[INBUF] = false
      return b
    end
    self[INBUF] = sub(b, max + 1)
    return sub(b, 1, max)
  end
  local T = self._tls
  local dl, idle
  while true do
    local st = self[STATE]
    if st > ENDED then return nil, "closed" end
    if st == ENDED then
      local m, n = recorded(self[EXTRAS], true)
      if m then return nil, m, n end
      return nil, "closed", T.truncated and "truncated" or nil
    end
    if self[READER] then error(I.TWO_READERS, 2) end
    local s, w, en = T.ssl:read(max)
    if s then return s end
    if s == nil then
      if w == "closed" then
        self[STATE] = ENDED
        if en == "truncated" then
          T.truncated, T.sound = true, false
        end
        return nil, "closed", en
      end
      return nil, failed(self, T, w, en)
    end
    local cfg = self[CONFIG]
    if cfg.loop.in_shutdown and cfg.server then
      local r = rare(self[EXTRAS])
      if not r.shutdown_told then
        r.shutdown_told = true
        return nil, "shutdown"
      end
    end
    if dl == nil then
      local call_dl = self[EXTRAS].read_call_deadline
      if cfg.reads_timed or call_dl then
        dl, idle = deadline(self, cfg.read_timeout, call_dl)
      else
        dl = false
      end
    end
    local r = wait_reader(self, T, w, dl, idle)
    if r then return nil, r end
  end
end

-- Writing ------------------------------------------------------------------

-- The sender of a TLS connection's settings (see flush in lepoll._conn):
-- SSL_write until s is taken from i on or OpenSSL must wait. A partial
-- write of a record is not a full socket (as a short send(2) is), so it
-- writes on; it returns a short count only when it must wait.
local function tls_send(c, s, i)
  local T = c._tls
  local ssl = T.ssl
  local len, start = #s, i
  while i <= len do
    local n, w, en = ssl:write(s, i)
    if not n then
      -- after a want, OpenSSL holds a record made of these bytes: the
      -- next SSL_write must bring the same ones (see abandon)
      if n == false then T.wwant, T.wpending = w, true end
      if i > start then return i - start end  -- an error comes again next call
      if n == false then return nil, w, EAGAIN end
      T.sound = false
      return nil, w, en
    end
    i = i + n
  end
  T.wpending = false
  return i - start
end

--- conn:write over TLS: as Conn:write; the high-water mark counts
-- plaintext.
local function tls_write(self, s, extra)
  local len = datalen(s, 1, "write")
  if extra ~= nil then
    error("bad argument #2 to 'write' (no value expected, got " .. type(extra) .. ")", 2)
  end
  s = s .. ""
  if self[STATE] > ENDED then return nil, "closed" end
  local x = self[EXTRAS]
  if x.writer_holds_rest then error(I.TWO_WRITERS, 2) end
  local m, n = recorded(x)
  if m then return nil, m, n end
  local q = x.outq
  if q and q.bytes > 0 then return write_slow(self, s, 1) end
  if len == 0 then return true end
  local k, err, en = tls_send(self, s, 1)
  if k then
    if k >= len then return true end
    return write_slow(self, s, k + 1)
  end
  if en == EAGAIN then return write_slow(self, s, 1) end
  return nil, fail(self, err, en)
end

-- A write that waited gave up (a timeout) with bytes of its own not
-- queued (lepoll._conn's write_slow): on plain TCP the stream goes on
-- without them, but OpenSSL may hold a record already made of them, and
-- would send it as the next write's bytes. The session cannot go on: the
-- connection fails, every later write says why.
local function abandon(c)
  local T = c._tls
  if T and T.wpending then
    T.sound = false
    fail(c, "tls: a write gave up with a record half sent")
  end
end

-- Ending -------------------------------------------------------------------

-- Send close_notify (conn:shutdown("w"), and close() through finalize):
-- once, on a session that completed its handshake and saw no fatal error.
-- It never waits: the alert is one small record, sent again while the
-- socket takes some of it (a write cut short), and when the socket cannot
-- take it the peer learns of the end from the FIN alone.
local NOTIFY_TRIES <const> = 64

local function close_notify(c)
  local T = c._tls
  if not T or not T.ready or not T.sound or T.notified then return true end
  T.notified = true
  local ssl = T.ssl
  for _ = 1, NOTIFY_TRIES do
    local ok, err, en = ssl:shutdown()
    if ok then return true end
    if ok == nil then
      T.sound = false
      return nil, err, en
    end
    if err ~= "write" then return true end
  end
  return true
end

-- The last step before the fd closes (lepoll._conn's finalize).
local DRAIN <const> = 16384  -- bytes at most

local function finalize(c)
  local T = c._tls
  if not T then return end
  close_notify(c)
  -- A TLS 1.3 server sends tickets nobody asked for: a client that only
  -- wrote has them unread, and close(2) with unread bytes sends a reset
  -- that can cut what the peer has not read yet. What the socket holds is
  -- read and dropped first (a few KiB: more is data the application left
  -- unread, and the reset then says so, as on plain TCP).
  local fd, left = c[FD], DRAIN
  while left > 0 do  -- a short read proves nothing here either
    local s = recv(fd, left)
    if not s or s == "" then break end
    left = left - #s
  end
  c._tls = false
  local loop = c[CONFIG].loop
  if T.token then loop:_release(T.token) end
  T.ssl:free()
end

-- Setting up ---------------------------------------------------------------

-- Settings for TLS connections: cfg (a listener's or one outbound
-- connection's, lepoll._conn's config) with the TLS hooks.
function M.config(cfg)
  cfg.send, cfg.finalize, cfg.close_notify, cfg.abandon = tls_send, finalize,
    close_notify, abandon
  return cfg
end

-- Put session ssl under connection c: its own reads and writes, and
-- epoll under a token of its own (added, or moved from the fd's data
-- when the connection is registered already). true or nil, message.
local function attach(c, ssl)
  local loop = c[CONFIG].loop
  local T = { ssl = ssl, token = false, rwant = "read", wwant = "write",
    ready = false, sound = true, truncated = false, notified = false }
  c._tls = T
  c.read, c.write = tls_read, tls_write
  local fd = c[FD]
  local tk = loop:_token(c, on_event)
  local ok, err, en
  if c[EXTRAS] == nil then
    ok, err, en = loop.ep:add(fd, tk, REGFLAGS)
  else
    ok, err, en = loop.ep:modify(fd, tk, REGFLAGS)
  end
  if not ok then
    loop:_release(tk)
    return nil, "epoll: " .. err, en
  end
  T.token = tk
  -- the fd's own entry stays (lepoll._conn closes through it), but no
  -- event carries the fd number any more
  xnode(c, "tls")
  return true
end

-- Run the handshake to its end within deadline dl. true or nil, message.
local function handshake(c, dl)
  local T = c._tls
  while true do
    local ok, w, en = T.ssl:handshake()
    if ok then
      T.ready = true
      set_deadline(c, false, false)
      return true
    end
    if ok == nil then
      T.sound = false
      return nil, w, en
    end
    local r = wait_reader(c, T, w, dl, false)
    if r then return nil, r == "timeout" and "tls: handshake timed out" or r end
  end
end

-- A session for c (tls.new): the session, or nil, "tls: ..." when
-- OpenSSL cannot make one or refuses the options (a session string that
-- does not decode, a name SNI cannot carry): the caller closes c.
local function session(ctx, c, role, opts)
  local ok, ssl, err = pcall(tlsc.new, ctx, c[FD], role, opts)
  if not ok then
    -- "bad argument #4 to 'new' (field 'session': not a TLS session)"
    return nil, "tls: " .. (tostring(ssl):match("%((.*)%)$") or tostring(ssl))
  end
  if not ssl then
    err = tostring(err)
    return nil, err:find("^tls: ") and err or "tls: " .. err
  end
  return ssl
end

--- An accepted connection c of a listener with context ctx: the server's
-- handshake, within timeout seconds. true, or nil, message (the caller
-- closes c).
function M.accept(c, ctx, timeout)
  local ssl, err = session(ctx, c, "server")
  if not ssl then return nil, err end
  local ok, en
  ok, err, en = attach(c, ssl)
  if not ok then
    ssl:free()
    return nil, err, en
  end
  return handshake(c, c[CONFIG].loop.now + timeout)
end

-- The default client context: the system's CAs, verification on. Made
-- on first use (loading the CA store costs milliseconds) and shared.
local default_ctx
local function client_context()
  if not default_ctx then
    local ctx, err = tlsc.context({})
    if not ctx then return nil, err end
    default_ctx = ctx
  end
  return default_ctx
end

--- Check connect's tls option: true, a context, or a table { ctx,
-- server_name, verify, alpn, session }. Returns the value, or nil and
-- what was expected.
local function string_list(v)
  if type(v) ~= "table" then return false end
  for i = 1, #v do
    if type(v[i]) ~= "string" then return false end
  end
  return true
end
local CLIENT_FIELDS = {
  ctx = { is_context, "a TLS context" },
  server_name = { function(v) return type(v) == "string" end, "a string" },
  verify = { function(v) return type(v) == "boolean" end, "a boolean" },
  alpn = { string_list, "an array of strings" },
  session = { function(v) return type(v) == "string" end, "a string" },
}
function M.check_client(v)
  if v == true or is_context(v) then return v end
  if type(v) ~= "table" then
    return nil, "true, a TLS context or a table"
  end
  for k, val in pairs(v) do
    local f = CLIENT_FIELDS[k]
    if not f then
      return nil, "a table without field " .. (type(k) == "string" and "'" .. k .. "'"
        or tostring(k))
    end
    if not f[1](val) then return nil, ("a table whose %s is %s"):format(k, f[2]) end
  end
  return v
end

--- Check listen's tls option: a context (tls.context).
function M.check_server(v)
  if is_context(v) then return v end
  return nil, "a TLS context (lepoll.tls.context)"
end

--- Make outbound connection c (connected to host) a TLS client, with
-- the checked tls option opt, and shake hands before deadline dl. The
-- task runs from the loop's queue first: it may have been resumed from
-- the dispatch of this fd's event, which must not see the reader the
-- handshake parks. true or nil, message.
function M.connect(c, host, opt, dl)
  local loop = c[CONFIG].loop
  local t = current(loop, 1)
  loop:_schedule(t)
  co_yield(WAIT)
  if c[STATE] > ENDED then return nil, "closed" end
  local ctx, o = nil, nil
  if is_context(opt) then
    ctx = opt
  elseif type(opt) == "table" then
    ctx, o = opt.ctx, opt
  end
  local err
  if not ctx then
    ctx, err = client_context()
    if not ctx then return nil, err end
  end
  local name = o and o.server_name
  if name == nil then
    name = host:match("^%[(.*)%]$") or host
  end
  local sopts = { server_name = name or nil, verify = o and o.verify,
    alpn = o and o.alpn, session = o and o.session }
  local ssl
  ssl, err = session(ctx, c, "client", sopts)
  if not ssl then return nil, err end
  local ok, en
  ok, err, en = attach(c, ssl)
  if not ok then
    ssl:free()
    return nil, err, en
  end
  return handshake(c, dl)
end

--- Whether OpenSSL holds input for c that no read took yet (false on a
-- plain connection): decrypted bytes, or records read ahead from the
-- socket, which a recv(2) on it no longer sees (a pool must not lend a
-- connection with bytes after the response it read).
function M.buffered(c)
  local T = rawget(c, "_tls")
  if not T then return false end
  local n, any = T.ssl:pending()
  return n > 0 or any
end

--- conn:tls(): the session's facts (lepoll.tls's info(): version, cipher,
-- alpn, sni, subject, issuer, resumed, verified, bits) and session (the
-- newest resumable session a client received, or nil); nil on a plain
-- connection.
function M.info(c)
  local T = rawget(c, "_tls")
  if not T then return nil end
  local t = T.ssl:info()
  t.session = T.ssl:session()
  return t
end

return M
