-- lepoll.resolve and lepoll.connect by name. What needs a name server
-- runs in a private mount and network namespace (spec/support/resolve_ns.sh
-- under unshare -m -n, as root): our own /etc/hosts, resolv.conf and
-- nsswitch.conf, dnsmasq, a black-hole name server; the machine's
-- resolver is never asked. Where unshare is not permitted those checks
-- say so and are skipped, visibly. The rest (numeric addresses, misuse)
-- never submits a lookup and runs here.
local lepoll = require "lepoll"
local resolver = require "lepoll.resolver"
local process = require "support.process"
local h = require "support.framework"

local q = process.shquote

describe("lepoll.resolve without a lookup", function()
  it("answers numeric addresses at once, outside a coroutine too", function()
    assert.same({ "127.0.0.1" }, lepoll.resolve("127.0.0.1"))
    assert.same({ "::1" }, lepoll.resolve("::1"))
    assert.same({ "::1" }, lepoll.resolve("[::1]"))
    assert.same({ "2001:db8::1" }, lepoll.resolve("2001:DB8:0::1"))
    local a, msg, code = lepoll.resolve("127.0.0.1", { family = "inet6" })
    assert.is_nil(a)
    assert.equal("resolve 127.0.0.1: Address family for hostname not supported", msg)
    assert.equal("EAI_ADDRFAMILY", code)
    assert.equal(false, lepoll.default_loop().resolver)  -- no pool was made
  end)

  it("lepoll.resolver.numeric tells numeric addresses from names", function()
    assert.same({ "10.0.0.1", "inet" }, { resolver.numeric("10.0.0.1") })
    assert.same({ "::ffff:10.0.0.1", "inet6" }, { resolver.numeric("[::ffff:10.0.0.1]") })
    for _, s in ipairs({ "", "[]", "[127.0.0.1]", "localhost", "1.2.3", "::1]", "1.2.3.4\0" }) do
      assert.is_nil(resolver.numeric(s), s)
    end
  end)

  it("raises on misuse, naming the argument", function()
    local cases = {
      { { 1 }, "bad argument #1 to 'resolve' (string expected, got number)" },
      { { "a\0b" }, "bad argument #1 to 'resolve' (host name without NUL expected)" },
      { { "a.test", "x" }, "bad argument #2 to 'resolve' (number or table expected, got string)" },
      { { "a.test", { tiemout = 1 } }, "bad argument #2 to 'resolve' (unknown option 'tiemout')" },
      { { "a.test", -1 },
        "bad argument #2 to 'resolve' (option 'timeout' must be a positive number, got -1)" },
      { { "a.test", { family = "unix" } },
        "bad argument #2 to 'resolve' (option 'family' must be 'inet' or 'inet6', got"
        .. " string 'unix')" },
      { { "a.test" }, "lepoll.resolve must be called from a coroutine (a connection handler"
        .. " or lepoll.spawn)" },
    }
    for _, case in ipairs(cases) do
      assert.has_error(function() lepoll.resolve(table.unpack(case[1])) end, case[2])
    end
    assert.error_matches(function() lepoll.loop({ resolver_threads = 0 }) end,
      "option 'resolver_threads' must be an integer 1..64, got 0")
    assert.error_matches(function() lepoll.loop({ resolver_queue = 1.5 }) end,
      "option 'resolver_queue' must be an integer 1..65536, got 1.5")
    assert.error_matches(function() lepoll.connect("::1", 1, { family = "x" }) end,
      "option 'family' must be 'inet' or 'inet6'")
  end)

  it("connects to [::1] without a lookup", function()
    h.with_loop(function(loop)
      local s = h.defer(assert(loop:listen({ host = "::1", port = 0 }, function(c)
        c:write("hi\n")
      end)))
      local _, port = s:address()
      local line, peer
      loop:spawn(function()
        local c = assert(loop:connect("[::1]", port, 5))
        line, peer = c:readline(), c:peer()
        c:close()
      end)
      h.wait_until(loop, function() return line ~= nil end, nil, "the reply")
      assert.equal("hi", line)
      assert.equal("::1", peer)
      assert.equal(false, loop.resolver)
    end)
  end)
end)

local NS_OK = os.execute("unshare -m -n true 2>/dev/null")
local function lua_cmd()
  local cmd = process.lua_command()
  if os.getenv("LEPOLL_SANITIZED") == "valgrind" then
    -- glibc's per-thread resolver state is suppressed: see the file
    cmd = cmd:gsub(" lua5%.4$", " valgrind -q --leak-check=full --errors-for-leak-kinds=definite"
      .. " --error-exitcode=99 --suppressions=spec/support/resolve.supp lua5.4")
  end
  return cmd
end

-- The pool itself, with answers that need no name server: numeric
-- addresses, and the names of spec/support/resolve_gai_shim.c (an
-- LD_PRELOAD getaddrinfo built here) in child processes.
local epoll = require "lepoll.epoll"
local SANITIZED = os.getenv("LEPOLL_SANITIZED")
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local CPATH = os.getenv("LEPOLL_CPATH") or "./build/?.so"

-- Wait (5 s at most) until pool holds n answers; the eventfd tells when
-- one more came.
local function wait_done(pool, n)
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(pool:fileno(), 1, epoll.IN))
  local deadline = lepoll.now() + 5 * h.SLOW
  while true do
    pool:drain()
    local done = pool:stats().done
    if done >= n then return done end
    local left = deadline - lepoll.now()
    assert(left > 0, ("%d of %d answers in 5 s"):format(done, n))
    ep:wait(evs, left * 1000)
  end
end

local function check_sh(cmd, limit)
  local out, ok, code = process.sh(cmd, limit)
  assert(ok, cmd .. "\nexit " .. tostring(code) .. ":\n" .. out)
  return out
end

describe("lepoll.resolver", function()
  it("bounds the answers nobody takes: queue + threads lookups in all", function()
    local pool <close> = assert(resolver.new(1, 2))
    for i = 1, 3 do
      assert.equal(i, pool:submit("127.0.0.1"))
      assert.equal(i, wait_done(pool, i))
    end
    assert.same({ threads = 1, idle = 1, queued = 0, running = 0, done = 3 }, pool:stats())
    assert.same({ nil, "resolver busy" }, { pool:submit("127.0.0.1") })
    local id, addrs = pool:take()
    assert.equal(1, id)
    assert.same({ "127.0.0.1" }, addrs)
    assert.equal(4, pool:submit("127.0.0.1"))  -- a taken answer frees its place
    assert.same({ nil, "resolver busy" }, { pool:submit("127.0.0.1") })
    assert.is_true(pool:cancel(2))               -- and so does a cancelled one
    assert.equal(5, pool:submit("127.0.0.1"))
  end)

  it("keeps an IPv6 address's scope: the interface's name, else the number", function()
    local pool <close> = assert(resolver.new(1, 8))
    local want = {
      ["fe80::1%lo"] = "fe80::1%lo",
      ["FE80::2%1"] = "fe80::2%lo",                 -- lo is interface 1
      ["fe80::3%4000000000"] = "fe80::3%4000000000",  -- no such interface
      ["ff02::1%lo"] = "ff02::1%lo",
      ["2001:db8::1"] = "2001:db8::1",
    }
    local ids = {}
    for name, addr in pairs(want) do
      ids[assert(pool:submit(name, "inet6"))] = addr
      wait_done(pool, 1)
      local id, addrs = pool:take()
      assert.same({ addr }, addrs, name)
      assert.equal(addr, ids[id])
    end
    h.with_loop(function(loop)
      local got
      loop:spawn(function() got = { loop:resolve("fe80::1%lo") } end)
      h.wait_until(loop, function() return got ~= nil end, nil, "the answer")
      assert.same({ { "fe80::1%lo" } }, got)
    end)
  end)

  it("a forked child that closes the parent's loop leaves the parent's answers alone",
    function()
    -- a scoped address is no numeric() address: it goes through the pool
    -- (and glibc answers it without a name server)
    local fork = require "resolve_fork"
    h.with_loop(function(loop)
      local function lookup()
        local got
        loop:spawn(function() got = { loop:resolve("fe80::1%lo", 2 * h.SLOW) } end)
        h.wait_until(loop, function() return got ~= nil end, 5, "the answer")
        return got
      end
      assert.same({ { "fe80::1%lo" } }, lookup())
      local pid = fork.fork()
      if pid == 0 then
        loop:close()
        fork.exit(0)
      end
      assert.equal(0, fork.wait(pid))
      assert.same({ { "fe80::1%lo" } }, lookup())
    end)
  end)

  describe("with a getaddrinfo that waits for the spec (resolve_gai_shim.c)", function()
    local dir, preload
    lazy_setup(function()
      local tmp = (os.getenv("TMPDIR") or "/tmp") .. "/lepoll-resolver.XXXXXX"
      dir = check_sh("mktemp -d " .. q(tmp)):match("^%s*(.-)%s*$")
      -- built without the sanitizers' preload: cc is not instrumented
      check_sh("env -u LD_PRELOAD cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -pthread -o "
        .. q(dir .. "/shim.so") .. " spec/support/resolve_gai_shim.c")
      check_sh("env -u LD_PRELOAD cc -std=c11 -Wall -Wextra -Werror -o " .. q(dir .. "/embed")
        .. " spec/support/resolve_embed_close.c $(pkg-config --cflags --libs lua5.4 2>/dev/null"
        .. " || echo -I/usr/include/lua5.4 -llua5.4) -ldl")
      local pre = os.getenv("LD_PRELOAD")
      preload = (pre and pre ~= "" and pre .. " " or "") .. dir .. "/shim.so"
    end)
    lazy_teardown(function()
      if dir then check_sh("rm -rf " .. q(dir)) end
    end)

    local function lua_with_shim(script, arg1)
      local cmd = lua_cmd()
      return "env LD_PRELOAD=" .. q(preload) .. " " .. cmd .. " " .. q(script)
        .. (arg1 and " " .. q(arg1) or "")
    end

    it("an embedder closes its Lua state with a thread inside getaddrinfo and another just"
      .. " woken, and goes on: resolver.so and liblepoll.so stay mapped", function()
      for _, case in ipairs({ { "module", CPATH }, { "lib", BUILD .. "/liblepoll.so" } }) do
        local out, ok, code = process.sh(process.program(dir .. "/embed", case,
          { env = { "LD_PRELOAD=" .. preload } }), 60)
        assert(ok and out:find("state closed\nsurvived\n"),
          case[1] .. ": exit " .. tostring(code) .. "\n" .. out)
      end
    end)

    it("a script ends (lua_close, exit) with its pool's thread inside getaddrinfo: exit 0",
      function()
      for _ = 1, 3 do
        local out = check_sh(lua_with_shim("spec/support/resolve_exit.lua", "block"), 60)
        assert.matches("closed, threads 1\n$", out)  -- after valgrind's warnings, if any
      end
    end)

    it("scripts that close a loop whose four threads just answered all exit 0", function()
      local n = SANITIZED and 20 or 100
      local out = check_sh(("i=0; bad=0; while [ $i -lt %d ]; do i=$((i+1)); %s >/dev/null 2>&1"
        .. " || bad=$((bad+1)); done; echo \"failed $bad\""):format(n,
        lua_with_shim("spec/support/resolve_exit.lua", "fast")), 300)
      assert.equal("failed 0\n", out)
    end)

    it("take returns the answer whole when a finalizer inside it closes the pool or"
      .. " cancels the lookup", function()
      local out = check_sh(lua_with_shim("spec/support/resolve_take_gc.lua"), 120)
      assert.matches("RESULT take_gc ok close %d+ cancel %d+", out)
    end)
  end)

  it("loads in the host program, which holds the module itself", function()
    local out = check_sh(process.program(BUILD .. "/bin/lepoll", { "-e", [[
      local pool <close> = assert(require("lepoll.resolver").new(1, 1))
      print(pool:submit("127.0.0.1"))]] }), 60)
    -- (under valgrind the thread, alive at exit, may be "possibly lost")
    assert.matches("^1\n", out)
  end)
end)

-- The checks of spec/support/resolve_inner.lua, per mode, run once.
local function run_inner(mode)
  local cmd = "unshare -m -n sh spec/support/resolve_ns.sh " .. mode .. " env LEPOLL_RESOLVE_LUA="
    .. q(lua_cmd()) .. " " .. lua_cmd() .. " spec/support/resolve_inner.lua " .. mode
  local out, ok, code = process.sh(cmd, 300)
  local results = {}
  for name, verdict in out:gmatch("RESULT (%S+) ([^\n]*)") do results[name] = verdict end
  for line in out:gmatch("INFO ([^\n]*)") do print("  resolve_spec: " .. line) end
  return { out = out, ok = ok, code = code, results = results }
end

local CHECKS = {
  dns = {
    { "hosts", "resolves /etc/hosts entries, by family too" },
    { "dnsmasq", "resolves a dnsmasq name; an unknown one is EAI_NONAME; 20 at once" },
    { "connect_in_order", "connect by name tries the addresses in order; [::1]; errors" },
    { "flat", "keeps fds, the Lua heap and RSS flat over 10,000 lookups" },
    { "fork", "a forked child starts its own threads; the parent's go on" },
  },
  hole = {
    { "timeouts_p99", "100 lookups of a black hole time out while hello's p99 < 5 ms, 4 threads" },
    { "busy", "a full queue is 'resolver busy'; a queued lookup that times out never runs" },
    { "close_in_flight", "closing a loop with a lookup in flight neither waits nor leaks" },
    { "exit_in_flight", "a process exits at once with a thread inside getaddrinfo" },
  },
}

for _, mode in ipairs({ "dns", "hole" }) do
  describe("lepoll.resolve in a private namespace (" .. mode .. ")", function()
    if not NS_OK then
      it("is skipped: unshare -m -n is not permitted here (run as root)", function()
        print("resolve_spec: SKIPPED the " .. mode .. " checks: unshare -m -n not permitted")
        assert.is_falsy(NS_OK)
      end)
      return
    end
    local run
    lazy_setup(function() run = run_inner(mode) end)
    for _, c in ipairs(CHECKS[mode]) do
      it(c[2], function()
        local v = run.results[c[1]]
        assert(v == "ok", (v or "no result") .. "\n--- output ---\n" .. run.out)
      end)
    end
    it("ran to the end, exit 0 (valgrind: no error)", function()
      assert(run.ok and run.out:find("\nDONE"), "exit " .. tostring(run.code) .. "\n" .. run.out)
    end)
  end)
end
