--- The harness of the framework specs (require "lepoll"): every loop a
-- test makes and drives goes through it. A test runs in a checked context
-- that fails it when it leaves an fd open, when the framework logged a line
-- the test did not announce with expect_log (a handler's error is a failure,
-- not a line on stderr), or when its closed loop still holds an object.
-- Every wait is bounded; every step and run() it drives is followed by
-- support.invariants.check.
--
--     local h = require "support.framework"
--     it("serves", function()
--       h.with_task(function(loop)  -- a fresh loop; this body runs as a task
--         local server = assert(loop:listen({ port = 0 }, handler))
--         local c = assert(loop:connect(server:address()))
--         h.wait_until(loop, function() return served end, 1, "the handler")
--         c:close()
--       end)                        -- then: loop closed, fds and log checked
--     end)
local lepoll = require "lepoll"
local epoll = require "lepoll.epoll"
local files = require "support.files"
local invariants = require "support.invariants"

local M = {}

--- How much longer every bound is under valgrind (the C modules run
-- about ten times slower there; ASan costs little) and under the
-- partial-I/O injector (megabytes moved a byte per syscall, with other
-- spec processes on the same CPUs: make check-partial).
M.SLOW = os.getenv("LEPOLL_SANITIZED") == "valgrind" and 6
  or os.getenv("LEPOLL_PARTIAL_IO") and 3 or 1

--- The default bound of a wait in seconds, before the SLOW factor that
-- every bound here gets (so 60 s under valgrind, as client.WAIT_MS).
M.WAIT = 10

-- Steps wait at most this long, so that a predicate is asked again even
-- when nothing happens on the loop.
local SLICE = 0.05
-- A task polls its predicate this often (it must not spin: loop:sleep(0)
-- makes the loop poll epoll without waiting).
local TASK_POLL = 0.002
-- poll() asks about another process this often.
local POLL = 0.01

-- The context of the test running now (nil outside with_checks): the log
-- lines, the patterns announced, the cleanups, the fds open when it began.
local current

local function context(fname)
  if not current then error(fname .. " is for a test inside support.framework's with_checks", 3) end
  return current
end

--- Announce log lines matching pattern (a Lua pattern) as expected. Returns
-- the list of the lines that match it, filled as they come. At the end of
-- the test at least one line must have matched.
function M.expect_log(pattern)
  local cx = context("expect_log")
  local lines = {}
  cx.expected[#cx.expected + 1] = { pattern = pattern, lines = lines }
  for _, line in ipairs(cx.lines) do
    if line:find(pattern) then lines[#lines + 1] = line end
  end
  return lines
end

--- Close obj (anything with __close or :close(): an fd, a socket, a
-- server) or call it (a function) at the end of the test, before the fd
-- check; the last deferred goes first. Returns obj.
function M.defer(obj)
  local cx = context("defer")
  cx.defers[#cx.defers + 1] = obj
  return obj
end

local function describe_fds(list, t)
  local out = {}
  for _, fd in ipairs(list) do out[#out + 1] = ("fd %d -> %s"):format(fd, t[fd]) end
  return table.concat(out, ", ")
end

-- The fds open now that were not open (or were another file) when the
-- context began, sorted.
local function new_fds(cx)
  local now = files.fds()
  local new = {}
  for fd, target in pairs(now) do
    if cx.fds[fd] ~= target then new[#new + 1] = fd end
  end
  table.sort(new)
  return new, now
end

--- The fds this test opened and has not closed yet, as strings
-- ("fd 7 -> socket:[1234]"); empty when it closed everything.
function M.open_fds()
  local new, now = new_fds(context("open_fds"))
  local out = {}
  for _, fd in ipairs(new) do out[#out + 1] = describe_fds({ fd }, now) end
  return out
end

local function close_any(o)
  if type(o) == "function" then return o() end
  local mt = getmetatable(o)
  if type(mt) == "table" and mt.__close then return mt.__close(o) end
  return o:close()
end

-- The end of a checked context: run the cleanups, restore the logger, and
-- return the first failure (a string) or nil.
local function finish(cx)
  local failure
  for i = #cx.defers, 1, -1 do
    local ok, err = xpcall(close_any, debug.traceback, cx.defers[i])
    if not ok then failure = failure or ("a deferred cleanup raised: " .. tostring(err)) end
  end
  lepoll.set_logger(cx.old_logger)
  current = nil
  if failure then return failure end
  local new, now = new_fds(cx)
  if #new > 0 then
    local open = describe_fds(new, now)
    collectgarbage()
    collectgarbage()
    local still = new_fds(cx)
    return ("the test left %d fd(s) open: %s (%s)"):format(#new, open, #still == 0
      and "only the garbage collector closed them" or #still .. " open after a full collection")
  end
  local unexpected = {}
  for _, line in ipairs(cx.lines) do
    local known = false
    for _, e in ipairs(cx.expected) do
      if line:find(e.pattern) then known = true end
    end
    if not known then unexpected[#unexpected + 1] = line end
  end
  if #unexpected > 0 then
    return ("the framework logged %d unexpected line(s):\n%s"):format(#unexpected,
      table.concat(unexpected, "\n"))
  end
  for _, e in ipairs(cx.expected) do
    if #e.lines == 0 then return "no log line matched the expected " .. e.pattern end
  end
end

--- Run fn() as a checked test: the fds open before it (after a full
-- collection) are compared with those open after it (no collection: an fd
-- that only the garbage collector would close is a leak); every log line
-- is recorded and must be expected. Raises fn's error, or the first
-- failed check. Not nested.
function M.with_checks(fn)
  if current then error("with_checks does not nest", 2) end
  collectgarbage()
  collectgarbage()
  local cx = { lines = {}, expected = {}, defers = {}, fds = files.fds() }
  cx.old_logger = lepoll.set_logger(function(line)
    cx.lines[#cx.lines + 1] = line
    for _, e in ipairs(cx.expected) do
      if line:find(e.pattern) then e.lines[#e.lines + 1] = line end
    end
  end)
  current = cx
  local ok, err = xpcall(fn, debug.traceback)
  local failure = finish(cx)
  if not ok then error(err, 0) end
  if failure then error(failure, 0) end
end

-- Close loop and raise if it still holds anything.
local function close_checked(loop)
  loop:close()
  local live = invariants.live_objects(loop)
  if #live > 0 then
    error("the closed loop still holds: " .. table.concat(live, "; "), 0)
  end
end

--- Run fn(loop) as a checked test (with_checks) on a fresh
-- lepoll.loop(opts); the loop is closed afterwards and must hold nothing.
-- opts may be left out.
function M.with_loop(opts, fn)
  if fn == nil then opts, fn = nil, opts end
  M.with_checks(function()
    local loop = lepoll.loop(opts)
    M.defer(function() close_checked(loop) end)
    fn(loop)
  end)
end

--- Run fn(loop) as a checked test on the default loop, closed afterwards
-- (the next use of lepoll.* makes a new one).
function M.with_default_loop(fn)
  M.with_checks(function()
    local loop = lepoll.default_loop()
    M.defer(function() close_checked(loop) end)
    fn(loop)
  end)
end

--- Listen on 127.0.0.1, a free port, with handler and the other listen
-- options in opts: returns the server and its port.
function M.serve(loop, handler, opts)
  opts = opts or {}
  opts.port = 0
  local server = assert(loop:listen(opts, handler))
  local _, port = server:address()
  return server, port
end

--- A handler that sends back what it reads until the peer closes.
function M.echo(conn)
  while true do
    local data = conn:read()
    if not data or not conn:write(data) then return end
  end
end

--- One loop:step(timeout) (what a host's own loop calls), then the
-- invariants. Returns step's result.
function M.step(loop, timeout)
  local n = loop:step(timeout)
  invariants.check(loop)
  return n
end

--- loop:run() (or run(loop), e.g. lepoll.run for the default loop), then
-- the invariants. Returns run's results. With a bound (seconds), for a
-- run that a stop() or a shutdown ends: a guard timer stops the loop
-- then and this raises. Without one, run() must end by itself: a guard
-- timer would keep it running.
function M.run(loop, seconds, run)
  local guard, late = nil, false
  if seconds then
    guard = loop:after(seconds * M.SLOW, function()
      late = true
      loop:stop()
    end)
  end
  local res = table.pack((run or loop.run)(loop))
  if guard then guard:cancel() end
  invariants.check(loop)
  if late then error(("run() did not return within %g s"):format(seconds * M.SLOW), 2) end
  return table.unpack(res, 1, res.n)
end

--- Wait until pred() is true, for at most seconds (default WAIT; longer
-- under valgrind). Outside the loop it steps the loop (a step at most
-- SLICE long, then the invariants); inside a task it sleeps on the loop.
-- Raises "timed out waiting for <what>" when the bound passes. Returns
-- pred()'s value.
function M.wait_until(loop, pred, seconds, what)
  local limit = (seconds or M.WAIT) * M.SLOW
  local deadline = lepoll.now() + limit
  local intask = coroutine.isyieldable()
  while true do
    local v = pred()
    if v then return v end
    local left = deadline - lepoll.now()
    if left <= 0 then
      error(("timed out waiting for %s (%g s)"):format(what or "the condition", limit), 2)
    end
    if intask then
      loop:sleep(math.min(TASK_POLL, left))
    else
      M.step(loop, math.min(SLICE, left))
    end
  end
end

--- Wait until pred() is true, for at most seconds (default WAIT; longer
-- under valgrind), asking it every POLL seconds, without a loop: for what
-- another process does. Raises like wait_until. Returns pred()'s value.
function M.poll(pred, seconds, what)
  local limit = (seconds or M.WAIT) * M.SLOW
  local deadline = lepoll.now() + limit
  local ep <close> = assert(epoll.create())  -- an empty set: a sleep, no child
  local evs = epoll.events(1)
  while true do
    local v = pred()
    if v then return v end
    if lepoll.now() > deadline then
      error(("timed out waiting for %s (%g s)"):format(what or "the condition", limit), 2)
    end
    local n, err, en = ep:wait(evs, POLL * 1000)
    if not n and en ~= epoll.errno.EINTR then error(err) end
  end
end

--- Run fn(loop) as a task on loop (loop:spawn) and run the loop until the
-- task returns and stops it, for at most seconds (default WAIT). Raises
-- the task's error (an assertion failure included), and raises when run()
-- returns before the task did (a stray stop(), or nothing left to wait
-- for while the task waits).
function M.task(loop, fn, seconds)
  local done, running, ok, err = false, false, true, nil
  loop:spawn(function()
    ok, err = xpcall(fn, debug.traceback, loop)
    done = true
    if running then loop:stop() end
  end)
  if not done then
    running = true
    local limit = (seconds or M.WAIT) * M.SLOW
    local late = false
    local guard = loop:after(limit, function()
      late = true
      loop:stop()
    end)
    loop:run()
    running = false
    guard:cancel()
    invariants.check(loop)
    if not done then
      error(late and ("the test's task did not return within %g s"):format(limit)
        or "run() returned before the test's task did", 0)
    end
  end
  if not ok then error(err, 0) end
end

--- with_loop(opts, ...) whose body runs as a task (see task): fn(loop) may
-- connect, read, write and sleep on the loop. opts may be left out;
-- seconds bounds the task (default WAIT).
function M.with_task(opts, fn, seconds)
  if type(opts) == "function" then opts, fn, seconds = nil, opts, fn end
  M.with_loop(opts, function(loop) M.task(loop, fn, seconds) end)
end

return M
