-- lepoll framework: misuse raises an error that names the argument and
-- points at the caller's line; options are checked where they are given;
-- failure paths leave nothing open.
local lepoll = require "lepoll"
local net = require "lepoll.net"
local client = require "support.client"
local files = require "support.files"
local h = require "support.framework"

local THIS = "spec/lepoll_misuse_spec.lua"

-- The error fn raises, called from a line of this file (not a tail call,
-- so the caller's line is this file's).
local function err_of(fn, ...)
  local ok, e = pcall(function(...)
    local r = fn(...)
    return r
  end, ...)
  assert.is_false(ok, "no error raised")
  return tostring(e)
end

-- Assert the error is msg (plain text), raised at a line of this file.
local function raises(msg, fn, ...)
  local e = err_of(fn, ...)
  assert.truthy(e:find(msg, 1, true), ("expected %q in %q"):format(msg, e))
  assert.truthy(e:find("^" .. THIS:gsub("%p", "%%%0") .. ":%d+: "),
    "not raised at the caller's line: " .. e)
end

describe("option tables", function()
  it("raise on an unknown option, naming it", function()
    -- lepoll.listen makes the default loop: the harness closes it
    h.with_default_loop(function(loop)
      raises("bad argument #1 to 'loop' (unknown option 'shutdown_timout')",
        lepoll.loop, { shutdown_timout = 1 })
      raises("bad argument #1 to 'listen' (unknown option 'idle_timout')",
        function() return loop:listen({ port = 0, idle_timout = 5 }, print) end)
      raises("bad argument #1 to 'listen' (unknown option 'idle_timout')",
        function() return lepoll.listen({ port = 0, idle_timout = 5 }, print) end)
    end)
  end)

  it("say what came instead of a value in range", function()
    h.with_loop(function(loop)
      raises("option 'port' must be an integer 0..65535, got string '0'",
        function() return loop:listen({ port = "0" }, print) end)
      raises("option 'port' must be an integer 0..65535, got 70000",
        function() return loop:listen({ port = 70000 }, print) end)
      raises("option 'port' must be an integer 0..65535, got nil",
        function() return loop:listen({}, print) end)
      raises("option 'hwm' must be a positive integer, got 1.5",
        function() return loop:listen({ port = 0, hwm = 1.5 }, print) end)
      raises("option 'nodelay' must be a boolean, got 1",
        function() return loop:listen({ port = 0, nodelay = 1 }, print) end)
      raises("option 'host': 'example.org' is not a numeric IPv4 address",
        function() return loop:listen({ host = "example.org", port = 0 }, print) end)
    end)
  end)

  it("are checked where they are given: lepoll.loop", function()
    h.with_checks(function()  -- a loop refused leaves no fd behind
      raises("bad argument #1 to 'loop' (option 'shutdown_timeout' must be a non-negative"
        .. " number, got string 'x')", lepoll.loop, { shutdown_timeout = "x" })
      raises("option 'events' must be an integer 1..1048576, got 0", lepoll.loop, { events = 0 })
      raises("option 'signals' must be a boolean, got string 'yes'", lepoll.loop,
        { signals = "yes" })
      raises("bad argument #1 to 'loop' (table expected, got string)", lepoll.loop, "x")
    end)
  end)

  it("of a failed listen leave no fd open", function()
    h.with_loop(function(loop)
      -- counted here as well as by the harness at the end: twenty failing
      -- calls must leave nothing open while the loop is still open, not
      -- only once closing it has closed what it held
      local before = files.count_fds()
      for _ = 1, 20 do
        err_of(function() return loop:listen({ host = "no.such.name", port = 0 }, print) end)
      end
      assert.equal(before, files.count_fds())
    end)
  end)
end)

describe("conn:write", function()
  it("takes one string: a second argument raises and nothing is sent", function()
    h.with_loop(function(loop)
      local err
      local server, port = h.serve(loop, function(conn)
        err = err_of(conn.write, conn, "a", "b", "c\n")
        conn:write("done\n")
      end)
      local c = h.defer(client.connect(port))
      h.wait_until(loop, function() return err ~= nil end, nil, "the handler")
      assert.truthy(err:find("bad argument #2 to 'write' (no value expected, got string)", 1,
        true), err)
      h.wait_until(loop, function() return server:stats().active == 0 end, nil, "the close")
      local got = {}
      h.wait_until(loop, function()
        local d = net.recv(c, 100)
        if d and d ~= "" then got[#got + 1] = d end
        return d == ""
      end, nil, "the end of the reply")
      assert.equal("done\n", table.concat(got))
    end)
  end)

  it("raises at the caller's line for a wrong type", function()
    h.with_loop(function(loop)
      local e
      local _, port = h.serve(loop, function(conn)
        e = err_of(conn.write, conn, {})
      end)
      h.defer(client.connect(port))
      h.wait_until(loop, function() return e ~= nil end, nil, "the handler")
      assert.truthy(e:find("bad argument #1 to 'write' (string expected, got table)", 1, true), e)
      assert.truthy(e:find("^" .. THIS:gsub("%p", "%%%0") .. ":%d+: "), e)
    end)
  end)
end)

describe("lepoll.connect", function()
  it("refuses a host with a NUL in it without leaving an fd or a connection behind", function()
    h.with_loop(function(loop)
      -- counted here as well as by the harness: fifty failing calls on an
      -- open loop leave nothing open
      local before = files.count_fds()
      local errs = {}
      loop:spawn(function()
        for i = 1, 50 do
          errs[i] = err_of(loop.connect, loop, "localhost\0.example", 80)
        end
      end)
      assert.equal(50, #errs)
      assert.truthy(errs[50]:find("bad argument #1 to 'connect' (host name without NUL"
        .. " expected)", 1, true), errs[50])
      assert.equal(before, files.count_fds())
      assert.is_true(h.run(loop))  -- nothing is left that would keep it running
    end)
  end)

  it("says the address and the reason when refused", function()
    h.with_loop(function(loop)
      -- a port kept bound but not listening: connects to it are refused
      local s = h.defer(assert(net.socket(net.INET, net.STREAM)))
      assert(net.bind(s, "127.0.0.1", 0))
      local _, port = net.getsockname(s)
      local got
      loop:spawn(function() got = { loop:connect("127.0.0.1", port) } end)
      h.wait_until(loop, function() return got ~= nil end, nil, "the connect")
      assert.same({ nil, "connect 127.0.0.1:" .. port .. ": Connection refused",
        net.errno.ECONNREFUSED }, got)
    end)
  end)

  it("checks its options and their names", function()
    h.with_loop(function(loop)
      local errs = {}
      loop:spawn(function()
        errs[1] = err_of(loop.connect, loop, "127.0.0.1", 1, { timeout = 1, tiemout = 2 })
        errs[2] = err_of(loop.connect, loop, "127.0.0.1", 1, { timeout = "1" })
        errs[3] = err_of(loop.connect, loop, "127.0.0.1", "80")
      end)
      assert.truthy(errs[1]:find("bad argument #3 to 'connect' (unknown option 'tiemout')", 1,
        true), errs[1])
      assert.truthy(errs[2]:find("option 'timeout' must be a positive number, got string '1'", 1,
        true), errs[2])
      assert.truthy(errs[3]:find("bad argument #2 to 'connect' (port 0..65535 expected, got"
        .. " string '80')", 1, true), errs[3])
    end)
  end)
end)

describe("error positions", function()
  it("point at the caller's line for every public function", function()
    -- lepoll.after makes the default loop: the harness closes it
    h.with_default_loop(function(loop)
      raises("bad argument #1 to 'after'", lepoll.after, "x", print)
      raises("bad argument #1 to 'after'", loop.after, loop, -1, print)
      raises("bad argument #2 to 'every'", loop.every, loop, 1, "x")
      raises("bad argument #1 to 'spawn'", loop.spawn, loop, 42)
      raises("bad argument #1 to 'step'", loop.step, loop, -1)
      raises("bad argument #1 to 'shutdown'", loop.shutdown, loop, "soon")
      raises("bad argument #2 to 'listen'", loop.listen, loop, { port = 0 }, "handler")
      raises("bad argument #1 to 'watch'", loop.watch, loop, "fd", "r", print)
      raises("bad argument #2 to 'watch'", loop.watch, loop, 0, "x", print)
      raises("bad argument #1 to 'on_signal'", loop.on_signal, loop, "NOPE", print)
      raises("bad argument #1 to 'set_logger'", lepoll.set_logger, 42)
      raises("lepoll.sleep must be called from a coroutine", loop.sleep, loop, 0)
      raises("lepoll.connect must be called from a coroutine", loop.connect, loop, "127.0.0.1", 1)
      loop:close()  -- the harness's close that follows is a no-op
      raises("attempt to use a closed lepoll loop (after)", loop.after, loop, 1, print)
    end)
  end)
end)

describe("lepoll.on_signal", function()
  it("refuses the signals no process can catch", function()
    h.with_loop(function(loop)
      raises("bad argument #1 to 'on_signal' (SIGKILL cannot be caught)", loop.on_signal, loop,
        "KILL", print)
      raises("bad argument #1 to 'on_signal' (SIGSTOP cannot be caught)", loop.on_signal, loop,
        "SIGSTOP", print)
      raises("bad argument #1 to 'on_signal' (SIGKILL cannot be caught)", loop.on_signal, loop,
        9, print)
    end)
  end)
end)

describe("lepoll.watch", function()
  it("takes a LuaSocket socket, whose getfd() is a float", function()
    local socket = require "socket"
    h.with_loop(function(loop)
      local srv = h.defer(assert(socket.bind("127.0.0.1", 0)))
      assert.equal("float", math.type(srv:getfd()))
      local _, port = srv:getsockname()
      local modes = {}
      local w = assert(loop:watch(srv, "r", function(wh, mode)
        modes[#modes + 1] = mode
        wh:cancel()
      end))
      assert.is_table(w)
      h.defer(client.connect(tonumber(port)))
      h.wait_until(loop, function() return #modes > 0 end, nil, "the watch")
      assert.same({ "r" }, modes)
    end)
  end)

  it("falls through a getfd that is false to fileno, and names a field that is no function",
    function()
      h.with_loop(function(loop)
        local r, wr = require("lepoll.io").pipe()
        h.defer(r)
        h.defer(wr)
        local obj = { getfd = false, fileno = function() return r:fileno() end }
        local wh = assert(loop:watch(obj, "r", function() end))
        wh:cancel()
        raises("bad argument #1 to 'watch' (fd expected", loop.watch, loop,
          { getfd = 3 }, "r", print)
        raises("bad argument #1 to 'watch' (fd expected", loop.watch, loop, 3.5, "r", print)
        wh = assert(loop:watch(r:fileno() + 0.0, "r", function() end))
        wh:cancel()
      end)
    end)
end)
