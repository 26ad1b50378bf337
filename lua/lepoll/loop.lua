--- lepoll.loop: the event loop - one epoll set, integer-token dispatch,
-- one timerfd for every deadline, the ready queue and the tasks.
-- The public face is lepoll (init.lua); this module returns the Loop class.
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local heap = require "lepoll.timer"
local logm = require "lepoll._log"
local connm = require "lepoll.conn"
local listenm = require "lepoll.listen"
local signalm = require "lepoll.signal"
local watchm = require "lepoll.watch"

local co_create, co_resume, co_yield, co_status, co_close =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status,
  coroutine.close
local traceback = debug.traceback
local type, error, select, xpcall, tostring = type, error, select, xpcall, tostring
local table_pack, table_unpack = table.pack, table.unpack
local heap_pop, heap_push = heap.pop, heap.push
local clock = lio.clock_gettime
local MONOTONIC = lio.MONOTONIC
local EINTR = epoll.errno.EINTR
local log, msgh = logm.log, logm.msgh
local dispatch, conn_finish, current = connm.dispatch, connm.finish, connm.current
local WAIT, RWAIT, RT = connm.WAIT, connm.RWAIT, connm.RT
local CUR <const> = 1  -- loop[CUR]: the task running now, or false (conn.lua too)

local M = {}

local Loop = {}
Loop.__index = Loop
M.Loop = Loop

local EVENTS = 256        -- events per epoll_wait

local function now()
  return clock(MONOTONIC)
end
M.now = now

-- Timerfd readable: consume the expiration; due timers run after the
-- event pass anyway.
local function on_timerfd(loop)
  lio.timerfd_read(loop.tfd)
  loop.armed = 0  -- a one-shot timerfd disarms itself when it expires
end

--- A new loop. opts (all optional): events (epoll_wait batch, default
-- 256), signals (true: SIGINT/SIGTERM start a graceful shutdown while
-- run() is running; the default loop sets it), shutdown_timeout (seconds
-- in-flight connections get on shutdown, default 10).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'loop' (table expected, got " .. type(opts) .. ")", 2)
  end
  -- SIGPIPE must never kill a server; send() uses MSG_NOSIGNAL, but a
  -- write() on a pipe or a user's LuaSocket socket would not.
  lio.ignore_signal("PIPE")
  local ep = assert(epoll.create())
  local evs = epoll.events(opts.events or EVENTS)
  local tfd, err = lio.timerfd(MONOTONIC, lio.NONBLOCK)
  if not tfd then
    ep:close()
    error("lepoll: timerfd: " .. err)
  end
  local self = setmetatable({
    false,  -- [CUR]: the task running now (an array slot: set twice per event)
    ep = ep, evs = evs, evget = evs.get, epwait = ep.wait,
    -- epoll data -> object: connections under their fd numbers (handled
    -- inline by conn.dispatch), everything else under negative tokens with
    -- a callback in cbs: a sign test tells them apart
    objs = {}, cbs = {}, nxtok = 0,
    xfree = {}, nxfree = 0, dead = {}, ndead = 0,
    heap = heap.new(),
    rqc = {}, rqv = {}, rqh = 1, rqt = 0,  -- ready queue (FIFO) of tasks
    now = now(),
    nactive = 0,                           -- what keeps run() running
    nconns = 0,                            -- accepted connections open
    servers = {},
    tfd = tfd, armed = 0,
    signals = opts.signals and true or false,
    shutdown_timeout = opts.shutdown_timeout or 10,
    sigs = {},                             -- signo -> list of handles
    running = false, stopped = false, shutting = false, closed = false,
  }, Loop)
  self.ttok = self:_token(self, on_timerfd)
  assert(ep:add(tfd, self.ttok, epoll.IN))
  return self
end

-- Tokens ------------------------------------------------------------------

--- Allocate a token (a negative integer): epoll's data for obj,
-- dispatched as cb(obj, flags).
function Loop:_token(obj, cb)
  local t
  local nf = self.nxfree
  if nf > 0 then
    t = self.xfree[nf]
    self.xfree[nf] = nil
    self.nxfree = nf - 1
  else
    t = self.nxtok - 1
    self.nxtok = t
  end
  self.cbs[t] = cb
  self.objs[t] = obj
  return t
end

--- Release a token. It is reused only after the current event batch, so an
-- event already fetched for a closed fd never reaches a newcomer.
function Loop:_release(t)
  self.objs[t] = false
  self.cbs[t] = nil
  local nd = self.ndead + 1
  self.dead[nd] = t
  self.ndead = nd
end

-- Tasks -------------------------------------------------------------------
--
-- A task is a table with a coroutine at index 1: an accepted connection
-- (its handler's coroutine) or a record made by spawn and signal handlers.
-- The coroutine's main function is the task's own function, so an idle
-- connection carries no frame of the loop's. Waits record loop[CUR] and
-- yield WAIT, or yield RWAIT and a connection whose reader the resumer
-- records (conn.lua); whatever else a resume returns is a task that
-- finished, raised, or called coroutine.yield itself.

--- Resume task t with up to two values.
function Loop:_resume(t, a, b)
  local prev = self[CUR]  -- a task may start another (spawn)
  self[CUR] = t
  local ok, r, rc = co_resume(t[1], a, b)
  self[CUR] = prev
  if r == RWAIT then
    rc[RT] = t
  elseif r ~= WAIT then
    self:_resumed(t, ok, r)
  end
end

-- The end of task t: err is the failure's message and traceback when it
-- raised. A connection closes; anything else is only reported.
local function finish(t, err)
  if t._isconn then
    local ok, e = xpcall(conn_finish, msgh, t, err)
    if not ok then log("closing a connection failed: " .. tostring(e)) end
  elseif err then
    log("task failed: " .. err)
  end
end

--- After a resume of task t that did not end in a wait: the task returned
-- (finish it), raised (report it, close its to-be-closed variables, finish
-- it) or yielded on its own (it runs again after the others, as after
-- lepoll.sleep(0)).
function Loop:_resumed(t, ok, r)
  local co = t[1]
  if ok then
    if co_status(co) == "dead" then
      t[1] = false
      finish(t)
    else
      self:_schedule(t)
    end
    return
  end
  local msg = type(r) == "string" and traceback(co, r) or tostring(r)
  co_close(co)
  t[1] = false
  finish(t, msg)
end

--- Run fn(a, b) as task t (slot 1 gets its coroutine), now, until it
-- first waits. Returns the coroutine.
function Loop:_task(t, fn, a, b)
  local co = co_create(fn)
  t[1] = co
  self:_resume(t, a, b)
  return co
end

--- Resume task t with v from the loop, after the current callback.
function Loop:_schedule(t, v)
  local i = self.rqt + 1
  self.rqc[i] = t
  self.rqv[i] = v
  self.rqt = i
end

local function run_ready(self)
  local rqc, rqv = self.rqc, self.rqv
  local last = self.rqt
  local i = self.rqh
  while i <= last do
    local t, v = rqc[i], rqv[i]
    rqc[i], rqv[i] = nil, nil
    i = i + 1
    self.rqh = i
    local co = t[1]
    if co and co_status(co) == "suspended" then self:_resume(t, v) end
  end
  if self.rqh > self.rqt then self.rqh, self.rqt = 1, 0 end
end

--- Call fn(...) protected; log its error. For callbacks that run on the
-- loop itself (timers, watchers).
function Loop._call(_, fn, a, b)
  local ok, err = xpcall(fn, msgh, a, b)
  if not ok then log("callback failed: " .. tostring(err)) end
end

-- The loop ----------------------------------------------------------------

local function tick(self, timeout)
  local ms
  local t = timeout
  if self.rqt >= self.rqh then
    ms = 0
  else
    local top = self.heap[1]
    if top then
      local d = top.at - now()
      if d < 0 then d = 0 end
      if not t or d < t then t = d end
    end
    ms = t and t * 1000 or -1
  end
  local ep, evs = self.ep, self.evs
  local n, err, en = self.epwait(ep, evs, ms)
  if not n then
    local deadline = t and now() + t
    while not n do
      if en ~= EINTR then error("lepoll: epoll_wait: " .. tostring(err)) end
      if deadline then
        ms = (deadline - now()) * 1000
        if ms < 0 then ms = 0 end
      end
      n, err, en = self.epwait(ep, evs, ms)
    end
  end
  local tnow = now()
  self.now = tnow
  if n > 0 then dispatch(self, evs, n) end
  -- due deadlines, in order; ones added while firing wait for the next tick
  local h = self.heap
  local top = h[1]
  if top and top.at <= tnow then
    local limit = h.seq
    repeat
      heap_pop(h)
      top:_expire(self, tnow)
      top = h[1]
    until not top or top.at > tnow or top.seq > limit
  end
  if self.rqt >= self.rqh then run_ready(self) end
  -- tokens released during this tick become reusable
  local nd = self.ndead
  if nd > 0 then
    local dead, xfree, nx = self.dead, self.xfree, self.nxfree
    for i = 1, nd do
      nx = nx + 1
      xfree[nx] = dead[i]
      dead[i] = nil
    end
    self.nxfree, self.ndead = nx, 0
  end
  return n
end

-- Arm the timerfd for the earliest deadline, so a host polling fileno()
-- wakes when a timer is due (or at once when coroutines are ready).
function Loop:_arm()
  if self.closed then return end
  local want = 0
  if self.rqt >= self.rqh then
    want = 1e-9           -- an absolute time long past: expire now
  else
    local top = self.heap[1]
    if top then want = top.at > 0 and top.at or 1e-9 end
  end
  if want ~= self.armed then
    assert(lio.timerfd_settime(self.tfd, want, 0, lio.ABSTIME))
    self.armed = want
  end
end

local function check_open(self, what)
  if self.closed then error("attempt to use a closed lepoll loop (" .. what .. ")", 3) end
end

--- Run until stop(), a completed shutdown, or nothing is left to wait for
-- (no listener, connection, timer, watcher or sleeping coroutine).
function Loop:run()
  check_open(self, "run")
  if self.running then error("loop is already running", 2) end
  self.running = true
  local defsig = self.signals and self:_default_signals()
  local ok, err = pcall(function()
    while not self.stopped and (self.nactive > 0 or self.rqt >= self.rqh) do
      tick(self, nil)
    end
  end)
  self.running, self.stopped, self.shutting = false, false, false
  if self.shut_timer then
    self.shut_timer:cancel()
    self.shut_timer = nil
  end
  if defsig then self:_remove_default_signals(defsig) end
  if not ok then error(err, 0) end
  self:_arm()
  return true
end

--- One iteration: wait up to timeout seconds (nil: until something
-- happens, 0: poll) for events, then run the callbacks, coroutines and
-- timers that are due. For hosts with their own loop: watch fileno() and
-- call step(0) when it is readable. Returns the number of fd events.
function Loop:step(timeout)
  check_open(self, "step")
  if self.running then error("step called while the loop is running", 2) end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad argument #1 to 'step' (non-negative number expected)", 2)
  end
  self.running = true
  local ok, n = pcall(tick, self, timeout)
  self.running, self.stopped = false, false
  if not ok then error(n, 0) end
  self:_arm()
  return n
end

--- Make run() return after the current iteration.
function Loop:stop()
  self.stopped = true
end

--- The epoll fd: readable when step(0) has work (fd events, due timers,
-- ready coroutines).
function Loop:fileno()
  check_open(self, "fileno")
  return self.ep:fileno()
end

--- Seconds until the next deadline (0 if work is ready now), nil if none.
function Loop:timeout()
  if self.rqt >= self.rqh then return 0 end
  local top = self.heap[1]
  if not top then return nil end
  local d = top.at - now()
  return d > 0 and d or 0
end

--- Seconds on CLOCK_MONOTONIC (the clock of every deadline).
function Loop.now()
  return now()
end

-- Timers and coroutines ---------------------------------------------------

local function check_seconds(sec, fname, arg)
  if type(sec) ~= "number" or sec ~= sec or sec < 0 or sec == math.huge then
    error(("bad argument #%d to '%s' (non-negative number of seconds expected, got %s)")
      :format(arg, fname, type(sec) == "number" and tostring(sec) or type(sec)), 3)
  end
end

local function check_fn(fn, fname, arg)
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)")
      :format(arg, fname, type(fn)), 3)
  end
end

local function new_timer(self, sec, fn, every)
  local t = setmetatable({ at = now() + sec, seq = 0, hi = false, fn = fn,
    every = every, loop = self, dead = false }, heap.Timer)
  heap_push(self.heap, t)
  self.nactive = self.nactive + 1
  return t
end

--- Call fn(timer) once, sec seconds from now. Returns the timer
-- (timer:cancel()). fn runs on the loop: to wait inside it, spawn.
function Loop:after(sec, fn)
  check_open(self, "after")
  check_seconds(sec, "after", 1)
  check_fn(fn, "after", 2)
  return new_timer(self, sec, fn, false)
end

--- Call fn(timer) every sec seconds (the first time sec from now) until
-- timer:cancel().
function Loop:every(sec, fn)
  check_open(self, "every")
  check_seconds(sec, "every", 1)
  if sec <= 0 then error("bad argument #1 to 'every' (positive interval expected)", 2) end
  check_fn(fn, "every", 2)
  return new_timer(self, sec, fn, sec)
end

--- Suspend the calling coroutine for sec seconds (0: let the others run
-- first). Returns true.
function Loop:sleep(sec)
  check_seconds(sec, "sleep", 1)
  local t = current(self, 2, "lepoll.sleep must be called from a coroutine (a"
    .. " connection handler or lepoll.spawn)")
  if sec == 0 then
    self:_schedule(t, true)
    return co_yield(WAIT)
  end
  local node = setmetatable({ at = now() + sec, seq = 0, hi = false, task = t }, heap.Sleep)
  heap_push(self.heap, node)
  self.nactive = self.nactive + 1
  return co_yield(WAIT)
end

--- Run fn(...) in a new coroutine, now (until it first waits). An error
-- in fn is logged. Returns the coroutine.
function Loop:spawn(fn, ...)
  check_open(self, "spawn")
  check_fn(fn, "spawn", 1)
  local n = select("#", ...)
  if n <= 2 then return self:_task({ false }, fn, ...) end
  local args = table_pack(...)
  return self:_task({ false }, function() return fn(table_unpack(args, 1, args.n)) end)
end

-- Listeners, connections, watchers, signals --------------------------------

--- Listen and serve; see lepoll.listen.
function Loop:listen(opts, handler)
  check_open(self, "listen")
  return listenm.listen(self, opts, handler)
end

--- Connect from a coroutine; see lepoll.connect.
function Loop:connect(host, port, opts)
  check_open(self, "connect")
  return connm.connect(self, host, port, opts)
end

--- Watch any fd; see lepoll.watch.
function Loop:watch(fd, mode, fn)
  check_open(self, "watch")
  return watchm.watch(self, fd, mode, fn)
end

--- Handle a signal; see lepoll.on_signal.
function Loop:on_signal(name, fn)
  check_open(self, "on_signal")
  return signalm.on_signal(self, name, fn)
end

-- SIGINT/SIGTERM start a graceful shutdown (a second one forces it),
-- unless the script handles them itself.
function Loop:_default_signals()
  local handles = {}
  for _, name in ipairs({ "INT", "TERM" }) do
    local signo = lio.signals[name]
    if not self.sigs[signo] then
      local h = signalm.on_signal(self, signo, function() self:shutdown() end)
      if h then handles[#handles + 1] = h end
    end
  end
  return handles
end

function Loop._remove_default_signals(_, handles)
  for i = 1, #handles do handles[i]:cancel() end
end

-- Shutdown ----------------------------------------------------------------

local function force_close(self)
  for _, o in pairs(self.objs) do
    if o and o._isconn then o:close(true) end
  end
end

--- Called by conn.lua when an accepted connection is gone.
function Loop:_conn_done()
  if self.shutting and self.nconns == 0 then
    if self.shut_timer then self.shut_timer:cancel() end
    self:stop()
  end
end

--- Graceful shutdown: close every listener, let the connections' handlers
-- finish for up to timeout seconds (default: the loop's shutdown_timeout),
-- then close what is left and make run() return. Calling it again while
-- shutting down closes everything at once.
function Loop:shutdown(timeout)
  check_open(self, "shutdown")
  if timeout ~= nil then check_seconds(timeout, "shutdown", 1) end
  if self.shutting then
    force_close(self)
    self:stop()
    return true
  end
  self.shutting = true
  for s in pairs(self.servers) do s:close() end
  if self.nconns == 0 then
    self:stop()
    return true
  end
  local t = self:after(timeout or self.shutdown_timeout, function()
    force_close(self)
    self:stop()
  end)
  self.shut_timer = t
  return true
end

--- Whether shutdown() has begun (handlers may check it to wind down).
function Loop:shutting_down()
  return self.shutting
end

--- Close the loop: every connection, listener, watcher, timer, signal
-- handler, then the timerfd and the epoll fd. Idempotent.
function Loop:close()
  if self.closed then return true end
  force_close(self)
  for s in pairs(self.servers) do s:close() end
  local objs = self.objs
  for t = -1, self.nxtok, -1 do
    local o = objs[t]
    if o and o._iswatch then o:cancel() end
  end
  for _, list in pairs(self.sigs) do
    for i = #list, 1, -1 do list[i]:cancel() end
  end
  local h = self.heap
  while h.n > 0 do heap_pop(h) end
  self.nactive = 0
  self.closed = true
  self.tfd:close()
  self.ep:close()
  return true
end

-- A loop that is collected (or left open when the state closes) closes
-- too: connections own plain fd numbers, which nothing else would close.
function Loop:__gc()
  if not self.closed then pcall(Loop.close, self) end
end

return M
