--- lepoll._heap: the loop's deadlines, a binary min-heap (private).
--
-- A node is any table with the fields `at` (its deadline, seconds on
-- CLOCK_MONOTONIC), `seq` (set by push: ties come out first in, first
-- out) and `heap_index` (its index in the heap, false when it is not in
-- one), and an `_expire(loop, now)` function the loop calls once it is
-- due. Timers, sleeping coroutines, connections waiting with a deadline
-- and paused listeners are all nodes, so one heap behind one timerfd
-- serves the whole loop: push, remove and update cost O(log n) and
-- allocate nothing.
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
    parent.heap_index = i
    i = p
  end
  h[i] = node
  node.heap_index = i
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
    child.heap_index = i
    i = c
  end
  h[i] = node
  node.heap_index = i
end

--- A new empty heap: `h.n` nodes in h[1..n], `h.seq` the push counter.
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
  top.heap_index = false
  if n > 0 then
    h[1] = last
    down(h, 1, n)
  end
  return top
end

--- Remove a node wherever it is (nothing when it is not in the heap).
function M.remove(h, node)
  local i = node.heap_index
  if not i then return end
  node.heap_index = false
  local n = h.n
  local last = h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if i <= n then
    h[i] = last
    last.heap_index = i
    if i > 1 and less(last, h[i // 2]) then up(h, i) else down(h, i, n) end
  end
end

--- Restore order after node.at changed (node must be in the heap).
function M.update(h, node)
  local i = node.heap_index
  if i > 1 and less(node, h[i // 2]) then up(h, i) else down(h, i, h.n) end
end

--- The earliest node, without removing it.
function M.top(h)
  return h[1]
end

return M
