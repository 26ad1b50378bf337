--- What must hold of a lepoll loop, checked by the spec harness
-- (support.framework) after every step it drives and every run() it starts.
-- Every spec's access to the framework's internals (the fields of a loop
-- table, of a timer) is in this file, one function each, so that a rename
-- in lua/lepoll/ is followed here and nowhere else.
local M = {}

-- loop -> its epoll fd when first checked: the fd must not change while
-- the loop is open.
local epfd = setmetatable({}, { __mode = "k" })

--- Raise, naming what is wrong, unless loop (open or closed) is in a state
-- its public API allows between two steps.
function M.check(loop)
  local ok, fd = pcall(loop.fileno, loop)
  if not ok then
    -- only a closed loop refuses fileno(); it has nothing left to check
    if tostring(fd):find("closed lepoll loop", 1, true) then return end
    error("invariant: loop:fileno() raised: " .. tostring(fd), 2)
  end
  if math.type(fd) ~= "integer" or fd < 0 then
    error("invariant: loop:fileno() is " .. tostring(fd), 2)
  end
  epfd[loop] = epfd[loop] or fd
  if epfd[loop] ~= fd then
    error(("invariant: loop:fileno() changed from %d to %d"):format(epfd[loop], fd), 2)
  end
  local t = loop:timeout()
  if t ~= nil and not (type(t) == "number" and t >= 0 and t < math.huge) then
    error("invariant: loop:timeout() is " .. tostring(t), 2)
  end
  if type(loop:shutting_down()) ~= "boolean" then
    error("invariant: loop:shutting_down() is " .. tostring(loop:shutting_down()), 2)
  end
end

--- What a closed loop still holds: a list of strings, one for each
-- connection, listener, watcher, signal handler, timer or sleeping task it
-- keeps (empty when close() released everything).
function M.live_objects(loop)
  local live = {}
  for token, o in pairs(loop.objs) do
    if o and o ~= loop then  -- the loop is its own timerfd's object
      live[#live + 1] = ("objs[%d] = %s"):format(token, tostring(o))
    end
  end
  for s in pairs(loop.servers) do live[#live + 1] = "server " .. tostring(s) end
  for signo, list in pairs(loop.sigs) do
    live[#live + 1] = ("%d handler(s) of signal %d"):format(#list, signo)
  end
  if loop.heap.n > 0 then live[#live + 1] = loop.heap.n .. " timer(s) or sleeper(s)" end
  -- Not counted yet: the ready queue (loop.rqc from rqh to rqt). close()
  -- wakes the handlers that wait on a connection with nil, "closed" by
  -- queueing them, and a closed loop never runs them: their coroutines
  -- stay suspended, their to-be-closed variables unclosed.
  if loop.nactive ~= 0 then live[#live + 1] = "nactive = " .. loop.nactive end
  return live
end

--- Make loop's fd table hold n fds without growing, so that a heap count
-- taken afterwards sees only what the connections themselves cost.
function M.presize_fd_table(loop, n)
  local objs = loop.objs
  for fd = 1, n do objs[fd] = objs[fd] or false end
end

--- The deadline of a timer as the loop orders it (CLOCK_MONOTONIC seconds).
function M.timer_deadline(timer)
  return timer.at
end

return M
