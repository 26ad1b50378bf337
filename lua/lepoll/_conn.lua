--- lepoll._conn: stream connections (accepted or outbound) whose I/O
-- looks blocking and yields to the loop, and the one protocol by which
-- the loop resumes the coroutines that wait. Private: users meet
-- connections in listen handlers and from lepoll.connect; the reference
-- is docs/framework.md.
--
-- Tasks. The loop runs coroutines as tasks: tables whose slot 1 is the
-- coroutine (false once it ended). An accepted connection is its
-- handler's task (the handler is the coroutine's main function, so an
-- idle connection carries no frame of the loop's); spawn and signal
-- handlers make plain { co } tasks. Every resume goes through resume()
-- below, or through its inline copy in dispatch(), which sits next to it.
-- What a resumed task yields says what it waits for:
--   WAIT          it recorded itself where it waits (a writer, a sleeper)
--   RWAIT, conn   it parked as conn's reader: resume() records it there,
--                 so the read path never asks coroutine.running()
--   anything else it returned, raised, or called coroutine.yield itself:
--                 resumed() finishes it or runs it again later.
--
-- Readiness. A connection joins the epoll set only the first time it has
-- to wait (a handler that writes and returns costs no epoll_ctl), then
-- edge-triggered for IN|OUT|RDHUP|PRI and never modified again; its epoll
-- data is its fd number. On a TCP socket a short read means the socket is
-- drained, so the next read parks at once instead of paying a recv(2)
-- that would say EAGAIN. Two kinds of stream break that rule: urgent data
-- (recv stops at the urgent mark, more data queued, no new edge: the
-- event that brings it has PRI, which marks the connection) and unix
-- sockets (recv stops after a message that carried fds). A marked
-- connection, and every unix one, has extras with short_reads_unsafe
-- set: its reads treat DRAINED as READY and read until EAGAIN.
--
-- The life of a connection, as its STATE slot says it:
--
--      new ──▶ READY ◀─── an edge, no reader ────┐
--                │                               │
--                │ short read (TCP, registered)  │
--                │ or recv said EAGAIN           │
--                ▼                               │
--             DRAINED ──────────────────────────-┘
--                │ read parks: STATE = -max; the loop's recv for
--                │ the reader sets READY or DRAINED again
--                ▼
--   end of stream or a socket error (recorded) ──▶ ENDED: reads never
--                                                  wait again
--   close() with output queued ──▶ CLOSING ──▶ CLOSED (flushed, linger
--   close() otherwise, idle timeout ─────────▶ CLOSED  over, or forced)
--
-- Memory: an idle connection is its handler's coroutine (a lua_State, the
-- 40-slot minimum stack, and one CallInfo per frame: handler, conn:read,
-- coroutine.yield), this table (its state in a 7-slot array part, read
-- and write in a 2-node hash part) and a slot of the loop's object table.
-- What only some connections need (write queue, deadlines, an error)
-- lives in the extras, made on first use. Keep the read path shallow:
-- every frame live while a handler waits costs a CallInfo, and a
-- coroutine stack that outgrows its first 40 slots doubles.
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local heap = require "lepoll._heap"
local logm = require "lepoll._log"

local send, recv = net.send, net.recv
local sub, find, byte = string.sub, string.find, string.byte
local concat = table.concat
local co_create, co_running, co_yield, co_resume, co_status, co_close =
  coroutine.create, coroutine.running, coroutine.yield, coroutine.resume,
  coroutine.status, coroutine.close
local type, error, tostring, setmetatable, xpcall = type, error, tostring,
  setmetatable, xpcall
local traceback = debug.traceback
local math_type, min = math.type, math.min
local heap_push, heap_update, heap_remove = heap.push, heap.update, heap.remove
local EAGAIN = net.errno.EAGAIN
-- epoll flags as compile-time constants (the Linux ABI; checked below)
local RMASK <const> = 0x201b     -- IN | PRI | RDHUP | HUP | ERR
local WMASK <const> = 0x001c     -- OUT | HUP | ERR
local HUPMASK <const> = 0x2018   -- RDHUP | HUP | ERR
local PRI <const> = 0x0002
local REGFLAGS = epoll.IN | epoll.OUT | epoll.RDHUP | epoll.PRI | epoll.ET
assert(RMASK == epoll.IN | epoll.PRI | epoll.RDHUP | epoll.HUP | epoll.ERR
  and WMASK == epoll.OUT | epoll.HUP | epoll.ERR
  and HUPMASK == epoll.RDHUP | epoll.HUP | epoll.ERR
  and PRI == epoll.PRI, "unexpected epoll flag values")
local log, msgh = logm.log, logm.msgh

-- What a waiting task yields (see "Tasks" above).
local WAIT = setmetatable({}, { __name = "lepoll wait" })
local RWAIT = setmetatable({}, { __name = "lepoll read wait" })

-- Array slots where the per-event path would otherwise pay a string-key
-- hash lookup.
local CURRENT_TASK <const> = 1  -- loop[CURRENT_TASK]: the task running now, or false
local READ_SIZE <const> = 1     -- config[READ_SIZE]: the read_size option

-- The slots of a connection (its table's array part). Its hash part
-- holds read and write themselves, so conn:read() and conn:write() find
-- them without three lookups through __index on every event.
local COROUTINE <const> = 1  -- the handler's coroutine (a task's slot 1), or false
local CONFIG <const> = 2     -- settings shared by the listener's connections
                             -- (M.config); a private copy after set_timeouts
                             -- or once urgent data was seen
local FD <const> = 3         -- the socket's fd number, owned by the connection:
                             -- what send/recv take fastest, and the key of the
                             -- connection in loop.objects (its epoll data)
local STATE <const> = 4      -- below; -max while a reader is parked for the
                             -- loop to read up to max bytes for it
local INBUF <const> = 5      -- input read ahead (readline, readn), or false
local READER <const> = 6     -- the task parked in read, or false
local EXTRAS <const> = 7     -- nil: not registered with epoll yet; false:
                             -- registered, no extras; or the extras (xnode)
-- States (see the diagram above). Below ENDED a read may have to wait;
-- above it the connection is closing or closed.
local DRAINED <const> = 0
local READY <const> = 1
local ENDED <const> = 2
local CLOSING <const> = 3
local CLOSED <const> = 4

local M = {}

local Conn = {}
Conn.__index = Conn
local ConnMT, read_m, write_m  -- see the end of the methods
Conn._isconn = true
M.Conn = Conn
M.WAIT = WAIT
M.CURRENT_TASK = CURRENT_TASK
-- for spec/support/invariants.lua, which checks what the prose above says
M.layout = { COROUTINE = COROUTINE, CONFIG = CONFIG, FD = FD, STATE = STATE,
  INBUF = INBUF, READER = READER, EXTRAS = EXTRAS, DRAINED = DRAINED,
  READY = READY, ENDED = ENDED, CLOSING = CLOSING, CLOSED = CLOSED,
  READ_SIZE = READ_SIZE }

--- The settings shared by a group of connections (one per listener, one
-- per kind of outbound connection) from checked options (lepoll._options).
-- server: the listener or false; unix: whether they are unix sockets.
function M.config(loop, o, server, unix)
  local cfg = {
    o.read_size,  -- [READ_SIZE]
    loop = loop,
    server = server or false,
    hwm = o.hwm,
    max_line = o.max_line,
    read_size = o.read_size,
    read_timeout = o.read_timeout,
    write_timeout = o.write_timeout,
    idle_timeout = o.idle_timeout,
    linger = o.linger,
    stats = { accepted = 0, active = 0, max_queued = 0 },
    -- whether reads wait with a deadline (decided once, not per read)
    reads_timed = (o.read_timeout or o.idle_timeout) and true or false,
    -- whether a short read proves the socket drained (see "Readiness"):
    -- false gives each connection extras with short_reads_unsafe set
    short_reads_drain = not unix,
  }
  return cfg
end

-- A private copy of c's settings, to change some for c alone (set_timeouts).
local function own_config(c)
  local cfg = {}
  for k, v in pairs(c[CONFIG]) do cfg[k] = v end
  cfg.own = true  -- this connection's alone (specs check it)
  c[CONFIG] = cfg
  return cfg
end

-- Tasks --------------------------------------------------------------------

local TWO_READERS <const> = "another coroutine is already reading from this connection"
local TWO_WRITERS <const> = "another coroutine is already writing to this connection"
local NOTCO = "connection I/O must be called from a coroutine (a connection"
  .. " handler or lepoll.spawn)"

-- The task running now, or an error (msg, default NOTCO) at level. A
-- coroutine of the script's own, even inside a task, is not a task: the
-- loop could not resume it.
local function current(loop, level, msg)
  local t = loop[CURRENT_TASK]
  if not t or t[COROUTINE] ~= co_running() then error(msg or NOTCO, level + 1) end
  return t
end
M.current = current

local close

-- The end of task t: err is the failure's message and traceback when it
-- raised. A connection closes (always, even when its handler raised);
-- anything else is only reported.
local function finish(t, err)
  if t._isconn then
    if err then
      local host, port = t:peer()
      if not host then host, port = "unknown", nil end
      log(("handler failed (peer %s%s): %s"):format(host,
        port and ":" .. port or "", err))
    end
    local ok, e = xpcall(close, msgh, t)
    if not ok then log("closing a connection failed: " .. tostring(e)) end
  elseif err then
    log("task failed: " .. err)
  end
end

-- After a resume of task t that did not end in a wait: the task returned
-- (finish it), raised (report it, close its to-be-closed variables,
-- finish it) or yielded on its own (it runs again after the others, as
-- after lepoll.sleep(0)).
local function resumed(loop, t, ok, r)
  local co = t[COROUTINE]
  if ok then
    if co_status(co) == "dead" then
      t[COROUTINE] = false
      finish(t)
    else
      loop:_schedule(t)
    end
    return
  end
  local msg = type(r) == "string" and traceback(co, r) or tostring(r)
  co_close(co)
  t[COROUTINE] = false
  finish(t, msg)
end

--- Resume task t with up to two values: the only resume of the loop
-- (dispatch keeps an inline copy of it, below).
local function resume(loop, t, a, b)
  local prev = loop[CURRENT_TASK]  -- a task may start another (spawn)
  loop[CURRENT_TASK] = t
  local ok, r, rc = co_resume(t[COROUTINE], a, b)
  loop[CURRENT_TASK] = prev
  if r == RWAIT then
    rc[READER] = t
  elseif r ~= WAIT then
    resumed(loop, t, ok, r)
  end
end
M.resume = resume

--- Task t will never be resumed (its loop is closed): close its
-- coroutine, so its to-be-closed variables run (an error there is
-- reported).
function M.abandon(t)
  local co = t[COROUTINE]
  if co and co_status(co) == "suspended" then
    t[COROUTINE] = false
    local ok, err = co_close(co)
    if not ok then log("closing an abandoned task failed: " .. tostring(err)) end
  end
end

--- Run fn(a, b) as task t (slot 1 gets its coroutine), now, until it
-- first waits. Returns the coroutine.
function M.start(loop, t, fn, a, b)
  local co = co_create(fn)
  t[COROUTINE] = co
  resume(loop, t, a, b)
  return co
end

-- The extras ---------------------------------------------------------------

-- A connection's extras: what only some connections need, made on first
-- use (by then the connection is registered with epoll) for a reason:
-- "deadline", "timeouts", "unix", "writer", "queue", "error", "urgent",
-- "shutdown", "peer" or "phase" (M.set_read_deadline). It is also the
-- connection's heap node (lepoll._heap): at, seq, heap_index, _expire.
-- _expire is a field, not a metatable's: this runs deep in a handler's
-- coroutine, where a C call (setmetatable) could grow its stack.
local expire

local function xnode(c, why)
  local x = c[EXTRAS]
  if not x then
    x = {
      conn = c,
      made_for = why,            -- what first needed them (specs check it)
      outq = false,              -- output the kernel did not take yet
      writer = false,            -- the task parked in write/flush/connect
      writer_holds_rest = false, -- that writer keeps bytes not yet queued
      read_deadline = false,     -- the parked reader's deadline
      read_deadline_idle = false,  -- ... is the idle timeout's
      read_call_deadline = false,  -- the read_timeout of a readline/readn call
      write_deadline = false,    -- the parked writer's deadline; while
                                 -- CLOSING, when the lingering close gives up
      write_deadline_idle = false,
      -- a short read proves nothing: read until EAGAIN (see "Readiness")
      short_reads_unsafe = not c[CONFIG].short_reads_drain,
      rare = false,              -- what few connections need (rare())
      at = 0, seq = 0, heap_index = false, _expire = expire,
    }
    -- 16 fields: one more would double the hash part (and the RSS of an
    -- idle connection with a timeout)
    c[EXTRAS] = x
  end
  return x
end

-- What few connections need, in a table of its own: whom an outbound
-- connection called (peer_host, peer_port), the first socket error
-- (error_message, error_errno: every later operation reports it), and
-- whether a read already said "shutdown" (shutdown_told).
local function rare(x)
  local r = x.rare
  if not r then
    r = { peer_host = false, peer_port = false, error_message = false,
      error_errno = false, shutdown_told = false }
    x.rare = r
  end
  return r
end

local EPIPE = net.errno.EPIPE

-- The recorded socket error of extras x, if any: message, errno. For a
-- read (for_read), EPIPE does not count: it ends the write side only.
local function recorded(x, for_read)
  local r = x and x.rare
  if r and r.error_message and not (for_read and r.error_errno == EPIPE) then
    return r.error_message, r.error_errno or nil
  end
end

-- Record the socket error err, en (the first one wins) and return the
-- recorded message and errno: every later operation reports the same
-- triple, whoever saw the error first (a read after what the kernel still
-- holds: the kernel too returns queued data before an error). A parked
-- reader is left parked: the event that carried the error (ERR, HUP)
-- reaches it in the dispatch, whose recv then finds the data or the end.
local register
local function fail(c, err, en)
  if c[EXTRAS] == nil and not register(c) then  -- extras imply registration
    return err, en
  end
  local r = rare(xnode(c, "error"))
  if not r.error_message then
    r.error_message, r.error_errno = err, en or false
  end
  local st = c[STATE]
  if st >= 0 and st <= ENDED and r.error_errno ~= EPIPE then c[STATE] = ENDED end
  return r.error_message, r.error_errno or nil
end

-- Deadlines ----------------------------------------------------------------

-- Queue the node for deadline dl (an earlier one moves it up; a later one
-- is moved lazily when the old one comes up).
local function arm(x, dl, loop)
  if not x.heap_index then
    x.at = dl
    heap_push(loop.heap, x)
  elseif dl < x.at then
    x.at = dl
    heap_update(loop.heap, x)
  end
end

-- Record the deadline of a wait (false: none) for the reader or writer.
local function set_deadline(c, writer, dl, idle)
  local x = c[EXTRAS]
  if not dl then
    if x then
      if writer then x.write_deadline = false else x.read_deadline = false end
    end
    return
  end
  x = x or xnode(c, "deadline")
  if writer then
    x.write_deadline, x.write_deadline_idle = dl, idle
  else
    x.read_deadline, x.read_deadline_idle = dl, idle
  end
  arm(x, dl, c[CONFIG].loop)
end

-- The deadline of one wait: the sooner of the call's own (call_dl, an
-- absolute time, or now + t) and the idle timeout; the second value says
-- whether it is the idle one.
local function deadline(c, t, call_dl)
  local cfg = c[CONFIG]
  local idle = cfg.idle_timeout
  local now = cfg.loop.now
  local dl = call_dl or (t and now + t)
  if idle and (not dl or now + idle <= dl) then return now + idle, true end
  return dl or false, false
end

-- Waiting ------------------------------------------------------------------

-- Register with epoll (the first wait or the first queued byte): true, or
-- nil, message, errno.
register = function(c)
  local fd = c[FD]
  local cfg = c[CONFIG]
  local ok, err, en = cfg.loop.ep:add(fd, fd, REGFLAGS)
  if not ok then return nil, err, en end
  c[EXTRAS] = false
  if cfg.reads_timed or not cfg.short_reads_drain then
    xnode(c, cfg.reads_timed and "deadline" or "unix")
  end
  return true
end

-- Park the calling task as the writer until the fd is ready (nil), the
-- deadline passes ("timeout") or the connection is closed ("closed").
-- Reads park inline in Conn:read (one frame less while idle).
-- rest: the writer holds the rest of a write that is not queued (write
-- waits above the high-water mark); until it is resumed, another write
-- would overtake those bytes, so it raises (Conn:write).
local function wait_write(c, dl, idle, rest)
  local t = current(c[CONFIG].loop, 2)
  if c[EXTRAS] == nil then
    local ok, err = register(c)
    if not ok then return err end
  end
  local x = xnode(c, "writer")
  if x.writer then error(TWO_WRITERS, 3) end
  x.writer = t
  set_deadline(c, true, dl, idle)
  if not rest then return co_yield(WAIT) end
  x.writer_holds_rest = true
  local w = co_yield(WAIT)
  x.writer_holds_rest = false
  return w
end

-- Write queue --------------------------------------------------------------

-- Send queued output until done or the kernel is full. true (maybe with
-- data left) or nil, message, errno. A connection whose settings carry a
-- sender (cfg.send(c, s, i), lepoll._tls) writes through it: it returns
-- what send(2) would, nil, reason, EAGAIN when it must wait, and a short
-- count only when it must wait too.
local function flush(c, q)
  local fd = c[FD]
  local snd = c[CONFIG].send
  local h, off = q.head, q.offset
  while q.bytes > 0 do
    local s = q[h]
    local n, err, en
    if snd then n, err, en = snd(c, s, off + 1) else n, err, en = send(fd, s, off + 1) end
    if not n then
      q.head, q.offset = h, off
      if en == EAGAIN then return true end
      return nil, err, en
    end
    q.bytes = q.bytes - n
    off = off + n
    if off < #s then  -- short write: the socket buffer is full
      q.head, q.offset = h, off
      return true
    end
    q[h] = nil
    h, off = h + 1, 0
  end
  q.head, q.tail, q.offset = 1, 0, 0
  return true
end

local function drop_queue(q)
  for i = q.head, q.tail do q[i] = nil end
  q.bytes, q.head, q.tail, q.offset = 0, 1, 0, 0
end

-- The queue failed with a socket error: record it, drop what is queued.
-- Returns the recorded message and errno.
local function queue_failed(c, q, err, en)
  drop_queue(q)
  return fail(c, err, en)
end

-- Queue s:sub(i) (i > 1 only when the queue is empty). The connection is
-- registered first: OUT edges drive the flush. nil, message, errno if it
-- cannot be.
local function enqueue(c, s, i)
  if c[EXTRAS] == nil then
    local ok, err, en = register(c)
    if not ok then return nil, err, en end
  end
  local x = xnode(c, "queue")
  local q = x.outq
  if not q then
    q = { bytes = 0, head = 1, tail = 0, offset = 0 }
    x.outq = q
  end
  local t = q.tail + 1
  q[t], q.tail = s, t
  if q.bytes == 0 then q.head, q.offset = t, i - 1 end
  local n = q.bytes + #s - i + 1
  q.bytes = n
  local stats = c[CONFIG].stats
  if n > stats.max_queued then stats.max_queued = n end
  return true
end

-- Flush in the background (an OUT edge, no writer waiting); a lingering
-- close ends once the queue is empty.
local function flush_background(c, q)
  local ok, err, en = flush(c, q)
  if not ok then queue_failed(c, q, err, en) end
  if q.bytes == 0 and c[STATE] == CLOSING then close(c, true) end
end

-- Writable (or hung up), for a connection with extras x: resume the
-- waiting writer, or flush queued output.
local function on_writable(c, x)
  local t = x.writer
  if t then
    x.writer = false
    resume(c[CONFIG].loop, t)
  else
    local q = x.outq
    if q and q.bytes > 0 then flush_background(c, q) end
  end
end

-- Urgent data was seen (an event with PRI): recv stops at the urgent
-- mark with more data queued and no new edge, so from now on a short
-- read on this connection proves nothing.
local function urgent(c)
  xnode(c, "urgent").short_reads_unsafe = true
end

--- Dispatch the n events of the loop's last wait (epoll data -> object):
-- connections (their fd numbers, never negative) inline, as they are the
-- hot path of a server; other objects (negative data) through their
-- callbacks, cb(obj, flags). For connections, flags are hints, never
-- trusted to mean a syscall will succeed; the writer goes first, then
-- the reader. Runs outside every task (loop[CURRENT_TASK] is false).
function M.dispatch(loop, evs, n)
  local objects, callbacks, get = loop.objects, loop.callbacks, loop.events_get
  for i = 1, n do
    local data, fl = get(evs, i)
    local c = objects[data]
    if c then
      if data < 0 then
        callbacks[data](c, fl)
      else
        local x = c[EXTRAS]
        if x and fl & WMASK ~= 0 then on_writable(c, x) end
        if fl & RMASK ~= 0 then
          local t = c[READER]
          if t then
            -- a reader is parked (Conn:read) for up to -STATE bytes:
            -- read for it
            local want = -c[STATE]
            local s, err, en = recv(c[FD], want)
            if s then
              local len = #s
              if len == 0 then
                -- end of stream, or a socket error already recorded
                -- (another path's send got it, the recv sees only EOF)
                c[STATE], s, err = ENDED, nil, "closed"
                local m, e = recorded(c[EXTRAS], true)
                if m then err, en = m, e end
              elseif fl & HUPMASK ~= 0 then
                c[STATE] = ENDED  -- end of stream or an error is a state, not an edge
              elseif len < want and fl & PRI == 0 then
                c[STATE] = DRAINED  -- a short read drained the socket
              else
                if fl & PRI ~= 0 then urgent(c) end
                c[STATE] = READY
              end
            elseif en == EAGAIN then
              goto next  -- a stale hint: keep waiting
            else
              c[READER] = false  -- this reader hears of it below, not from fail()
              err, en = fail(c, err, en)
            end
            c[READER] = false
            -- the inline copy of resume(loop, t, err, s, en), with three
            -- values, outside any task (prev is false)
            loop[CURRENT_TASK] = t
            local ok, r, rc = co_resume(t[COROUTINE], err, s, en)
            -- cleared at once: a task that raised has its to-be-closed
            -- variables closed in its coroutine (resumed), where a wait
            -- must raise, not register a waiter that cannot resume
            loop[CURRENT_TASK] = false
            if r == RWAIT then
              rc[READER] = t
            elseif r ~= WAIT then
              resumed(loop, t, ok, r)
            end
          elseif c[STATE] < ENDED then
            if fl & PRI ~= 0 then urgent(c) end
            c[STATE] = fl & HUPMASK ~= 0 and ENDED or READY
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
  loop.objects[n] = c  -- no callback: M.dispatch handles it inline
  loop.nactive = loop.nactive + 1
  if cfg.server then
    loop.nconns = loop.nconns + 1
    local stats = cfg.stats
    stats.active = stats.active + 1
  end
  return c
end

-- Closing ------------------------------------------------------------------

-- The last step of close(): the fd closes, the connection leaves the loop.
local function finalize(c)
  local cfg = c[CONFIG]
  -- a protocol under the stream (TLS) has its last word before the fd goes
  local fin = cfg.finalize
  if fin then fin(c) end
  c[STATE] = CLOSED
  local loop = cfg.loop
  c[READER] = false
  c[INBUF] = false
  local x = c[EXTRAS]
  if x then
    x.writer, x.outq = false, false
    if x.heap_index then heap_remove(loop.heap, x) end
  end
  local objects, n = loop.objects, c[FD]
  lio.close(n)  -- also leaves the epoll set
  -- the fd number is free for the next socket at once; an event already
  -- fetched for this one is only a hint to whoever gets the number
  if objects[n] == c then objects[n] = false end
  if not c._unheld then loop.nactive = loop.nactive - 1 end
  if cfg.server then
    loop.nconns = loop.nconns - 1
    local stats = cfg.stats
    stats.active = stats.active - 1
    loop:_conn_done()
  end
end

--- Close c: the one path by which every connection ends (Conn:close, a
-- handler's end, an idle timeout, a lingering close that is over, a
-- failed connect, the loop's shutdown or close). Waiting coroutines get
-- nil, "closed". Queued output is flushed in the background (up to the
-- linger option) unless force is true.
close = function(c, force)
  local st = c[STATE]
  if st == CLOSED or (st == CLOSING and not force) then return end
  local loop = c[CONFIG].loop
  local t = c[READER]
  if t then
    c[READER] = false
    loop:_schedule(t, "closed")
  end
  local x = c[EXTRAS]
  t = x and x.writer
  if t then
    x.writer = false
    loop:_schedule(t, "closed")
  end
  c[INBUF] = false
  local q = x and x.outq
  if not force and st <= ENDED and q and q.bytes > 0 then
    c[STATE] = CLOSING
    local dl = loop.now + c[CONFIG].linger
    x.write_deadline = dl  -- no writer waits while CLOSING
    arm(x, dl, loop)
    return
  end
  finalize(c)
end
M.close = close

-- A deadline came up (the extras' _expire): time out the waiters whose
-- deadline passed, queue the node again for the others.
expire = function(x, loop, now)
  local c = x.conn
  local st = c[STATE]
  if st == CLOSED then return end
  if st == CLOSING then
    local dl = x.write_deadline
    if dl > now then
      x.at = dl
      heap_push(loop.heap, x)
    else
      close(c, true)
    end
    return
  end
  local rt, wt = c[READER], x.writer
  local rdl = rt and x.read_deadline
  local wdl = wt and x.write_deadline
  local idle = false
  if rdl and rdl <= now then
    c[READER] = false
    c[STATE] = DRAINED  -- no reader waits for the loop to read any more
    idle = x.read_deadline_idle
  else
    rt = false
  end
  if wdl and wdl <= now then
    x.writer = false
    idle = idle or x.write_deadline_idle
  else
    wt = false
  end
  if idle then
    -- no progress for idle_timeout: the connection is dropped; a waiter
    -- whose deadline has not passed gets "closed", the others "timeout"
    close(c, true)
  else
    local next = c[READER] and x.read_deadline
    local w = x.writer and x.write_deadline
    if w and (not next or w < next) then next = w end
    if next then  -- a deadline that moved later since it was queued
      x.at = next
      heap_push(loop.heap, x)
    end
  end
  if rt then resume(loop, rt, "timeout") end
  if wt then resume(loop, wt, "timeout") end
end

--- Tell c, if it is an accepted connection, that the loop began a
-- graceful shutdown: a reader parked with nothing read ahead gets nil,
-- "shutdown" now; any other gets it from its next read that would wait
-- (once per connection).
function M.tell_shutdown(c)
  local x = c[EXTRAS]
  if not c[CONFIG].server or x == nil or c[STATE] > ENDED then
    return  -- not registered: its first wait takes the slow path anyway
  end
  x = xnode(c, "shutdown")  -- the read path checks for a shutdown where there are extras
  local t = c[READER]
  local r = rare(x)
  if t and not c[INBUF] and not r.shutdown_told then
    r.shutdown_told = true
    c[READER] = false
    c[STATE] = DRAINED
    x.read_deadline = false
    c[CONFIG].loop:_schedule(t, "shutdown")
  end
end

-- Reading ------------------------------------------------------------------

local function bad(fname, arg, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(arg, fname, msg), level or 3)
end

local function check_count(n, fname)
  if math_type(n) ~= "integer" or n < 1 then
    bad(fname, 1, "positive integer expected, got " .. (math_type(n) and tostring(n)
      or type(n)), 4)
  end
end

--- Read up to max bytes (default: the read_size option): returns as soon
-- as any are available. nil, "closed" at end of stream (or once the
-- connection is closed); nil, "timeout" when the read timeout passes;
-- nil, "shutdown" once when the loop begins a graceful shutdown; nil,
-- message, errno on a socket error (and again on every later read).
--
-- The hot path of every server, kept short: a read that must wait parks
-- with the size it wants in the state slot (STATE = -max) and yields
-- (RWAIT, self); resume() records the task as the reader, the loop makes
-- the recv(2) itself when the edge comes (M.dispatch) and resumes the
-- reader with the result. No function called from here makes a call (a
-- call three frames below the handler leaves a fourth CallInfo on every
-- idle connection), and its C calls are made with few live registers, so
-- an idle connection's coroutine keeps the stack it was created with.
function Conn:read(max)
  if max == nil then
    max = self[CONFIG][READ_SIZE]
  elseif math_type(max) ~= "integer" or max < 1 then
    check_count(max, "read")
  end
  -- The common wait (drained, hence registered; nothing buffered; no
  -- extras, so no deadline, error or shutdown to heed) skips the block
  -- below and parks at once.
  if not (self[STATE] == DRAINED and not self[INBUF] and not self[EXTRAS]) then
    local b = self[INBUF]
    if b then
      if #b <= max then
        self[INBUF] = false
        return b
      end
      self[INBUF] = sub(b, max + 1)
      return sub(b, 1, max)
    end
    local st = self[STATE]
    if st == DRAINED then
      local x = self[EXTRAS]
      if x and x.short_reads_unsafe then st = READY end  -- DRAINED proves nothing
    end
    if st ~= DRAINED then
      -- before any recv: a second reader must not take the data the loop
      -- is to read for the first, nor touch the size it asked for
      -- (STATE < 0 while a reader is parked)
      if st < 0 then
        if self[READER] then error(TWO_READERS, 2) end
        -- a wait that never reached the loop: a yield outside any
        -- coroutine, or to a coroutine of the script's own
        st = READY
      end
      if st > ENDED then return nil, "closed" end
      if st == ENDED then
        local m, n = recorded(self[EXTRAS], true)
        if m then  -- what the kernel still holds comes first, then the error
          local s = recv(self[FD], max)
          if s and s ~= "" then return s end
          return nil, m, n
        end
      end
      local s, err, en = recv(self[FD], max)
      if s then
        local len = #s
        if len == 0 then
          self[STATE] = ENDED
          local m, n = recorded(self[EXTRAS], true)
          if m then return nil, m, n end
          return nil, "closed"
        end
        -- a short read drained the socket: the next data brings an edge,
        -- if the connection is registered (DRAINED implies it: a wait
        -- from DRAINED needs no registration check)
        local x = self[EXTRAS]
        if len < max and st == READY and x ~= nil and not (x and x.short_reads_unsafe) then
          self[STATE] = DRAINED
        end
        return s
      end
      if en ~= EAGAIN then return nil, fail(self, err, en) end
      if self[EXTRAS] == nil then  -- the first wait registers (inline: see above)
        local cfg = self[CONFIG]
        local ok, e, n = cfg.loop.ep:add(self[FD], self[FD], REGFLAGS)
        if not ok then return nil, e, n end
        self[EXTRAS] = false
        -- timed reads keep their deadlines in the extras, as unix
        -- connections keep short_reads_unsafe (register(), inline)
        if cfg.reads_timed or not cfg.short_reads_drain then
          xnode(self, cfg.reads_timed and "deadline" or "unix")
        end
      end
      self[STATE] = DRAINED
    end
    local cfg = self[CONFIG]
    local x = self[EXTRAS]
    if cfg.loop.in_shutdown and cfg.server then
      x = x or xnode(self, "shutdown")
      local r = rare(x)
      if not r.shutdown_told then
        r.shutdown_told = true
        return nil, "shutdown"
      end
    end
    if x then  -- extras: deadlines to keep
      local call_dl = x.read_call_deadline
      if cfg.reads_timed or call_dl then
        local dl, idle = deadline(self, cfg.read_timeout, call_dl)
        set_deadline(self, false, dl, idle)
      else
        x.read_deadline = false
      end
    end
  end
  self[STATE] = -max
  -- resumed with (nil, data), or (reason [, nil, errno]): a timeout, a
  -- close, a shutdown, end of stream or a socket error. Outside a
  -- coroutine the yield raises ("attempt to yield from outside a
  -- coroutine").
  local w, data, en = co_yield(RWAIT, self)
  if data then return data end
  -- the loop always passes data or a reason: this is a coroutine of the
  -- script's own, resumed by the script
  if not w then
    if not self[READER] and self[STATE] < 0 then self[STATE] = READY end
    error(NOTCO, 2)
  end
  return nil, w, en
end

-- readline and readn read in several calls; the read_timeout bounds the
-- whole call: before each read they record the call's deadline where
-- Conn:read finds it (a timed, registered connection has extras; the
-- first wait of an unregistered one starts its deadline from now, which
-- is the call's start: no wait came before it).

--- Read exactly n bytes. On end of stream, timeout or error returns nil,
-- reason and keeps what arrived for the next read.
function Conn:readn(n)
  if math_type(n) ~= "integer" or n < 0 then
    bad("readn", 1, "non-negative integer expected, got " .. (math_type(n) and tostring(n)
      or type(n)))
  end
  local b = self[INBUF]
  if b and #b >= n then
    if #b == n then self[INBUF] = false else self[INBUF] = sub(b, n + 1) end
    return sub(b, 1, n)
  end
  if n == 0 then return "" end
  local parts, got = {}, 0
  if b then
    parts[1], got = b, #b
    self[INBUF] = false
  end
  local cfg = self[CONFIG]
  local chunk = cfg.read_size
  local rt = cfg.read_timeout
  local call_dl = rt and cfg.loop.now + rt
  while got < n do
    local x = self[EXTRAS]
    if x then x.read_call_deadline = call_dl end
    local s, err, en = self:read(min(n - got, chunk > 65536 and chunk or 65536))
    if x then x.read_call_deadline = false end
    if not s then
      if got > 0 then self[INBUF] = concat(parts) end
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
  local cfg = self[CONFIG]
  if max == nil then max = cfg.max_line else check_count(max, "readline") end
  local b = self[INBUF] or ""
  local start = 1
  local chunk = cfg.read_size
  local rt = cfg.read_timeout
  local call_dl = rt and cfg.loop.now + rt
  while true do
    local i = find(b, "\n", start, true)
    if i then
      local j = i - 1
      if j > 0 and byte(b, j) == 13 then j = j - 1 end
      if j > max then
        self[INBUF] = b
        return nil, "line too long"
      end
      self[INBUF] = i < #b and sub(b, i + 1) or false
      return sub(b, 1, j)
    end
    if #b > max then
      self[INBUF] = b
      return nil, "line too long"
    end
    start = #b + 1
    self[INBUF] = false
    local x = self[EXTRAS]
    if x then x.read_call_deadline = call_dl end
    local s, err, en = self:read(chunk)
    if x then x.read_call_deadline = false end
    if not s then
      if #b > 0 and self[STATE] <= ENDED then self[INBUF] = b end
      return nil, err, en
    end
    b = b .. s
  end
end

-- Writing ------------------------------------------------------------------

local NOTASK = "conn:write must be called from a coroutine (a connection handler"
  .. " or lepoll.spawn) when it has to wait"
local NOTASK_FLUSH = "conn:flush must be called from a coroutine (a connection handler"
  .. " or lepoll.spawn)"

local function write_slow(c, s, i)
  local len = #s
  local cfg = c[CONFIG]
  local hwm = cfg.hwm
  local dl, idle
  while true do
    local x = c[EXTRAS]
    local q = x and x.outq
    if q and q.bytes > 0 then
      local ok, err, en = flush(c, q)
      if not ok then return nil, queue_failed(c, q, err, en) end
    end
    local queued = q and q.bytes or 0
    if queued == 0 and i <= len then
      local snd = cfg.send
      local n, err, en
      if snd then n, err, en = snd(c, s, i) else n, err, en = send(c[FD], s, i) end
      if n then
        i = i + n
      elseif en ~= EAGAIN then
        return nil, fail(c, err, en)
      end
    end
    if i > len then return true end
    if queued + len - i + 1 <= hwm then return enqueue(c, s, i) end
    -- it must wait: only a task can. From a callback, a write that has
    -- sent nothing is refused; one the kernel took a part of is queued
    -- whole, beyond hwm, so no byte is lost.
    local t = cfg.loop[CURRENT_TASK]
    if not t or t[COROUTINE] ~= co_running() then
      if i == 1 then error(NOTASK, 2) end
      return enqueue(c, s, i)
    end
    if dl == nil then dl, idle = deadline(c, cfg.write_timeout) end
    local w = wait_write(c, dl, idle, true)
    if w then
      -- a stream under the connection (TLS) may hold part of what this
      -- write gives up on
      local abandon = cfg.abandon
      if abandon then abandon(c) end
      return nil, w
    end
    if c[STATE] > ENDED then return nil, "closed" end
    local m, n = recorded(c[EXTRAS])
    if m then return nil, m, n end
  end
end


do
  -- string.len as net.datalen: a string or a number passes, anything
  -- else raises "bad argument #1 to 'write' (string expected, got ...)"
  -- at the line that called write; s .. "" then turns a number into its
  -- string and is s itself for a string (no allocation). A type() call
  -- would cost a string-cache lookup and a strcmp on every write.
  local datalen = net.datalen

  --- Write s (one string; a number is converted). Returns true once s is
  -- sent or queued; queued output never exceeds the hwm option: above it
  -- write waits until the peer drains it. nil, "closed" / "timeout" /
  -- message, errno on failure. Outside a task (a callback) it never
  -- waits: see write_slow.
  function Conn:write(s, extra)
    local len = datalen(s, 1, "write")
    if extra ~= nil then bad("write", 2, "no value expected, got " .. type(extra)) end
    s = s .. ""
    if self[STATE] > ENDED then return nil, "closed" end
    local x = self[EXTRAS]
    if x then
      -- another coroutine's write waits with bytes not yet queued: these
      -- would overtake them
      if x.writer_holds_rest then error(TWO_WRITERS, 2) end
      local r = x.rare
      if r and r.error_message then return nil, r.error_message, r.error_errno or nil end
      local q = x.outq
      if q and q.bytes > 0 then return write_slow(self, s, 1) end
    end
    -- an empty write makes no syscall: send(2) of nothing would report,
    -- and clear, a pending socket error that the next read should get
    if len == 0 then return true end
    local n, err, en = send(self[FD], s)
    if n then
      if n >= len then return true end
      return write_slow(self, s, n + 1)
    end
    if en == EAGAIN then return write_slow(self, s, 1) end
    return nil, fail(self, err, en)
  end
end

--- Wait until every queued byte is handed to the kernel.
function Conn:flush()
  if not self[CONFIG].loop[CURRENT_TASK] then error(NOTASK_FLUSH, 2) end
  local dl, idle
  while true do
    if self[STATE] == CLOSED then return nil, "closed" end
    local x = self[EXTRAS]
    local m, n = recorded(x)
    if m then return nil, m, n end
    local q = x and x.outq
    if not q or q.bytes == 0 then return true end
    local ok, err, en = flush(self, q)
    if not ok then return nil, queue_failed(self, q, err, en) end
    if q.bytes == 0 then return true end
    if dl == nil then dl, idle = deadline(self, self[CONFIG].write_timeout) end
    local w = wait_write(self, dl, idle)
    if w then return nil, w end
  end
end

--- Bytes queued and not yet accepted by the kernel.
function Conn:pending()
  local x = self[EXTRAS]
  local q = x and x.outq
  return q and q.bytes or 0
end

--- Shut down one direction: "w" (default: flush, then send FIN), "r" or
-- "rw".
function Conn:shutdown(how)
  if how == nil then how = "w" end
  if how ~= "r" and how ~= "w" and how ~= "rw" then
    bad("shutdown", 1, "'r', 'w' or 'rw' expected, got " .. (type(how) == "string"
      and ("'" .. how .. "'") or type(how)))
  end
  if self[STATE] > ENDED then return nil, "closed" end
  if how ~= "r" then
    local ok, err, en = self:flush()
    if not ok then return nil, err, en end
    -- TLS ends its write side with close_notify before the FIN
    local close_notify = self[CONFIG].close_notify
    if close_notify then
      ok, err, en = close_notify(self)
      if not ok then return nil, err, en end
    end
  end
  return net.shutdown(self[FD], how)
end

--- Close the connection. Queued output is still flushed in the background
-- (up to the linger option) unless force is true. A coroutine waiting on
-- this connection gets nil, "closed". Idempotent; returns true.
function Conn:close(force)
  close(self, force)
  return true
end

--- Whether close() was called (or the connection was dropped).
function Conn:closed()
  return self[STATE] > ENDED
end

-- Information and options ----------------------------------------------------

--- The peer's address: host, port (or the unix path; "" for an unbound
-- unix client); behind a PROXY header, the client it named
-- (lepoll._proxy keeps it, with the proxy's address, for proxied()). An
-- outbound connection remembers it from connect; an accepted one asks
-- the kernel (getpeername(2)) on each call, so
-- connections that never ask pay nothing (no memory per connection), and
-- gets nil, message, errno once the peer has gone (ENOTCONN).
function Conn:peer()
  local p = self._proxy  -- the client a PROXY header named (lepoll._proxy)
  if p then return p[1], p[2] or nil end
  local x = self[EXTRAS]
  local r = x and x.rare
  if r and r.peer_host then return r.peer_host, r.peer_port or nil end
  if self[STATE] == CLOSED then return nil, "closed" end
  return net.getpeername(self[FD])
end

--- On a connection whose listener reads PROXY headers and whose header
-- named a client (command PROXY; not LOCAL, UNKNOWN or AF_UNSPEC): the
-- proxy's address (the socket's real peer: host, port, or the unix
-- path) and the header's facts {version = 1 | 2, command = "PROXY",
-- family = "inet" | "inet6" | "unix", dst_host, dst_port, tlvs = {[type]
-- = value}}. nil on any other connection.
function Conn:proxied()
  local p = self._proxy
  if not p then return nil end
  return p[3] or nil, p[4] or nil, p[5]
end

--- The local address: host, port (or the unix path).
function Conn:sockname()
  if self[STATE] == CLOSED then return nil, "closed" end
  return net.getsockname(self[FD])
end

--- The TLS session's facts (lepoll._tls's info): nil on a plain
-- connection (and on a TLS one once closed).
function Conn:tls()
  if not self._tls then return nil end
  return require("lepoll._tls").info(self)
end

--- The socket's fd number (-1 once closed).
function Conn:fileno()
  if self[STATE] == CLOSED then return -1 end
  return self[FD]
end
Conn.getfd = Conn.fileno

--- Set a socket option (net.setsockopt names: "nodelay", "keepalive", ...).
function Conn:setoption(name, value)
  if self[STATE] == CLOSED then return nil, "closed" end
  return net.setsockopt(self[FD], name, value)
end

local TIMEOUTS = { read = "read_timeout", write = "write_timeout",
  idle = "idle_timeout" }

--- Change this connection's timeouts: t = {read = s, write = s, idle = s}
-- (false: none). Options not named keep their value. Applies to the next
-- wait.
function Conn:set_timeouts(t)
  if type(t) ~= "table" then bad("set_timeouts", 1, "table expected, got " .. type(t)) end
  for k, v in pairs(t) do
    if not TIMEOUTS[k] then bad("set_timeouts", 1, "unknown timeout '" .. tostring(k) .. "'") end
    if v ~= false and (type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge) then
      bad("set_timeouts", 1, "timeout '" .. k .. "' must be a positive number or false, got "
        .. (type(v) == "number" and tostring(v) or type(v)))
    end
  end
  local cfg = own_config(self)
  for k, v in pairs(t) do cfg[TIMEOUTS[k]] = v end
  cfg.reads_timed = (cfg.read_timeout or cfg.idle_timeout) and true or false
  -- a registered connection without extras reads with no deadline
  -- bookkeeping (Conn:read): give it extras to keep them in
  if cfg.reads_timed and self[EXTRAS] == false then xnode(self, "timeouts") end
  return true
end

--- The current timeouts: {read = s|false, write = s|false, idle = s|false}.
function Conn:timeouts()
  local cfg = self[CONFIG]
  return { read = cfg.read_timeout, write = cfg.write_timeout,
    idle = cfg.idle_timeout }
end

function Conn:__tostring()
  if self[STATE] == CLOSED then return "lepoll.Conn (closed)" end
  return "lepoll.Conn (fd " .. self[FD] .. ")"
end

-- The connections' metatable (read and write sit in each connection's
-- own hash part, see M.new: the per-event calls skip __index).
ConnMT = { __index = Conn, __tostring = Conn.__tostring }
read_m, write_m = Conn.read, Conn.write

-- Protocols on top (lepoll.http) ---------------------------------------------

--- Give c's next reads the absolute deadline dl (loop time; false: none
-- but the read_timeout) instead of one counted from each call: a protocol
-- that bounds a whole phase (an HTTP head must arrive within 30 s of its
-- first byte) sets it before its reads, with no frame between its loop
-- and Conn:read. The first deadline gives c extras (made for "phase");
-- false on a connection without them costs nothing. true, or nil,
-- message, errno when c cannot be registered.
function M.set_read_deadline(c, dl)
  local x = c[EXTRAS]
  if not x then
    if not dl then return true end
    if x == nil then
      local ok, err, en = register(c)
      if not ok then return nil, err, en end
    end
    x = xnode(c, "phase")
  end
  x.read_call_deadline = dl
  return true
end

-- Streams under the connection (lepoll._tls) ---------------------------------

-- What lepoll._tls builds on: a TLS connection is a connection whose read
-- and write are its own, whose reader and writer wait in the same slots
-- (so deadlines, close and shutdown reach them unchanged), and whose
-- settings carry send, finalize and close_notify (above).
M.internal = {
  xnode = xnode, set_deadline = set_deadline, deadline = deadline,
  fail = fail, recorded = recorded, rare = rare, write_slow = write_slow,
  flush_background = flush_background, check_count = check_count,
  TWO_READERS = TWO_READERS, TWO_WRITERS = TWO_WRITERS, REGFLAGS = REGFLAGS,
  RMASK = RMASK, WMASK = WMASK,
}

--- Whether c keeps its loop's run() running (held: true, as every
-- connection does from the start). A pool of idle client connections
-- lets go of them: a script whose work is done must not wait for their
-- idle timeout to end.
function M.hold(c, held)
  if c[STATE] == CLOSED or held == not c._unheld then return end
  local loop = c[CONFIG].loop
  if held then
    c._unheld = nil
    loop.nactive = loop.nactive + 1
  else
    c._unheld = true
    loop.nactive = loop.nactive - 1
  end
end

-- Outbound connections (lepoll._connect) ---------------------------------------

--- Wait, from the calling task, until c's connect(2) completes: nil, or
-- "timeout" / "closed". dl: an absolute deadline or false.
function M.wait_connected(c, dl)
  c[STATE] = DRAINED
  return wait_write(c, dl, false)
end

--- After a completed connect: register (extras imply registration) and
-- remember whom c called (peer() survives the peer): host as the caller
-- named it, addr the address reached. true or nil,
-- message, errno.
function M.connected(c, host, port, addr)
  if c[EXTRAS] == nil then
    local ok, err, en = register(c)
    if not ok then return nil, err, en end
  end
  local x = xnode(c, "peer")
  local r = rare(x)
  -- peer() is the address it reached (addr), not the name it resolved
  r.peer_host, r.peer_port = addr or host, port or false
  return true
end

return M
