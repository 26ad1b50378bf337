--- lepoll._loop: the event loop - one epoll set, integer-data dispatch,
-- one timerfd for every deadline, the ready queue - and the Loop class,
-- whose methods each live in the file named beside them below (private;
-- the public face is lepoll, init.lua).
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local heap = require "lepoll._heap"
local connm = require "lepoll._conn"
local optionsm = require "lepoll._options"
local timerm = require "lepoll._timer"
local listenm = require "lepoll._listen"
local connectm = require "lepoll._connect"
local signalm = require "lepoll._signal"
local watchm = require "lepoll._watch"
local resolvem = require "lepoll._resolve"
local role = require "lepoll._role"

local type, error, select, tostring = type, error, select, tostring
local table_pack, table_unpack = table.pack, table.unpack
local heap_pop = heap.pop
local now = timerm.now
local EINTR = epoll.errno.EINTR
local dispatch, resume, start = connm.dispatch, connm.resume, connm.start
local CURRENT_TASK <const> = 1  -- loop[CURRENT_TASK]: see lepoll._conn
assert(CURRENT_TASK == connm.CURRENT_TASK)

local M = {}

local Loop = {}
Loop.__index = Loop
M.Loop = Loop

-- The methods that live elsewhere: lepoll.X is the default loop's loop:X.
Loop.listen = listenm.listen            -- _listen.lua
Loop.connect = connectm.connect         -- _connect.lua
Loop.watch = watchm.watch               -- _watch.lua
Loop.resolve = resolvem.resolve         -- _resolve.lua
Loop.on_signal = signalm.on_signal      -- _signal.lua
Loop.after = timerm.after               -- _timer.lua
Loop.every = timerm.every               -- _timer.lua
Loop.sleep = timerm.sleep               -- _timer.lua

-- Timerfd readable: consume the expiration; due timers run after the
-- event pass anyway.
local function on_timerfd(loop)
  lio.timerfd_read(loop.timerfd)
  loop.timerfd_at = 0  -- a one-shot timerfd disarms itself when it expires
end

--- A new loop (lepoll.loop). opts (all optional, checked here): events
-- (epoll_wait batch, default 256), signals (true: SIGINT/SIGTERM start a
-- graceful shutdown while run() is running; the default loop sets it),
-- shutdown_timeout (seconds in-flight connections get on shutdown,
-- default 10), resolver_threads (4) and resolver_queue (256): the name
-- lookups' thread pool (_resolve.lua), made on the first name.
function M.new(opts)
  local o = optionsm.check(opts, "loop", "loop", 1)
  -- SIGPIPE must never kill a server; send() uses MSG_NOSIGNAL, but a
  -- write() on a pipe or a user's LuaSocket socket would not.
  lio.ignore_signal("PIPE")
  local ep, err = epoll.create()
  if not ep then error("lepoll: epoll_create: " .. err, 2) end
  local evs = epoll.events(o.events)
  local tfd
  tfd, err = lio.timerfd(lio.MONOTONIC, lio.NONBLOCK)
  if not tfd then
    ep:close()
    error("lepoll: timerfd: " .. err, 2)
  end
  local self = setmetatable({
    false,  -- [CURRENT_TASK]: the task running now (an array slot: set twice per event)
    ep = ep, events = evs, events_get = evs.get, ep_wait = ep.wait,
    -- epoll data -> object: connections under their fd numbers (handled
    -- inline by _conn's dispatch), everything else under negative tokens
    -- with a callback: a sign test tells them apart
    objects = {}, callbacks = {},
    last_token = 0,                           -- tokens handed out: -1, -2, ...
    free_tokens = {}, nfree_tokens = 0,       -- released, reusable
    released_tokens = {}, nreleased_tokens = 0, -- released in this tick
    heap = heap.new(),
    -- the ready queue (FIFO): tasks to resume after the current callback
    ready_tasks = {}, ready_values = {}, ready_head = 1, ready_tail = 0,
    now = now(),                              -- the time of this tick
    nactive = 0,                              -- what keeps run() running
    nconns = 0,                               -- accepted connections open
    servers = {},                             -- listeners -> true
    servers_made = 0,                         -- listen() calls: their order

    outbound_configs = {},                    -- "tcp"/"unix" -> connection settings
    timerfd = tfd, timerfd_at = 0, timerfd_token = false,
    handle_signals = o.signals,
    shutdown_timeout = o.shutdown_timeout,
    signal_handlers = {},                     -- signo -> list of handles (_signal.lua)
    signalfd = false, signalfd_token = false,
    shutdown_timer = false,
    running = false, stopped = false, in_shutdown = false, closed = false,
    resolver = false,                         -- made on the first name (_resolve.lua)
    resolver_threads = o.resolver_threads, resolver_queue = o.resolver_queue,
  }, Loop)
  self.timerfd_token = self:_token(self, on_timerfd)
  local ok, en
  ok, err, en = ep:add(tfd, self.timerfd_token, epoll.IN)
  if not ok then
    tfd:close()
    ep:close()
    error(("lepoll: epoll add timerfd: %s (errno %d)"):format(err, en), 2)
  end
  return self
end

--- Raise (at the level of the caller's caller) when the loop is closed.
function Loop:_check_open(what)
  if self.closed then error("attempt to use a closed lepoll loop (" .. what .. ")", 3) end
end

-- Tokens ---------------------------------------------------------------------

--- Allocate a token (a negative integer): epoll's data for obj,
-- dispatched as cb(obj, flags).
function Loop:_token(obj, cb)
  local t
  local nf = self.nfree_tokens
  if nf > 0 then
    t = self.free_tokens[nf]
    self.free_tokens[nf] = nil
    self.nfree_tokens = nf - 1
  else
    t = self.last_token - 1
    self.last_token = t
  end
  self.callbacks[t] = cb
  self.objects[t] = obj
  return t
end

--- Release a token. It is reused only after the current event batch, so an
-- event already fetched for a closed fd never reaches a newcomer.
function Loop:_release(t)
  self.objects[t] = false
  self.callbacks[t] = nil
  local nd = self.nreleased_tokens + 1
  self.released_tokens[nd] = t
  self.nreleased_tokens = nd
end

-- Tasks ----------------------------------------------------------------------
-- (the resume protocol is lepoll._conn's: resume, start)

--- Resume task t with v from the loop, after the current callback.
function Loop:_schedule(t, v)
  local i = self.ready_tail + 1
  self.ready_tasks[i] = t
  self.ready_values[i] = v
  self.ready_tail = i
  if not self.running then self:_arm() end  -- a host polling fileno() wakes
end

local function run_ready(self)
  local tasks, values = self.ready_tasks, self.ready_values
  local last = self.ready_tail
  local i = self.ready_head
  while i <= last do
    local t, v = tasks[i], values[i]
    tasks[i], values[i] = nil, nil
    i = i + 1
    self.ready_head = i
    local co = t[1]
    if co and coroutine.status(co) == "suspended" then resume(self, t, v) end
  end
  if self.ready_head > self.ready_tail then self.ready_head, self.ready_tail = 1, 0 end
end

--- Run fn(...) in a new coroutine, now (until it first waits). An error
-- in fn is logged. Returns the coroutine.
function Loop:spawn(fn, ...)
  self:_check_open("spawn")
  timerm.check_fn(fn, "spawn", 1)
  local n = select("#", ...)
  if n <= 2 then return start(self, { false }, fn, ...) end
  local args = table_pack(...)
  return start(self, { false }, function() return fn(table_unpack(args, 1, args.n)) end)
end

-- The loop -------------------------------------------------------------------

local function tick(self, timeout)
  local ms
  local t = timeout
  if self.ready_tail >= self.ready_head then
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
  local ep, evs = self.ep, self.events
  local n, err, en = self.ep_wait(ep, evs, ms)
  if not n then
    local deadline = t and now() + t
    while not n do
      if en ~= EINTR then error("lepoll: epoll_wait: " .. tostring(err)) end
      if deadline then
        ms = (deadline - now()) * 1000
        if ms < 0 then ms = 0 end
      end
      n, err, en = self.ep_wait(ep, evs, ms)
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
  if self.ready_tail >= self.ready_head then run_ready(self) end
  -- tokens released during this tick become reusable
  local nd = self.nreleased_tokens
  if nd > 0 then
    local released, free, nf = self.released_tokens, self.free_tokens, self.nfree_tokens
    for i = 1, nd do
      nf = nf + 1
      free[nf] = released[i]
      released[i] = nil
    end
    self.nfree_tokens, self.nreleased_tokens = nf, 0
  end
  return n
end

--- Arm the timerfd for the earliest deadline, so a host polling fileno()
-- wakes when a timer is due, or at once when coroutines are ready.
function Loop:_arm()
  if self.closed then return end
  local want = 0
  if self.ready_tail >= self.ready_head then
    want = 1e-9           -- an absolute time long past: expire now
  else
    local top = self.heap[1]
    if top then want = top.at > 0 and top.at or 1e-9 end
  end
  if want ~= self.timerfd_at then
    assert(lio.timerfd_settime(self.timerfd, want, 0, lio.ABSTIME))
    self.timerfd_at = want
  end
end

--- Work was added (a timer, a sleeper): between steps, the timerfd must
-- say so to a host that polls fileno().
function Loop:_work_added()
  if not self.running then self:_arm() end
end

--- Run until stop(), a completed shutdown, or nothing is left to wait for
-- (no listener, connection, timer, watcher or sleeping coroutine).
function Loop:run()
  self:_check_open("run")
  if self.running then error("loop is already running", 2) end
  if require("lepoll._activation").check then
    -- a reload's trial (_workers.lua): the script got this far
    os.exit(0, false)
  end
  if role.role == "master" then
    -- true: the master's supervision ended; false: this is a worker now
    if require("lepoll._workers").supervise(self) then return true end
  elseif role.role == "single" and not role.started then
    role.started = true
    local ok, err = role.run_hooks(0)
    if not ok then error("init_worker failed: " .. tostring(err), 2) end
  end
  self.running = true
  local defsig = self.handle_signals and self:_default_signals()
  local ok, err = pcall(function()
    while not self.stopped and (self.nactive > 0 or self.ready_tail >= self.ready_head) do
      tick(self, nil)
    end
  end)
  self.running, self.stopped, self.in_shutdown = false, false, false
  if self.shutdown_timer then
    self.shutdown_timer:cancel()
    self.shutdown_timer = false
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
  self:_check_open("step")
  if self.running then error("step called while the loop is running", 2) end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad argument #1 to 'step' (non-negative number expected, got "
      .. optionsm.shown(timeout) .. ")", 2)
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
  self:_check_open("fileno")
  return self.ep:fileno()
end

--- Seconds until the next deadline (0 if work is ready now), nil if none.
function Loop:timeout()
  if self.ready_tail >= self.ready_head then return 0 end
  local top = self.heap[1]
  if not top then return nil end
  local d = top.at - now()
  return d > 0 and d or 0
end

-- Signals and shutdown ---------------------------------------------------------

-- SIGINT/SIGTERM start a graceful shutdown (a second one forces it),
-- unless the script handles them itself.
function Loop:_default_signals()
  local handles = {}
  for _, name in ipairs({ "INT", "TERM" }) do
    local signo = lio.signals[name]
    if not self.signal_handlers[signo] then
      local h = signalm.on_signal(self, signo, function() self:shutdown() end)
      if h then handles[#handles + 1] = h end
    end
  end
  return handles
end

function Loop._remove_default_signals(_, handles)
  for i = 1, #handles do handles[i]:cancel() end
end

-- Close every connection at once.
local function close_connections(self)
  for _, o in pairs(self.objects) do
    if o and o._isconn then connm.close(o, true) end
  end
end

--- Called by lepoll._conn when an accepted connection is gone.
function Loop:_conn_done()
  if self.in_shutdown and self.nconns == 0 then
    if self.shutdown_timer then self.shutdown_timer:cancel() end
    self:stop()
  end
end

--- Graceful shutdown: close every listener, tell the connections (a
-- handler waiting in read gets nil, "shutdown"), let their handlers
-- finish for up to timeout seconds (default: the loop's
-- shutdown_timeout), then close what is left and make run() return.
-- Calling it again while shutting down closes everything at once.
function Loop:shutdown(timeout)
  self:_check_open("shutdown")
  if timeout ~= nil then timerm.check_seconds(timeout, "shutdown", 1) end
  if self.in_shutdown then
    close_connections(self)
    self:stop()
    return true
  end
  self.in_shutdown = true
  for s in pairs(self.servers) do s:close() end
  if self.nconns == 0 then
    self:stop()
    return true
  end
  for _, o in pairs(self.objects) do
    if o and o._isconn then connm.tell_shutdown(o) end
  end
  self.shutdown_timer = self:after(timeout or self.shutdown_timeout, function()
    close_connections(self)
    self:stop()
  end)
  return true
end

--- Whether shutdown() has begun (handlers may check it to wind down).
function Loop:shutting_down()
  return self.in_shutdown
end

--- Close the loop: every connection, listener, watcher, timer, signal
-- handler; the coroutines it would still have resumed are closed (their
-- to-be-closed variables run); then the timerfd and the epoll fd.
-- Idempotent.
function Loop:close()
  if self.closed then return true end
  close_connections(self)
  for s in pairs(self.servers) do s:close() end
  local objects = self.objects
  for t = -1, self.last_token, -1 do
    local o = objects[t]
    if o and o._iswatch then o:cancel() end
  end
  for _, list in pairs(self.signal_handlers) do
    for i = #list, 1, -1 do list[i]:cancel() end
  end
  self.nactive = 0
  self.closed = true
  -- the tasks it would have resumed next (connections' waiters, woken
  -- with "closed") and the sleepers: it never will
  local tasks = self.ready_tasks
  for i = self.ready_head, self.ready_tail do
    local t = tasks[i]
    tasks[i], self.ready_values[i] = nil, nil
    if t then connm.abandon(t) end
  end
  self.ready_head, self.ready_tail = 1, 0
  local h = self.heap
  while h.n > 0 do
    local node = heap_pop(h)
    if node.task then connm.abandon(node.task) end
  end
  resolvem.close(self)
  self.timerfd:close()
  self.ep:close()
  return true
end

--- In a forked worker (_workers.lua): the epoll set and the timerfd
-- came from the master, and fork shares them (a change here would be
-- the master's too), so the loop gets its own, with everything it
-- watched registered again; the listeners follow (Server:_assign).
function Loop:_reinit()
  self.ep:close()
  self.timerfd:close()
  local ep, err = epoll.create()
  if not ep then error("lepoll: epoll_create: " .. err, 2) end
  local tfd
  tfd, err = lio.timerfd(lio.MONOTONIC, lio.NONBLOCK)
  if not tfd then error("lepoll: timerfd: " .. err, 2) end
  self.ep, self.timerfd, self.timerfd_at = ep, tfd, 0
  assert(ep:add(tfd, self.timerfd_token, epoll.IN))
  if self.signalfd then assert(signalm.rebuild(self)) end
  local objects = self.objects
  for t = -1, self.last_token, -1 do
    local o = objects[t]
    if o and o._iswatch and not o.dead then assert(ep:add(o.fd, o.tok, o.flags)) end
  end
  self:_arm()
end

--- In a forked child, the parent's loop: closed here without a word to
-- the epoll set, which is still the parent's (a DEL would cut it off).
function Loop:_disown()
  if self.closed then return end
  self.closed = true
  self.nactive = 0
  if self.signalfd then self.signalfd:close() end
  self.timerfd:close()
  self.ep:close()
end

function Loop:__tostring()
  return "lepoll.Loop (" .. (self.closed and "closed" or "fd " .. self.ep:fileno()) .. ")"
end

-- A loop that is collected (or left open when the state closes) closes
-- too: connections own plain fd numbers, which nothing else would close.
function Loop:__gc()
  if not self.closed then pcall(Loop.close, self) end
end

return M
