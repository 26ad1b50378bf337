-- resolve_inner.lua MODE - spec/resolve_spec.lua's checks that need a
-- name server, run inside the namespace spec/support/resolve_ns.sh makes
-- (MODE "dns" or "hole", as there). Prints "RESULT <name> ok" or
-- "RESULT <name> fail <why>" per check; exits 0 when it got that far.
local lepoll = require "lepoll"
local net = require "lepoll.net"
local lfs = require "lfs"

local mode = assert(arg[1], "usage: resolve_inner.lua dns|hole")
local SLOW = os.getenv("LEPOLL_SANITIZED") == "valgrind" and 6 or 1
local SANITIZED = os.getenv("LEPOLL_SANITIZED") ~= nil

local function count_dir(path)
  local n = 0
  for e in lfs.dir(path) do
    if e ~= "." and e ~= ".." then n = n + 1 end
  end
  return n
end
local function fds() return count_dir("/proc/self/fd") end
-- The loop's and the pool's fds (epoll, timerfd, eventfd), not the
-- sockets glibc opens inside a lookup still running on a pool thread.
local function anon_fds()
  local n = 0
  for e in lfs.dir("/proc/self/fd") do
    local t = e ~= "." and e ~= ".." and lfs.symlinkattributes("/proc/self/fd/" .. e, "target")
    if t and t:find("^anon_inode:") then n = n + 1 end
  end
  return n
end
local function tasks() return count_dir("/proc/self/task") end
local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function check(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    print("RESULT " .. name .. " ok")
  else
    print("RESULT " .. name .. " fail " .. tostring(err):gsub("\n", " | "))
  end
  io.stdout:flush()
end

local function same(want, got, what)
  local a, b = table.concat(want, ","), type(got) == "table" and table.concat(got, ",")
    or tostring(got)
  if a ~= b then error(("%s: expected {%s}, got {%s}"):format(what or "", a, b), 2) end
end

-- Run fn(loop) in a task of a fresh loop until it returns (bounded).
local function in_loop(fn, opts, limit)
  local loop = lepoll.loop(opts)
  local done, err = false, nil
  loop:spawn(function()
    local ok, e = xpcall(fn, debug.traceback, loop)
    done, err = true, not ok and e
    loop:stop()
  end)
  local guard = loop:after((limit or 20) * SLOW, function() loop:stop() end)
  if not done then loop:run() end
  guard:cancel()
  loop:close()
  if err then error(err, 0) end
  assert(done, "the task did not finish in time")
end

-- A hello server on loop: returns its port.
local function hello(loop, host)
  local s = assert(loop:listen({ host = host or "127.0.0.1", port = 0 }, function(c)
    c:write("hello\n")
  end))
  local _, port = s:address()
  return port, s
end

if mode == "dns" then
  check("hosts", function()
    in_loop(function(loop)
      same({ "10.1.2.3" }, loop:resolve("hosted.test"), "hosted.test")
      same({ "::1", "127.0.0.1" }, loop:resolve("two.test"), "two.test")
      same({ "127.0.0.1" }, loop:resolve("two.test", { family = "inet" }), "inet")
      same({ "::1" }, loop:resolve("two.test", { family = "inet6", timeout = 5 }), "inet6")
    end)
  end)

  check("dnsmasq", function()
    in_loop(function(loop)
      same({ "127.0.0.1" }, loop:resolve("www.x.test"), "www.x.test")
      local a, msg, code = loop:resolve("nope.test")
      assert(a == nil and msg == "resolve nope.test: Name or service not known"
        and code == "EAI_NONAME", tostring(msg) .. " " .. tostring(code))
      -- lookups at once, each answered to its own task
      local got, n = {}, 0
      for i = 1, 20 do
        loop:spawn(function()
          got[i] = loop:resolve(i % 2 == 0 and "a" .. i .. ".x.test" or "hosted.test")
          n = n + 1
        end)
      end
      while n < 20 do loop:sleep(0.01) end
      for i = 1, 20 do same({ i % 2 == 0 and "127.0.0.1" or "10.1.2.3" }, got[i], "#" .. i) end
    end)
  end)

  check("connect_in_order", function()
    in_loop(function(loop)
      -- two.test is ::1 first (nothing listens there), then 127.0.0.1
      local port, s = hello(loop)
      local c = assert(loop:connect("two.test", port, 5))
      assert(c:readline() == "hello")
      assert(select(1, c:sockname()) == "127.0.0.1")
      c:close()
      s:close()
      local none, msg = loop:connect("two.test", port)
      assert(none == nil and msg == "connect two.test:" .. port .. ": Connection refused",
        tostring(msg))
      local _, rmsg, code = loop:connect("nope.test", port)
      assert(rmsg == "resolve nope.test: Name or service not known" and code == "EAI_NONAME",
        tostring(rmsg))
      -- by family, and a dnsmasq name
      local p6, s6 = hello(loop, "::1")
      c = assert(loop:connect("two.test", p6, { family = "inet6" }))
      assert(c:readline() == "hello")
      c:close()
      c = assert(loop:connect("[::1]", p6))
      assert(c:readline() == "hello" and c:peer() == "::1")
      c:close()
      s6:close()
      port, s = hello(loop)
      c = assert(loop:connect("www.x.test", port))
      assert(c:readline() == "hello")
      c:close()
      s:close()
    end)
  end)

  check("flat", function()
    -- 10,000 lookups (1,000 under valgrind) after a warm-up: fds, the Lua
    -- heap and RSS stay where they were
    local total = SLOW > 1 and 1000 or 10000
    local loop = lepoll.loop()
    local function batch(n)
      local left, bad = n, nil
      for i = 1, 100 do
        loop:spawn(function()
          for _ = 1, n // 100 do
            local a = loop:resolve(i % 2 == 0 and "hosted.test" or "two.test")
            if not a then bad = bad or "a lookup failed" end
            left = left - 1
          end
        end)
      end
      while left > 0 and not bad do loop:step(1) end
      assert(not bad, bad)
    end
    batch(1000)
    collectgarbage()
    collectgarbage()
    local f0, m0, r0, t0 = fds(), collectgarbage("count"), rss_kib(), tasks()
    batch(total)
    collectgarbage()
    collectgarbage()
    local f1, m1, r1, t1 = fds(), collectgarbage("count"), rss_kib(), tasks()
    local threads = loop.resolver.pool:stats().threads
    loop:close()
    assert(f1 == f0, ("fds %d -> %d"):format(f0, f1))
    assert(m1 - m0 < 64, ("Lua heap %.0f -> %.0f KiB"):format(m0, m1))
    assert(SANITIZED or r1 - r0 < 1024, ("RSS %d -> %d KiB"):format(r0, r1))
    assert(t1 == t0 and threads <= 4, ("tasks %d -> %d, pool threads %d"):format(t0, t1, threads))
    print(("INFO flat: %d lookups, fds %d, Lua heap %.0f -> %.0f KiB, RSS %d -> %d KiB, threads %d")
      :format(total, f1, m0, m1, r0, r1, threads))
  end)

  check("fork", function()
    local fork = require "resolve_fork"
    local loop = lepoll.loop()
    local function lookup(name)
      local got
      loop:spawn(function() got = { loop:resolve(name, 5) } end)
      while not got do loop:step(1) end
      return got[1], got[2]
    end
    same({ "10.1.2.3" }, lookup("hosted.test"), "parent, before")
    assert(loop.resolver.pool:stats().threads >= 1)
    local pid = fork.fork()
    if pid == 0 then
      -- the child: the pool starts afresh (no thread of the parent is here)
      local ok, a = pcall(lookup, "www.x.test")
      local ok2, b = pcall(lookup, "hosted.test")
      local good = ok and ok2 and type(a) == "table" and a[1] == "127.0.0.1"
        and type(b) == "table" and b[1] == "10.1.2.3"
        and loop.resolver.pool:stats().threads >= 1
      if not good then
        io.stderr:write("child: ", tostring(ok), " ", tostring(a), " ", tostring(ok2), " ",
          tostring(b), " ", tostring(a and a[1]), "\n")
      end
      fork.exit(good and 0 or 1)
    end
    assert(fork.wait(pid) == 0, "the child's lookups failed")
    same({ "127.0.0.1" }, lookup("www.x.test"), "parent, after")
    loop:close()
  end)
else
  -- the black hole: a UDP socket on 127.0.0.1:53 that is never read
  local hole = assert(net.socket(net.INET, net.DGRAM, net.CLOEXEC))
  assert(net.bind(hole, "127.0.0.1", 53))

  check("timeouts_p99", function()
    local loop = lepoll.loop()
    local port = hello(loop)
    local base = tasks()
    local results, times, maxthreads, maxtasks = {}, {}, 0, 0
    local n = 0
    for i = 1, 100 do
      loop:spawn(function()
        local a, msg = loop:resolve("h" .. i .. ".hole.test", 0.5 * SLOW)
        results[i] = a and "answer" or msg
        n = n + 1
      end)
    end
    local stop = false
    loop:spawn(function()
      -- a client on the same loop while every lookup waits
      while not stop do
        local t0 = lepoll.now()
        local c = assert(loop:connect("127.0.0.1", port))
        assert(c:readline() == "hello")
        c:close()
        times[#times + 1] = lepoll.now() - t0
        local st = loop.resolver.pool:stats()
        if st.threads > maxthreads then maxthreads = st.threads end
        local tk = tasks() - base
        if tk > maxtasks then maxtasks = tk end
        loop:sleep(0.002)
      end
    end)
    local deadline = lepoll.now() + 10 * SLOW
    while n < 100 and lepoll.now() < deadline do loop:step(0.1) end
    stop = true
    loop:step(0.1)
    loop:close()
    for i = 1, 100 do
      assert(results[i] == "timeout", ("lookup %d: %s"):format(i, tostring(results[i])))
    end
    table.sort(times)
    local p99 = times[math.ceil(#times * 0.99)]
    print(("INFO p99 %.2f ms over %d requests; max %.2f ms; pool threads %d, extra tasks %d")
      :format(p99 * 1000, #times, times[#times] * 1000, maxthreads, maxtasks))
    assert(#times >= 50, "too few requests: " .. #times)
    assert(p99 < 0.005 * SLOW, ("p99 %.2f ms"):format(p99 * 1000))
    assert(maxthreads == 4 and maxtasks <= 4,
      ("threads %d, tasks +%d"):format(maxthreads, maxtasks))
  end)

  check("busy", function()
    in_loop(function(loop)
      local got = {}
      local function start(i)
        loop:spawn(function() got[i] = { loop:resolve("b" .. i .. ".hole.test", 0.3 * SLOW) } end)
      end
      start(1)
      local until_t = lepoll.now() + 5 * SLOW
      while loop.resolver.pool:stats().running < 1 and lepoll.now() < until_t do
        loop:sleep(0.001)
      end
      start(2)
      start(3)
      -- one thread busy, two queued: the fourth finds the queue full
      local a, msg = loop:resolve("b4.hole.test", 0.3)
      assert(a == nil and msg == "resolver busy", tostring(msg))
      assert(loop.resolver.pool:stats().threads == 1)
      while not (got[1] and got[2] and got[3]) do loop:sleep(0.05) end
      for i = 1, 3 do assert(got[i][2] == "timeout", tostring(got[i][2])) end
      -- a queued lookup that timed out left the queue without running
      local st = loop.resolver.pool:stats()
      assert(st.queued == 0 and st.running <= 1,
        ("queued %d running %d"):format(st.queued, st.running))
    end, { resolver_threads = 1, resolver_queue = 2 })
  end)

  check("close_in_flight", function()
    local f0 = anon_fds()
    local loop = lepoll.loop()
    local closed = false
    loop:spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      loop:resolve("closing.hole.test", 30)
    end)
    loop:step(0)
    local t0 = lepoll.now()
    loop:close()
    assert(lepoll.now() - t0 < 0.5 * SLOW, "close waited")
    assert(closed, "the waiting task was not closed")
    assert(anon_fds() == f0, ("epoll/timerfd/eventfd fds %d -> %d"):format(f0, anon_fds()))
  end)

  check("exit_in_flight", function()
    -- a process whose thread sits in getaddrinfo (3 s timeout) exits at once
    local cmd = os.getenv("LEPOLL_RESOLVE_LUA") .. " -e " .. ("%q"):format([[
      local lepoll = require "lepoll"
      lepoll.spawn(function() lepoll.resolve("exit.hole.test", 30) end)
      lepoll.after(0.1, function() lepoll.stop() end)
      lepoll.run()
      os.exit(0, true)]])
    local t0 = lepoll.now()
    local ok = os.execute(cmd)
    local dt = lepoll.now() - t0
    assert(ok, "the child failed")
    assert(dt < 2.5, ("exit took %.2f s"):format(dt))
  end)
  hole:close()
end
print("DONE")
