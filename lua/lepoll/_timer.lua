--- lepoll._timer: lepoll.after, lepoll.every and lepoll.sleep, as heap
-- nodes of the loop (lepoll._heap) behind its one timerfd (private).
local lio = require "lepoll.io"
local heap = require "lepoll._heap"
local connm = require "lepoll._conn"
local logm = require "lepoll._log"

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local co_yield = coroutine.yield
local heap_push, heap_remove = heap.push, heap.remove
local current, resume, WAIT = connm.current, connm.resume, connm.WAIT
local clock, MONOTONIC = lio.clock_gettime, lio.MONOTONIC

local M = {}

--- Seconds on CLOCK_MONOTONIC, the clock of every deadline.
local function now()
  return clock(MONOTONIC)
end
M.now = now

local function check_seconds(sec, fname, arg)
  if type(sec) ~= "number" or sec ~= sec or sec < 0 or sec == math.huge then
    error(("bad argument #%d to '%s' (non-negative number of seconds expected, got %s)")
      :format(arg, fname, type(sec) == "number" and tostring(sec) or type(sec)), 3)
  end
end
M.check_seconds = check_seconds

local function check_fn(fn, fname, arg)
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)")
      :format(arg, fname, type(fn)), 3)
  end
end
M.check_fn = check_fn

--- A one-shot or repeating timer made by after / every.
local Timer = {}
Timer.__index = Timer
M.Timer = Timer

--- Stop the timer: it will not fire again. Returns true if it was pending.
function Timer:cancel()
  if self.dead then return false end
  self.dead = true
  local loop = self.loop
  heap_remove(loop.heap, self)
  if self.held then loop.nactive = loop.nactive - 1 end
  return true
end

--- Let run() return while this timer is all that is left (it still fires
-- while the loop runs for something else): a periodic report, a pool's
-- sweep. Returns the timer.
function Timer:unref()
  if self.held and not self.dead then
    self.held = false
    self.loop.nactive = self.loop.nactive - 1
  end
  return self
end

--- Undo unref(): the timer keeps run() running again. Returns the timer.
function Timer:ref()
  if not self.held and not self.dead then
    self.held = true
    self.loop.nactive = self.loop.nactive + 1
  end
  return self
end

--- Whether the timer will still fire.
function Timer:pending()
  return not self.dead
end

function Timer:__tostring()
  return "lepoll.Timer (" .. (self.dead and "done" or "pending") .. ")"
end

function Timer:_expire(loop, tnow)
  local every = self.every
  if not every then
    self.dead = true
    if self.held then loop.nactive = loop.nactive - 1 end
  end
  logm.call(self.fn, self)
  if every and not self.dead then
    local at = self.at + every
    if at <= tnow then at = tnow + every end  -- fell behind: no burst of catch-up calls
    self.at = at
    heap_push(loop.heap, self)
  end
end

local function new_timer(loop, sec, fn, every)
  local t = setmetatable({ at = now() + sec, seq = 0, heap_index = false,
    fn = fn, every = every, loop = loop, dead = false, held = true }, Timer)
  heap_push(loop.heap, t)
  loop.nactive = loop.nactive + 1
  loop:_work_added()
  return t
end

--- Call fn(timer) once, sec seconds from now. Returns the timer
-- (timer:cancel()). fn runs on the loop, not in a coroutine: to wait
-- inside it, spawn.
function M.after(loop, sec, fn)
  loop:_check_open("after")
  check_seconds(sec, "after", 1)
  check_fn(fn, "after", 2)
  return new_timer(loop, sec, fn, false)
end

--- Call fn(timer) every sec seconds (the first time sec from now) until
-- timer:cancel().
function M.every(loop, sec, fn)
  loop:_check_open("every")
  check_seconds(sec, "every", 1)
  if sec <= 0 then error("bad argument #1 to 'every' (positive interval expected, got 0)", 2) end
  check_fn(fn, "every", 2)
  return new_timer(loop, sec, fn, sec)
end

-- The node sleep parks its task in.
local Sleep = {}
Sleep.__index = Sleep

function Sleep:_expire(loop)
  loop.nactive = loop.nactive - 1
  resume(loop, self.task, true)
end

--- Suspend the calling coroutine for sec seconds (0: let the others run
-- first). Returns true.
function M.sleep(loop, sec)
  check_seconds(sec, "sleep", 1)
  local t = current(loop, 2, "lepoll.sleep must be called from a coroutine (a"
    .. " connection handler or lepoll.spawn)")
  if sec == 0 then
    loop:_schedule(t, true)
    return co_yield(WAIT)
  end
  local node = setmetatable({ at = now() + sec, seq = 0, heap_index = false,
    task = t }, Sleep)
  heap_push(loop.heap, node)
  loop.nactive = loop.nactive + 1
  loop:_work_added()
  return co_yield(WAIT)
end

return M
