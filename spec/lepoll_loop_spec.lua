-- lepoll framework: the loop (run, step, stop, fileno, timeout, close),
-- the host protocol (fileno wakes a host's own poll when a timer is due)
-- and lepoll.watch on pipes and eventfds.
local lepoll = require "lepoll"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"

-- Is fd readable within ms milliseconds (a host's own epoll)?
local function readable(fd, ms)
  local ep = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(fd, 1, epoll.IN))
  local n = assert(ep:wait(evs, ms))
  ep:close()
  return n == 1
end

describe("lepoll.loop", function()
  it("has its own epoll fd and closes it", function()
    local loop = lepoll.loop()
    local fd = loop:fileno()
    assert.is_true(math.type(fd) == "integer" and fd > 2)
    assert.is_true(loop:close())
    assert.is_true(loop:close())
    assert.error_matches(function() loop:fileno() end, "closed lepoll loop")
    assert.error_matches(function() loop:run() end, "closed lepoll loop")
  end)

  it("raises on bad options", function()
    assert.has_error(function() lepoll.loop("x") end)
  end)
end)

describe("a loop nobody closes", function()
  it("closes its connections' sockets when it is collected", function()
    local net = require "lepoll.net"
    local client = require "support.client"
    local loop = lepoll.loop()
    local accepted = false
    local server = assert(loop:listen({ port = 0 }, function(conn)
      accepted = true
      conn:read()  -- waits: the connection stays open
    end))
    local _, port = server:address()
    local s = assert(net.socket(net.INET, net.STREAM))
    finally(function() s:close() end)
    assert(net.connect(s, "127.0.0.1", port))
    for _ = 1, 100 do
      if accepted then break end
      loop:step(0.01)
    end
    assert.is_true(accepted)
    loop, server = nil, nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    -- the server's end is closed: the client reads end of stream
    local ep = assert(require("lepoll.epoll").create())
    finally(function() ep:close() end)
    local evs = require("lepoll.epoll").events(1)
    assert(ep:add(s, 1, require("lepoll.epoll").IN))
    assert.equal(1, ep:wait(evs, client.WAIT_MS))
    assert.equal("", net.recv(s, 16))
  end)
end)

describe("loop:run", function()
  it("returns when nothing is left to wait for", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    assert.is_true(loop:run())
  end)

  it("returns after stop()", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local t = loop:every(0.001, function() loop:stop() end)
    assert.is_true(loop:run())
    assert.is_true(t:pending())
    t:cancel()
  end)

  it("refuses to run twice at once", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local err
    loop:after(0, function() err = select(2, pcall(loop.run, loop)) end)
    loop:run()
    assert.matches("already running", err)
  end)
end)

describe("loop:step, fileno, timeout (the host protocol)", function()
  it("makes fileno() readable when a timer is due", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    assert.is_nil(loop:timeout())
    local fired = false
    loop:after(0.05, function() fired = true end)
    local to = loop:timeout()
    assert.is_true(to > 0.03 and to <= 0.05)
    loop:step(0)  -- arms the timerfd for the deadline
    assert.is_false(readable(loop:fileno(), 10))
    assert.is_true(readable(loop:fileno(), 1000))
    assert.is_false(fired)
    loop:step(0)
    assert.is_true(fired)
    assert.is_nil(loop:timeout())
  end)

  it("makes fileno() readable while coroutines are ready", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local n = 0
    loop:spawn(function()
      loop:sleep(0)
      n = n + 1
    end)
    assert.equal(0, loop:timeout())
    loop:step(0)
    assert.equal(1, n)
  end)

  it("returns the number of fd events; step(nil) blocks until one", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local r, w = lio.pipe(lio.NONBLOCK)
    finally(function() r:close(); w:close() end)
    local seen
    local h = assert(loop:watch(r, "r", function(_, mode)
      seen = mode
      lio.read(r, 10)
    end))
    assert.equal(0, loop:step(0))
    lio.write(w, "x")
    assert.equal(1, loop:step())
    assert.equal("r", seen)
    h:cancel()
    assert.has_error(function() loop:step(-1) end)
    assert.has_error(function() loop:step("x") end)
  end)
end)

describe("lepoll.watch", function()
  it("calls back for an eventfd, level-triggered, until cancelled", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local efd = assert(lio.eventfd(0, lio.NONBLOCK))
    finally(function() efd:close() end)
    local calls, total = 0, 0
    local h
    h = assert(loop:watch(efd, "r", function(handle, mode)
      assert.equal(h, handle)
      assert.equal("r", mode)
      calls = calls + 1
      if calls == 3 then
        total = lio.eventfd_read(efd)
        handle:cancel()
      end
    end))
    assert(lio.eventfd_write(efd, 5))
    loop:run()  -- returns once the watcher is cancelled
    assert.equal(3, calls)
    assert.equal(5, total)
    assert.is_true(h:cancel())
  end)

  it("reports writability and accepts fd numbers and objects", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local r, w = lio.pipe(lio.NONBLOCK)
    finally(function() r:close(); w:close() end)
    local mode
    loop:watch(w:fileno(), "rw", function(h, m)
      mode = m
      h:cancel()
    end)
    loop:run()
    assert.equal("w", mode)
    local obj = { getfd = function() return r:fileno() end }
    local h = assert(loop:watch(obj, "r", function() end))
    h:cancel()
  end)

  it("raises on bad arguments, returns the errno of a bad fd", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local f = function() end
    assert.has_error(function() loop:watch(-1, "r", f) end)
    assert.has_error(function() loop:watch({}, "r", f) end)
    assert.has_error(function() loop:watch(0, "x", f) end)
    assert.has_error(function() loop:watch(0, "r", nil) end)
    local h, msg, en = loop:watch(999999, "r", f)
    assert.is_nil(h)
    assert.is_string(msg)
    assert.equal(epoll.errno.EBADF, en)
  end)
end)

describe("the default loop", function()
  it("backs the module functions", function()
    assert.equal(lepoll.default_loop(), lepoll.default_loop())
    assert.equal(lepoll.default_loop():fileno(), lepoll.fileno())
    local fired = false
    lepoll.after(0, function() fired = true end)
    lepoll.run()
    assert.is_true(fired)
    assert.is_number(lepoll.now())
  end)
end)
