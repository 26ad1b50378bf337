-- lepoll framework: the loop (run, step, stop, fileno, timeout, close),
-- the host protocol (fileno wakes a host's own poll when a timer is due)
-- and lepoll.watch on pipes and eventfds.
local lepoll = require "lepoll"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local client = require "support.client"
local h = require "support.framework"

-- Is fd readable within ms milliseconds (a host's own epoll)?
local function readable(fd, ms)
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(fd, 1, epoll.IN))
  return assert(ep:wait(evs, ms)) == 1
end

describe("lepoll.loop", function()
  it("has its own epoll fd and closes it", function()
    h.with_loop(function(loop)
      local fd = loop:fileno()
      assert.is_true(math.type(fd) == "integer" and fd > 2)
      assert.is_true(loop:close())
      assert.is_true(loop:close())
      assert.error_matches(function() loop:fileno() end, "closed lepoll loop")
      assert.error_matches(function() loop:run() end, "closed lepoll loop")
    end)
  end)

  it("raises on bad options", function()
    assert.error_matches(function() lepoll.loop("x") end,
      "bad argument #1 to 'loop' %(table expected, got string%)")
  end)
end)

describe("a loop nobody closes", function()
  it("closes its connections' sockets when it is collected", function()
    h.with_checks(function()
      local loop = lepoll.loop()
      local accepted = false
      local server = assert(loop:listen({ port = 0 }, function(conn)
        accepted = true
        conn:read()  -- waits: the connection stays open
      end))
      local _, port = server:address()
      local s = h.defer(assert(net.socket(net.INET, net.STREAM)))
      assert(net.connect(s, "127.0.0.1", port))
      h.wait_until(loop, function() return accepted end, nil, "the accept")
      loop, server = nil, nil  -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      -- the server's end is closed: the client reads end of stream
      local ep = h.defer(assert(epoll.create()))
      local evs = epoll.events(1)
      assert(ep:add(s, 1, epoll.IN))
      assert.equal(1, ep:wait(evs, client.WAIT_MS))
      assert.equal("", net.recv(s, 16))
    end)
  end)
end)

describe("loop:run", function()
  it("returns when nothing is left to wait for", function()
    h.with_loop(function(loop)
      assert.is_true(h.run(loop))
    end)
  end)

  it("returns after stop()", function()
    h.with_loop(function(loop)
      local t = loop:every(0.001, function() loop:stop() end)
      assert.is_true(h.run(loop, h.WAIT))
      assert.is_true(t:pending())
      t:cancel()
    end)
  end)

  it("refuses to run twice at once", function()
    h.with_loop(function(loop)
      local err
      loop:after(0, function() err = select(2, pcall(loop.run, loop)) end)
      h.run(loop)
      assert.matches("already running", err)
    end)
  end)
end)

describe("loop:step, fileno, timeout (the host protocol)", function()
  it("makes fileno() readable when a timer is due", function()
    h.with_loop(function(loop)
      assert.is_nil(loop:timeout())
      local fired = false
      loop:after(0.05, function() fired = true end)
      local to = loop:timeout()
      assert.is_true(to > 0.03 and to <= 0.05)
      h.step(loop, 0)  -- arms the timerfd for the deadline
      assert.is_false(readable(loop:fileno(), 10))
      assert.is_true(readable(loop:fileno(), 1000))
      assert.is_false(fired)
      h.step(loop, 0)
      assert.is_true(fired)
      assert.is_nil(loop:timeout())
    end)
  end)

  it("makes fileno() readable while coroutines are ready", function()
    h.with_loop(function(loop)
      local n = 0
      loop:spawn(function()
        loop:sleep(0)
        n = n + 1
      end)
      assert.equal(0, loop:timeout())
      h.step(loop, 0)
      assert.equal(1, n)
    end)
  end)

  it("returns the number of fd events; step(nil) blocks until one", function()
    h.with_loop(function(loop)
      local r, w = lio.pipe(lio.NONBLOCK)
      h.defer(r)
      h.defer(w)
      local seen
      local wh = assert(loop:watch(r, "r", function(_, mode)
        seen = mode
        lio.read(r, 10)
      end))
      assert.equal(0, h.step(loop, 0))
      lio.write(w, "x")
      assert.equal(1, h.step(loop))
      assert.equal("r", seen)
      wh:cancel()
      assert.error_matches(function() loop:step(-1) end, "bad argument #1 to 'step'")
      assert.error_matches(function() loop:step("x") end, "bad argument #1 to 'step'")
    end)
  end)
end)

describe("lepoll.watch", function()
  it("calls back for an eventfd, level-triggered, until cancelled", function()
    h.with_loop(function(loop)
      local efd = h.defer(assert(lio.eventfd(0, lio.NONBLOCK)))
      local calls, total = 0, 0
      local wh
      wh = assert(loop:watch(efd, "r", function(handle, mode)
        assert.equal(wh, handle)
        assert.equal("r", mode)
        calls = calls + 1
        if calls == 3 then
          total = lio.eventfd_read(efd)
          handle:cancel()
        end
      end))
      assert(lio.eventfd_write(efd, 5))
      h.run(loop)  -- returns once the watcher is cancelled
      assert.equal(3, calls)
      assert.equal(5, total)
      assert.is_true(wh:cancel())
    end)
  end)

  it("reports writability and accepts fd numbers and objects", function()
    h.with_loop(function(loop)
      local r, w = lio.pipe(lio.NONBLOCK)
      h.defer(r)
      h.defer(w)
      local mode
      loop:watch(w:fileno(), "rw", function(wh, m)
        mode = m
        wh:cancel()
      end)
      h.run(loop)
      assert.equal("w", mode)
      local obj = { getfd = function() return r:fileno() end }
      local wh = assert(loop:watch(obj, "r", function() end))
      wh:cancel()
    end)
  end)

  it("raises on bad arguments, returns the errno of a bad fd", function()
    h.with_loop(function(loop)
      local f = function() end
      assert.error_matches(function() loop:watch(-1, "r", f) end, "bad argument #1 to 'watch'")
      assert.error_matches(function() loop:watch({}, "r", f) end, "bad argument #1 to 'watch'")
      assert.error_matches(function() loop:watch(0, "x", f) end, "bad argument #2 to 'watch'")
      assert.error_matches(function() loop:watch(0, "r", nil) end, "bad argument #3 to 'watch'")
      local wh, msg, en = loop:watch(999999, "r", f)
      assert.is_nil(wh)
      assert.is_string(msg)
      assert.equal(epoll.errno.EBADF, en)
    end)
  end)
end)

describe("the default loop", function()
  it("backs the module functions", function()
    h.with_default_loop(function(loop)
      assert.equal(loop, lepoll.default_loop())
      assert.equal(lepoll.default_loop():fileno(), lepoll.fileno())
      local fired = false
      lepoll.after(0, function() fired = true end)
      h.run(loop, nil, lepoll.run)
      assert.is_true(fired)
      assert.is_number(lepoll.now())
    end)
  end)
end)
