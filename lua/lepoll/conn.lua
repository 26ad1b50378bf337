--- lepoll.conn: stream connections (accepted or outbound) whose methods
-- look blocking and yield to the loop on EAGAIN. Private to the framework:
-- connections reach users through listen handlers and lepoll.connect.
--
-- Readiness: a connection is registered with epoll only the first time it
-- has to wait (a handler that writes and returns costs no epoll_ctl), then
-- edge-triggered for IN|OUT|RDHUP and never modified again; its epoll data
-- is its fd number. A short read means the socket is drained, so the next
-- read waits for the edge instead of paying a recv(2) that would say
-- EAGAIN.
--
-- Tasks: the loop runs coroutines as tasks, tables with the coroutine at
-- index 1 (see Loop:_task). An accepted connection is its handler's task,
-- and the handler is the coroutine's main function. Writes and other
-- waits record the waiting task (loop[CUR]), yield WAIT, and are resumed
-- with nil (ready), "timeout" or "closed". A read yields RWAIT and the
-- connection: the resumer records the task it resumed as the reader, and
-- the loop reads for it (see Conn:read and M.dispatch).
--
-- Memory: an idle connection is its handler's coroutine (a lua_State, the
-- 40-slot minimum stack, and one CallInfo per frame: handler, conn:read,
-- coroutine.yield), this table (its state in a 7-slot array part, read
-- and write in a 2-node hash part; the socket is a plain fd number, no
-- lepoll.Fd) and a slot of the loop's fd table. What only
-- some connections need (write queue, deadlines) lives in the extras, made
-- on first use. Keep the read path shallow: every frame live while a
-- handler waits costs a CallInfo, and a coroutine stack that outgrows its
-- first 40 slots doubles.
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local heap = require "lepoll.timer"
local logm = require "lepoll._log"

local send, recv = net.send, net.recv
local sub, find, byte = string.sub, string.find, string.byte
local concat = table.concat
local co_running, co_yield, co_resume = coroutine.running, coroutine.yield,
  coroutine.resume
local type, error, tostring, setmetatable = type, error, tostring,
  setmetatable
local math_type, min = math.type, math.min
local heap_push, heap_update, heap_remove = heap.push, heap.update, heap.remove
local EAGAIN = net.errno.EAGAIN
-- epoll flags as compile-time constants (the Linux ABI; checked below)
local RMASK <const> = 0x2019     -- IN | RDHUP | HUP | ERR
local WMASK <const> = 0x001c     -- OUT | HUP | ERR
local HUPMASK <const> = 0x2018   -- RDHUP | HUP | ERR
local REGFLAGS = epoll.IN | epoll.OUT | epoll.RDHUP | epoll.ET
assert(RMASK == epoll.IN | epoll.RDHUP | epoll.HUP | epoll.ERR
  and WMASK == epoll.OUT | epoll.HUP | epoll.ERR
  and HUPMASK == epoll.RDHUP | epoll.HUP | epoll.ERR, "unexpected epoll flag values")
local log = logm.log

-- What a waiting task yields to the loop: WAIT, or RWAIT and the
-- connection it waits to read from (the loop, which knows the task it
-- resumed, records it as that connection's reader); anything else is a
-- task that finished, or one that called coroutine.yield itself.
local WAIT = setmetatable({}, { __name = "lepoll wait" })
local RWAIT = setmetatable({}, { __name = "lepoll read wait" })
-- Array slots where the per-event path would otherwise pay a string-key
-- hash lookup: loop[CUR], the task running now (false outside tasks;
-- loop.lua), and cfg[RSIZE], the read_size option.
local CUR <const> = 1
local RSIZE <const> = 1

-- The slots of a connection (its table's array part).
-- Its hash part holds read and write themselves: conn:read() and
-- conn:write() find them at once instead of through __index (three table
-- lookups each, on every event).
local CO <const> = 1    -- the handler's coroutine (a task's slot 1), or false
local CFG <const> = 2   -- shared settings (M.config); a private copy after set_timeouts
local N <const> = 3     -- the socket's fd number, owned by the connection
                        -- (released from its Fd, closed by finalize): what
                        -- send/recv take fastest, and the connection's key
                        -- in loop.objs (its epoll data)
local S <const> = 4     -- the state, below; -max while a reader waits for
                        -- the loop to read up to max bytes for it
local RBUF <const> = 5  -- input read ahead (readline, readn), or false
local RT <const> = 6    -- the task waiting to read, or false
local X <const> = 7     -- nil: not registered with epoll yet; false:
                        -- registered, no extras; or the extras (below)
-- States. Below HUP a read may have to wait: DRAINED waits for the next
-- edge. HUP: end of stream or an error was reported; reads never wait
-- again. Above HUP the connection is closing (flushing queued output,
-- then closed) or closed.
local DRAINED <const> = 0
local READY <const> = 1
local HUP <const> = 2
local CLOSING <const> = 3
local CLOSED <const> = 4

local M = {}

local Conn = {}
Conn.__index = Conn
local ConnMT, read_m, write_m  -- see the end of the methods
Conn._isconn = true
M.Conn = Conn

--- Defaults of the per-connection options (listen{...} and connect{...}
-- take the same names).
M.defaults = {
  hwm = 65536,           -- write buffer high-water mark, bytes
  max_line = 65536,      -- longest line readline accepts, bytes
  read_size = 16384,     -- bytes one read() asks for by default
  read_timeout = false,  -- seconds one read/readline may wait
  write_timeout = false, -- seconds one write/flush may wait
  idle_timeout = false,  -- seconds a connection may wait with no progress
                         -- before it is closed
  linger = 30,           -- seconds close() keeps flushing queued output
}

local function bad(fname, arg, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(arg, fname, msg), level or 3)
end

local function opt_number(opts, name, fname, allow_false)
  local v = opts[name]
  if v == nil then return M.defaults[name] end
  if v == false and allow_false then return false end
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
    bad(fname, 1, ("option '%s' must be a positive number%s"):format(name,
      allow_false and " or false" or ""), 4)
  end
  return v
end

local function opt_int(opts, name, fname)
  local v = opt_number(opts, name, fname, false)
  if math_type(v) ~= "integer" then
    bad(fname, 1, ("option '%s' must be a positive integer"):format(name), 4)
  end
  return v
end

--- The shared settings of a group of connections (one per listener, one
-- for a loop's outbound connections). srv: the listener or false.
-- rtimed: whether reads wait with a deadline (decided once, not per read).
function M.config(loop, opts, srv, fname)
  local cfg = {
    false,  -- [RSIZE], set below
    loop = loop,
    srv = srv or false,
    hwm = opt_int(opts, "hwm", fname),
    max_line = opt_int(opts, "max_line", fname),
    read_size = opt_int(opts, "read_size", fname),
    read_timeout = opt_number(opts, "read_timeout", fname, true),
    write_timeout = opt_number(opts, "write_timeout", fname, true),
    idle_timeout = opt_number(opts, "idle_timeout", fname, true),
    linger = opt_number(opts, "linger", fname, false),
    stats = { accepted = 0, active = 0, max_queued = 0 },
    rtimed = false,
  }
  cfg.rtimed = (cfg.read_timeout or cfg.idle_timeout) and true or false
  cfg[RSIZE] = cfg.read_size
  return cfg
end

M.WAIT, M.RWAIT, M.RT = WAIT, RWAIT, RT

-- Deadlines ----------------------------------------------------------------

-- A connection's extras: what only some connections need, made on first
-- use (by then the connection is registered with epoll). wq: the write
-- queue (false: none), wt: the task waiting to write or connect, wrest:
-- whether that writer holds unqueued bytes (wait_write). It is also the
-- connection's heap node (timer.lua), with rdl/wdl: the waiting
-- reader's/writer's deadline or false, rdk/wdk: whether that is the idle
-- timeout, dl: the end of a lingering close, ph/pp: the peer an outbound
-- connection called. _expire is a field, not a metatable's: this runs
-- deep in a handler's coroutine, where a C call (setmetatable) could grow
-- its stack.
local expire

local function xnode(c)
  local x = c[X]
  if not x then
    x = { c = c, wq = false, wt = false, at = 0, seq = 0, hi = false,
      rdl = false, wdl = false, rdk = false, wdk = false, dl = false,
      ph = false, pp = false, wrest = false, _expire = expire }
    c[X] = x
  end
  return x
end

-- Queue the node for deadline dl (an earlier one moves it up; a later one
-- is moved lazily when the old one comes up).
local function arm(d, dl, loop)
  if not d.hi then
    d.at = dl
    heap_push(loop.heap, d)
  elseif dl < d.at then
    d.at = dl
    heap_update(loop.heap, d)
  end
end

-- Record the deadline of a wait (false: none) for the reader or writer.
local function set_deadline(c, ww, dl, dk)
  local d = c[X]
  if not dl then
    if d then
      if ww then d.wdl = false else d.rdl = false end
    end
    return
  end
  d = d or xnode(c)
  if ww then d.wdl, d.wdk = dl, dk else d.rdl, d.rdk = dl, dk end
  arm(d, dl, c[CFG].loop)
end

-- The deadline of one operation: the sooner of its own timeout and the
-- idle timeout; the second value says whether it is the idle one.
local function deadline(c, t)
  local cfg = c[CFG]
  local idle = cfg.idle_timeout
  if not t and not idle then return false, false end
  local now = cfg.loop.now
  if idle and (not t or idle <= t) then return now + idle, true end
  return now + t, false
end

-- Waiting ------------------------------------------------------------------

-- Register with epoll (the first wait or the first queued byte): true, or
-- nil, message, errno.
local function register(c)
  local n = c[N]
  local ok, err, en = c[CFG].loop.ep:add(n, n, REGFLAGS)
  if not ok then return nil, err, en end
  c[X] = false
  return true
end

local NOTCO = "connection I/O must be called from a coroutine (a connection"
  .. " handler or lepoll.spawn)"

-- The task running now, or an error (msg, default NOTCO) at level. A
-- coroutine of the script's own, even inside a task, is not a task: the
-- loop could not resume it.
local function current(loop, level, msg)
  local t = loop[CUR]
  if not t or t[CO] ~= co_running() then error(msg or NOTCO, level + 1) end
  return t
end
M.current = current

-- Park the calling task as the writer until the fd is ready (nil), the
-- deadline passes ("timeout") or the connection is closed ("closed").
-- Reads park inline in Conn:read (one frame less while idle).
-- rest: the writer holds the rest of a write that is not queued (write
-- waits above the high-water mark); until it is resumed, another write
-- would overtake those bytes, so it raises (Conn:write).
local function wait_write(c, dl, dk, rest)
  local t = current(c[CFG].loop, 2)
  if c[X] == nil then
    local ok, err = register(c)
    if not ok then return err end
  end
  local x = xnode(c)
  if x.wt then error("another coroutine is already writing to this connection", 3) end
  x.wt = t
  set_deadline(c, true, dl, dk)
  if not rest then return co_yield(WAIT) end
  x.wrest = true
  local w = co_yield(WAIT)
  x.wrest = false
  return w
end

-- Write queue -------------------------------------------------------------

-- Send queued output until done or the kernel is full. true (maybe with
-- data left) or nil, message, errno.
local function flush(c, q)
  local fd = c[N]
  local h, off = q.h, q.off
  while q.n > 0 do
    local s = q[h]
    local n, err, en = send(fd, s, off + 1)
    if not n then
      q.h, q.off = h, off
      if en == EAGAIN then return true end
      return nil, err, en
    end
    q.n = q.n - n
    off = off + n
    if off < #s then  -- short write: the socket buffer is full
      q.h, q.off = h, off
      return true
    end
    q[h] = nil
    h, off = h + 1, 0
  end
  q.h, q.t, q.off = 1, 0, 0
  return true
end

local function drop_queue(q, err)
  for i = q.h, q.t do q[i] = nil end
  q.n, q.h, q.t, q.off = 0, 1, 0, 0
  q.err = err
end

-- Queue s:sub(i) (i > 1 only when the queue is empty). The connection is
-- registered first: OUT edges drive the flush. nil, message, errno if it
-- cannot be.
local function enqueue(c, s, i)
  if c[X] == nil then
    local ok, err, en = register(c)
    if not ok then return nil, err, en end
  end
  local x = xnode(c)
  local q = x.wq
  if not q then
    q = { n = 0, h = 1, t = 0, off = 0, err = false }
    x.wq = q
  end
  local t = q.t + 1
  q[t], q.t = s, t
  if q.n == 0 then q.h, q.off = t, i - 1 end
  local n = q.n + #s - i + 1
  q.n = n
  local stats = c[CFG].stats
  if n > stats.max_queued then stats.max_queued = n end
  return true
end

local finalize

local function bgflush(c, q)
  local ok, err = flush(c, q)
  if not ok then drop_queue(q, err) end
  if q.n == 0 and c[S] == CLOSING then finalize(c) end
end

-- Writable (or hung up), for a connection with extras x: resume the
-- waiting writer, or flush queued output.
local function on_writable(c, x)
  local t = x.wt
  if t then
    x.wt = false
    c[CFG].loop:_resume(t)
  else
    local q = x.wq
    if q and q.n > 0 then bgflush(c, q) end
  end
end

--- Dispatch the n events of the loop's last wait (epoll data -> object):
-- connections (their fd numbers, never negative) inline, as they are the
-- hot path of a server; other objects (negative data) through their
-- callbacks, cb(obj, flags). For connections, flags are hints, never
-- trusted to mean a syscall will succeed; the writer goes first, then
-- the reader. Runs outside every task of the loop (loop[CUR] is false).
function M.dispatch(loop, evs, n)
  local objs, cbs, get = loop.objs, loop.cbs, loop.evget
  for i = 1, n do
    local tok, fl = get(evs, i)
    local c = objs[tok]
    if c then
      if tok < 0 then
        cbs[tok](c, fl)
      else
        local x = c[X]
        if x and fl & WMASK ~= 0 then on_writable(c, x) end
        if fl & RMASK ~= 0 then
          local t = c[RT]
          if t then
            -- a reader waits (Conn:read) for up to -S bytes: read for it
            local want = -c[S]
            local s, err, en = recv(c[N], want)
            if s then
              local len = #s
              if len == 0 then
                c[S], s, err = HUP, nil, "closed"
              elseif fl & HUPMASK ~= 0 then
                c[S] = HUP  -- end of stream or an error is a state, not an edge
              elseif len < want then
                c[S] = DRAINED  -- a short read drained the socket
              else
                c[S] = READY
              end
            elseif en == EAGAIN then
              goto next  -- a stale hint: keep waiting
            else
              c[S] = HUP
            end
            c[RT] = false
            loop[CUR] = t
            local ok, r, rc = co_resume(t[CO], err, s, en)
            -- cleared at once: a task that raised has its to-be-closed
            -- variables closed in its coroutine (Loop:_resumed), where a
            -- wait must raise, not register a waiter that cannot resume
            loop[CUR] = false
            if r == RWAIT then
              rc[RT] = t
            elseif r ~= WAIT then
              loop:_resumed(t, ok, r)
            end
          elseif c[S] < HUP then
            c[S] = fl & HUPMASK ~= 0 and HUP or READY
          end
        end
      end
    end
    ::next::
  end
end

--- A connection around an open non-blocking stream socket (an Fd, whose
-- fd the connection takes over).
function M.new(loop, fd, cfg)
  local n = fd:release()
  local c = setmetatable({ false, cfg, n, READY, false, false, nil,
    read = read_m, write = write_m }, ConnMT)
  loop.objs[n] = c  -- no callback: M.dispatch handles it inline
  loop.nactive = loop.nactive + 1
  if cfg.srv then
    loop.nconns = loop.nconns + 1
    local stats = cfg.stats
    stats.active = stats.active + 1
  end
  return c
end

finalize = function(c)
  c[S] = CLOSED
  local cfg = c[CFG]
  local loop = cfg.loop
  c[RT] = false
  local x = c[X]
  if x then
    x.wt, x.wq = false, false
    if x.hi then heap_remove(loop.heap, x) end
  end
  local objs, n = loop.objs, c[N]
  lio.close(n)  -- also leaves the epoll set
  -- the fd number is free for the next socket at once; an event already
  -- fetched for this one is only a hint to whoever gets the number
  if objs[n] == c then objs[n] = false end
  c[RBUF] = false
  loop.nactive = loop.nactive - 1
  if cfg.srv then
    loop.nconns = loop.nconns - 1
    local stats = cfg.stats
    stats.active = stats.active - 1
    loop:_conn_done()
  end
end

-- A deadline came up (the node's _expire): time out the waiters whose
-- deadline passed, queue the node again for the others.
expire = function(self, loop, now)
  local c = self.c
  local st = c[S]
  if st == CLOSED then return end
  if st == CLOSING then
    local dl = self.dl
    if dl > now then
      self.at = dl
      heap_push(loop.heap, self)
    else
      finalize(c)
    end
    return
  end
  local rt, wt = c[RT], self.wt
  local rdl = rt and self.rdl
  local wdl = wt and self.wdl
  local idle = false
  if rdl and rdl <= now then
    c[RT] = false
    c[S] = DRAINED  -- no reader waits for the loop to read any more
    idle = self.rdk
  else
    rt = false
  end
  if wdl and wdl <= now then
    self.wt = false
    idle = idle or self.wdk
  else
    wt = false
  end
  if idle then  -- no progress for idle_timeout: the connection is dropped
    local other = c[RT] or self.wt
    finalize(c)
    if other then loop:_schedule(other, "closed") end
  else
    local next = c[RT] and self.rdl
    local w = self.wt and self.wdl
    if w and (not next or w < next) then next = w end
    if next then  -- a deadline that moved later since it was queued
      self.at = next
      heap_push(loop.heap, self)
    end
  end
  if rt then loop:_resume(rt, "timeout") end
  if wt then loop:_resume(wt, "timeout") end
end

-- Reading -----------------------------------------------------------------

local function check_count(n, fname)
  if math_type(n) ~= "integer" or n < 1 then
    bad(fname, 1, "positive integer expected, got " .. tostring(n), 4)
  end
end

--- Read up to max bytes (default: the read_size option): returns as soon
-- as any are available. nil, "closed" at end of stream (or once the
-- connection is closed); nil, "timeout" when the read timeout passes;
-- nil, message, errno on a socket error.
--
-- The hot path of every server, kept short: a read that must wait parks
-- with the size it wants in the state slot (S = -max) and yields (RWAIT,
-- self); the loop records the task as the reader, makes the recv(2)
-- itself when the edge comes (M.dispatch) and resumes the reader with the
-- result. No function called from here makes a call (a call three frames
-- below the handler leaves a fourth CallInfo on every idle connection),
-- and its C calls are made with few live registers, so an idle
-- connection's coroutine keeps the stack it was created with.
function Conn:read(max)
  if max == nil then
    max = self[CFG][RSIZE]
  elseif math_type(max) ~= "integer" or max < 1 then
    check_count(max, "read")
  end
  -- The common wait (drained, hence registered; nothing buffered; no
  -- extras, so no deadlines to keep) skips the block below and parks at
  -- once.
  if not (self[S] == DRAINED and not self[RBUF] and not self[X]) then
    local b = self[RBUF]
    if b then
      if #b <= max then
        self[RBUF] = false
        return b
      end
      self[RBUF] = sub(b, max + 1)
      return sub(b, 1, max)
    end
    local st = self[S]
    if st ~= DRAINED then
      -- before any recv: a second reader must not take the data the loop
      -- is to read for the first, nor touch the size it asked for (S < 0
      -- while a reader waits)
      if st < 0 then
        if self[RT] then error("another coroutine is already reading from this connection", 2) end
        -- a wait that never reached the loop: a yield outside any
        -- coroutine, or to a coroutine of the script's own
        st = READY
      end
      if st > HUP then return nil, "closed" end
      local s, err, en = recv(self[N], max)
      if s then
        local len = #s
        if len == 0 then return nil, "closed" end
        -- a short read drained the socket: the next data brings an edge,
        -- if the connection is registered (DRAINED implies it: a wait
        -- from DRAINED needs no registration check)
        if len < max and st == READY and self[X] ~= nil then self[S] = DRAINED end
        return s
      end
      if en ~= EAGAIN then return nil, err, en end
      if self[X] == nil then  -- the first wait registers the connection (inline: see above)
        local cfg = self[CFG]
        local ok, e, n = cfg.loop.ep:add(self[N], self[N], REGFLAGS)
        if not ok then return nil, e, n end
        self[X] = false
        -- timed reads keep their deadlines in the extras
        if cfg.rtimed then xnode(self) end
      end
      self[S] = DRAINED
    end
    local x = self[X]
    if x then  -- extras: deadlines to keep
      local cfg = self[CFG]
      if cfg.rtimed then
        local dl, dk = deadline(self, cfg.read_timeout)
        set_deadline(self, false, dl, dk)
      else
        x.rdl = false
      end
    end
  end
  self[S] = -max
  -- resumed with (nil, data), or (reason [, nil, errno]): a timeout, a
  -- close, end of stream or a socket error. Outside a coroutine the yield
  -- raises ("attempt to yield from outside a coroutine").
  local w, data, en = co_yield(RWAIT, self)
  if data then return data end
  -- the loop always passes data or a reason: this is a coroutine of the
  -- script's own, resumed by the script
  if not w then error(NOTCO, 2) end
  return nil, w, en
end

--- Read exactly n bytes. On end of stream, timeout or error returns nil,
-- reason and keeps what arrived for the next read.
function Conn:readn(n)
  if math_type(n) ~= "integer" or n < 0 then
    bad("readn", 1, "non-negative integer expected, got " .. tostring(n), 3)
  end
  local b = self[RBUF]
  if b and #b >= n then
    if #b == n then self[RBUF] = false else self[RBUF] = sub(b, n + 1) end
    return sub(b, 1, n)
  end
  if n == 0 then return "" end
  local parts, got = {}, 0
  if b then
    parts[1], got = b, #b
    self[RBUF] = false
  end
  local chunk = self[CFG].read_size
  while got < n do
    local s, err, en = self:read(min(n - got, chunk > 65536 and chunk or 65536))
    if not s then
      if got > 0 then self[RBUF] = concat(parts) end
      return nil, err, en
    end
    parts[#parts + 1] = s
    got = got + #s
  end
  return concat(parts)
end

--- Read a line; returns it without the "\n" (and a "\r" before it).
-- max (default: the max_line option) bounds the line: a longer one gives
-- nil, "line too long" (the data stays buffered; close the connection).
-- At end of stream a partial line stays buffered: nil, "closed".
function Conn:readline(max)
  local cfg = self[CFG]
  if max == nil then max = cfg.max_line else check_count(max, "readline") end
  local b = self[RBUF] or ""
  local start = 1
  local chunk = cfg.read_size
  while true do
    local i = find(b, "\n", start, true)
    if i then
      local j = i - 1
      if j > 0 and byte(b, j) == 13 then j = j - 1 end
      if j > max then
        self[RBUF] = b
        return nil, "line too long"
      end
      self[RBUF] = i < #b and sub(b, i + 1) or false
      return sub(b, 1, j)
    end
    if #b > max then
      self[RBUF] = b
      return nil, "line too long"
    end
    start = #b + 1
    self[RBUF] = false
    local s, err, en = self:read(chunk)
    if not s then
      if #b > 0 and self[S] <= HUP then self[RBUF] = b end
      return nil, err, en
    end
    b = b .. s
  end
end

-- Writing -----------------------------------------------------------------

local function write_slow(c, s, i)
  local len = #s
  local cfg = c[CFG]
  local hwm = cfg.hwm
  local dl, dk
  while true do
    local x = c[X]
    local q = x and x.wq
    if q and q.n > 0 then
      local ok, err, en = flush(c, q)
      if not ok then
        drop_queue(q, err)
        return nil, err, en
      end
    end
    local queued = q and q.n or 0
    if queued == 0 and i <= len then
      local n, err, en = send(c[N], s, i)
      if n then
        i = i + n
      elseif en ~= EAGAIN then
        return nil, err, en
      end
    end
    if i > len then return true end
    if queued + len - i + 1 <= hwm then return enqueue(c, s, i) end
    if dl == nil then dl, dk = deadline(c, cfg.write_timeout) end
    local w = wait_write(c, dl, dk, true)
    if w then return nil, w end
    if c[S] > HUP then return nil, "closed" end
  end
end

do
  -- string.len, under the name its argument errors must carry: a string
  -- or a number passes, anything else raises "bad argument #1 to 'write'
  -- (string expected, got ...)"; s .. "" then turns a number into its
  -- string and is s itself for a string (no allocation). A type() call
  -- would cost a string-cache lookup and a strcmp on every write.
  local write = string.len

  --- Write s. Returns true once s is sent or queued; queued output never
  -- exceeds the hwm option: above it write waits until the peer drains it.
  -- nil, "closed" / "timeout" / message, errno on failure.
  function Conn:write(s)
    local len = write(s)
    s = s .. ""
    if self[S] > HUP then return nil, "closed" end
    local x = self[X]
    if x then
      -- another coroutine's write waits with bytes not yet queued: these
      -- would overtake them
      if x.wrest then error("another coroutine is already writing to this connection", 2) end
      local q = x.wq
      if q then
        if q.err then return nil, q.err end
        if q.n > 0 then return write_slow(self, s, 1) end
      end
    end
    -- an empty write makes no syscall: send(2) of nothing would report,
    -- and clear, a pending socket error that the next read should get
    if len == 0 then return true end
    local n, err, en = send(self[N], s)
    if n then
      if n >= len then return true end
      return write_slow(self, s, n + 1)
    end
    if en == EAGAIN then return write_slow(self, s, 1) end
    return nil, err, en
  end
end

--- Wait until every queued byte is handed to the kernel.
function Conn:flush()
  local dl, dk
  while true do
    if self[S] == CLOSED then return nil, "closed" end
    local x = self[X]
    local q = x and x.wq
    if not q then return true end
    if q.err then return nil, q.err end
    if q.n == 0 then return true end
    local ok, err, en = flush(self, q)
    if not ok then
      drop_queue(q, err)
      return nil, err, en
    end
    if q.n == 0 then return true end
    if dl == nil then dl, dk = deadline(self, self[CFG].write_timeout) end
    local w = wait_write(self, dl, dk)
    if w then return nil, w end
  end
end

--- Bytes queued and not yet accepted by the kernel.
function Conn:pending()
  local x = self[X]
  local q = x and x.wq
  return q and q.n or 0
end

-- Closing -----------------------------------------------------------------

--- Shut down one direction: "w" (default: flush, then send FIN), "r" or
-- "rw".
function Conn:shutdown(how)
  how = how or "w"
  if how ~= "r" and how ~= "w" and how ~= "rw" then
    bad("shutdown", 1, "'r', 'w' or 'rw' expected, got " .. tostring(how))
  end
  if self[S] > HUP then return nil, "closed" end
  if how ~= "r" then
    local ok, err, en = self:flush()
    if not ok then return nil, err, en end
  end
  return net.shutdown(self[N], how)
end

--- Close the connection. Queued output is still flushed in the background
-- (up to the linger option) unless force is true. A coroutine waiting on
-- this connection gets nil, "closed". Idempotent; returns true.
function Conn:close(force)
  local st = self[S]
  if st == CLOSED then return true end
  local cfg = self[CFG]
  local loop = cfg.loop
  local t = self[RT]
  if t then
    self[RT] = false
    loop:_schedule(t, "closed")
  end
  local x = self[X]
  t = x and x.wt
  if t then
    x.wt = false
    loop:_schedule(t, "closed")
  end
  self[RBUF] = false
  local q = x and x.wq
  if not force and st <= HUP and q and q.n > 0 and not q.err then
    self[S] = CLOSING
    local dl = loop.now + cfg.linger
    x.dl = dl
    arm(x, dl, loop)
    return true
  end
  finalize(self)
  return true
end

--- Whether close() was called (or the connection was dropped).
function Conn:closed()
  return self[S] > HUP
end

-- Information and options -------------------------------------------------

--- The peer's address: host, port (or the unix path; "" for an unbound
-- unix client). An outbound connection remembers it from connect; an
-- accepted one asks the kernel (getpeername(2)) on each call, so
-- connections that never ask pay nothing (no memory per connection), and
-- gets nil, message, errno once the peer has gone (ENOTCONN).
function Conn:peer()
  local x = self[X]
  if x and x.ph then return x.ph, x.pp or nil end
  if self[S] == CLOSED then return nil, "closed" end
  return net.getpeername(self[N])
end

--- The local address: host, port (or the unix path).
function Conn:sockname()
  if self[S] == CLOSED then return nil, "closed" end
  return net.getsockname(self[N])
end

--- The socket's fd number (-1 once closed).
function Conn:fileno()
  if self[S] == CLOSED then return -1 end
  return self[N]
end
Conn.getfd = Conn.fileno

--- Set a socket option (net.setsockopt names: "nodelay", "keepalive", ...).
function Conn:setoption(name, value)
  if self[S] == CLOSED then return nil, "closed" end
  return net.setsockopt(self[N], name, value)
end

local TIMEOUTS = { read = "read_timeout", write = "write_timeout",
  idle = "idle_timeout" }

--- Change this connection's timeouts: t = {read = s, write = s, idle = s}
-- (false: none). Options not named keep their value. Applies to the next
-- wait.
function Conn:set_timeouts(t)
  if type(t) ~= "table" then bad("set_timeouts", 1, "table expected, got " .. type(t)) end
  local cfg = {}
  for k, v in pairs(self[CFG]) do cfg[k] = v end
  for k, v in pairs(t) do
    local name = TIMEOUTS[k]
    if not name then bad("set_timeouts", 1, "unknown timeout '" .. tostring(k) .. "'") end
    if v ~= false and (type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge) then
      bad("set_timeouts", 1, "timeout '" .. k .. "' must be a positive number or false")
    end
    cfg[name] = v
  end
  cfg.rtimed = (cfg.read_timeout or cfg.idle_timeout) and true or false
  self[CFG] = cfg
  -- a registered connection without extras reads with no deadline
  -- bookkeeping (Conn:read): give it extras to keep them in
  if cfg.rtimed and self[X] == false then xnode(self) end
  return true
end

--- The current timeouts: {read = s|false, write = s|false, idle = s|false}.
function Conn:timeouts()
  local cfg = self[CFG]
  return { read = cfg.read_timeout, write = cfg.write_timeout,
    idle = cfg.idle_timeout }
end

function Conn:__tostring()
  if self[S] == CLOSED then return "lepoll.Conn (closed)" end
  return "lepoll.Conn (fd " .. self[N] .. ")"
end

-- The connections' metatable (read and write sit in each connection's
-- own hash part, see M.new: the per-event calls skip __index).
ConnMT = { __index = Conn, __tostring = Conn.__tostring }
read_m, write_m = Conn.read, Conn.write

-- Running handlers and outbound connections -------------------------------

--- The end of an accepted connection's handler (see Loop:_resumed): err
-- is the failure's message and traceback when the handler raised. The
-- connection closes either way.
function M.finish(c, err)
  if err then
    local host, port = c:peer()
    if not host then host, port = "unknown", nil end
    log(("handler failed (peer %s%s): %s"):format(host,
      port and ":" .. port or "", err))
  end
  c:close()
end

local function family_of(host)
  if host:find(":", 1, true) then return net.INET6 end
  return net.INET
end

--- Connect to host, port (or a unix path) from a coroutine. opts: a number
-- (the connect timeout, seconds) or a table {timeout = s, nodelay = bool,
-- and the connection options}. Returns a connection or nil, message,
-- errno ("timeout" on timeout).
function M.connect(loop, host, port, opts)
  if type(host) ~= "string" then bad("connect", 1, "string expected, got " .. type(host)) end
  local path
  if port == nil or type(port) == "table" then
    if type(port) == "table" then opts = port end
    path = host
  elseif math_type(port) ~= "integer" or port < 0 or port > 65535 then
    bad("connect", 2, "port 0..65535 expected, got " .. tostring(port))
  end
  local timeout
  if type(opts) == "number" then
    timeout, opts = opts, nil
  elseif opts ~= nil and type(opts) ~= "table" then
    bad("connect", 3, "number or table expected, got " .. type(opts))
  end
  if opts then timeout = opts.timeout end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0) then
    bad("connect", 3, "timeout must be a positive number")
  end
  current(loop, 2, "lepoll.connect must be called from a coroutine (a connection"
    .. " handler or lepoll.spawn)")
  local cfg
  if opts then
    cfg = M.config(loop, opts, false, "connect")
  else
    cfg = loop.ccfg
    if not cfg then
      cfg = M.config(loop, {}, false, "connect")
      loop.ccfg = cfg
    end
  end
  local fd, err, en = net.socket(path and net.UNIX or family_of(host), net.STREAM,
    net.NONBLOCK | net.CLOEXEC)
  if not fd then return nil, err, en end
  local c = M.new(loop, fd, cfg)
  local n = c[N]
  local ok
  if path then
    ok, err, en = net.connect(n, path)
  else
    ok, err, en = net.connect(n, host, port)
  end
  if not ok then
    local errno = net.errno
    if en ~= errno.EINPROGRESS and en ~= errno.EINTR and en ~= EAGAIN then
      finalize(c)
      return nil, err, en
    end
    c[S] = DRAINED
    local w = wait_write(c, timeout and loop.now + timeout or false, false)
    if w then
      c:close(true)
      return nil, w
    end
    local soerr = net.getsockopt(n, "error")
    if soerr ~= 0 then
      finalize(c)
      return nil, M.strerror(soerr), soerr
    end
  end
  if opts and opts.nodelay then net.setsockopt(n, "nodelay", true) end
  -- an outbound connection remembers whom it called (peer() survives the
  -- peer); extras imply registration
  if c[X] == nil then
    ok, err, en = register(c)
    if not ok then
      finalize(c)
      return nil, err, en
    end
  end
  local x = xnode(c)
  x.ph, x.pp = host, port or false
  return c
end

local errnames
--- A message for an errno number (its E-name: C holds the strerror texts).
function M.strerror(en)
  if not errnames then
    errnames = {}
    for k, v in pairs(net.errno) do errnames[v] = k end
  end
  return "connect failed: " .. (errnames[en] or ("errno " .. tostring(en)))
end

return M
