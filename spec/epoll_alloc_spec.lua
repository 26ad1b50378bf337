-- The hot path allocates nothing per call: lepoll.epoll's wait and
-- events:get, and the small reads and writes of lepoll.io and lepoll.net.
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"

local CALLS = 100000

describe("the epoll hot path", function()
  local ep, fd

  before_each(function()
    ep = assert(epoll.create())
    fd = assert(lio.eventfd(1, lio.NONBLOCK))  -- readable until read
  end)

  after_each(function()
    collectgarbage("restart")
    fd:close()
    ep:close()
  end)

  -- Bytes the Lua heap grew by over `CALLS` runs of body(), GC stopped.
  local function growth(body)
    collectgarbage("collect")
    collectgarbage("stop")
    -- warm up after the collection, which shrinks the stack and CallInfo
    -- list that the first call then grows back once
    body()
    local before = collectgarbage("count")
    for _ = 1, CALLS do body() end
    local after = collectgarbage("count")
    collectgarbage("restart")
    return (after - before) * 1024
  end

  it("wait(events, 0) and get(i) on a ready fd allocate nothing", function()
    local evs = epoll.events(4)
    assert.is_true(ep:add(fd, -1, epoll.IN))
    local IN = epoll.IN
    local sum, n = 0, 0
    local bytes = growth(function()
      local count = ep:wait(evs, 0)
      n = n + count
      for i = 1, count do
        local data, flags = evs:get(i)
        if data == -1 and flags == IN then sum = sum + 1 end
      end
    end)
    assert.equal(CALLS + 1, n)    -- every wait saw the fd ...
    assert.equal(CALLS + 1, sum)  -- ... with its data and flags
    assert.is_true(bytes <= 8, ("grew by %d bytes over %d calls"):format(bytes, CALLS))
  end)

  it("a fractional timeout, count, capacity and # allocate nothing", function()
    local evs = epoll.events(1)
    assert.is_true(ep:add(fd, math.mininteger, epoll.IN))
    local ok = 0
    local bytes = growth(function()
      if ep:wait(evs, 0.5) == 1 and #evs == 1 and evs:count() == 1
          and evs:capacity() == 1 and evs:get(1) == math.mininteger then
        ok = ok + 1
      end
    end)
    assert.equal(CALLS + 1, ok)
    assert.is_true(bytes <= 8, ("grew by %d bytes over %d calls"):format(bytes, CALLS))
  end)

  it("write/read, send/recv and their EAGAIN triple allocate nothing", function()
    -- one byte each way: the result is a short (interned) string, so only
    -- the first call creates it; EAGAIN's message is strerror's static text
    local r, w = assert(lio.pipe(lio.NONBLOCK))
    local a, b = assert(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK))
    local EAGAIN = lio.errno.EAGAIN
    local ok = 0
    local bytes
    local done, err = pcall(function()
      bytes = growth(function()
        if lio.write(w, "x") == 1 and lio.read(r, 16) == "x"
            and select(3, lio.read(r, 16)) == EAGAIN
            and lio.write(w, "hello", 2, 2) == 1 and lio.read(r, 1) == "e"
            and net.send(a, "y") == 1 and net.recv(b, 16) == "y"
            and select(3, net.recv(b, 16)) == EAGAIN then
          ok = ok + 1
        end
      end)
    end)
    r:close() w:close() a:close() b:close()
    assert(done, err)
    assert.equal(CALLS + 1, ok)
    assert.is_true(bytes <= 8, ("grew by %d bytes over %d calls"):format(bytes, CALLS))
  end)

  it("the measurement notices an allocation per call", function()
    local keep = {}
    local bytes = growth(function() keep[#keep + 1] = {} end)
    assert.is_true(bytes >= CALLS * 16, "the GC counter did not see tables")
  end)
end)
