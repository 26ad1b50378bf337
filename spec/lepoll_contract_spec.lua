-- lepoll framework: behaviour docs/framework.md promises, each found
-- wrong once with outside clients: read_timeout bounds a whole call, the
-- host protocol's fd wakes for work added between steps, a shutdown does
-- not wait for idle readers, accept pauses are reported once, a write
-- from a callback never sends half and raises, and a close while output
-- lingers keeps it.
local lepoll = require "lepoll"
local epoll = require "lepoll.epoll"
local net = require "lepoll.net"
local process = require "support.process"
local client = require "support.client"
local h = require "support.framework"
local partial = require "support.partial"

-- One listener on loop whose handler is fn(conn), and a client socket of
-- ours connected to it, accepted (closed at the end of the test), with
-- SO_RCVBUF rcvbuf when given. Returns the client socket and the server.
local function served(loop, opts, fn, rcvbuf)
  local server, port = h.serve(loop, fn, opts)
  local c
  if rcvbuf then  -- a small window, set before the connect
    c = h.defer(assert(net.socket(net.INET, net.STREAM, net.NONBLOCK)))
    assert(net.setsockopt(c, "rcvbuf", rcvbuf))
    local ok, err, en = net.connect(c, "127.0.0.1", port)
    assert(ok or en == net.errno.EINPROGRESS, err)
  else
    c = h.defer(client.connect(port))
  end
  h.wait_until(loop, function() return server:stats().accepted == 1 end, nil, "accept")
  return c, server
end


-- Send all of s on the client socket c (a partial send is not a failure:
-- the rest goes when there is room), stepping loop meanwhile.
local function send_all(loop, c, s)
  local i = 1
  h.wait_until(loop, function()
    while i <= #s do
      local n, err, en = net.send(c, s, i)
      if not n then
        if en == net.errno.EAGAIN then return false end
        error("send: " .. tostring(err))
      end
      i = i + n
    end
    return true
  end, nil, "the send")
end

-- Everything the client socket c receives until the server closes.
local function drain(loop, c)
  local got = {}
  h.wait_until(loop, function()
    while true do
      local s, err, en = net.recv(c, 65536)
      if s == "" then return true end
      if not s then
        if en ~= net.errno.EAGAIN then error("recv: " .. tostring(err)) end
        return false
      end
      got[#got + 1] = s
    end
  end, nil, "the server to close")
  return table.concat(got)
end

-- Send byte on c every 0.1 s (longer under valgrind) until pred() holds,
-- for at most seconds: each read of the call is quick, the call never ends.
local function trickle(loop, c, byte, pred, seconds, what)
  local next_at = lepoll.now()
  h.wait_until(loop, function()
    if pred() then return true end
    if lepoll.now() >= next_at then
      assert(net.send(c, byte))
      next_at = lepoll.now() + 0.1 * h.SLOW
    end
    return false
  end, seconds, what)
end

describe("read_timeout", function()
  it("bounds a whole readline, not each byte of it", function()
    h.with_task(function(loop)
      local got, t0, t1
      local c = served(loop, { read_timeout = 0.5 * h.SLOW }, function(conn)
        t0 = lepoll.now()
        got = { conn:readline() }
        t1 = lepoll.now()
      end)
      trickle(loop, c, "x", function() return got end, 4, "the readline to end")
      assert.same({ nil, "timeout" }, got)
      assert.is_true(t1 - t0 < 1.2 * h.SLOW, "took " .. (t1 - t0))
    end)
  end)

  it("bounds a whole readn", function()
    h.with_task(function(loop)
      local got, t0, t1
      local c = served(loop, { read_timeout = 0.5 * h.SLOW }, function(conn)
        t0 = lepoll.now()
        got = { conn:readn(100) }
        t1 = lepoll.now()
        got.rest = conn:read()  -- what arrived stays buffered
      end)
      trickle(loop, c, "y", function() return got end, 4, "the readn to end")
      assert.same({ nil, "timeout" }, { got[1], got[2] })
      assert.is_true(t1 - t0 < 1.2 * h.SLOW, "took " .. (t1 - t0))
      assert.matches("^y+$", got.rest)
    end)
  end)

  it("still lets each read of a call wait its idle_timeout afresh", function()
    h.with_task(function(loop)
      local got
      local c = served(loop, { idle_timeout = 0.3 * h.SLOW }, function(conn)
        got = { conn:readline() }
      end)
      -- progress every 0.1 s keeps an idle timeout from firing, for 0.8 s
      -- (the sleeps are the client's pace, not a wait for the server)
      for _ = 1, 8 do
        assert(net.send(c, "z"))
        loop:sleep(0.1 * h.SLOW)
      end
      assert(net.send(c, "\n"))
      h.wait_until(loop, function() return got end, nil, "the line")
      assert.same({ "zzzzzzzz" }, got)
    end)
  end)
end)

describe("the host protocol", function()
  -- Whether loop:fileno() is readable within ms, polled from outside: a
  -- host's own poll, blocking (bounded by ms) as a host's would.
  local function readable(loop, ms)
    local ep <close> = assert(epoll.create())
    assert(ep:add(loop:fileno(), 1, epoll.IN))
    local evs = epoll.events(1)
    return assert(ep:wait(evs, ms)) == 1
  end

  it("makes fileno() readable for a timer added between steps", function()
    h.with_loop(function(loop)
      h.step(loop, 0)
      assert.is_false(readable(loop, 0))
      local fired = false
      loop:after(0.05, function() fired = true end)
      assert.is_true(readable(loop, 2000 * h.SLOW))
      h.step(loop, 0)
      assert.is_true(fired)
    end)
  end)

  it("makes fileno() readable for a coroutine made ready between steps", function()
    h.with_loop(function(loop)
      h.step(loop, 0)
      local ran = 0
      loop:spawn(function()
        ran = 1
        loop:sleep(0)  -- ready again at once: the next step runs it
        ran = 2
      end)
      assert.equal(1, ran)
      assert.is_true(readable(loop, 0))
      h.step(loop, 0)
      assert.equal(2, ran)
    end)
  end)

  it("makes fileno() readable for a sleep begun between steps", function()
    h.with_loop(function(loop)
      h.step(loop, 0)
      local woke = false
      loop:spawn(function()
        loop:sleep(0.05)
        woke = true
      end)
      assert.is_true(readable(loop, 2000 * h.SLOW))
      h.step(loop, 0)
      assert.is_true(woke)
    end)
  end)
end)

describe("a graceful shutdown", function()
  it("does not wait for a handler parked in read on an idle connection", function()
    h.with_loop(function(loop)
      local got
      served(loop, {}, function(conn)
        got = { conn:read() }
      end)
      loop:after(0.01, function() loop:shutdown(10) end)
      local t0 = lepoll.now()
      assert.is_true(h.run(loop, h.WAIT))
      assert.is_true(lepoll.now() - t0 < 2, "took " .. (lepoll.now() - t0))
      assert.same({ nil, "shutdown" }, got)
    end)
  end)

  it("tells a handler busy elsewhere at its next read that would wait, once", function()
    h.with_loop(function(loop)
      local got = {}
      local c = served(loop, {}, function(conn)
        loop:sleep(0.05)             -- busy when the shutdown begins
        got[1] = { conn:read() }     -- the news
        got[2] = { conn:readn(9) }   -- then a read waits as usual
        conn:write("bye\n")
      end)
      loop:after(0.01, function() loop:shutdown(10) end)
      loop:after(0.2, function() loop:spawn(send_all, loop, c, "late data") end)
      assert.is_true(h.run(loop, h.WAIT))
      assert.same({ nil, "shutdown" }, got[1])
      assert.same({ "late data" }, got[2])
      assert.equal("bye\n", drain(loop, c))
    end)
  end)

  it("gives data that is there, not the news", function()
    h.with_loop(function(loop)
      local got
      local c = served(loop, {}, function(conn)
        loop:sleep(0.05)
        got = { conn:read() }
      end)
      send_all(loop, c, "hello")
      loop:after(0.01, function() loop:shutdown(10) end)
      assert.is_true(h.run(loop, h.WAIT))
      -- data (all of it, or under the injector a first part), never the news
      assert.is_string(got[1])
      assert.equal(got[1], ("hello"):sub(1, #got[1]))
    end)
  end)
end)

describe("accept pauses", function()
  it("are reported once when they begin and once when they end, with their count", function()
    -- a child with 20 fds: the listener runs out, the backlog waits
    local script = [[
      local lepoll = require "lepoll"
      local net = require "lepoll.net"
      local lines = {}
      lepoll.set_logger(function(m) lines[#lines + 1] = m end)
      local loop = lepoll.loop()
      local conns = {}
      local server = assert(loop:listen({ port = 0, accept_backoff = 0.02 }, function(c)
        conns[#conns + 1] = c
        c:read()
      end))
      local _, port = server:address()
      local clients = {}
      for _ = 1, 30 do
        local s = net.socket(net.INET, net.STREAM, net.NONBLOCK)
        if not s then break end
        net.connect(s, "127.0.0.1", port)
        clients[#clients + 1] = s
      end
      -- a while: the listener keeps hitting EMFILE
      local t = lepoll.now() + 0.5
      while lepoll.now() < t do loop:step(0.01) end
      -- free every fd we hold: the backlog's connections get accepted
      for _, c in ipairs(conns) do c:close() end
      for _, s in ipairs(clients) do s:close() end
      t = lepoll.now() + 0.5
      while lepoll.now() < t do loop:step(0.01) end
      for _, l in ipairs(lines) do print(l) end
      os.exit(0)
    ]]
    h.with_checks(function()  -- no loop here; the child's pipe is closed
      local out, ok = process.sh("ulimit -n 24 && " .. process.lua_command() .. " -e "
        .. process.shquote(script))
      assert.is_true(ok, out)
      local pauses, resumes = 0, 0
      for line in out:gmatch("[^\n]+") do
        if line:find("pausing accepts", 1, true) then pauses = pauses + 1 end
        if line:find("accepting again after", 1, true) then
          resumes = resumes + 1
          local n = tonumber(line:match("after (%d+) pause"))
          assert.is_true(n and n > 1, line)
        end
      end
      assert.equal(1, pauses, out)
      assert.equal(1, resumes, out)
    end)
  end)
end)

describe("a write from a callback", function()
  it("that would have to wait and has sent nothing raises, sending nothing", function()
    h.with_loop(function(loop)
      local conn
      local c = served(loop, { hwm = 1024 }, function(cn)
        conn = cn
        assert(cn:setoption("sndbuf", 4096))
        -- fill the kernel and the queue from the handler
        while cn:pending() == 0 do assert(cn:write(string.rep("a", 4096))) end
        loop:sleep(1000)
      end)
      h.wait_until(loop, function() return conn and conn:pending() > 0 end, nil, "the queue")
      local before = conn:pending()
      local err
      loop:after(0, function()
        local ok, e = pcall(conn.write, conn, string.rep("b", 8192))
        err = ok and "no error" or e
      end)
      h.wait_until(loop, function() return err end, nil, "the timer")
      assert.matches("conn:write must be called from a coroutine", err)
      -- nothing of it was queued (the queue may have sent some of its own)
      assert.is_true(conn:pending() <= before)
      -- what the client gets is the handler's a's only
      conn:close()
      assert.matches("^a+$", drain(loop, c))
    end)
  end)

  it("that the kernel took a part of is queued whole, beyond hwm", function()
    h.with_loop(function(loop)
      local conn
      local c = served(loop, { hwm = 16 }, function(cn)
        conn = cn
        assert(cn:setoption("sndbuf", 4096))  -- the kernel takes a part, not all
        loop:sleep(1000)
      end, 4096)
      -- 1 MB (16 KB under the injector, where every byte is a syscall): with
      -- the small socket buffers on both ends, more than the kernel takes
      local data = string.rep("0123456789", partial.bulk(100000, 1600))
      local ok
      loop:after(0, function() ok = conn:write(data) end)
      h.wait_until(loop, function() return ok ~= nil end, nil, "the timer")
      assert.is_true(ok)
      assert.is_true(conn:pending() > 16)
      conn:close()
      assert.equal(data, drain(loop, c))
    end)
  end)
end)

describe("close while output is queued", function()
  it("keeps flushing when the handler returns after close()", function()
    h.with_loop(function(loop)
      local data = string.rep("x", partial.bulk(4 * 1048576, 65536))
      local c = served(loop, { hwm = 8 * 1048576 }, function(conn)
        assert(conn:setoption("sndbuf", 4096))  -- the kernel takes a part
        assert(conn:write(data))
        assert.is_true(conn:pending() > 0)
        conn:close()  -- lingers; the handler's end closes it again
      end, 4096)
      assert.equal(#data, #drain(loop, c))
    end)
  end)
end)

describe("loop:close", function()
  it("closes the coroutines it would still have resumed: their to-be-closed variables run",
    function()
      h.with_loop(function(loop)
        local closed = {}
        local function closer(name)
          return setmetatable({}, { __close = function() closed[#closed + 1] = name end })
        end
        served(loop, {}, function(conn)
          local guard <close> = closer("reader")
          -- woken with "closed" by the close, but never resumed
          assert(guard and conn:read() == nil)
        end)
        loop:spawn(function()
          local guard <close> = closer("sleeper")
          assert(guard and loop:sleep(1000))
        end)
        h.step(loop, 0)
        assert.same({}, closed)
        loop:close()
        table.sort(closed)
        assert.same({ "reader", "sleeper" }, closed)
      end)
    end)
end)
