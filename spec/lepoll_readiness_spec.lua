-- lepoll framework: readiness on every stream the kernel hands us. A short
-- read is not always "drained": recv stops early, with more queued and no
-- new edge, at TCP urgent data, after a unix message that carried fds, and
-- at unix urgent data. And a socket error is one triple, whoever saw it
-- first (the background flush included). Clients are python3's socket
-- module (.ci/deps), driven step by step so the data is all in the kernel
-- before the loop looks at it.
local lepoll = require "lepoll"
local net = require "lepoll.net"
local process = require "support.process"
local client = require "support.client"
local invariants = require "support.invariants"

local BOUND = client.WAIT_MS / 1000

-- Step loop until pred() is true; raises after seconds.
local function step_until(loop, pred, seconds, what)
  local deadline = lepoll.now() + (seconds or BOUND)
  while not pred() do
    if lepoll.now() > deadline then error("timed out waiting for " .. (what or "it"), 2) end
    loop:step(0.01)
    invariants.check(loop)
  end
end

-- A python3 client: connects to addr (a port number, or a unix path),
-- sends "x\n", waits for the server's "ok\n", then sends the pieces
-- `sends` describes (python statements using s, socket, os, array),
-- prints "sent", and waits for the server to close.
local function python_client(addr, sends)
  local connect = type(addr) == "number"
    and ("s = socket.create_connection(('127.0.0.1', %d))"):format(addr)
    or ("s = socket.socket(socket.AF_UNIX); s.connect(%q)"):format(addr)
  local script = table.concat({
    "import socket, os, array, sys",
    connect,
    "s.sendall(b'x\\n')",
    "got = b''",
    "while not got.endswith(b'ok\\n'): got += s.recv(10)",
    sends,
    "print('sent'); sys.stdout.flush()",
    "while s.recv(100): pass",
  }, "\n")
  return process.spawn("python3 -c " .. process.shquote(script), { limit = 30 })
end

-- Serve one connection whose handler reads "x", answers "ok" and reads one
-- more line; the client sends its pieces once that read is parked (the
-- connection registered edge-triggered by then). Returns what the second
-- readline returned.
local function second_line(listen_opts, sends)
  local loop = lepoll.loop()
  finally(function() loop:close() end)
  local parked, result = false, nil
  local server = assert(loop:listen(listen_opts, function(conn)
    assert.equal("x", conn:readline())
    assert(conn:write("ok\n"))
    parked = true
    result = { conn:readline() }
  end))
  local addr = listen_opts.path or select(2, server:address())
  local py = python_client(addr, sends)
  finally(function() py:close() end)
  step_until(loop, function() return parked end, BOUND, "the second readline")
  loop:step(0)  -- the handler is parked in readline now
  assert.equal("sent", py:line(), py:stderr())
  -- everything is in the kernel; only now does the loop look
  step_until(loop, function() return result ~= nil end, 3, "the line after the short read")
  py:close()
  loop:close()
  return result
end

local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p
end

describe("a short read that is not drained", function()
  it("TCP urgent data: recv stops at the mark, the rest still arrives", function()
    local r = second_line({ port = 0 },
      "s.send(b'hello'); s.send(b'!', socket.MSG_OOB); s.send(b'world\\n')")
    -- the urgent byte is out of band (SO_OOBINLINE is off)
    assert.same({ "helloworld" }, r)
  end)

  it("a unix message carrying fds: recv stops after it, the rest still arrives", function()
    local path = tmppath()
    local r = second_line({ path = path },
      "r, w = os.pipe(); s.send(b'hello')\n"
      .. "s.sendmsg([b'X'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [r]))])\n"
      .. "s.send(b'world\\n')")
    assert.same({ "helloXworld" }, r)
  end)

  it("unix urgent data: recv stops at the mark, the rest still arrives", function()
    local path = tmppath()
    local r = second_line({ path = path },
      "s.send(b'hello'); s.send(b'!', socket.MSG_OOB); s.send(b'world\\n')")
    assert.same({ "helloworld" }, r)
  end)

  it("fds sent to a unix connection are closed by the kernel, not leaked here", function()
    local lfs = require "lfs"
    local function count_fds()
      local n = 0
      for name in lfs.dir("/proc/self/fd") do
        if name:match("^%d+$") then n = n + 1 end
      end
      return n
    end
    local before = count_fds()
    local path = tmppath()
    local r = second_line({ path = path },
      "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(8)]\n"
      .. "s.sendmsg([b'X'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))])\n"
      .. "s.send(b'\\n')")
    assert.same({ "X" }, r)
    assert.equal(before, count_fds())
  end)
end)

-- A connected pair over TCP: the server side's handler is fn(conn, loop);
-- the client side is a plain non-blocking socket of ours. Returns loop
-- and the client socket.
local function pair(opts, fn)
  local loop = lepoll.loop()
  finally(function() loop:close() end)
  local server = assert(loop:listen(opts, function(conn) return fn(conn, loop) end))
  local _, port = server:address()
  local c = client.connect(port)
  finally(function() getmetatable(c).__close(c) end)
  step_until(loop, function() return server:stats().accepted == 1 end, BOUND, "accept")
  return loop, c
end

-- Reset the connection from the client side (SO_LINGER 0: close sends RST).
local function reset(c)
  assert(net.setsockopt(c, "linger", 0))
  c:close()
end

describe("a socket error", function()
  local ECONNRESET = net.errno.ECONNRESET

  it("seen by the background flush reaches the next write and read, with its errno", function()
    local conn, done = nil, false
    local loop, c = pair({ port = 0, hwm = 8 * 1048576 }, function(cn, lp)
      conn = cn
      assert(cn:write(string.rep("x", 4 * 1048576)))  -- more than the kernel takes
      while not done do lp:sleep(0.005) end
    end)
    step_until(loop, function() return conn and conn:pending() > 0 end, BOUND, "queued output")
    reset(c)
    -- the reset's edge runs the background flush, whose send gets ECONNRESET
    step_until(loop, function() return conn:pending() == 0 end, BOUND, "the flush to fail")
    local results = {}
    loop:spawn(function()
      results.write = { conn:write("") }
      results.read = { conn:read() }
      results.flush = { conn:flush() }
      results.write2 = { conn:write("more") }
      done = true
    end)
    step_until(loop, function() return done end, BOUND, "the handler")
    local want = { nil, "Connection reset by peer", ECONNRESET }
    assert.same(want, results.write)
    assert.same(want, results.read)
    assert.same(want, results.flush)
    assert.same(want, results.write2)
  end)

  it("reaches a reader parked while output is queued, as the same triple", function()
    local conn, got = nil, nil
    local loop, c = pair({ port = 0, hwm = 8 * 1048576 }, function(cn)
      conn = cn
      assert(cn:write(string.rep("x", 4 * 1048576)))
      got = { cn:read() }
      got.write = { cn:write("y") }
    end)
    step_until(loop, function() return conn and conn:pending() > 0 end, BOUND, "queued output")
    loop:step(0)
    reset(c)
    step_until(loop, function() return got ~= nil end, BOUND, "the read")
    local want = { nil, "Connection reset by peer", ECONNRESET }
    assert.same(want, { got[1], got[2], got[3] })
    assert.same(want, got.write)
  end)

  it("seen by a read reaches the next write", function()
    local got
    local loop, c = pair({ port = 0 }, function(cn)
      got = { cn:read() }
      got.again = { cn:read() }
      got.write = { cn:write("late") }
    end)
    loop:step(0)
    reset(c)
    step_until(loop, function() return got ~= nil end, BOUND, "the read")
    local want = { nil, "Connection reset by peer", ECONNRESET }
    assert.same(want, { got[1], got[2], got[3] })
    assert.same(want, got.again)
    assert.same(want, got.write)
  end)
end)
