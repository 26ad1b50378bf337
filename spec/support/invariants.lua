--- What must hold of a lepoll loop, checked by the spec harness
-- (support.framework) after every step it drives and every run() it
-- starts: what lua/lepoll/_conn.lua and _loop.lua say in prose. This is
-- the one place specs read the framework's internals (fields of a loop,
-- a connection's slots: their layout comes from lepoll._conn.layout, so
-- a rename there cannot leave this file behind), one function each.
local connm = require "lepoll._conn"
local timerm = require "lepoll._timer"

local L = connm.layout
local M = {}

-- loop -> its epoll fd when first checked: the fd must not change while
-- the loop is open.
local epfd = setmetatable({}, { __mode = "k" })

-- Why a connection may have extras (the reasons _conn.lua's xnode calls
-- give), and what must hold for each.
local function extras_reason_ok(c, x)
  local cfg = c[L.CONFIG]
  local why = x.made_for
  if why == "deadline" or why == "timeouts" then
    -- extras stay once made: set_timeouts may have turned them all off since
    return cfg.read_timeout or cfg.write_timeout or cfg.idle_timeout or cfg.own
  elseif why == "unix" then
    return cfg.short_reads_drain == false
  elseif why == "peer" then
    return not cfg.server and x.rare and x.rare.peer_host
  elseif why == "shutdown" then
    return cfg.server
  elseif why == "urgent" then
    return x.short_reads_unsafe
  elseif why == "error" then
    return x.rare and x.rare.error_message
  elseif why == "phase" then
    return x.read_call_deadline ~= nil  -- a protocol's read deadline (set_read_deadline)
  elseif why == "queue" or why == "writer" then
    return true  -- output that could not go out at once
  elseif why == "tls" then
    return c._tls ~= nil  -- lepoll._tls: false once finalized
  end
  return false
end

local function check_conn(c, fd, loop, bad)
  local st, x = c[L.STATE], c[L.EXTRAS]
  local reader = c[L.READER]
  local name = "connection fd " .. tostring(fd)
  if c[L.FD] ~= fd then bad("%s: its FD slot is %s", name, tostring(c[L.FD])) end
  if st == L.CLOSED then bad("%s: closed but still in loop.objects", name) end
  -- drained => registered
  if st == L.DRAINED and x == nil then bad("%s: DRAINED but not registered", name) end
  local T = c._tls
  if T then
    -- TLS (lepoll._tls): its reader parks in READER for an edge, never
    -- with a size for the loop's recv; the connection is in epoll under
    -- its token, whose object it is
    if st < 0 then bad("%s: TLS with a parked reader's size %d", name, st) end
    if not x then bad("%s: TLS without extras", name) end
    if not T.token or loop.objects[T.token] ~= c then
      bad("%s: TLS but not its token's object", name)
    end
    for _, who in ipairs({ "rwant", "wwant" }) do
      local w = T[who]
      if w ~= "read" and w ~= "write" then bad("%s: TLS %s is %s", name, who, tostring(w)) end
    end
  elseif reader and st >= 0 then
    -- a parked reader <=> a negative wanted size
    bad("%s: a reader is parked but STATE is %s", name, tostring(st))
  end
  if st < 0 and not reader then
    bad("%s: STATE %d (a parked reader's size) but no reader", name, st)
  end
  if reader then
    local co = reader[L.COROUTINE]
    if not co or coroutine.status(co) ~= "suspended" then
      bad("%s: its reader's coroutine is %s", name, co and coroutine.status(co) or "gone")
    end
  end
  if x then
    if x.conn ~= c then bad("%s: its extras belong to another connection", name) end
    if not extras_reason_ok(c, x) then
      bad("%s: extras made for %s without the need", name, tostring(x.made_for))
    end
    local w = x.writer
    if w and (not w[L.COROUTINE] or coroutine.status(w[L.COROUTINE]) ~= "suspended") then
      bad("%s: its writer is not a suspended task", name)
    end
    local q = x.outq
    if q then
      local n = 0
      for i = q.head, q.tail do n = n + #q[i] end
      n = n - q.offset
      if q.tail >= q.head and n ~= q.bytes then
        bad("%s: queue holds %d bytes, says %d", name, n, q.bytes)
      end
    end
    if x.heap_index and loop.heap[x.heap_index] ~= x then
      bad("%s: extras say heap index %d, the heap disagrees", name, x.heap_index)
    end
  elseif x == false then
    -- registered with nothing extra: no waiter but a reader
    if c[L.CONFIG].reads_timed then bad("%s: timed reads but no extras", name) end
    if c[L.CONFIG].short_reads_drain == false then bad("%s: unix but no extras", name) end
  end
end

-- The heap: every node where its index says, children not earlier.
local function check_heap(h, bad)
  for i = 1, h.n do
    local node = h[i]
    if node.heap_index ~= i then bad("heap node %d says index %s", i, tostring(node.heap_index)) end
    local p = h[i // 2]
    if i > 1 and (node.at < p.at or (node.at == p.at and node.seq < p.seq)) then
      bad("heap order broken at %d", i)
    end
  end
  if h[h.n + 1] ~= nil then bad("heap has a node past its count %d", h.n) end
end

-- What the public API says between two steps.
local function check_public(loop, bad)
  if loop.closed then return end
  local ok, fd = pcall(loop.fileno, loop)
  if not ok then return bad("loop:fileno() raised: %s", tostring(fd)) end
  if math.type(fd) ~= "integer" or fd < 0 then return bad("loop:fileno() is %s", tostring(fd)) end
  epfd[loop] = epfd[loop] or fd
  if epfd[loop] ~= fd then bad("loop:fileno() changed from %d to %d", epfd[loop], fd) end
  local t = loop:timeout()
  if t ~= nil and not (type(t) == "number" and t >= 0 and t < math.huge) then
    bad("loop:timeout() is %s", tostring(t))
  end
  if type(loop:shutting_down()) ~= "boolean" then
    bad("loop:shutting_down() is %s", tostring(loop:shutting_down()))
  end
end

--- Check every invariant of loop (between steps; a closed loop holds
-- nothing live). Raises listing what is broken.
function M.check(loop)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  check_public(loop, bad)
  if loop[connm.CURRENT_TASK] ~= false then bad("a task is marked running between steps") end
  local live, conns, servers, watches = 0, 0, 0, 0
  for data, o in pairs(loop.objects) do
    if o then
      if data >= 0 then
        if not o._isconn then bad("fd data %d maps to a non-connection", data) end
        check_conn(o, data, loop, bad)
        if not o._unheld then live = live + 1 end  -- a pooled one lets run() end
        if o[L.CONFIG].server then conns = conns + 1 end
      else
        if not loop.callbacks[data] then bad("token %d has no callback", data) end
        if o._iswatch then watches = watches + 1 end
        if o._isconn and not o._tls then bad("token %d maps to a plain connection", data) end
      end
    end
  end
  for s in pairs(loop.servers) do
    if s.closed then bad("a closed server is still listed") end
    servers = servers + 1
  end
  local timers, sleepers = 0, 0
  local h = loop.heap
  for i = 1, h.n do
    local node = h[i]
    if getmetatable(node) == timerm.Timer then
      if node.dead then bad("a cancelled timer is in the heap") end
      if node.held then timers = timers + 1 end
    elseif node.task then
      sleepers = sleepers + 1
    end
  end
  check_heap(h, bad)
  if not loop.closed then
    local want = live + servers + watches + timers + sleepers
    if loop.nactive ~= want then
      bad("nactive is %d; connections %d + servers %d + watchers %d + timers %d"
        .. " + sleepers %d = %d", loop.nactive, live, servers, watches, timers, sleepers,
        want)
    end
    if loop.nconns ~= conns then
      bad("nconns is %d, accepted connections %d", loop.nconns, conns)
    end
  else
    if live + servers + watches + timers + sleepers > 0 then
      bad("a closed loop holds %d live objects", live + servers + watches + timers + sleepers)
    end
  end
  if loop.ready_head > loop.ready_tail + 1 then bad("ready queue head past its tail") end
  if #problems > 0 then
    error("loop invariants broken:\n  " .. table.concat(problems, "\n  "), 2)
  end
  return true
end

--- What a closed loop still holds: a list of strings, one for each
-- connection, listener, watcher, signal handler, timer, sleeping or
-- ready task it keeps (empty when close() released everything).
function M.live_objects(loop)
  local live = {}
  for data, o in pairs(loop.objects) do
    if o and o ~= loop then  -- the loop is its own timerfd's object
      live[#live + 1] = ("objects[%d] = %s"):format(data, tostring(o))
    end
  end
  for s in pairs(loop.servers) do live[#live + 1] = "server " .. tostring(s) end
  for signo, list in pairs(loop.signal_handlers) do
    live[#live + 1] = ("%d handler(s) of signal %d"):format(#list, signo)
  end
  if loop.heap.n > 0 then live[#live + 1] = loop.heap.n .. " timer(s) or sleeper(s)" end
  for i = loop.ready_head, loop.ready_tail do
    local t = loop.ready_tasks[i]
    local co = t and t[L.COROUTINE]
    if co and coroutine.status(co) ~= "dead" then
      live[#live + 1] = "a ready task, " .. coroutine.status(co)
    end
  end
  if loop.nactive ~= 0 then live[#live + 1] = "nactive = " .. loop.nactive end
  return live
end

--- Make loop's fd table hold n fds without growing, so that a heap count
-- taken afterwards sees only what the connections themselves cost.
function M.presize_fd_table(loop, n)
  local objects = loop.objects
  for fd = 1, n do objects[fd] = objects[fd] or false end
end

--- The deadline of a timer as the loop orders it (CLOCK_MONOTONIC seconds).
function M.timer_deadline(timer)
  return timer.at
end

return M
