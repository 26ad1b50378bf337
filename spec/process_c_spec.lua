-- Specs for lepoll.process (csrc/process.c): fork, waitid, signals,
-- getppid, cpu_count, parent_death_signal, the environment, and execve
-- with fds handed on at 3.. (checked by the program it starts).
local process = require "lepoll.process"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local files = require "support.files"
local cleanup = require "support.cleanup"
local sp = require "support.process"
local assert_fail = require("support.result").assert_fail

local E = process.errno
local q = sp.shquote
local SIGQUIT, SIGKILL, SIGTERM = 3, 9, 15
local INT_MAX = 0x7fffffff
local UNUSED_FD = 1000000  -- a valid fd number that is never open here
local LUA = "/usr/bin/lua5.4"
local BOUND = 30000  -- ms: every wait for a child (valgrind is slow)
-- valgrind (3.19) knows neither pidfd_open nor pidfd_send_signal (ENOSYS),
-- so no pidfd reaches waitid there: its children are reaped by pid
-- (spec/support/resolve_fork.c), and waitid meets only fds that are no
-- pidfds.
local VALGRIND = os.getenv("LEPOLL_SANITIZED") == "valgrind"

local track, closeall = cleanup.tracker()
after_each(closeall)

-- What this process has open, and what execve should leave: shared by
-- the spec, its forked children and the programs they start (LIB runs as
-- a script there: `lua5.4 LIB OUT ARGS...` writes what it finds to OUT).
local LIB = [==[
local files = require "support.files"
local net = require "lepoll.net"
local O_CLOEXEC = 0x80000

local function num(fd)
  return type(fd) == "number" and fd or fd:fileno()
end

local function cloexec(fd)
  return files.fdflags(fd) & O_CLOEXEC ~= 0 and "cloexec" or "-"
end

-- "3 socket:[123] 127.0.0.1:4000 -": number, file, socket name, FD_CLOEXEC
-- of every fd open, by number.
local function lines(t)
  local fds = {}
  for fd in pairs(t) do fds[#fds + 1] = fd end
  table.sort(fds)
  local out = {}
  for i, fd in ipairs(fds) do out[i] = fd .. " " .. t[fd] .. "\n" end
  return table.concat(out)
end

local function name(fd)
  local host, port = net.getsockname(fd)
  return host and (port and host .. ":" .. port or host) or "-"
end

local M = {}

-- The fds open here, each with its FD_CLOEXEC.
function M.snapshot()
  local t = {}
  for fd, target in pairs(files.fds()) do
    t[fd] = target .. " " .. name(fd) .. " " .. cloexec(fd)
  end
  return lines(t)
end

-- What a program started by execve(..., list) should find: the list at
-- 3.. and, besides 0..2, every fd above them without FD_CLOEXEC.
function M.expected(list)
  list = list or {}
  local n, t = #list, {}
  for fd, target in pairs(files.fds()) do
    if fd <= 2 or (fd >= 3 + n and cloexec(fd) == "-") then
      t[fd] = target .. " " .. name(fd) .. " -"
    end
  end
  for i, fd in ipairs(list) do
    fd = num(fd)
    t[2 + i] = assert(files.fds()[fd], "not open") .. " " .. name(fd) .. " -"
  end
  return lines(t)
end

local out = ...
if out then
  local report = M.snapshot() .. "argv " .. table.concat(arg, " ", 2) .. "\n"
    .. "env " .. tostring(os.getenv("LEPOLL_PROC_X")) .. "\n"
  local f = assert(io.open(out, "w"))
  assert(f:write(report))
  assert(f:close())
  return
end
return M
]==]
local lib = assert(load(LIB, "=LIB"))()

local function tmpfile(text)
  local path = files.tmpfile(text)
  track(function() os.remove(path) end)
  return path
end

-- Wait up to ms for fd to become readable: true or false.
local function readable(fd, ms)
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(fd, 1, epoll.IN))
  return assert(ep:wait(evs, ms)) == 1
end

-- One line from a pipe, waiting at most BOUND ms for each read.
local function readline(fd)
  local s = ""
  while not s:find("\n") do
    assert(readable(fd, BOUND), "no line within the bound, got: " .. s)
    local chunk = assert(lio.read(fd, 256))
    if chunk == "" then break end
    s = s .. chunk
  end
  return s
end

local function pipe() return track(assert(lio.pipe())) end

local function listener()
  local s = track(assert(net.socket(net.INET, net.STREAM)))
  assert(net.bind(s, "127.0.0.1", 0))
  assert(net.listen(s))
  return s
end

-- An environment for a program started by execve: this one's, with the
-- spec's module paths (and the sanitizer's preload, if any).
local function exec_env(extra)
  local env = {}
  for _, kv in ipairs(process.environ()) do
    if not kv:find("^LUA_") and not kv:find("^LEPOLL_PROC_X=") then env[#env + 1] = kv end
  end
  env[#env + 1] = "LUA_PATH=./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"
  env[#env + 1] = "LUA_CPATH=" .. (os.getenv("LEPOLL_CPATH") or "./build/?.so") .. ";;"
  for _, kv in ipairs(extra or {}) do env[#env + 1] = kv end
  return env
end

-- How a forked child ends, with status code: it becomes `sh -c 'exit
-- CODE'`. Nothing of busted's runs in it (its summary is the parent's),
-- nor C atexit handlers, nor valgrind's leak check of a Lua state that was
-- never closed (os.exit(code) would run those two).
local function exit(code)
  process.execve("/bin/sh", { "sh", "-c", "exit " .. code }, {})
  os.exit(code)  -- not reached: execve failed
end

-- fork(); the child runs fn and ends there, with fn's result as its exit
-- status, or 99 (and the error on stderr) if fn raised: busted must never
-- go on in a child.
local function fork(fn)
  local pid = assert(process.fork())
  if pid == 0 then
    local ok, code = pcall(function()
      -- what earlier specs blocked or ignored is no business of the child
      assert(lio.sigmask("setmask", {}))
      for _, sig in ipairs({ "TERM", "QUIT", "CHLD" }) do assert(lio.default_signal(sig)) end
      return fn()
    end)
    if not ok then io.stderr:write("forked child: ", tostring(code), "\n") end
    exit(ok and (math.tointeger(code) or 0) or 99)
  end
  return pid
end

local reaper = VALGRIND and require "resolve_fork"

-- Wait (bounded) for child c to end and reap it: how and code as waitid
-- returns them.
local function reap(c)
  c.reaped = true
  if VALGRIND then
    local st = reaper.wait(c.pid)  -- the child is ending: bounded by it
    if st < 0 then return "killed", -st end
    return "exited", st
  end
  assert(readable(c.pidfd, BOUND), "the child did not end")
  return process.waitid(c.pidfd)
end

-- A forked child running fn, with a pidfd; killed and reaped after the
-- test if it has not been.
local function spawn(fn, pidfd_flags)
  local c = { pid = fork(fn) }
  if VALGRIND then
    assert_fail(lio.errno.ENOSYS, lio.pidfd_open(c.pid))
  else
    c.pidfd = track(assert(lio.pidfd_open(c.pid, pidfd_flags)))
  end
  track(function()
    if not c.reaped then
      process.kill(c.pid, SIGKILL)
      reap(c)
    end
  end)
  return c
end

describe("lepoll.process module", function()
  it("has a version, an errno table and the contract's functions", function()
    assert.equal("lepoll 0.1.0", process._VERSION)
    assert.equal(10, E.ECHILD)
    assert.equal(3, E.ESRCH)
    local names = {}
    for k, v in pairs(process) do
      if type(v) == "function" then names[#names + 1] = k end
    end
    table.sort(names)
    assert.same({ "cpu_count", "environ", "execve", "fork", "getppid", "kill",
      "parent_death_signal", "send_signal", "setenv", "waitid" }, names)
  end)
end)

describe("lepoll.process.fork and waitid", function()
  it("fork returns 0 in the child and its pid in the parent; waitid says false "
    .. "while it runs, then exited and its status; then ECHILD", function()
    local r, w = pipe()
    local rep_r, rep_w = pipe()
    local c = spawn(function()
      assert(w:close())
      assert(lio.write(rep_w, ("%d %d\n"):format(lio.getpid(), process.getppid())))
      assert.equal("", lio.read(r, 1))  -- blocks until the parent closes w
      return 7
    end)
    assert(rep_w:close())
    local pid, ppid = readline(rep_r):match("^(%d+) (%d+)\n$")
    assert.equal(c.pid, tonumber(pid))
    assert.equal(lio.getpid(), tonumber(ppid))
    if not VALGRIND then
      assert.is_false(process.waitid(c.pidfd))
      assert.is_false(process.waitid(c.pidfd:fileno()))
    end
    assert(w:close())
    assert.same({ "exited", 7 }, { reap(c) })
    if not VALGRIND then
      assert_fail(E.ECHILD, process.waitid(c.pidfd))
    end
  end)

  it("waitid on a NONBLOCK pidfd is false too (no EAGAIN), and exit status 0 and 255",
    function()
    for _, status in ipairs({ 0, 255 }) do
      local r, w = pipe()
      local c = spawn(function()
        assert(w:close())
        assert.equal("", lio.read(r, 1))
        return status
      end, lio.NONBLOCK)
      if not VALGRIND then assert.is_false(process.waitid(c.pidfd)) end
      assert(w:close())
      assert.same({ "exited", status }, { reap(c) })
    end
  end)

  -- A child that waits until a signal ends it (or the spec's copy of w is
  -- closed, after the test), once it is ready for the signal.
  local function waiting()
    local r, w = pipe()
    local rep_r, rep_w = pipe()
    local c = spawn(function()
      assert(w:close())
      assert(lio.write(rep_w, "ready\n"))
      lio.read(r, 1)
      return 0
    end)
    assert(rep_w:close())
    assert.equal("ready\n", readline(rep_r))
    return c
  end

  it("reports a child killed by send_signal, then send_signal is ESRCH", function()
    local c = waiting()
    if VALGRIND then
      assert_fail(E.ENOSYS, process.send_signal(pipe(), SIGTERM))
      -- KILL: valgrind reports the leaks of a child a TERM ends (its Lua
      -- state was never closed); it has no say on a KILL
      assert(process.kill(c.pid, SIGKILL))
      assert.same({ "killed", SIGKILL }, { reap(c) })
      return
    end
    assert.is_true(process.send_signal(c.pidfd, SIGTERM))
    assert.same({ "killed", SIGTERM }, { reap(c) })
    assert_fail(E.ESRCH, process.send_signal(c.pidfd, SIGTERM))
  end)

  it("reports a child killed by kill(pid)", function()
    local c = waiting()
    assert.is_true(process.kill(c.pid, SIGKILL))
    assert.same({ "killed", SIGKILL }, { reap(c) })
  end)

  it("reports dumped and the signal for a child that left a core", function()
    local dir = os.tmpname()
    assert(os.remove(dir))
    assert(os.execute("mkdir -m 700 " .. q(dir)))
    track(function() os.execute("rm -rf " .. q(dir)) end)
    local c = spawn(function()
      -- a program of its own: a core of the spec's Lua (or of ASan's
      -- shadow memory) would be big; this one's is small
      local _, msg = process.execve("/bin/sh", { "sh", "-c",
        "cd " .. q(dir) .. " && ulimit -c unlimited && kill -QUIT $$" },
        { "PATH=/usr/bin:/bin" })
      error(msg)
    end)
    -- resolve_fork's wait (valgrind) tells no core from none
    assert.same({ VALGRIND and "killed" or "dumped", SIGQUIT }, { reap(c) })
  end)

  it("waitid is ECHILD for a process that is not our child", function()
    if VALGRIND then
      assert_fail(lio.errno.ENOSYS, lio.pidfd_open(process.getppid()))
      return
    end
    local pidfd <close> = assert(lio.pidfd_open(process.getppid()))
    assert_fail(E.ECHILD, process.waitid(pidfd))
  end)

  it("waitid and send_signal refuse an fd that is no pidfd, and a closed one (EBADF)",
    function()
    local r = pipe()
    assert_fail(E.EBADF, process.waitid(r))
    assert_fail(E.EBADF, process.waitid(UNUSED_FD))
    assert_fail(VALGRIND and E.ENOSYS or E.EBADF, process.send_signal(r, SIGTERM))
    assert_fail(VALGRIND and E.ENOSYS or E.EBADF, process.send_signal(UNUSED_FD, SIGTERM))
  end)
end)

describe("lepoll.process.kill", function()
  it("is ESRCH for a pid no process can have (above any pid_max)", function()
    assert_fail(E.ESRCH, process.kill(INT_MAX, SIGTERM))
  end)
end)

describe("lepoll.process.getppid", function()
  it("is the parent's pid as /proc says", function()
    local stat = files.slurp("/proc/self/stat")
    local ppid = tonumber(stat:match("^%d+ %b() %a (%d+)"))
    assert.equal(ppid, process.getppid())
  end)
end)

describe("lepoll.process.cpu_count", function()
  it("is what nproc prints", function()
    local out, ok = sp.sh("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc")
    assert.is_true(ok, out)
    assert.equal(tonumber(out), process.cpu_count())
    assert.is_true(process.cpu_count() >= 1)
  end)

  it("counts the affinity mask: 1 under taskset -c 0", function()
    local out, ok = sp.sh("taskset -c 0 " .. sp.lua_command()
      .. " -e 'print(require(\"lepoll.process\").cpu_count())'")
    assert.is_true(ok, out)
    assert.equal("1\n", out)
  end)
end)

describe("lepoll.process.parent_death_signal", function()
  -- The spec forks a child, which forks a grandchild that holds the write
  -- end of a pipe (and says so on it); then the child exits. The
  -- grandchild's end of the pipe tells the spec what became of it.
  local function orphan(grandchild)
    local r, w = pipe()
    local go_r, go_w = pipe()
    local c = spawn(function()
      assert(go_w:close())
      assert(r:close())
      local pid = assert(process.fork())
      if pid == 0 then
        local ok, err = pcall(grandchild, w)
        if not ok then io.stderr:write("grandchild: ", tostring(err), "\n") end
        exit(ok and 0 or 98)
      end
      assert(w:close())
      lio.read(go_r, 1)  -- until the spec says go (or closes go_w)
      return 0
    end)
    assert(w:close())
    assert(go_r:close())
    local first = readline(r)
    assert.equal("ready " .. c.pid .. "\n", first)
    assert(lio.write(go_w, "x"))
    assert.same({ "exited", 0 }, { reap(c) })
    return r, c
  end

  it("kills the grandchild when its parent exits (EOF on its pipe)", function()
    local r = orphan(function(w)
      assert.is_true(process.parent_death_signal(SIGKILL))
      assert(lio.write(w, "ready " .. process.getppid() .. "\n"))
      -- bounded: if the signal never comes the spec has failed by then
      local ep <close> = assert(epoll.create())
      ep:wait(epoll.events(1), 2 * BOUND)
      assert(lio.write(w, "still alive\n"))
    end)
    assert.is_true(readable(r, BOUND))
    assert.equal("", lio.read(r, 100))
  end)

  it("0 clears it: the grandchild outlives its parent", function()
    local r = orphan(function(w)
      assert.is_true(process.parent_death_signal(SIGKILL))
      assert.is_true(process.parent_death_signal(0))
      local parent = process.getppid()
      assert(lio.write(w, "ready " .. parent .. "\n"))
      -- its own bounded poll for the parent's death (no event says it)
      local ep <close> = assert(epoll.create())
      local evs = epoll.events(1)
      for _ = 1, 2 * BOUND / 10 do
        if process.getppid() ~= parent then break end
        ep:wait(evs, 10)
      end
      assert(lio.write(w, "orphaned " .. tostring(process.getppid() ~= parent) .. "\n"))
    end)
    assert.equal("orphaned true\n", readline(r))
    assert.is_true(readable(r, BOUND))
    assert.equal("", lio.read(r, 100))
  end)
end)

describe("lepoll.process environment", function()
  local NAME = "LEPOLL_PROC_SPEC"
  after_each(function() process.setenv(NAME, nil) end)

  local function find(name)
    local found
    for _, kv in ipairs(process.environ()) do
      assert.is_string(kv)
      if kv:sub(1, #name + 1) == name .. "=" then
        assert.is_nil(found, "twice: " .. name)
        found = kv:sub(#name + 2)
      end
    end
    return found
  end

  it("environ lists NAME=value strings, PATH among them", function()
    assert.equal(os.getenv("PATH"), find("PATH"))
    for _, kv in ipairs(process.environ()) do assert.matches("=", kv, 1, true) end
  end)

  it("setenv sets, overwrites and (value nil) removes: environ and os.getenv agree", function()
    assert.is_nil(find(NAME))
    assert.is_true(process.setenv(NAME, "a=b c"))
    assert.equal("a=b c", find(NAME))
    assert.equal("a=b c", os.getenv(NAME))
    assert.is_true(process.setenv(NAME, ""))
    assert.equal("", find(NAME))
    assert.equal("", os.getenv(NAME))
    assert.is_true(process.setenv(NAME, nil))
    assert.is_nil(find(NAME))
    assert.is_nil(os.getenv(NAME))
    assert.is_true(process.setenv(NAME))  -- removing what is not there
    assert.is_nil(find(NAME))
  end)
end)

describe("lepoll.process.execve", function()
  local libpath
  lazy_setup(function() libpath = files.tmpfile(LIB) end)
  lazy_teardown(function() os.remove(libpath) end)

  -- In a forked child: prepare() returns the fds to hand on (nil: none)
  -- and what must stay open until execve (not collected: Fds and files
  -- close on __gc); the child writes what the program should find, then
  -- execs lua5.4 running LIB, which writes what it finds. Returns both.
  local function exec_case(prepare)
    local want, got = tmpfile(), tmpfile()
    local c = spawn(function()
      local list, keep = prepare()
      local expected = lib.expected(list)
      local f = assert(io.open(want, "w"))
      assert(f:write(expected, "argv x y\nenv here\n"))
      assert(f:close())
      local _, msg = process.execve(LUA, { "lua5.4", libpath, got, "x", "y" },
        exec_env({ "LEPOLL_PROC_X=here" }), list)
      error("execve: " .. tostring(msg) .. tostring(keep))
    end)
    assert.same({ "exited", 0 }, { reap(c) })
    return files.slurp(want), files.slurp(got)
  end

  -- Listening sockets above 5: children close what sits at 3..5 and must
  -- not close these. The pipes that fill 0..5 are closed after the test.
  local function listeners(n)
    repeat local r = pipe() until r:fileno() > 5
    local t = {}
    for i = 1, n do t[i] = listener() end
    return table.unpack(t)
  end

  -- In the child: close whatever sits at 3 and 4 and put copies of a and b
  -- there (the lowest free numbers).
  local function at3and4(a, b)
    lio.close(3)
    lio.close(4)
    local a3, b4 = assert(lio.dup(a)), assert(lio.dup(b))
    assert(a3:fileno() == 3 and b4:fileno() == 4, "not at 3 and 4")
    return a3, b4
  end

  it("hands the fds on at 3, 4, 5 in order, without FD_CLOEXEC; argv and env arrive",
    function()
    local a, b, c = listeners(3)
    local want, got = exec_case(function() return { a, b, c } end)
    assert.equal(want, got)
    local _, port = net.getsockname(b)
    assert.matches("\n4 socket:%[%d+%] 127%.0%.0%.1:" .. port .. " %-\n", got)
    assert.matches("argv x y\nenv here\n", got, 1, true)
  end)

  it("without fds: nothing new at 3.., the fds without FD_CLOEXEC stay", function()
    local a = listeners(1)
    local want, got = exec_case(function() return nil end)
    assert.equal(want, got)
    assert.is_nil(got:find(files.fds()[a:fileno()], 1, true))
  end)

  it("fds already at 3 and 4, in place", function()
    local a, b = listeners(2)
    local want, got = exec_case(function()
      local a3, b4 = at3and4(a, b)
      return { a3, b4 }
    end)
    assert.equal(want, got)
  end)

  it("fds at 3 and 4 in swapped order", function()
    local a, b = listeners(2)
    local _, pa = net.getsockname(a)
    local _, pb = net.getsockname(b)
    local want, got = exec_case(function()
      local a3, b4 = at3and4(a, b)
      return { b4, a3 }
    end)
    assert.equal(want, got)
    assert.matches("\n3 socket:%[%d+%] 127%.0%.0%.1:" .. pb .. " %-\n4 socket:%[%d+%] "
      .. "127%.0%.0%.1:" .. pa .. " %-\n", got)
  end)

  it("one fd moves up from 3 while another comes in; the same fd twice", function()
    local a, b, c = listeners(3)
    local want, got = exec_case(function()
      local a3, b4 = at3and4(a, b)
      return { c, a3, c }, { b4 }
    end)
    assert.equal(want, got)
    local _, pc = net.getsockname(c)
    assert.matches("\n3 [^\n]*:" .. pc .. " %-\n4 [^\n]*\n5 [^\n]*:" .. pc .. " %-\n", got)
  end)

  it("an fd without FD_CLOEXEC at a target gives way, one above keeps its number",
    function()
    local a, b = listeners(2)
    local gone, kept = tmpfile("gone"), tmpfile("kept")
    local want, got = exec_case(function()
      local a3, b4 = at3and4(a, b)
      assert(b4:close())
      -- io.open leaves FD_CLOEXEC off: at 4 (a target), then above
      local f4 = assert(io.open(gone))
      local f5 = assert(io.open(kept))
      assert(files.fds()[4] == gone, "not at 4")
      return { a3, b }, { f4, f5 }
    end)
    assert.equal(want, got)
    assert.is_nil(got:find(gone, 1, true))
    assert.matches(" " .. kept:gsub("%p", "%%%0") .. " %- %-\n", got)
  end)

  describe("failing", function()
    it("ENOENT leaves every fd as it was (files and FD_CLOEXEC), none leaked", function()
      local a, b, c = listeners(3)
      local before = lib.snapshot()
      assert_fail(E.ENOENT, process.execve("/nonexistent/lepoll", { "x" }, {}, { a, b, c, a }))
      assert.equal(before, lib.snapshot())
      assert_fail(E.ENOENT, process.execve("/nonexistent/lepoll", { "x" }, {}))
      assert.equal(before, lib.snapshot())
    end)

    it("EBADF for an fd given that is not open: nothing moved", function()
      local a = listeners(1)
      local before = lib.snapshot()
      assert_fail(E.EBADF, process.execve("/nonexistent/lepoll", { "true" }, {}, { a, UNUSED_FD }))
      assert.equal(before, lib.snapshot())
      assert_fail(E.EBADF, process.execve("/nonexistent/lepoll", { "true" }, {}, { UNUSED_FD, a }))
      assert.equal(before, lib.snapshot())
    end)

    it("ENOENT with 3 (no FD_CLOEXEC), 4 (FD_CLOEXEC) and 5 (closed) at the targets "
      .. "in a child: all three as they were", function()
      local a, b = listeners(2)
      local file = tmpfile("three")
      local report = tmpfile()
      local c = spawn(function()
        for fd = 3, 5 do lio.close(fd) end
        local f3 = assert(io.open(file))
        local s4 = assert(lio.dup(a))
        assert(files.fds()[3] == file and s4:fileno() == 4, "not at 3 and 4")
        local before = lib.snapshot()
        local r = table.pack(process.execve("/nonexistent/lepoll", { "x" }, {}, { 4, 3, b }))
        local after = lib.snapshot()
        local f = assert(io.open(report, "w"))
        assert(f:write(before, "--\n", after, "--\n", r.n, " ", tostring(r[1]), " ",
          tostring(r[3]), "\n"))
        assert(f:close())
        assert(f3 and s4)
        return 0
      end)
      assert.same({ "exited", 0 }, { reap(c) })
      local before, after, result = files.slurp(report):match("^(.-)%-%-\n(.-)%-%-\n(.*)$")
      assert.equal(before, after)
      assert.matches("^3 " .. file:gsub("%p", "%%%0") .. " %- %-\n4 socket:[^\n]* cloexec\n",
        before:match("\n(3 .*)$"))
      assert.is_nil(before:find("\n5 "))
      assert.equal("3 nil " .. E.ENOENT .. "\n", result)
    end)

    it("E2BIG leaves every fd as it was (in a lua5.4 of its own: valgrind cannot "
      .. "survive a failed execve it did not foresee)", function()
      local script = tmpfile([[
        local process = require "lepoll.process"
        local net = require "lepoll.net"
        local lib = dofile(...)
        local s = {}
        for i = 1, 3 do
          s[i] = assert(net.socket(net.INET, net.STREAM))
          assert(net.bind(s[i], "127.0.0.1", 0))
        end
        local before = lib.snapshot()
        local _, _, en = process.execve("/bin/true", { "true", string.rep("a", 200000) },
          {}, { s[3], s[1], s[2] })
        print(en == process.errno.E2BIG, before == lib.snapshot())
      ]])
      local out, ok = sp.sh(sp.lua_command():gsub("LUA_PATH='", "LUA_PATH='./spec/?.lua;")
        .. " " .. q(script) .. " " .. q(libpath))
      assert.is_true(ok, out)
      assert.equal("true\ttrue\n", out)
    end)
  end)
end)

describe("lepoll.process argument errors", function()
  it("name the argument", function()
    local r = pipe()
    local closed = pipe()
    closed:close()
    -- { function, arguments, the argument named (nil: none), message }
    local OUT_FD, OUT_SIG = "out of range [0, 2147483647]", "out of range [1, 64]"
    local NOINT = "number has no integer representation"
    local BADFD = "fd at index 1 is not an integer in [0, 2147483647]"
    local CLOSED = "attempt to use a closed lepoll.Fd"
    local cases = {
      { "waitid", {}, 1, "fd expected, got no value" },
      { "waitid", { -1 }, 1, OUT_FD },
      { "waitid", { closed }, nil, CLOSED },
      { "send_signal", {}, 1, "fd expected, got no value" },
      { "send_signal", { r }, 2, "integer expected, got no value" },
      { "send_signal", { r, 0 }, 2, OUT_SIG },
      { "send_signal", { r, 65 }, 2, OUT_SIG },
      { "send_signal", { r, "TERM" }, 2, "integer expected, got string" },
      { "kill", { 0, SIGTERM }, 1, "out of range [1, 2147483647]" },
      { "kill", { -1, SIGTERM }, 1, "out of range [1, 2147483647]" },
      { "kill", { 2 ^ 31, SIGTERM }, 1, "out of range [1, 2147483647]" },
      { "kill", { 1.5, SIGTERM }, 1, NOINT },
      { "kill", { INT_MAX, 0 }, 2, OUT_SIG },
      { "kill", { INT_MAX }, 2, "integer expected, got no value" },
      { "parent_death_signal", { -1 }, 1, "out of range [0, 64]" },
      { "parent_death_signal", { 65 }, 1, "out of range [0, 64]" },
      { "parent_death_signal", {}, 1, "integer expected, got no value" },
      { "setenv", { "", "x" }, 1, "name is empty" },
      { "setenv", { "A=B", "x" }, 1, "name contains '='" },
      { "setenv", { "A\0B", "x" }, 1, "name contains a zero byte" },
      { "setenv", { 1, "x" }, 1, "string expected, got number" },
      { "setenv", { "A", "x\0y" }, 2, "value contains a zero byte" },
      { "setenv", { "A", 5 }, 2, "string expected, got number" },
      { "execve", {}, 1, "string expected, got no value" },
      { "execve", { "/bin/\0true", { "x" }, {} }, 1, "path contains a zero byte" },
      { "execve", { "/nonexistent/lepoll", "x", {} }, 2, "table expected, got string" },
      { "execve", { "/nonexistent/lepoll", {}, {} }, 2, "argv is empty (argv[0] expected)" },
      { "execve", { "/nonexistent/lepoll", { "x", 5 }, {} }, 2,
        "argv: string expected at index 2, got number" },
      { "execve", { "/nonexistent/lepoll", { "x\0" }, {} }, 2,
        "argv: zero byte in the string at index 1" },
      { "execve", { "/nonexistent/lepoll", { "x" } }, 3, "table expected, got no value" },
      { "execve", { "/nonexistent/lepoll", { "x" }, { "A=1", true } }, 3,
        "env: string expected at index 2, got boolean" },
      { "execve", { "/nonexistent/lepoll", { "x" }, { "A=\0" } }, 3,
        "env: zero byte in the string at index 1" },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, 3 }, 4, "table expected, got number" },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, { r, "3" } }, 4,
        "fd expected at index 2, got string" },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, { -1 } }, 4, BADFD },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, { 0.5 } }, 4, BADFD },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, { r, closed } }, nil, CLOSED },
      { "execve", { "/nonexistent/lepoll", { "x" }, {}, { {} } }, 4, "fd expected, got table" },
    }
    local before = lib.snapshot()
    for _, case in ipairs(cases) do
      local name, args, arg, msg = case[1], case[2], case[3], case[4]
      if arg then msg = ("bad argument #%d to '%s' (%s)"):format(arg, name, msg) end
      -- called as process.NAME(...), the name the error shows
      local call = assert(load("local process, args = ...\nprocess." .. name
        .. "(table.unpack(args))", "=" .. name))
      assert.has_error(function() call(process, args) end, msg)
    end
    assert.equal(before, lib.snapshot())
  end)

  it("a fileno() that raises in the fds is an error, nothing moved", function()
    local obj = { fileno = function() error("no fd here", 0) end }
    local s = listener()
    local before = lib.snapshot()
    assert.has_error(function()
      process.execve("/nonexistent/lepoll", { "x" }, {}, { s, obj })
    end, "no fd here")
    assert.equal(before, lib.snapshot())
  end)
end)
