--- lepoll.timer: the loop's deadlines, a binary min-heap (private to the
-- framework; use lepoll.after / lepoll.every / lepoll.sleep).
--
-- A heap node is any table with the fields `at` (deadline, seconds on
-- CLOCK_MONOTONIC), `seq` (set by push: ties fire first in, first out) and
-- `hi` (its index in the heap, nil when not in it), and an `_expire(loop,
-- now)` method called once it is due. Timers, sleeping coroutines,
-- connections waiting with a deadline and paused listeners are all nodes,
-- so one heap (behind one timerfd) serves the whole loop: push, remove and
-- update cost O(log n) and allocate nothing.
local M = {}

-- a before b: earlier deadline, then earlier push.
local function less(a, b)
  local x, y = a.at, b.at
  return x < y or (x == y and a.seq < b.seq)
end

local function up(h, i)
  local node = h[i]
  while i > 1 do
    local p = i // 2
    local parent = h[p]
    if not less(node, parent) then break end
    h[i] = parent
    parent.hi = i
    i = p
  end
  h[i] = node
  node.hi = i
end

local function down(h, i, n)
  local node = h[i]
  while true do
    local c = 2 * i
    if c > n then break end
    local child = h[c]
    if c < n then
      local r = h[c + 1]
      if less(r, child) then c, child = c + 1, r end
    end
    if not less(child, node) then break end
    h[i] = child
    child.hi = i
    i = c
  end
  h[i] = node
  node.hi = i
end

--- A new empty heap: `h.n` nodes in h[1..n], h.seq the push counter.
function M.new()
  return { n = 0, seq = 0 }
end

--- Add a node (node.at set by the caller).
function M.push(h, node)
  local n = h.n + 1
  local seq = h.seq + 1
  h.n, h.seq = n, seq
  node.seq = seq
  h[n] = node
  up(h, n)
end

--- Remove and return the earliest node (nil when empty).
function M.pop(h)
  local n = h.n
  if n == 0 then return nil end
  local top = h[1]
  local last = h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  top.hi = false
  if n > 0 then
    h[1] = last
    down(h, 1, n)
  end
  return top
end

--- Remove a node wherever it is (no-op when it is not in the heap).
function M.remove(h, node)
  local i = node.hi
  if not i then return end
  node.hi = false
  local n = h.n
  local last = h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if i <= n then
    h[i] = last
    last.hi = i
    if i > 1 and less(last, h[i // 2]) then up(h, i) else down(h, i, n) end
  end
end

--- Restore order after node.at changed (node must be in the heap).
function M.update(h, node)
  local i = node.hi
  if i > 1 and less(node, h[i // 2]) then up(h, i) else down(h, i, h.n) end
end

--- The earliest node, without removing it.
function M.top(h)
  return h[1]
end

--- A one-shot or repeating timer created by loop:after / loop:every.
local Timer = {}
Timer.__index = Timer
M.Timer = Timer

--- Stop a timer: it will not fire again. Returns true if it was pending.
function Timer:cancel()
  if self.dead then return false end
  self.dead = true
  local loop = self.loop
  M.remove(loop.heap, self)
  loop.nactive = loop.nactive - 1
  return true
end

--- Whether the timer will still fire.
function Timer:pending()
  return not self.dead
end

function Timer:_expire(loop, now)
  local every = self.every
  if not every then
    self.dead = true
    loop.nactive = loop.nactive - 1
  end
  loop:_call(self.fn, self)
  if every and not self.dead then
    local at = self.at + every
    if at <= now then at = now + every end  -- fell behind: no burst of catch-up calls
    self.at = at
    M.push(loop.heap, self)
  end
end

--- The node lepoll.sleep parks its task in.
local Sleep = {}
Sleep.__index = Sleep
M.Sleep = Sleep

function Sleep:_expire(loop)
  loop.nactive = loop.nactive - 1
  loop:_resume(self.task, true)
end

return M
