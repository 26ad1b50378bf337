-- The C modules with real LuaSocket objects (Debian's lua-socket): every fd
-- argument takes a LuaSocket socket, whose getfd() returns a float under
-- Lua 5.4 (3.0, not 3).
local socket = require "socket"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local files = require "support.files"
local cleanup = require "support.cleanup"
local assert_fail = require("support.result").assert_fail

local E = net.errno
local O_NONBLOCK = 0x800
local WAIT_MS = 10000  -- a bound for waits that should return at once

local track, closeall = cleanup.tracker()
after_each(closeall)

-- A LuaSocket server on 127.0.0.1 (port 0), a LuaSocket client connected to
-- it, and the server side accepted by lepoll.net (an lepoll.Fd).
local function connected()
  local srv = track(assert(socket.bind("127.0.0.1", 0)))
  local host, port = srv:getsockname()
  local c = track(assert(socket.connect(host, port)))
  assert(c:settimeout(WAIT_MS / 1000))
  local a = track(assert(net.accept(srv)))
  return srv, c, a
end

-- The fd number a LuaSocket object holds, as an integer.
local function fdnum(s)
  return assert(math.tointeger(s:getfd()))
end

describe("LuaSocket objects as fd arguments", function()
  it("have a getfd() that returns an integral float", function()
    local srv = track(assert(socket.bind("127.0.0.1", 0)))
    assert.equal("float", math.type(srv:getfd()))
    assert.is_true(fdnum(srv) >= 0)
  end)

  it("register with epoll, and a wait reports the listener readable", function()
    local srv = track(assert(socket.bind("127.0.0.1", 0)))
    local ep = track(assert(epoll.create()))
    local evs = epoll.events(2)
    assert.is_true(ep:add(srv, 7, epoll.IN))
    assert.equal(0, ep:wait(evs, 0))
    local host, port = srv:getsockname()
    local c = track(assert(socket.connect(host, port)))
    assert.equal(1, ep:wait(evs, WAIT_MS))
    assert.same({ 7, epoll.IN }, { evs:get(1) })
    assert.is_true(ep:modify(srv, 8, epoll.IN))
    assert.equal(1, ep:wait(evs, 0))
    assert.same({ 8, epoll.IN }, { evs:get(1) })
    assert.is_true(ep:delete(srv))
    assert.equal(0, ep:wait(evs, 0))
    assert.is_not_nil(c)
  end)

  it("report their addresses through net.getsockname and net.getpeername", function()
    local srv, c, a = connected()
    local host, port = srv:getsockname()
    assert.same({ host, math.tointeger(port) }, { net.getsockname(srv) })
    assert.same({ host, math.tointeger(port) }, { net.getpeername(c) })
    assert.same({ net.getsockname(c) }, { net.getpeername(a) })
  end)

  it("switch to non-blocking with io.set_nonblocking", function()
    local _, c = connected()
    assert.is_true(lio.set_nonblocking(c, true))
    assert.equal(O_NONBLOCK, files.fdflags(fdnum(c)) & O_NONBLOCK)
    assert_fail(E.EAGAIN, net.recv(c, 10))
    assert_fail(E.EAGAIN, lio.read(c, 10))
    assert.is_true(lio.set_nonblocking(c, false))
    assert.equal(0, files.fdflags(fdnum(c)) & O_NONBLOCK)
  end)

  it("carry data both ways with net and io, beside LuaSocket's own calls", function()
    local _, c, a = connected()
    assert.equal(2, net.send(c, "hi"))
    assert.equal("hi", net.recv(a, 10))
    assert.equal(2, lio.write(c, "abc", 2))
    assert.equal(2, lio.writev(c, { "d", "e" }))
    assert.equal("bcde", lio.read(a, 10))
    assert.equal(5, net.send(a, "hello"))
    assert.equal("hello", c:receive(5))
    assert.equal(2, c:send("yo"))
    assert.equal("yo", net.recv(a, 10))
    assert.is_true(net.setsockopt(c, "nodelay", true))
    assert.is_true(net.getsockopt(c, "nodelay"))
    assert.is_true(net.shutdown(c, "w"))
    assert.equal("", net.recv(a, 10))
  end)

  it("are refused by io.close, which would close their fd behind their back", function()
    local _, c, a = connected()
    assert.error_matches(function() lio.close(c) end,
      "bad argument #1 to '[%w.]-close' %(integer or lepoll%.Fd expected, got tcp{client}%)")
    assert.equal(2, c:send("ok"))  -- still open
    assert.equal("ok", net.recv(a, 10))
  end)

  it("raise naming the argument once closed (getfd() is -1.0)", function()
    local _, c = connected()
    c:close()
    assert.equal(-1.0, c:getfd())
    assert.error_matches(function() net.getsockname(c) end,
      "bad argument #1 to '[%w.]-getsockname' %(getfd%(%) returned an fd out of range%)")
    assert.error_matches(function() lio.set_nonblocking(c, true) end,
      "bad argument #1 to '[%w.]-set_nonblocking' %(getfd%(%) returned an fd out of range%)")
    local ep = track(assert(epoll.create()))
    assert.error_matches(function() ep:add(c, 1, epoll.IN) end,
      "bad argument #1 to 'add' %(getfd%(%) returned an fd out of range%)")
  end)
end)
