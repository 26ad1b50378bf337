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

-- The checks of spec/support/resolve_inner.lua, per mode, run once.
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
