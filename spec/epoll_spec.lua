-- lepoll.epoll: the epoll(7) binding, checked against the kernel's behaviour.
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local process = require "support.process"
local files = require "support.files"
local cleanup = require "support.cleanup"
local assert_fail = require("support.result").assert_fail

local E = epoll.errno

-- Everything a test opens goes through own() and is closed in after_each.
local own, closeall = cleanup.tracker()

local function newep(flags)
  return own(assert(epoll.create(flags)))
end

local function pipe()
  return own(assert(lio.pipe(lio.NONBLOCK)))
end

local function socketpair()
  return own(assert(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK)))
end

-- An eventfd that is readable (counter 1) until it is read.
local function readyfd()
  return own(assert(lio.eventfd(1, lio.NONBLOCK)))
end

-- wait and collect: { [data] = flags } and the count.
local function collect(ep, evs, timeout)
  local n, msg, en = ep:wait(evs, timeout or 0)
  assert(n, msg, en)
  local seen = {}
  for i = 1, n do
    local data, flags = evs:get(i)
    assert.is_nil(seen[data], "data reported twice in one wait")
    seen[data] = flags
  end
  return seen, n
end

-- A monotonic clock in seconds: lepoll.io's if it has one, else
-- /proc/uptime (10 ms resolution). Returns now() and its resolution.
local function clock()
  if lio.clock_gettime then
    return function() return lio.clock_gettime(lio.MONOTONIC) end, 1e-6
  end
  return function()
    local f = assert(io.open("/proc/uptime"))
    local s = f:read("n")
    f:close()
    return s
  end, 0.01
end
local now, resolution = clock()

local fdtable, fdflags = files.fds, files.fdflags

-- A temporary file holding text, removed after the test.
local function write_tmp(text)
  local path = files.tmpfile(text)
  own(function() os.remove(path) end)
  return path
end

after_each(closeall)

describe("lepoll.epoll module", function()
  it("has the fifteen EventFlags and CLOEXEC with the kernel's values", function()
    local expect = {
      IN = 0x1, PRI = 0x2, OUT = 0x4, ERR = 0x8, HUP = 0x10,
      RDNORM = 0x40, RDBAND = 0x80, WRNORM = 0x100, WRBAND = 0x200,
      MSG = 0x400, RDHUP = 0x2000, EXCLUSIVE = 1 << 28, WAKEUP = 1 << 29,
      ONESHOT = 1 << 30, ET = 1 << 31, CLOEXEC = 0x80000,
    }
    for name, v in pairs(expect) do
      assert.equal("integer", math.type(epoll[name]), name)
      assert.equal(v, epoll[name], name)
    end
  end)

  it("has an errno table and a version", function()
    assert.equal(17, E.EEXIST)
    for _, name in ipairs { "EEXIST", "ENOENT", "EBADF", "EINVAL", "ELOOP",
                            "EPERM", "EINTR", "EMFILE", "ENOMEM", "ENOSPC" } do
      assert.equal("integer", math.type(E[name]), name)
    end
    assert.equal("lepoll 0.1.0", epoll._VERSION)
  end)
end)

describe("epoll.create", function()
  it("returns an open Epoll, close-on-exec by default", function()
    local ep = newep()
    local fd = ep:fileno()
    assert.equal("integer", math.type(fd))
    assert.equal(fd, ep:getfd())
    assert.equal("lepoll.Epoll (fd " .. fd .. ")", tostring(ep))
    assert.is_true(fdtable()[fd]:find("eventpoll", 1, true) ~= nil)
    assert.equal(epoll.CLOEXEC, fdflags(fd) & epoll.CLOEXEC)
    assert.equal(epoll.CLOEXEC, fdflags(newep(epoll.CLOEXEC):fileno()) & epoll.CLOEXEC)
    assert.equal(epoll.CLOEXEC, fdflags(newep(nil):fileno()) & epoll.CLOEXEC)
  end)

  it("leaves CLOEXEC off when flags lack it", function()
    assert.equal(0, fdflags(newep(0):fileno()) & epoll.CLOEXEC)
  end)

  it("fails with EMFILE when out of fds, closing nothing it did not open", function()
    local path = write_tmp([[
      local epoll = require "lepoll.epoll"
      local keep, r = {}, nil
      local msg, en
      for _ = 1, 200 do
        r, msg, en = epoll.create()
        if not r then break end
        keep[#keep + 1] = r
      end
      print(#keep > 0, r, type(msg), en == epoll.errno.EMFILE)
    ]])
    local p = process.spawn("sh -c " .. process.shquote("ulimit -n 64; exec "
      .. process.lua_command() .. " " .. process.shquote(path)), { limit = 20 })
    own(function() p:close() end)
    assert.equal("true\tnil\tstring\ttrue", p:line(), p:stderr())
    local _, how, code = p:wait()
    assert.equal("exit", how)
    assert.equal(0, code)
  end)
end)

describe("ep:add", function()
  it("returns true and accepts any fd-like value", function()
    local ep = newep()
    local r1, w1 = pipe()
    local r2 = pipe()
    local r3 = pipe()
    local r4 = pipe()
    assert.is_true(ep:add(r1, 1, epoll.IN))                    -- Fd object
    assert.is_true(ep:add(w1:fileno(), 2, epoll.OUT))          -- integer
    assert.is_true(ep:add({ fileno = function() return r2:fileno() end }, 3, epoll.IN))
    assert.is_true(ep:add({ getfd = function() return r3:fileno() end }, 4, epoll.IN))
    assert.is_true(ep:add(r4:fileno() + 0.0, 5, epoll.IN))     -- integral float
    local seen = collect(ep, epoll.events(8))
    assert.same({ [2] = epoll.OUT }, seen)
    -- integral floats from getfd()/fileno() (LuaSocket's getfd() gives 3.0),
    -- and in modify and delete
    local r5 = pipe()
    local r6 = pipe()
    assert.is_true(ep:add({ getfd = function() return r5:fileno() + 0.0 end }, 6, epoll.IN))
    assert.is_true(ep:add({ fileno = function() return r6:fileno() + 0.0 end }, 7, epoll.IN))
    assert.is_true(ep:modify(w1:fileno() + 0.0, 8, epoll.OUT))
    assert.same({ [8] = epoll.OUT }, collect(ep, epoll.events(8)))
    assert.is_true(ep:modify({ getfd = function() return w1:fileno() + 0.0 end }, 9, epoll.OUT))
    assert.same({ [9] = epoll.OUT }, collect(ep, epoll.events(8)))
    assert.is_true(ep:delete({ fileno = function() return w1:fileno() + 0.0 end }))
    assert.same({}, collect(ep, epoll.events(8)))
    assert.is_true(ep:delete(r5:fileno() + 0.0))
    assert_fail(E.ENOENT, ep:delete({ getfd = function() return r5:fileno() + 0.0 end }))
  end)

  it("fails with EEXIST on a second add of the same fd", function()
    local ep = newep()
    local r = pipe()
    assert.is_true(ep:add(r, 1, epoll.IN))
    assert_fail(E.EEXIST, ep:add(r, 2, epoll.IN))
  end)

  it("fails with EBADF on a closed fd number", function()
    local ep = newep()
    local r = pipe()
    local fd = r:fileno()
    assert.is_true(r:close())
    assert_fail(E.EBADF, ep:add(fd, 1, epoll.IN))
    assert_fail(E.EBADF, ep:add(2147483647, 1, epoll.IN))
  end)

  it("fails with EINVAL on adding the epoll to itself", function()
    local ep = newep()
    assert_fail(E.EINVAL, ep:add(ep, 1, epoll.IN))
  end)

  it("fails with ELOOP on a cycle of nested epolls", function()
    local a, b, c = newep(), newep(), newep()
    assert.is_true(a:add(b, 1, epoll.IN))
    assert.is_true(b:add(c, 2, epoll.IN))
    assert_fail(E.ELOOP, c:add(a, 3, epoll.IN))
    assert_fail(E.ELOOP, b:add(a, 3, epoll.IN))
  end)

  it("fails with EPERM on a regular file", function()
    local path = write_tmp("x")
    local f = assert(io.open(path, "r"))
    own(function() f:close() end)
    local fd
    for n, target in pairs(fdtable()) do
      if target == path then fd = n end
    end
    assert.is_not_nil(fd, "could not find the fd of " .. path)
    assert_fail(E.EPERM, newep():add(fd, 1, epoll.IN))
  end)

  it("fails with EINVAL for EXCLUSIVE with ONESHOT, RDHUP or an epoll target", function()
    local ep = newep()
    local r = pipe()
    assert_fail(E.EINVAL, ep:add(r, 1, epoll.IN | epoll.EXCLUSIVE | epoll.ONESHOT))
    assert_fail(E.EINVAL, ep:add(r, 1, epoll.IN | epoll.EXCLUSIVE | epoll.RDHUP))
    assert_fail(E.EINVAL, ep:add(newep(), 1, epoll.IN | epoll.EXCLUSIVE))
  end)

  it("registers with EXCLUSIVE and still reports the fd", function()
    local ep = newep()
    local fd = readyfd()
    assert.is_true(ep:add(fd, 9, epoll.IN | epoll.EXCLUSIVE | epoll.ET))
    assert.same({ [9] = epoll.IN }, collect(ep, epoll.events(2)))
  end)

  it("accepts every EventFlags bit, including ET (1 << 31)", function()
    local ep = newep()
    local r = pipe()
    local all = epoll.IN | epoll.OUT | epoll.PRI | epoll.ERR | epoll.HUP
      | epoll.RDNORM | epoll.RDBAND | epoll.WRNORM | epoll.WRBAND | epoll.MSG
      | epoll.RDHUP | epoll.ET | epoll.ONESHOT | epoll.WAKEUP
    assert.is_true(ep:add(r, 1, all))
    assert.is_true(ep:add(readyfd(), 2, 0))  -- no events: only ERR/HUP report
    assert.same({}, collect(ep, epoll.events(2)))
  end)
end)

describe("ep:modify", function()
  it("returns true and changes data and flags", function()
    local ep = newep()
    local _, w = pipe()
    assert.is_true(ep:add(w, 1, epoll.IN))
    local evs = epoll.events(4)
    assert.same({}, collect(ep, evs))
    assert.is_true(ep:modify(w, 2, epoll.OUT))
    assert.same({ [2] = epoll.OUT }, collect(ep, evs))
    assert.is_true(ep:modify(w:fileno(), -2, epoll.OUT | epoll.WRNORM))
    assert.same({ [-2] = epoll.OUT | epoll.WRNORM }, collect(ep, evs))
  end)

  it("fails with ENOENT for an fd that is not registered", function()
    local ep = newep()
    local r = pipe()
    assert_fail(E.ENOENT, ep:modify(r, 1, epoll.IN))
  end)

  it("fails with EBADF on a closed fd number", function()
    local ep = newep()
    local r = pipe()
    local fd = r:fileno()
    r:close()
    assert_fail(E.EBADF, ep:modify(fd, 1, epoll.IN))
  end)

  it("re-arms a ONESHOT registration", function()
    local ep = newep()
    local fd = readyfd()
    local evs = epoll.events(2)
    assert.is_true(ep:add(fd, 5, epoll.IN | epoll.ONESHOT))
    assert.same({ [5] = epoll.IN }, collect(ep, evs))
    assert.same({}, collect(ep, evs))  -- disarmed though still readable
    assert.same({}, collect(ep, evs))
    assert.is_true(ep:modify(fd, 6, epoll.IN | epoll.ONESHOT))
    assert.same({ [6] = epoll.IN }, collect(ep, evs))
    assert.same({}, collect(ep, evs))
  end)

  it("fails with EINVAL for EXCLUSIVE, and on an EXCLUSIVE registration", function()
    local ep = newep()
    local r1 = pipe()
    local r2 = pipe()
    assert.is_true(ep:add(r1, 1, epoll.IN))
    assert_fail(E.EINVAL, ep:modify(r1, 1, epoll.IN | epoll.EXCLUSIVE))
    assert.is_true(ep:add(r2, 2, epoll.IN | epoll.EXCLUSIVE))
    assert_fail(E.EINVAL, ep:modify(r2, 2, epoll.IN))
  end)
end)

describe("ep:delete", function()
  it("returns true and the fd is no longer reported", function()
    local ep = newep()
    local fd = readyfd()
    local evs = epoll.events(2)
    assert.is_true(ep:add(fd, 1, epoll.IN))
    assert.same({ [1] = epoll.IN }, collect(ep, evs))
    assert.is_true(ep:delete(fd))
    assert.same({}, collect(ep, evs))
    assert.is_true(ep:add(fd, 2, epoll.IN))  -- and can be added again
  end)

  it("fails with ENOENT for an fd that is not registered", function()
    local ep = newep()
    assert_fail(E.ENOENT, ep:delete(readyfd()))
  end)

  it("fails with EBADF on a closed fd number", function()
    local ep = newep()
    local r = pipe()
    local fd = r:fileno()
    r:close()
    assert_fail(E.EBADF, ep:delete(fd))
  end)

  it("fails with EINVAL on the epoll itself", function()
    local ep = newep()
    assert_fail(E.EINVAL, ep:delete(ep))
  end)
end)

describe("ep:wait", function()
  it("returns 0 when nothing is ready and the count otherwise", function()
    local ep = newep()
    local evs = epoll.events(4)
    assert.equal(0, ep:wait(evs, 0))
    assert.equal(0, #evs)
    ep:add(readyfd(), 10, epoll.IN)
    ep:add(readyfd(), 20, epoll.IN)
    assert.equal(2, ep:wait(evs, 0))
    assert.equal(2, #evs)
    assert.equal(2, evs:count())
  end)

  it("waits forever for nil and -1, and returns once an fd is ready", function()
    local ep = newep()
    local evs = epoll.events(1)
    ep:add(readyfd(), 1, epoll.IN)
    assert.equal(1, ep:wait(evs))
    assert.equal(1, ep:wait(evs, nil))
    assert.equal(1, ep:wait(evs, -1))
    assert.equal(1, ep:wait(evs, -1.0))
    assert.equal(1, ep:wait(evs, 10))
    assert.equal(1, ep:wait(evs, 0.5))
    assert.equal(1, ep:wait(evs, 2147483647))      -- the largest timeout
    assert.equal(1, ep:wait(evs, 2147483646.5))
    assert.equal(1, ep:wait(evs, 2147483647.0))
  end)

  it("reports level-triggered readiness on every wait", function()
    local ep = newep()
    local r, w = pipe()
    local evs = epoll.events(2)
    ep:add(r, 1, epoll.IN)
    assert.same({}, collect(ep, evs))
    assert.equal(1, lio.write(w, "x"))
    assert.same({ [1] = epoll.IN }, collect(ep, evs))
    assert.same({ [1] = epoll.IN }, collect(ep, evs))
    assert.equal("x", lio.read(r, 10))
    assert.same({}, collect(ep, evs))
  end)

  it("reports edge-triggered readiness once per change", function()
    local ep = newep()
    local r, w = pipe()
    local evs = epoll.events(2)
    ep:add(r, 1, epoll.IN | epoll.ET)
    assert.equal(1, lio.write(w, "x"))
    assert.same({ [1] = epoll.IN }, collect(ep, evs))
    assert.same({}, collect(ep, evs))  -- still readable, no new edge
    assert.equal(1, lio.write(w, "y"))
    assert.same({ [1] = epoll.IN }, collect(ep, evs))
    assert.same({}, collect(ep, evs))
    assert.equal("xy", lio.read(r, 10))
  end)

  it("caps a wait at the capacity; later waits report the rest (edge-triggered)", function()
    local ep = newep()
    for i = 1, 5 do ep:add(readyfd(), i, epoll.IN | epoll.ET) end
    local evs = epoll.events(2)
    local all, counts = {}, {}
    for _ = 1, 4 do
      local seen, n = collect(ep, evs)
      counts[#counts + 1] = n
      for data, flags in pairs(seen) do
        assert.is_nil(all[data], "reported twice: " .. data)
        assert.equal(epoll.IN, flags)
        all[data] = true
      end
    end
    assert.same({ 2, 2, 1, 0 }, counts)
    assert.same({ true, true, true, true, true }, all)
  end)

  it("caps a wait at the capacity; later waits report the rest (level-triggered)", function()
    local ep = newep()
    for i = 1, 5 do ep:add(readyfd(), i, epoll.IN) end
    local evs = epoll.events(2)
    local all = {}
    for _ = 1, 3 do
      local seen, n = collect(ep, evs)
      assert.equal(2, n)
      for data in pairs(seen) do all[data] = true end
    end
    assert.same({ true, true, true, true, true }, all)
  end)

  it("returns any integer data bit for bit (u64 extremes)", function()
    local ep = newep()
    local fd = readyfd()
    local evs = epoll.events(1)
    local values = { math.mininteger, -1, math.maxinteger, 0, 1,
                     0x7fffffff, 0x80000000, 0xffffffff, 1 << 32,
                     math.mininteger + 1, math.maxinteger - 1 }
    ep:add(fd, values[1], epoll.IN)
    for i, v in ipairs(values) do
      if i > 1 then assert.is_true(ep:modify(fd, v, epoll.IN)) end
      assert.equal(1, ep:wait(evs, 0))
      local data, flags = evs:get(1)
      assert.equal("integer", math.type(data))
      assert.equal(v, data)
      assert.equal(epoll.IN, flags)
    end
    assert.is_true(ep:modify(fd, 3.0, epoll.IN))
    ep:wait(evs, 0)
    assert.equal("integer", math.type((evs:get(1))))
    assert.equal(3, (evs:get(1)))
  end)

  it("reports HUP and RDHUP when the peer closes", function()
    local ep = newep()
    local a, b = socketpair()
    local evs = epoll.events(2)
    ep:add(a, 1, epoll.IN | epoll.RDHUP)
    assert.same({}, collect(ep, evs))
    b:close()
    local flags = collect(ep, evs)[1]
    assert.equal(epoll.IN | epoll.RDHUP | epoll.HUP, flags)
  end)

  it("reports RDHUP without HUP when the peer shuts down writing", function()
    local ep = newep()
    local a, b = socketpair()
    local evs = epoll.events(2)
    ep:add(a, 1, epoll.IN | epoll.RDHUP)
    assert.is_true(net.shutdown(b, "w"))
    assert.equal(epoll.IN | epoll.RDHUP, collect(ep, evs)[1])
    assert.equal("", lio.read(a, 10))
  end)

  it("reports HUP when both directions are shut down", function()
    local ep = newep()
    local a, b = socketpair()
    local evs = epoll.events(2)
    ep:add(a, 1, epoll.OUT | epoll.RDHUP)
    assert.same({ [1] = epoll.OUT }, collect(ep, evs))
    assert.is_true(net.shutdown(b, "rw"))
    local flags = collect(ep, evs)[1]
    assert.equal(epoll.HUP, flags & epoll.HUP)
    assert.equal(epoll.RDHUP, flags & epoll.RDHUP)
  end)

  it("reports HUP (without asking) on a pipe whose writer closed", function()
    local ep = newep()
    local r, w = pipe()
    local evs = epoll.events(2)
    ep:add(r, 1, 0)
    assert.same({}, collect(ep, evs))
    w:close()
    assert.same({ [1] = epoll.HUP }, collect(ep, evs))
  end)

  it("reports ERR (without asking) on a pipe whose reader closed", function()
    local ep = newep()
    local r, w = pipe()
    local evs = epoll.events(2)
    ep:add(w, 1, 0)
    r:close()
    assert.same({ [1] = epoll.ERR }, collect(ep, evs))
  end)

  it("nests: an epoll fd is readable in another when its set is ready", function()
    local outer, inner = newep(), newep()
    local r, w = pipe()
    local evs = epoll.events(2)
    assert.is_true(outer:add(inner, 7, epoll.IN))
    assert.is_true(inner:add(r, 8, epoll.IN))
    assert.same({}, collect(outer, evs))
    lio.write(w, "x")
    assert.same({ [7] = epoll.IN }, collect(outer, evs))
    assert.same({ [8] = epoll.IN }, collect(inner, evs))
    lio.read(r, 1)
    assert.same({}, collect(outer, evs))
    assert_fail(E.EEXIST, outer:add(inner:fileno(), 1, epoll.IN))
  end)

  it("polls with 0: returns at once", function()
    local ep = newep()
    local evs = epoll.events(1)
    local t0 = now()
    for _ = 1, 200 do assert.equal(0, ep:wait(evs, 0)) end
    assert.is_true(now() - t0 < 2, "200 polls took " .. (now() - t0) .. " s")
  end)

  it("times out after a whole number of ms", function()
    local ep = newep()
    local evs = epoll.events(1)
    local t0 = now()
    assert.equal(0, ep:wait(evs, 30))
    local dt = now() - t0
    assert.is_true(dt >= 0.030 - resolution, "30 ms wait took " .. dt)
    assert.is_true(dt < 5, "30 ms wait took " .. dt)
  end)

  it("honours 1.5 ms: waits at least 1.5 ms and returns 0", function()
    local ep = newep()
    local evs = epoll.events(1)
    local n = 40
    local t0 = now()
    for _ = 1, n do assert.equal(0, ep:wait(evs, 1.5)) end
    local dt = now() - t0
    -- truncating to 1 ms would take 40 ms; 1.5 ms takes at least 60
    assert.is_true(dt >= n * 0.0015 - resolution, n .. " waits of 1.5 ms took " .. dt)
    assert.is_true(dt < 10, n .. " waits of 1.5 ms took " .. dt)
  end)

  it("honours 0.2 ms: never a busy poll", function()
    local ep = newep()
    local evs = epoll.events(1)
    local n = 300
    local t0 = now()
    for _ = 1, n do assert.equal(0, ep:wait(evs, 0.2)) end
    local dt = now() - t0
    assert.is_true(dt >= n * 0.0002 - resolution, n .. " waits of 0.2 ms took " .. dt)
    assert.is_true(dt < 10, n .. " waits of 0.2 ms took " .. dt)
  end)

  it("returns EINTR when a stop and continue interrupt it, and does not retry", function()
    local path = write_tmp([[
      local epoll = require "lepoll.epoll"
      local lio = require "lepoll.io"
      local ep = epoll.create()
      local evs = epoll.events(1)
      -- one event first, so that the failed wait must reset the count
      ep:add(lio.eventfd(1), 1, epoll.IN | epoll.ONESHOT)
      assert(ep:wait(evs, 0) == 1 and #evs == 1)
      print("ready") io.stdout:flush()
      local n, msg, en = ep:wait(evs, tonumber(arg[1]))
      print(n, type(msg), en == epoll.errno.EINTR, #evs) io.stdout:flush()
    ]])
    for _, timeout in ipairs { "8000", "8000.5", "-1" } do
      local p = process.spawn(process.lua_command() .. " " .. process.shquote(path)
        .. " " .. timeout, { limit = 20 })
      own(function() p:close() end)
      assert.equal("ready", p:line(), p:stderr())
      -- the Lua process is timeout(1)'s child
      local cpid
      local f = io.open(("/proc/%d/task/%d/children"):format(p.pid, p.pid))
      if f then cpid = f:read("n"); f:close() end
      if not cpid then
        f = assert(io.popen("pgrep -P " .. p.pid))
        cpid = f:read("n")
        f:close()
      end
      assert.is_not_nil(cpid, "no child pid")
      local function blocked()
        local wf = io.open("/proc/" .. cpid .. "/wchan")
        local w = wf and wf:read("a") or ""
        if wf then wf:close() end
        return w:find("epoll") ~= nil
      end
      local pause = own(epoll.create())
      local pevs = epoll.events(1)
      for _ = 1, 500 do
        if blocked() then break end
        pause:wait(pevs, 5)
      end
      assert.is_true(blocked(), "child never blocked in epoll_wait")
      assert.is_true(os.execute("kill -STOP " .. cpid) == true)
      assert.is_true(os.execute("kill -CONT " .. cpid) == true)
      assert.equal("nil\tstring\ttrue\t0", p:line(), p:stderr())
      local _, how, code = p:wait()
      assert.equal("exit", how)
      assert.equal(0, code)
    end
  end)
end)

describe("a getfd() that calls back into lepoll.epoll", function()
  -- As in the io and net specs: the recursion ends at Lua's C-call limit.
  it("ends in a Lua 'stack overflow' error on a 256 KiB C stack", function()
    local path = write_tmp([=[
      local epoll = require "lepoll.epoll"
      local ep = epoll.create()
      local calls = {
        add = function(o) return ep:add(o, 1, epoll.IN) end,
        modify = function(o) return ep:modify(o, 1, epoll.IN) end,
        delete = function(o) return ep:delete(o) end,
      }
      local call = assert(calls[arg[1]])
      local obj = { getfd = function(self) return call(self) end }
      local ok, err = pcall(call, obj)
      print(ok, (tostring(err):match("stack overflow")))
    ]=])
    for _, name in ipairs { "add", "modify", "delete" } do
      local rest, how, code, err = process.small_stack(path, name)
      assert.equal("false\tstack overflow\n", rest, name .. ": " .. err)
      assert.same({ "exit", 0 }, { how, code }, name)
    end
  end)
end)

describe("epoll.events", function()
  it("makes a fixed-capacity buffer", function()
    local evs = epoll.events(3)
    assert.equal(3, evs:capacity())
    assert.equal(0, evs:count())
    assert.equal(0, #evs)
    assert.equal("lepoll.Events (0/3)", tostring(evs))
    assert.equal(1, epoll.events(1):capacity())
    assert.equal(1 << 20, epoll.events(1 << 20):capacity())
    assert.equal(4, epoll.events(4.0):capacity())
  end)

  it("records the count of the last wait", function()
    local ep = newep()
    local evs = epoll.events(3)
    ep:add(readyfd(), 1, epoll.IN)
    ep:add(readyfd(), 2, epoll.IN)
    assert.equal(2, ep:wait(evs, 0))
    assert.equal("lepoll.Events (2/3)", tostring(evs))
    assert.equal(2, #evs)
    local d1, f1 = evs:get(1)
    local d2, f2 = evs:get(2)
    assert.same({ 1, 2 }, { math.min(d1, d2), math.max(d1, d2) })
    assert.equal(epoll.IN, f1)
    assert.equal(epoll.IN, f2)
    assert.error_matches(function() evs:get(3) end,
      "bad argument #1 to 'get' %(index out of range %[1, 2%]")
    assert.equal(0, newep():wait(evs, 0))
    assert.equal(0, #evs)
    assert.error_matches(function() evs:get(1) end, "out of range %[1, 0%]")
  end)

end)

describe("Epoll close, <close> and __gc", function()
  it("close returns true and later use raises", function()
    local ep = epoll.create()
    local fd = ep:fileno()
    assert.equal("anon_inode:[eventpoll]", fdtable()[fd])
    assert.is_true(ep:close())
    assert.equal("lepoll.Epoll (closed)", tostring(ep))
    assert.not_equal("anon_inode:[eventpoll]", fdtable()[fd])  -- ls may reuse it
    local evs = epoll.events(1)
    local uses = {
      function() ep:add(0, 1, epoll.IN) end,
      function() ep:modify(0, 1, epoll.IN) end,
      function() ep:delete(0) end,
      function() ep:wait(evs, 0) end,
      function() ep:fileno() end,
      function() ep:getfd() end,
      function() ep:close() end,
      function() newep():add(ep, 1, epoll.IN) end,  -- as an fd argument
    }
    for i, use in ipairs(uses) do
      local ok, err = pcall(use)
      assert.is_false(ok, "use " .. i)
      assert.matches("attempt to use a closed lepoll%.Epoll", err, 1, false, "use " .. i)
    end
  end)

  it("closes at the end of a <close> scope", function()
    local fd
    do
      local ep <close> = epoll.create()
      fd = ep:fileno()
      assert.equal("anon_inode:[eventpoll]", fdtable()[fd])
    end
    assert.not_equal("anon_inode:[eventpoll]", fdtable()[fd])
  end)

  it("closes unreachable Epolls when collected", function()
    collectgarbage("collect")
    local _, before = fdtable()
    do
      local eps = {}
      for i = 1, 100 do eps[i] = assert(epoll.create()) end
      local _, during = fdtable()
      assert.equal(before + 100, during)
      assert.equal(100, #eps)
    end
    collectgarbage("collect")
    collectgarbage("collect")
    local _, after = fdtable()
    assert.equal(before, after)
  end)

  it("__gc after close does not close the fd number again", function()
    local ep = epoll.create()
    ep:close()
    local r = pipe()  -- likely reuses the number
    ep = nil  -- luacheck: ignore
    collectgarbage("collect")
    assert.equal("lepoll.Fd (fd " .. r:fileno() .. ")", tostring(r))
    assert.is_not_nil(fdtable()[r:fileno()])
  end)
end)

describe("bad arguments", function()
  local nan, inf = 0 / 0, math.huge

  -- rows: { name, function that must raise, pattern its message matches }
  local function sweep(rows)
    for _, row in ipairs(rows) do
      local name, fn, pattern = row[1], row[2], row[3]
      local ok, err = pcall(fn)
      assert.is_false(ok, name .. " did not raise")
      assert.equal("string", type(err), name)
      assert.matches(pattern, err, 1, false, name .. ": " .. tostring(err))
    end
  end

  -- "bad argument #n to 'f' (why" as a pattern
  local function bad(n, f, why)
    return ("bad argument #%d to '%s' %%(%s"):format(n, f, why)
  end

  local NOINT = "number has no integer representation"

  it("raise in create", function()
    local function c(v) local ep = epoll.create(v); return ep end  -- no tail call: keeps the name
    sweep {
      { "string", function() c("x") end, bad(1, "create", "integer expected, got string") },
      { "table", function() c({}) end, bad(1, "create", "integer expected, got table") },
      { "negative", function() c(-1) end, bad(1, "create", "out of range") },
      { "unknown bit", function() c(1) end, bad(1, "create", "unknown flag bits") },
      { "huge", function() c(1 << 40) end, bad(1, "create", "out of range") },
      { "fraction", function() c(0.5) end, bad(1, "create", NOINT) },
    }
  end)

  it("raise in add, modify and delete for bad fds, data and flags", function()
    local ep = newep()
    local r = pipe()
    local closedfd = own(assert(lio.eventfd()))
    closedfd:close()
    local rows = {}
    local badfds = {
      { "nil", nil, "fd expected, got nil" },
      { "string", "3", "fd expected, got string" },
      { "boolean", true, "fd expected, got boolean" },
      { "table", {}, "fd expected, got table" },
      { "Events", epoll.events(1), "fd expected, got lepoll.Events" },
      { "negative", -1, "out of range" },
      { "2^32+3", (1 << 32) + 3, "out of range" },
      { "2^32+3 float", 2.0 ^ 32 + 3, "out of range" },
      { "fraction", 1.5, NOINT },
      { "NaN", nan, NOINT },
      { "inf", inf, NOINT },
      { "fileno() string", { fileno = function() return "x" end },
        "fileno%(%) did not return an integer" },
    }
    for _, b in ipairs(badfds) do
      local v = b[2]
      rows[#rows + 1] = { "add fd " .. b[1], function() ep:add(v, 1, epoll.IN) end,
                          bad(1, "add", b[3]) }
      rows[#rows + 1] = { "modify fd " .. b[1], function() ep:modify(v, 1, epoll.IN) end,
                          bad(1, "modify", b[3]) }
      rows[#rows + 1] = { "delete fd " .. b[1], function() ep:delete(v) end,
                          bad(1, "delete", b[3]) }
    end
    local huge = { fileno = function() return (1 << 32) + 3 end }
    rows[#rows + 1] = { "fileno() huge", function() ep:add(huge, 1, epoll.IN) end,
                        "bad argument #1 to 'add' %(fileno%(%) returned an fd out of range" }
    -- a closed fd object raises without an argument number
    for _, f in ipairs { "add", "modify", "delete" } do
      rows[#rows + 1] = { f .. " closed Fd", function() ep[f](ep, closedfd, 1, epoll.IN) end,
                          "attempt to use a closed lepoll%.Fd" }
    end
    local baddata = {
      { "nil", nil, "integer expected, got nil" },
      { "string", "1", "integer expected, got string" },
      { "table", {}, "integer expected, got table" },
      { "fraction", 0.5, NOINT },
      { "2^63", 2.0 ^ 63, NOINT },
      { "-2^64", -(2.0 ^ 64), NOINT },
      { "NaN", nan, NOINT },
      { "inf", inf, NOINT },
    }
    for _, b in ipairs(baddata) do
      local v = b[2]
      rows[#rows + 1] = { "add data " .. b[1], function() ep:add(r, v, epoll.IN) end,
                          bad(2, "add", b[3]) }
      rows[#rows + 1] = { "modify data " .. b[1], function() ep:modify(r, v, epoll.IN) end,
                          bad(2, "modify", b[3]) }
    end
    local badflags = {
      { "nil", nil, "integer expected, got nil" },
      { "string", "1", "integer expected, got string" },
      { "negative", -1, "out of range" },
      { "above 32 bits", 1 << 32, "out of range" },
      { "unknown 0x20", 0x20, "unknown flag bits" },
      { "unknown 0x800", epoll.IN | 0x800, "unknown flag bits" },
      { "unknown 1<<27", 1 << 27, "unknown flag bits" },
      { "fraction", 1.5, NOINT },
      { "NaN", nan, NOINT },
    }
    for _, b in ipairs(badflags) do
      local v = b[2]
      rows[#rows + 1] = { "add flags " .. b[1], function() ep:add(r, 1, v) end,
                          bad(3, "add", b[3]) }
      rows[#rows + 1] = { "modify flags " .. b[1], function() ep:modify(r, 1, v) end,
                          bad(3, "modify", b[3]) }
    end
    sweep(rows)
    -- none of them registered anything
    assert_fail(E.ENOENT, ep:delete(r))
  end)

  it("raise in wait for bad events and timeouts", function()
    local ep = newep()
    local evs = epoll.events(1)
    local EV = "lepoll%.Events expected, got "
    local rows = {
      { "nil events", function() ep:wait(nil, 0) end, bad(1, "wait", EV .. "nil") },
      { "table events", function() ep:wait({}, 0) end, bad(1, "wait", EV .. "table") },
      { "number events", function() ep:wait(4, 0) end, bad(1, "wait", EV .. "number") },
      { "Epoll as events", function() ep:wait(ep, 0) end, bad(1, "wait", EV .. "lepoll%.Epoll") },
    }
    local RANGE = "timeout must be %-1 or in %[0, 2147483647%] ms%)"
    local badtimeouts = {
      { "NaN", nan, RANGE }, { "inf", inf, RANGE }, { "-inf", -inf, RANGE },
      { "-2", -2, RANGE }, { "-1.5", -1.5, RANGE }, { "-0.5", -0.5, RANGE },
      { "mininteger", math.mininteger, RANGE }, { "2^31", 1 << 31, RANGE },
      { "2^31 float", 2.0 ^ 31, RANGE }, { "2^31-0.5", 2.0 ^ 31 - 0.5, RANGE },
      { "2^32", 1 << 32, RANGE }, { "maxinteger", math.maxinteger, RANGE },
      { "1e300", 1e300, RANGE },
      { "string", "10", "number expected, got string" },
      { "table", {}, "number expected, got table" },
      { "boolean", false, "number expected, got boolean" },
    }
    for _, b in ipairs(badtimeouts) do
      local v = b[2]
      rows[#rows + 1] = { "timeout " .. b[1], function() ep:wait(evs, v) end,
                          bad(2, "wait", b[3]) }
    end
    sweep(rows)
  end)

  it("raise in events for bad capacities", function()
    local rows = {}
    for _, b in ipairs {
      { "0", 0, "out of range %[1, 1048576%]" },
      { "-1", -1, "out of range" },
      { "2^20+1", (1 << 20) + 1, "out of range" },
      { "2^40", 1 << 40, "out of range" },
      { "maxinteger", math.maxinteger, "out of range" },
      { "mininteger", math.mininteger, "out of range" },
      { "2^63 float", 2.0 ^ 63, NOINT },
      { "1.5", 1.5, NOINT },
      { "NaN", nan, NOINT },
      { "inf", inf, NOINT },
      { "string", "4", "integer expected, got string" },
      { "nil", nil, "integer expected, got nil" },
    } do
      local v = b[2]
      rows[#rows + 1] = { "capacity " .. b[1], function() epoll.events(v) end,
                          bad(1, "events", b[3]) }
    end
    sweep(rows)
  end)

  it("raise in get, count, capacity, # and tostring for bad indexes and selves", function()
    local ep = newep()
    local evs = epoll.events(2)
    ep:add(readyfd(), 1, epoll.IN)
    assert.equal(1, ep:wait(evs, 0))
    local rows = {}
    for _, b in ipairs {
      { "0", 0, "index out of range %[1, 1%]" },
      { "-1", -1, "index out of range" },
      { "count+1", 2, "index out of range" },
      { "capacity+1", 3, "index out of range" },
      { "maxinteger", math.maxinteger, "index out of range" },
      { "mininteger", math.mininteger, "index out of range" },
      { "1.5", 1.5, NOINT },
      { "NaN", nan, NOINT },
      { "string", "1", "integer expected, got string" },
      { "nil", nil, "integer expected, got nil" },
    } do
      local v = b[2]
      rows[#rows + 1] = { "get " .. b[1], function() evs:get(v) end, bad(1, "get", b[3]) }
    end
    local mt = getmetatable(evs)
    local Events, Epoll = mt.__index, getmetatable(ep).__index
    local EV, EP = "lepoll%.Events expected, got ", "lepoll%.Epoll expected, got "
    local more = {
      { "get on Epoll", function() Events.get(ep, 1) end, EV .. "lepoll%.Epoll" },
      { "count on table", function() Events.count({}) end, EV .. "table" },
      { "capacity on nothing", function() Events.capacity() end, EV .. "no value" },
      { "__len on string", function() mt.__len("x") end, EV .. "string" },
      { "__tostring on number", function() mt.__tostring(1) end, EV .. "number" },
    }
    for _, m in ipairs { "add", "modify", "delete", "wait" } do
      more[#more + 1] = { m .. " on Events", function() Epoll[m](evs, 1, 1, 1) end,
                          EP .. "lepoll%.Events" }
      more[#more + 1] = { m .. " on a number", function() Epoll[m](3, 1, 1, 1) end,
                          EP .. "number" }
    end
    for _, row in ipairs(more) do rows[#rows + 1] = row end
    sweep(rows)
    assert.equal(1, #evs)  -- untouched by the failures
  end)
end)
