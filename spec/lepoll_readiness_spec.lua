-- lepoll framework: readiness on every stream the kernel hands us. A short
-- read is not always "drained": recv stops early, with more queued and no
-- new edge, at TCP urgent data, after a unix message that carried fds, and
-- at unix urgent data. And a socket error is one triple, whoever saw it
-- first (the background flush included). Clients are python3's socket
-- module (.ci/deps), driven step by step so the data is all in the kernel
-- before the loop looks at it.
local net = require "lepoll.net"
local process = require "support.process"
local client = require "support.client"
local files = require "support.files"
local h = require "support.framework"

-- A python3 client: connects to addr (a port number, or a unix path),
-- sends "x\n", waits for the server's "ok\n", then sends the pieces
-- `sends` describes (python statements using s, socket, os, array),
-- prints "sent", and waits for the server to close. Closed at the end of
-- the test (Proc:close may run twice).
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
  return h.defer(process.spawn("python3 -c " .. process.shquote(script), { limit = 30 }))
end

-- Serve one connection on loop whose handler reads "x", answers "ok" and
-- reads one more line; the client sends its pieces once that read is
-- parked (the connection registered edge-triggered by then). Returns what
-- the second readline returned, with the listener and the client closed.
local function second_line(loop, listen_opts, sends)
  local parked, result = false, nil
  local server = assert(loop:listen(listen_opts, function(conn)
    assert.equal("x", conn:readline())
    assert(conn:write("ok\n"))
    parked = true
    result = { conn:readline() }
  end))
  local addr = listen_opts.path or select(2, server:address())
  local py = python_client(addr, sends)
  h.wait_until(loop, function() return parked end, nil, "the second readline")
  h.step(loop, 0)  -- the handler is parked in readline now
  assert.equal("sent", py:line(), py:stderr())
  -- everything is in the kernel; only now does the loop look
  h.wait_until(loop, function() return result ~= nil end, 3, "the line after the short read")
  py:close()
  server:close()
  return result
end

local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p
end

describe("a short read that is not drained", function()
  it("TCP urgent data: recv stops at the mark, the rest still arrives", function()
    h.with_loop(function(loop)
      local r = second_line(loop, { port = 0 },
        "s.sendall(b'hello'); s.send(b'!', socket.MSG_OOB); s.sendall(b'world\\n')")
      -- the urgent byte is out of band (SO_OOBINLINE is off)
      assert.same({ "helloworld" }, r)
    end)
  end)

  it("a unix message carrying fds: recv stops after it, the rest still arrives", function()
    h.with_loop(function(loop)
      local r = second_line(loop, { path = tmppath() },
        "r, w = os.pipe(); s.sendall(b'hello')\n"
        .. "s.sendmsg([b'X'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [r]))])\n"
        .. "s.sendall(b'world\\n')")
      assert.same({ "helloXworld" }, r)
    end)
  end)

  it("unix urgent data: recv stops at the mark, the rest still arrives", function()
    h.with_loop(function(loop)
      local r = second_line(loop, { path = tmppath() },
        "s.sendall(b'hello'); s.send(b'!', socket.MSG_OOB); s.sendall(b'world\\n')")
      assert.same({ "helloworld" }, r)
    end)
  end)

  it("fds sent to a unix connection are closed by the kernel, not leaked here", function()
    h.with_loop(function(loop)
      -- counted while the loop is open (the harness checks again after it
      -- closed): eight fds arrive, none may stay in this process
      local before = files.count_fds()
      local r = second_line(loop, { path = tmppath() },
        "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(8)]\n"
        .. "s.sendmsg([b'X'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))])\n"
        .. "s.sendall(b'\\n')")
      assert.same({ "X" }, r)
      assert.equal(before, files.count_fds())
    end)
  end)
end)

-- A connected pair over TCP on loop: the server side's handler is
-- fn(conn); the client side is a plain non-blocking socket of ours,
-- returned (closed at the end of the test, or earlier by reset).
local function pair(loop, opts, fn)
  local server = h.serve(loop, fn, opts)
  local _, port = server:address()
  local c = h.defer(client.connect(port))
  h.wait_until(loop, function() return server:stats().accepted == 1 end, nil, "accept")
  return c
end

-- Reset the connection from the client side (SO_LINGER 0: close sends RST).
-- The deferred close that follows finds it closed: a second close is a no-op.
local function reset(c)
  assert(net.setsockopt(c, "linger", 0))
  c:close()
end

describe("a socket error", function()
  local ECONNRESET = net.errno.ECONNRESET

  it("seen by the background flush reaches the next write and read, with its errno", function()
    h.with_loop(function(loop)
      local conn, done = nil, false
      local c = pair(loop, { hwm = 8 * 1048576 }, function(cn)
        conn = cn
        assert(cn:write(string.rep("x", 4 * 1048576)))  -- more than the kernel takes
        h.wait_until(loop, function() return done end, nil, "the test's task")
      end)
      h.wait_until(loop, function() return conn and conn:pending() > 0 end, nil, "queued output")
      reset(c)
      -- the reset's edge runs the background flush, whose send gets ECONNRESET
      h.wait_until(loop, function() return conn:pending() == 0 end, nil, "the flush to fail")
      local results = {}
      loop:spawn(function()
        results.write = { conn:write("") }
        results.read = { conn:read() }
        results.flush = { conn:flush() }
        results.write2 = { conn:write("more") }
        done = true
      end)
      h.wait_until(loop, function() return done end, nil, "the handler")
      local want = { nil, "Connection reset by peer", ECONNRESET }
      assert.same(want, results.write)
      assert.same(want, results.read)
      assert.same(want, results.flush)
      assert.same(want, results.write2)
    end)
  end)

  it("reaches a reader parked while output is queued, as the same triple", function()
    h.with_loop(function(loop)
      local conn, got = nil, nil
      local c = pair(loop, { hwm = 8 * 1048576 }, function(cn)
        conn = cn
        assert(cn:write(string.rep("x", 4 * 1048576)))
        got = { cn:read() }
        got.write = { cn:write("y") }
      end)
      h.wait_until(loop, function() return conn and conn:pending() > 0 end, nil, "queued output")
      h.step(loop, 0)
      reset(c)
      h.wait_until(loop, function() return got ~= nil end, nil, "the read")
      local want = { nil, "Connection reset by peer", ECONNRESET }
      assert.same(want, { got[1], got[2], got[3] })
      assert.same(want, got.write)
    end)
  end)

  it("seen by a read reaches the next write", function()
    h.with_loop(function(loop)
      local got
      local c = pair(loop, {}, function(cn)
        got = { cn:read() }
        got.again = { cn:read() }
        got.write = { cn:write("late") }
      end)
      h.step(loop, 0)
      reset(c)
      h.wait_until(loop, function() return got ~= nil end, nil, "the read")
      local want = { nil, "Connection reset by peer", ECONNRESET }
      assert.same(want, { got[1], got[2], got[3] })
      assert.same(want, got.again)
      assert.same(want, got.write)
    end)
  end)
end)

describe("after a socket error", function()
  it("a read still returns what the kernel held before it, then the error", function()
    h.with_loop(function(loop)
      local conn, go, got = nil, false, nil
      local c = pair(loop, {}, function(cn)
        conn = cn
        h.wait_until(loop, function() return go end, nil, "the test's go")
        got = { write = { cn:write("x") } }  -- the reset's first report goes here
        got.first = { cn:readn(4) }          -- the peer's bytes, still queued
        got.second = { cn:read() }
      end)
      h.wait_until(loop, function() return conn end, nil, "the handler")
      client.send_all(c, "bye\n")
      reset(c)
      go = true
      h.wait_until(loop, function() return got and got.second end, nil, "the reads")
      local want = { nil, "Connection reset by peer", net.errno.ECONNRESET }
      assert.same(want, got.write)
      assert.same({ "bye\n" }, got.first)
      assert.same(want, got.second)
    end)
  end)

  it("EPIPE ends the write side only: reads go on", function()
    h.with_loop(function(loop)
      local got
      local c = pair(loop, {}, function(cn)
        assert(cn:shutdown("w"))
        got = { write = { cn:write("x") } }
        got.read = { cn:readn(5) }
      end)
      h.wait_until(loop, function() return got end, nil, "the write")
      client.send_all(c, "still")
      h.wait_until(loop, function() return got.read end, nil, "the read")
      assert.same({ nil, "Broken pipe", net.errno.EPIPE }, got.write)
      assert.same({ "still" }, got.read)
    end)
  end)
end)
