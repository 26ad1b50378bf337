--- What lua/lepoll/_conn.lua and _loop.lua say in prose, checked on a
-- live loop between steps: the one place specs read the framework's
-- internals (the slot layout comes from lepoll._conn.layout, so renaming
-- a slot there cannot leave this file behind). check(loop) raises with
-- every broken invariant it found.
local connm = require "lepoll._conn"
local timerm = require "lepoll._timer"

local L = connm.layout
local M = {}

-- Why a connection may have extras (the reasons _conn.lua's xnode calls
-- give), and what must hold for each.
local function extras_reason_ok(c, x)
  local cfg = c[L.CONFIG]
  local why = x.made_for
  if why == "deadline" or why == "timeouts" then
    return cfg.read_timeout or cfg.write_timeout or cfg.idle_timeout
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
  elseif why == "queue" or why == "writer" then
    return true  -- output that could not go out at once
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
  -- a parked reader <=> a negative wanted size
  if reader and st >= 0 then
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

--- Check every invariant of loop (between steps; a closed loop holds
-- nothing live). Raises listing what is broken.
function M.check(loop)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  if loop[connm.CURRENT_TASK] ~= false then bad("a task is marked running between steps") end
  local live, conns, servers, watches = 0, 0, 0, 0
  for data, o in pairs(loop.objects) do
    if o then
      if data >= 0 then
        if not o._isconn then bad("fd data %d maps to a non-connection", data) end
        check_conn(o, data, loop, bad)
        live = live + 1
        if o[L.CONFIG].server then conns = conns + 1 end
      else
        if not loop.callbacks[data] then bad("token %d has no callback", data) end
        if o._iswatch then watches = watches + 1 end
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
      timers = timers + 1
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

return M
