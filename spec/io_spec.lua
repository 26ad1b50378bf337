-- Specs for lepoll.io (csrc/io.c): fds, pipes, eventfd, timerfd, signalfd, pidfd.
local lio = require "lepoll.io"
local process = require "support.process"
local files = require "support.files"
local cleanup = require "support.cleanup"
local assert_fail = require("support.result").assert_fail

local epoll = require "lepoll.epoll"

local E = lio.errno
local O_CLOEXEC, O_NONBLOCK = 0x80000, 0x800
local UNUSED_FD = 1000000  -- a valid fd number that is never open here
local INT_MAX = 0x7fffffff
-- valgrind (3.19) knows no pidfd_open (ENOSYS) and lets SIG_IGN on SIGKILL pass
local VALGRIND = os.getenv("LEPOLL_SANITIZED") == "valgrind"
local ESRCH_PIDFD = VALGRIND and E.ENOSYS or E.ESRCH

local fdflags, count_fds = files.fdflags, files.count_fds

-- Fds opened by a test (and cleanups to run); closed after each.
local track, closeall = cleanup.tracker()
after_each(closeall)

-- Wait up to ms for fd to become readable: true or false. Bounded.
local function readable(fd, ms)
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(fd, 1, epoll.IN))
  local n = assert(ep:wait(evs, ms))
  return n == 1
end

-- A Lua script in a temporary file, for child processes; removed after
-- the test.
local function tmpscript(src)
  local name = files.tmpfile(src)
  track(function() os.remove(name) end)
  return name
end

local function pipe(flags) return track(assert(lio.pipe(flags))) end

describe("lepoll.io constants", function()
  it("has a version, flags, clocks and an errno table", function()
    assert.equal("lepoll 0.1.0", lio._VERSION)
    assert.equal(O_NONBLOCK, lio.NONBLOCK)
    assert.equal(O_CLOEXEC, lio.CLOEXEC)
    assert.equal(1, lio.SEMAPHORE)
    assert.equal(0, lio.REALTIME)
    assert.equal(1, lio.MONOTONIC)
    assert.equal(7, lio.BOOTTIME)
    assert.equal(1, lio.ABSTIME)
    assert.equal(2, lio.CANCEL_ON_SET)
    assert.equal(11, E.EAGAIN)
    assert.equal(32, E.EPIPE)
  end)

  it("has the signal numbers and a name table", function()
    local want = { INT = 2, TERM = 15, HUP = 1, USR1 = 10, USR2 = 12,
      CHLD = 17, PIPE = 13, QUIT = 3, ALRM = 14, WINCH = 28, KILL = 9 }
    for name, num in pairs(want) do
      assert.equal(num, lio["SIG" .. name])
      assert.equal(num, lio.signals[name])
    end
    for name, num in pairs(lio.signals) do
      assert.equal(num, lio["SIG" .. name])
    end
  end)
end)

describe("lepoll.io.pipe", function()
  it("returns two Fd objects, close-on-exec, connected", function()
    local r, w = pipe()
    assert.matches("^lepoll%.Fd %(fd %d+%)$", tostring(r))
    assert.are_not.equal(r:fileno(), w:fileno())
    assert.equal(O_CLOEXEC, fdflags(r) & O_CLOEXEC)
    assert.equal(O_CLOEXEC, fdflags(w) & O_CLOEXEC)
    assert.equal(0, fdflags(r) & O_NONBLOCK)
    assert.equal(3, lio.write(w, "abc"))
    assert.equal("abc", lio.read(r, 10))
  end)

  it("takes NONBLOCK and CLOEXEC", function()
    local r, w = pipe(lio.NONBLOCK | lio.CLOEXEC)
    assert.equal(O_NONBLOCK, fdflags(r) & O_NONBLOCK)
    assert.equal(O_NONBLOCK, fdflags(w) & O_NONBLOCK)
    local r2 = pipe(0)
    assert.equal(O_CLOEXEC, fdflags(r2) & O_CLOEXEC)
  end)

  it("leaks no fd when 200 pipes are dropped", function()
    collectgarbage()
    local before = count_fds()
    for _ = 1, 200 do assert(lio.pipe()) end
    collectgarbage()
    collectgarbage()
    assert.equal(before, count_fds())
  end)
end)

describe("lepoll.io.read", function()
  it("reads at most max bytes", function()
    local r, w = pipe()
    assert.equal(6, lio.write(w, "abcdef"))
    assert.equal("abcd", lio.read(r, 4))
    assert.equal("ef", lio.read(r, 100))
  end)

  it("returns '' at end of file", function()
    local r, w = pipe()
    lio.write(w, "x")
    w:close()
    assert.equal("x", lio.read(r, 1))
    assert.equal("", lio.read(r, 1))
    assert.equal("", lio.read(r, 1 << 20))
  end)

  it("reads more than the stack buffer in one call", function()
    local r, w = pipe()
    local s = string.rep("0123456789", 5000)
    assert.equal(#s, lio.write(w, s))
    assert.equal(s, lio.read(r, 100000))
  end)

  it("returns the EAGAIN triple on an empty non-blocking pipe", function()
    local r = pipe(lio.NONBLOCK)
    assert_fail(E.EAGAIN, lio.read(r, 10))
    assert_fail(E.EAGAIN, lio.read(r, 100000))
  end)

  it("returns EBADF on an fd that is not open or not readable", function()
    local _, w = pipe()
    assert_fail(E.EBADF, lio.read(UNUSED_FD, 10))
    assert_fail(E.EBADF, lio.read(UNUSED_FD, 100000))
    assert_fail(E.EBADF, lio.read(w, 10))
  end)

  it("accepts integers and objects with getfd/fileno", function()
    local r, w = pipe()
    lio.write(w:fileno(), "abcde")
    assert.equal("a", lio.read({ getfd = function() return r:fileno() end }, 1))
    assert.equal("b", lio.read(r:fileno(), 1))
    -- a getfd that is false (or nil) is skipped for fileno
    local n = r:fileno()
    assert.equal("c", lio.read({ getfd = false, fileno = function() return n end }, 1))
    assert.equal("d", lio.read({ getfd = nil, fileno = function() return n end }, 1))
    -- a callable table is a method too
    local callable = setmetatable({}, { __call = function() return n end })
    assert.equal("e", lio.read({ fileno = callable }, 1))
  end)
end)

describe("lepoll.io.write", function()
  it("writes s:sub(i, j) for every i, j (string.sub semantics)", function()
    local r, w = pipe()
    local s = "hello, world"
    local idx = { math.mininteger, -100, -13, -12, -11, -5, -1, 0, 1, 2, 5,
      11, 12, 13, 100, math.maxinteger }
    for _, i in ipairs(idx) do
      for _, j in ipairs(idx) do
        local want = s:sub(i, j)
        local n = assert(lio.write(w, s, i, j))
        assert.equal(#want, n, ("i=%d j=%d"):format(i, j))
        if n > 0 then assert.equal(want, lio.read(r, 100)) end
      end
      local want = s:sub(i)
      assert.equal(#want, lio.write(w, s, i))
      if #want > 0 then assert.equal(want, lio.read(r, 100)) end
    end
    assert.equal(#s, lio.write(w, s, nil, nil))
    assert.equal(s, lio.read(r, 100))
  end)

  it("makes no syscall for an empty range", function()
    assert.equal(0, lio.write(UNUSED_FD, ""))
    assert.equal(0, lio.write(UNUSED_FD, "abc", 3, 2))
    assert_fail(E.EBADF, lio.write(UNUSED_FD, "abc"))
  end)

  it("returns EAGAIN when a non-blocking pipe is full", function()
    local _, w = pipe(lio.NONBLOCK)
    local chunk, total = string.rep("x", 65536), 0
    local n = 0
    for _ = 1, 64 do
      n = lio.write(w, chunk)
      if not n then break end
      total = total + n
    end
    assert.is_nil(n)
    assert.is_true(total > 0)
    assert_fail(E.EAGAIN, lio.write(w, "x"))
  end)

  it("returns EPIPE without killing the process once SIGPIPE is ignored", function()
    local script = tmpscript([[
      local lio = require "lepoll.io"
      if arg[1] == "ignore" then assert(lio.ignore_signal("PIPE"))
      else assert(lio.default_signal(lio.SIGPIPE)) end
      local r, w = lio.pipe()
      r:close()
      local n, msg, en = lio.write(w, "x")
      print(n, msg, en == lio.errno.EPIPE)
      io.stdout:flush()
    ]])
    finally(function() os.remove(script) end)
    local p = process.script(script, "ignore")
    local rest, how, code = p:wait()
    p:close()
    assert.equal("nil\tBroken pipe\ttrue\n", rest)
    assert.equal("exit", how)
    assert.equal(0, code)
    p = process.script(script, "default")
    rest, how, code = p:wait()
    p:close()
    assert.equal("", rest)
    assert.is_true((how == "signal" and code == lio.SIGPIPE)
      or (how == "exit" and code == 128 + lio.SIGPIPE), how .. " " .. code)
  end)
end)

describe("lepoll.io.writev", function()
  it("writes the concatenation in one call", function()
    local r, w = pipe()
    assert.equal(9, lio.writev(w, { "abc", "", "defg", "hi" }))
    assert.equal("abcdefghi", lio.read(r, 100))
  end)

  it("writes t[first..last]", function()
    local r, w = pipe()
    local t = { "a", "bb", "ccc", "dddd" }
    assert.equal(5, lio.writev(w, t, 2, 3))
    assert.equal("bbccc", lio.read(r, 100))
    assert.equal(7, lio.writev(w, t, 3))
    assert.equal("cccdddd", lio.read(r, 100))
  end)

  it("returns 0 without a syscall for an empty range", function()
    assert.equal(0, lio.writev(UNUSED_FD, {}))
    assert.equal(0, lio.writev(UNUSED_FD, { "a" }, 2))
    assert.equal(0, lio.writev(UNUSED_FD, { "a", "b" }, 2, 1))
    assert_fail(E.EBADF, lio.writev(UNUSED_FD, { "a" }))
  end)

  it("takes first and last up to math.maxinteger without overflowing", function()
    local r, w = pipe()
    local t = { [math.maxinteger - 1] = "y", [math.maxinteger] = "z" }
    assert.equal(1, lio.writev(w, t, math.maxinteger, math.maxinteger))
    assert.equal(2, lio.writev(w, t, math.maxinteger - 1, math.maxinteger))
    assert.equal("zyz", lio.read(r, 100))
    assert.equal(0, lio.writev(w, t, math.maxinteger, math.maxinteger - 1))
  end)

  it("writes at most IOV_MAX elements per call", function()
    local r, w = pipe()
    local t = {}
    for i = 1, 1500 do t[i] = "x" end
    assert.equal(1024, lio.writev(w, t))
    assert.equal(string.rep("x", 1024), lio.read(r, 4096))
  end)

  it("returns EPIPE/EBADF as the fail triple", function()
    local r, w = pipe()
    assert_fail(E.EBADF, lio.writev(r, { "x" }))
    assert.is_true(lio.close(w))
  end)
end)

describe("lepoll.io.close", function()
  it("closes an Fd object once", function()
    local r, w = pipe()
    assert.is_true(lio.close(r))
    assert.equal("lepoll.Fd (closed)", tostring(r))
    assert.has_error(function() lio.close(r) end, "attempt to use a closed lepoll.Fd")
    assert.has_error(function() r:close() end, "attempt to use a closed lepoll.Fd")
    assert.is_true(w:close())
  end)

  it("closes a plain integer fd (the caller's own)", function()
    local _, w = pipe()
    local d = track(assert(lio.dup(w)))
    local n = d:fileno()
    assert.is_true(lio.close(n))
    assert_fail(E.EBADF, lio.close(n))
    -- d still holds the stale number: its own close now reports EBADF
    assert_fail(E.EBADF, d:close())
    assert.equal("lepoll.Fd (closed)", tostring(d))
  end)

  it("leaves a released fd open, to be closed by its new owner", function()
    local r, w = pipe()
    local d = assert(lio.dup(w))  -- not tracked: only n keeps it alive
    local n = d:release()
    assert.equal("lepoll.Fd (closed)", tostring(d))
    assert.has_error(function() d:close() end, "attempt to use a closed lepoll.Fd")
    assert.has_error(function() d:release() end, "attempt to use a closed lepoll.Fd")
    d = nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()  -- __gc of a released Fd closes nothing
    assert.equal(1, lio.write(n, "x"))
    assert.equal("x", lio.read(r, 1))
    assert.is_true(lio.close(n))
    assert_fail(E.EBADF, lio.close(n))
    local ep = assert(epoll.create())
    local en = ep:release()
    assert.equal("lepoll.Epoll (closed)", tostring(ep))
    assert.is_true(lio.close(en))
  end)

  it("closes an lepoll.Epoll", function()
    local ep = assert(epoll.create())
    assert.is_true(lio.close(ep))
    assert.equal("lepoll.Epoll (closed)", tostring(ep))
  end)

  it("refuses other libraries' objects", function()
    local _, w = pipe()
    local obj = { getfd = function() return w:fileno() end }
    assert.error_matches(function() lio.close(obj) end,
      "bad argument #1 to '[%w.]-close' %(integer or lepoll%.Fd expected, got table%)")
    assert.equal(1, lio.write(w, "x"))  -- still open
  end)
end)

describe("lepoll.io.set_nonblocking", function()
  it("toggles O_NONBLOCK", function()
    local r = pipe()
    assert.is_true(lio.set_nonblocking(r, true))
    assert.equal(O_NONBLOCK, fdflags(r) & O_NONBLOCK)
    assert_fail(E.EAGAIN, lio.read(r, 1))
    assert.is_true(lio.set_nonblocking(r, false))
    assert.equal(0, fdflags(r) & O_NONBLOCK)
    assert.is_true(lio.set_nonblocking(r:fileno(), true))
    assert.equal(O_NONBLOCK, fdflags(r) & O_NONBLOCK)
  end)

  it("returns EBADF for an fd that is not open", function()
    assert_fail(E.EBADF, lio.set_nonblocking(UNUSED_FD, true))
  end)
end)

describe("lepoll.io.dup", function()
  it("gives a new close-on-exec number for the same file", function()
    local r, w = pipe()
    local d = track(assert(lio.dup(w)))
    assert.are_not.equal(w:fileno(), d:fileno())
    assert.equal(O_CLOEXEC, fdflags(d) & O_CLOEXEC)
    assert.equal(2, lio.write(d, "hi"))
    assert.equal("hi", lio.read(r, 10))
    local d2 = track(assert(lio.dup(r:fileno(), lio.CLOEXEC)))
    assert.is_true(lio.set_nonblocking(d2, true))  -- shared status flags
    assert_fail(E.EAGAIN, lio.read(r, 1))
  end)

  it("returns EBADF for an fd that is not open", function()
    assert_fail(E.EBADF, lio.dup(UNUSED_FD))
  end)
end)

describe("lepoll.io.eventfd", function()
  it("round-trips the counter", function()
    local e = track(assert(lio.eventfd(5)))
    assert.equal(O_CLOEXEC, fdflags(e) & O_CLOEXEC)
    assert.equal(5, lio.eventfd_read(e))
    assert.is_true(lio.eventfd_write(e, 3))
    assert.is_true(lio.eventfd_write(e))  -- adds 1
    assert.is_true(lio.eventfd_write(e:fileno(), 3))
    assert.equal(7, lio.eventfd_read(e))
  end)

  it("returns EAGAIN when zero and non-blocking", function()
    local e = track(assert(lio.eventfd(0, lio.NONBLOCK)))
    assert_fail(E.EAGAIN, lio.eventfd_read(e))
  end)

  it("counts down one at a time with SEMAPHORE", function()
    local e = track(assert(lio.eventfd(3, lio.SEMAPHORE | lio.NONBLOCK)))
    for _ = 1, 3 do assert.equal(1, lio.eventfd_read(e)) end
    assert_fail(E.EAGAIN, lio.eventfd_read(e))
  end)

  it("reaches 2^64-2, returned bit for bit", function()
    local e = track(assert(lio.eventfd(0, lio.NONBLOCK)))
    assert.is_true(lio.eventfd_write(e, math.maxinteger))
    assert.is_true(lio.eventfd_write(e, math.maxinteger))
    assert_fail(E.EAGAIN, lio.eventfd_write(e, 1))  -- would overflow
    assert.equal(-2, lio.eventfd_read(e))
  end)

  it("returns EBADF for an fd that is not open", function()
    assert_fail(E.EBADF, lio.eventfd_read(UNUSED_FD))
    assert_fail(E.EBADF, lio.eventfd_write(UNUSED_FD, 1))
  end)
end)

describe("lepoll.io.timerfd", function()
  it("fires a 20 ms one-shot timer once", function()
    local t = track(assert(lio.timerfd()))
    assert.equal(O_CLOEXEC, fdflags(t) & O_CLOEXEC)
    local t0 = lio.clock_gettime(lio.MONOTONIC)
    assert.is_true(lio.timerfd_settime(t, 0.02, 0))
    assert.equal(1, lio.timerfd_read(t))  -- blocking read
    assert.is_true(lio.clock_gettime() - t0 >= 0.0199)
    local left, interval = lio.timerfd_gettime(t)
    assert.equal(0, left)
    assert.equal(0, interval)
  end)

  it("reports the remaining time and interval", function()
    local t = track(assert(lio.timerfd(lio.MONOTONIC, lio.NONBLOCK)))
    assert.is_true(lio.timerfd_settime(t, 10, 1.5))
    local left, interval = lio.timerfd_gettime(t)
    assert.is_true(left <= 10 and left > 9, tostring(left))
    assert.equal(1.5, interval)
    assert_fail(E.EAGAIN, lio.timerfd_read(t))
    assert.is_true(lio.timerfd_settime(t, 0))  -- disarm
    left, interval = lio.timerfd_gettime(t)
    assert.equal(0, left)
    assert.equal(0, interval)
  end)

  it("repeats at the interval", function()
    local t = track(assert(lio.timerfd(lio.MONOTONIC)))
    assert.is_true(lio.timerfd_settime(t, 0.005, 0.005))
    local n = lio.timerfd_read(t)
    assert.is_true(n >= 1)
    n = lio.timerfd_read(t)
    assert.is_true(n >= 1)
    local _, interval = lio.timerfd_gettime(t)
    assert.is_true(math.abs(interval - 0.005) < 1e-9)
  end)

  it("takes an absolute time with ABSTIME", function()
    local t = track(assert(lio.timerfd(lio.MONOTONIC)))
    local due = lio.clock_gettime(lio.MONOTONIC) + 0.02
    assert.is_true(lio.timerfd_settime(t, due, 0, lio.ABSTIME))
    assert.equal(1, lio.timerfd_read(t))
    assert.is_true(lio.clock_gettime(lio.MONOTONIC) >= due - 1e-6)
    -- a time in the past fires at once
    local p = track(assert(lio.timerfd(lio.REALTIME, lio.NONBLOCK)))
    assert.is_true(lio.timerfd_settime(p, 1, 0, lio.ABSTIME))
    assert.equal(1, lio.timerfd_read(p))
  end)

  it("never turns a tiny positive time into 'disarm'", function()
    local t = track(assert(lio.timerfd(lio.BOOTTIME, lio.NONBLOCK)))
    assert.is_true(lio.timerfd_settime(t, 1e-12))
    assert.equal(1, lio.timerfd_read(t))  -- blocking would hang if disarmed
  end)

  it("returns EINVAL/EBADF as the fail triple", function()
    local r = pipe()
    assert_fail(E.EINVAL, lio.timerfd_settime(r, 1))
    assert_fail(E.EBADF, lio.timerfd_gettime(UNUSED_FD))
    assert_fail(E.EBADF, lio.timerfd_read(UNUSED_FD))
  end)
end)

describe("lepoll.io.clock_gettime", function()
  it("reads the clocks in seconds", function()
    local a = lio.clock_gettime()
    local b = lio.clock_gettime(lio.MONOTONIC)
    assert.is_true(b >= a)
    assert.is_true(math.abs(lio.clock_gettime(lio.REALTIME) - os.time()) < 2)
    assert.is_true(lio.clock_gettime(lio.BOOTTIME) >= b - 1)
  end)
end)

describe("lepoll.io.signalfd", function()
  -- Drain what is pending, then unblock: never leave a signal behind.
  local function release(fd, sigs)
    if not tostring(fd):match("closed") then
      repeat until not lio.signalfd_read(fd)
      fd:close()
    end
    assert.is_true(lio.sigmask("unblock", sigs))
  end

  it("receives a blocked signal with its sender's pid", function()
    local fd = assert(lio.signalfd({ "USR1" }, lio.NONBLOCK))
    finally(function() release(fd, { "USR1" }) end)
    assert.equal(O_CLOEXEC, fdflags(fd) & O_CLOEXEC)
    assert_fail(E.EAGAIN, lio.signalfd_read(fd))
    assert.is_true(os.execute("kill -USR1 " .. lio.getpid()))
    assert.is_true(readable(fd, 5000))
    local signo, pid = lio.signalfd_read(fd)
    assert.equal(lio.SIGUSR1, signo)
    assert.is_true(pid > 0 and pid ~= lio.getpid(), tostring(pid))
    assert_fail(E.EAGAIN, lio.signalfd_read(fd))
  end)

  it("takes names with and without SIG and numbers", function()
    local fd = assert(lio.signalfd({ "SIGUSR2", lio.SIGUSR1 }, lio.NONBLOCK))
    finally(function() release(fd, { "USR1", "USR2" }) end)
    assert.is_true(os.execute("kill -USR2 " .. lio.getpid()))
    assert.is_true(readable(fd, 5000))
    assert.equal(lio.SIGUSR2, (lio.signalfd_read(fd)))
  end)

  it("reads a signal blocked earlier with sigmask", function()
    assert.is_true(lio.sigmask("block", { lio.SIGUSR2 }))
    local fd
    finally(function() release(fd or "closed", { "USR2" }) end)
    assert.is_true(os.execute("kill -USR2 " .. lio.getpid()))
    fd = assert(lio.signalfd({ "USR2" }, lio.NONBLOCK))
    assert.equal(lio.SIGUSR2, (lio.signalfd_read(fd)))
  end)

  it("returns EBADF/EIO as the fail triple", function()
    assert_fail(E.EBADF, lio.signalfd_read(UNUSED_FD))
    local e = track(assert(lio.eventfd(1)))
    assert_fail(E.EIO, lio.signalfd_read(e))  -- a short record: not a signalfd
  end)
end)

describe("lepoll.io.ignore_signal / default_signal", function()
  it("refuses SIGKILL and SIGSTOP with EINVAL", function()
    if VALGRIND then
      assert.is_true(lio.default_signal(lio.SIGSTOP))  -- emulated sigaction
      return
    end
    assert_fail(E.EINVAL, lio.ignore_signal("KILL"))
    assert_fail(E.EINVAL, lio.default_signal(lio.SIGSTOP))
  end)
  -- Their success paths are in the write/EPIPE spec, in a child process.
end)

describe("lepoll.io.pidfd_open", function()
  it("becomes readable when the process exits", function()
    local p = process.spawn("sh -c 'echo up; exec sleep 30'")
    finally(function() p:close() end)
    assert.equal("up", p:line())
    if VALGRIND then
      return assert_fail(E.ENOSYS, lio.pidfd_open(p.pid, lio.NONBLOCK))
    end
    local fd = track(assert(lio.pidfd_open(p.pid, lio.NONBLOCK)))
    assert.equal(O_CLOEXEC, fdflags(fd) & O_CLOEXEC)
    assert.is_false(readable(fd, 0))
    assert.is_true(p:kill("TERM"))
    assert.is_true(readable(fd, 10000))
    p:wait()
  end)

  it("returns ESRCH for no such process", function()
    assert_fail(ESRCH_PIDFD, lio.pidfd_open(INT_MAX))
  end)

  it("accepts io.CLOEXEC as the other creators do (always set anyway)", function()
    assert_fail(ESRCH_PIDFD, lio.pidfd_open(INT_MAX, lio.CLOEXEC))
    assert_fail(ESRCH_PIDFD, lio.pidfd_open(INT_MAX, lio.CLOEXEC | lio.NONBLOCK))
    if VALGRIND then return end
    local fd = track(assert(lio.pidfd_open(lio.getpid(), lio.CLOEXEC)))
    assert.equal(O_CLOEXEC, fdflags(fd) & O_CLOEXEC)
  end)
end)

describe("lepoll.io.getpid", function()
  it("is this process's pid", function()
    local f = assert(io.open("/proc/self/stat"))
    local pid = tonumber(f:read("a"):match("^(%d+)"))
    f:close()
    assert.equal(pid, lio.getpid())
  end)
end)

describe("lepoll.io and a getfd() that calls back into lepoll.io", function()
  -- Each call's getfd() makes the same call again on the same object: the
  -- recursion must stop at Lua's C-call limit as a catchable error, on a
  -- C stack as small as stock Lua needs for it (no 16 KiB buffer in a frame
  -- that is live while getfd() runs). One child process per call.
  it("ends in a Lua 'stack overflow' error on a 256 KiB C stack", function()
    local script = tmpscript([=[
      local lio = require "lepoll.io"
      local calls = {
        read = function(o) return lio.read(o, 1) end,
        ["read big"] = function(o) return lio.read(o, 100000) end,
        write = function(o) return lio.write(o, "x") end,
        writev = function(o) return lio.writev(o, { "x" }) end,
        set_nonblocking = function(o) return lio.set_nonblocking(o, true) end,
        eventfd_read = function(o) return lio.eventfd_read(o) end,
        signalfd_read = function(o) return lio.signalfd_read(o) end,
      }
      local call = assert(calls[arg[1]])
      local obj = { getfd = function(self) return call(self) end }
      local ok, err = pcall(call, obj)
      print(ok, (tostring(err):match("stack overflow")))
    ]=])
    for _, name in ipairs { "read", "read big", "write", "writev", "set_nonblocking",
                            "eventfd_read", "signalfd_read" } do
      local rest, how, code, err = process.small_stack(script, name)
      assert.equal("false\tstack overflow\n", rest, name .. ": " .. err)
      assert.same({ "exit", 0 }, { how, code }, name)
    end
  end)
end)

describe("lepoll.io integral floats", function()
  -- LuaSocket's getfd() returns 3.0 under Lua 5.4: every fd argument takes
  -- such a float, given directly or returned by getfd()/fileno().
  it("are taken wherever an fd is, directly and from getfd() or fileno()", function()
    local r, w = pipe(lio.NONBLOCK)
    local e = track(assert(lio.eventfd(0, lio.NONBLOCK)))
    local t = track(assert(lio.timerfd(lio.MONOTONIC, lio.NONBLOCK)))
    local shapes = {
      function(o) return o:fileno() + 0.0 end,
      function(o) return { getfd = function() return o:fileno() + 0.0 end } end,
      function(o) return { fileno = function() return o:fileno() + 0.0 end } end,
    }
    for i, as in ipairs(shapes) do
      assert.equal(3, lio.write(as(w), "abc"), i)
      assert.equal(2, lio.writev(as(w), { "d", "e" }), i)
      assert.equal("abcde", lio.read(as(r), 10), i)
      assert.is_true(lio.set_nonblocking(as(r), false), i)
      assert.equal(0, fdflags(r) & O_NONBLOCK, i)
      assert.is_true(lio.set_nonblocking(as(r), true), i)
      assert.is_true(lio.eventfd_write(as(e), 2), i)
      assert.equal(2, lio.eventfd_read(as(e)), i)
      assert.is_true(lio.timerfd_settime(as(t), 100), i)
      assert.is_true(lio.timerfd_gettime(as(t)) > 99, i)
      assert_fail(E.EAGAIN, lio.timerfd_read(as(t)))
      assert_fail(E.EAGAIN, lio.signalfd_read(as(e)))  -- empty and non-blocking
      local d = assert(lio.dup(as(w)))
      assert.equal(1, lio.write(d, "x"), i)
      assert.equal("x", lio.read(r, 10), i)
      local n = d:release()
      assert.is_true(lio.close(n + 0.0), i)
      assert_fail(E.EBADF, lio.close(n + 0.0))
    end
  end)
end)

describe("lepoll.io closed objects", function()
  it("raise in every function that takes an fd", function()
    local r = pipe()
    r:close()
    local calls = {
      { "read", 1 }, { "write", "x" }, { "writev", { "x" } }, { "close" },
      { "set_nonblocking", true }, { "dup" }, { "eventfd_read" },
      { "eventfd_write", 1 }, { "timerfd_settime", 1 }, { "timerfd_gettime" },
      { "timerfd_read" }, { "signalfd_read" },
    }
    for _, c in ipairs(calls) do
      local ok, err = pcall(lio[c[1]], r, table.unpack(c, 2))
      assert.is_false(ok, c[1])
      assert.matches("attempt to use a closed lepoll.Fd", err, 1, true)
    end
  end)
end)

describe("lepoll.io bad arguments", function()
  it("raise naming the argument and never act", function()
    local r, w = pipe()
    -- a userdata that cannot be indexed (no __index): a type error, not
    -- "attempt to index a userdata value"
    local udata_noindex = assert(io.tmpfile())
    local file_mt = debug.getmetatable(udata_noindex)
    finally(function()  -- give the FILE back its metatable, then close it
      debug.setmetatable(udata_noindex, file_mt)
      udata_noindex:close()
    end)
    debug.setmetatable(udata_noindex, nil)
    local big = 2^32 + 3       -- must never become fd 3
    local nan, inf = 0/0, math.huge
    local cases = {
      -- function, argument number in the message, arguments...
      { "read", 1, "x", 10 }, { "read", 1, -1, 10 }, { "read", 1, big, 10 },
      { "read", 1, 1.5, 10 }, { "read", 1, nil, 10, n = 4 }, { "read", 1, {}, 10 },
      { "read", 2, r, 0 }, { "read", 2, r, -1 }, { "read", 2, r, (1 << 30) + 1 },
      { "read", 2, r, math.maxinteger }, { "read", 2, r, nil },
      { "read", 2, r, 1.5 }, { "read", 2, r, "10" }, { "read", 2, r, inf },
      { "write", 1, big, "x" }, { "write", 1, -3, "x" }, { "write", 2, w, nil },
      { "write", 2, w, {} }, { "write", 3, w, "x", 1.5 },
      { "write", 4, w, "x", 1, "a" }, { "write", 3, w, "x", nan },
      { "write", 2, w, 42 }, { "write", 2, w, nan }, { "write", 3, w, "x", "1" },
      { "write", 4, w, "x", 1, "-1" },
      { "writev", 1, big, { "x" } }, { "writev", 2, w, "x" },
      { "writev", 2, w, { 1 } }, { "writev", 2, w, { "a", {} } },
      { "writev", 3, w, { "a" }, 0 }, { "writev", 4, w, { "a" }, 1, -1 },
      { "close", 1, "x" }, { "close", 1, -1 }, { "close", 1, big },
      { "close", 1, nil }, { "close", 1, 1.5 },
      { "set_nonblocking", 1, big, true }, { "set_nonblocking", 2, r, nil },
      { "set_nonblocking", 2, r, 1 },
      { "pipe", 1, -1 }, { "pipe", 1, 1 << 40 }, { "pipe", 1, "x" },
      { "pipe", 1, lio.NONBLOCK | 1 },
      { "dup", 1, big }, { "dup", 1, -1 }, { "dup", 2, r, lio.NONBLOCK },
      { "eventfd", 1, -1 }, { "eventfd", 1, 2^32 }, { "eventfd", 1, 1.5 },
      { "eventfd", 2, 0, 0x40000000 },
      { "eventfd_read", 1, big }, { "eventfd_read", 1, "x" },
      { "eventfd_write", 1, big, 1 }, { "eventfd_write", 2, w, 0 },
      { "eventfd_write", 2, w, -1 }, { "eventfd_write", 2, w, 1.5 },
      { "eventfd_write", 2, w, "1" },
      { "timerfd", 1, 12345 }, { "timerfd", 1, -1 }, { "timerfd", 1, "x" },
      { "timerfd", 2, lio.MONOTONIC, lio.ABSTIME },
      { "timerfd_settime", 1, big, 1 }, { "timerfd_settime", 2, r, nan },
      { "timerfd_settime", 2, r, inf }, { "timerfd_settime", 2, r, -inf },
      { "timerfd_settime", 2, r, -1 }, { "timerfd_settime", 2, r, -0.5 },
      { "timerfd_settime", 2, r, 1e300 }, { "timerfd_settime", 2, r, "1" },
      { "timerfd_settime", 2, r, nil }, { "timerfd_settime", 3, r, 1, nan },
      { "timerfd_settime", 3, r, 1, -inf }, { "timerfd_settime", 3, r, 1, -1 },
      { "timerfd_settime", 4, r, 1, 0, 4 },
      { "timerfd_gettime", 1, big }, { "timerfd_read", 1, -1 },
      { "clock_gettime", 1, 999 }, { "clock_gettime", 1, 1.5 },
      { "signalfd", 1, "INT" }, { "signalfd", 1, nil }, { "signalfd", 1, { "NOPE" } },
      { "signalfd", 1, { "SIG" } }, { "signalfd", 1, { 0 } }, { "signalfd", 1, { 65 } },
      { "signalfd", 1, { 1.5 } }, { "signalfd", 1, { {} } },
      { "signalfd", 1, { "USR1", "nope" } },
      { "signalfd", 2, { "USR1" }, 1 },
      { "signalfd_read", 1, big },
      { "sigmask", 1, "nope", {} }, { "sigmask", 1, nil, {}, n = 4 },
      { "sigmask", 2, "block", "INT" }, { "sigmask", 2, "block", { "NOPE" } },
      { "ignore_signal", 1, "PIPE\0junk" }, { "default_signal", 1, "SIGPIPE\0" },
      { "sigmask", 2, "block", { "INT\0" } }, { "signalfd", 1, { "USR1\0x" } },
      { "sigmask", 1, "block\0junk", {} }, { "sigmask", 1, "unblock\0", {} },
      { "read", 1, { getfd = 42 }, 1 }, { "dup", 1, { fileno = {} } },
      { "sigmask", 2, "block", { 32 } }, { "signalfd", 1, { "USR1", 33 } },
      { "read", 1, udata_noindex, 1 }, { "write", 1, udata_noindex, "x" },
      { "ignore_signal", 1, "NOPE" }, { "ignore_signal", 1, 0 },
      { "ignore_signal", 1, nil }, { "ignore_signal", 1, 99 },
      { "default_signal", 1, "SIGNOPE" }, { "default_signal", 1, -1 },
      { "pidfd_open", 1, 0 }, { "pidfd_open", 1, -1 }, { "pidfd_open", 1, 2^31 },
      { "pidfd_open", 1, "x" }, { "pidfd_open", 1, 1.5 },
      { "pidfd_open", 2, 1, 1 },
    }
    for _, c in ipairs(cases) do
      local name, argn = c[1], c[2]
      local ok, err = pcall(lio[name], table.unpack(c, 3, c.n or #c))
      local what = name .. " case " .. argn
      assert.is_false(ok, what)
      assert.matches("bad argument #" .. argn, err, 1, true)
      assert.matches(name, err, 1, true)
    end
    -- nothing above acted: the pipe is intact and empty, fd 3 untouched
    local rn = track(assert(lio.dup(r)))
    assert.is_true(lio.set_nonblocking(rn, true))
    assert_fail(E.EAGAIN, lio.read(r, 1))
    assert.equal(1, lio.write(w, "z"))
    assert.equal("z", lio.read(r, 10))
  end)

  it("say what is wrong with data, i and j, options and fd objects", function()
    local r, w = pipe()
    local n = r:fileno()
    -- "bad argument #n to 'f' (why)" as a pattern; f may carry its module
    local function bad(argn, f, why)
      return ("bad argument #%d to '[%%w.]-%s' %%(%s%%)$"):format(argn, f, why)
    end
    local rows = {
      -- data is a string, as in net.send: no "42", no "-nan"
      { function() lio.write(w, 42) end, bad(2, "write", "string expected, got number") },
      { function() lio.write(w, 0 / 0) end, bad(2, "write", "string expected, got number") },
      -- i and j are integers, as every other integer argument
      { function() lio.write(w, "abc", "2") end, bad(3, "write", "integer expected, got string") },
      { function() lio.write(w, "abc", 1, "2") end,
        bad(4, "write", "integer expected, got string") },
      { function() lio.write(w, "abc", 1.5) end,
        bad(3, "write", "number has no integer representation") },
      -- option names match whole: "block\0junk" is not "block"
      { function() lio.sigmask("block\0junk", {}) end,
        bad(1, "sigmask", "invalid option 'block' %(a zero byte follows%)") },
      { function() lio.sigmask("nope", {}) end, bad(1, "sigmask", "invalid option 'nope'") },
      { function() lio.sigmask(1, {}) end, bad(1, "sigmask", "string expected, got number") },
      -- a getfd/fileno field that is no function names the argument
      { function() lio.read({ getfd = 42 }, 1) end,
        bad(1, "read", "getfd is a number, not a function") },
      { function() lio.read({ getfd = true }, 1) end,
        bad(1, "read", "getfd is a boolean, not a function") },
      { function() lio.write({ getfd = false, fileno = "x" }, "x") end,
        bad(1, "write", "fileno is a string, not a function") },
      { function() lio.read({ getfd = false }, 1) end, bad(1, "read", "fd expected, got table") },
      -- what the method returns: an integer (or integral float) fd
      { function() lio.read({ getfd = function() return n + 0.5 end }, 1) end,
        bad(1, "read", "getfd%(%) did not return an integer") },
      { function() lio.read({ fileno = function() return tostring(n) end }, 1) end,
        bad(1, "read", "fileno%(%) did not return an integer") },
      { function() lio.read({ getfd = function() return -1.0 end }, 1) end,
        bad(1, "read", "getfd%(%) returned an fd out of range") },
      { function() lio.read({ getfd = function() return 2.0 ^ 32 + n end }, 1) end,
        bad(1, "read", "getfd%(%) returned an fd out of range") },
      { function() lio.read(n + 0.5, 1) end,
        bad(1, "read", "number has no integer representation") },
      { function() lio.read(2.0 ^ 32 + n, 1) end,
        bad(1, "read", "out of range %[0, 2147483647%]") },
    }
    for i, row in ipairs(rows) do
      local ok, err = pcall(row[1])
      assert.is_false(ok, "row " .. i)
      assert.matches(row[2], err, nil, false, "row " .. i)
    end
    -- nothing above wrote to or read from the pipe
    assert.is_true(lio.set_nonblocking(r, true))
    assert_fail(E.EAGAIN, lio.read(r, 1))
  end)

  it("leak no fd across 200 failing calls", function()
    local _, w = pipe()
    collectgarbage()
    local before = count_fds()
    for _ = 1, 200 do
      assert_fail(E.EBADF, lio.dup(UNUSED_FD))
      if not VALGRIND then  -- valgrind warns on every pidfd_open
        assert_fail(E.ESRCH, lio.pidfd_open(INT_MAX))
      end
      assert_fail(E.EBADF, lio.read(UNUSED_FD, 100000))
      assert_fail(E.EINVAL, lio.timerfd_settime(w, 1))
      pcall(lio.signalfd, { "NOPE" })
      pcall(lio.read, w, 0)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, count_fds())
  end)

  it("report EMFILE from every creator and leak nothing", function()
    local script = tmpscript([[
      local lio = require "lepoll.io"
      local held = {}
      while true do
        local r, w = lio.pipe()
        if not r then break end
        held[#held + 1] = r; held[#held + 1] = w
      end
      while true do
        local e = lio.eventfd()
        if not e then break end
        held[#held + 1] = e
      end
      local EM = lio.errno.EMFILE
      local function check(name, ...)
        local v, msg, en = ...
        print(name, v == nil and type(msg) == "string" and en == EM)
      end
      check("pipe", lio.pipe())
      check("dup", lio.dup(held[1]))
      check("eventfd", lio.eventfd())
      check("timerfd", lio.timerfd())
      check("signalfd", lio.signalfd({ "USR1" }))
      check("pidfd_open", lio.pidfd_open(lio.getpid()))
      for _, f in ipairs(held) do f:close() end
      held = nil
      collectgarbage()
      -- the failed signalfd put the mask back: nothing is blocked
      local st = assert(io.open("/proc/self/status")):read("a")
      print("sigblk", st:match("SigBlk:%s*(%x+)"))
      local r, w = lio.pipe()
      print("after", r ~= nil and w ~= nil)
    ]])
    local p
    finally(function()  -- busted keeps one finally per test
      if p then p:close() end
      os.remove(script)
    end)
    p = process.spawn("sh -c " .. process.shquote("ulimit -n 40 && exec "
      .. process.lua_command() .. " " .. process.shquote(script)))
    local rest, how, code = p:wait()
    assert.equal("pipe\ttrue\ndup\ttrue\neventfd\ttrue\ntimerfd\ttrue\n"
      .. "signalfd\ttrue\npidfd_open\ttrue\nsigblk\t0000000000000000\n"
      .. "after\ttrue\n", rest, p:stderr())
    assert.equal("exit", how)
    assert.equal(0, code)
  end)
end)
