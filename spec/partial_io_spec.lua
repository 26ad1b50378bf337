-- The partial-I/O injector (spec/support/partial_io.c): that a run meant
-- to be under it is (the sentinel), and what its header comment promises,
-- checked in children that preload it, so that every run (make test,
-- check-asan, check-valgrind, check-partial) checks the injector itself.
local net = require "lepoll.net"
local lio = require "lepoll.io"
local process = require "support.process"
local files = require "support.files"

-- What this run expects: the directions cut ("r", "w", "rw") and the most
-- bytes a call moves, or nil when it is not under the injector. The make
-- targets set LEPOLL_PARTIAL_IO; a preload without it cuts both ways.
local MODE = os.getenv("LEPOLL_PARTIAL_IO")
if not MODE and (os.getenv("LD_PRELOAD") or ""):find("partial_io", 1, true) then MODE = "rw" end
local MAX = math.tointeger(tonumber(os.getenv("LEPOLL_PARTIAL_IO_MAX") or "1"))

local function cut(dir, len)
  if MODE and MODE:find(dir, 1, true) then return math.min(len, MAX) end
  return len
end

local function sendall(fd, s)
  local i = 1
  while i <= #s do i = i + assert(net.send(fd, s, i)) end
end

describe("this run", function()
  local a, b
  before_each(function() a, b = assert(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK)) end)
  after_each(function() a:close() b:close() end)

  local under = MODE and ("is under the injector (" .. MODE .. ", " .. MAX .. " bytes)")
    or "is not under the injector"
  it(under .. ": a 10-byte send on a socketpair moves " .. cut("w", 10), function()
    assert.equal(cut("w", 10), assert(net.send(a, "0123456789")))
  end)

  it(under .. ": a 10-byte recv on a socketpair moves " .. cut("r", 10), function()
    sendall(a, "0123456789")
    assert.equal(("0123456789"):sub(1, cut("r", 10)), assert(net.recv(b, 10)))
  end)

  it("never cuts a pipe", function()
    local r, w = assert(lio.pipe(lio.NONBLOCK))
    finally(function() r:close() w:close() end)
    assert.equal(10, assert(lio.write(w, "0123456789")))
    assert.equal("0123456789", assert(lio.read(r, 10)))
  end)
end)

-- The injector in a child: LD_PRELOAD as inherited (ASan's runtime first
-- under check-asan) without any injector, then this build's.
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local CPATH = os.getenv("LEPOLL_CPATH") or "./build/?.so"
local SO = (os.getenv("PWD") or ".") .. "/" .. BUILD .. "/partial_io.so"

local function preload()
  local keep = {}
  for w in (os.getenv("LD_PRELOAD") or ""):gmatch("%S+") do
    if not w:find("partial_io", 1, true) then keep[#keep + 1] = w end
  end
  keep[#keep + 1] = SO
  return table.concat(keep, " ")
end

-- What every Lua child starts with.
local PRELUDE = [[
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local IN, OUT, ET, ONESHOT = epoll.IN, epoll.OUT, epoll.ET, epoll.ONESHOT
local function pair(type)
  return assert(net.socketpair(net.UNIX, type or net.STREAM, net.NONBLOCK))
end
local function sendall(fd, s)
  local i = 1
  while i <= #s do i = i + assert(net.send(fd, s, i)) end
end
-- wait ms (0: poll) and return the count and the events as "data:flags"
local function wait(ep, evs, ms)
  local n = assert(ep:wait(evs, ms or 0))
  local t = {}
  for i = 1, n do
    local d, f = evs:get(i)
    t[i] = d .. ":" .. f
  end
  return n, table.concat(t, " ")
end
local function eq(want, got, what)
  if want ~= got then
    error(("%s: expected %s, got %s"):format(what, tostring(want), tostring(got)), 2)
  end
end
]]

-- Run argv (a program and its arguments) under the injector, cutting mode
-- ("r", "w", "rw") to max bytes (default 1), bounded: returns its output
-- (stdout and stderr) and whether it exited 0. Under valgrind or with
-- ASan's leak check as the run asks (process.program), unless plain: for
-- a program that is not ours (python3 leaks by design).
local function run_under(argv, mode, max, plain)
  local env = { "LD_PRELOAD=" .. preload(), "LEPOLL_PARTIAL_IO=" .. mode,
    "LEPOLL_PARTIAL_IO_MAX=" .. tostring(max or 1),
    "LUA_PATH=./lua/?.lua;./lua/?/init.lua;;", "LUA_CPATH=" .. CPATH .. ";;" }
  if not plain then
    return process.sh(process.program(argv[1], { table.unpack(argv, 2) }, { env = env }))
  end
  local parts = { "env" }
  for _, s in ipairs(env) do parts[#parts + 1] = process.shquote(s) end
  for _, s in ipairs(argv) do parts[#parts + 1] = process.shquote(s) end
  return process.sh(table.concat(parts, " ") .. " </dev/null")
end

-- Run a Lua chunk (after PRELUDE) in a child under the injector; it must
-- print "ok" last and exit 0.
local function child(mode, max, code)
  local path = files.tmpfile(PRELUDE .. code .. "\nprint('ok')\n")
  finally(function() os.remove(path) end)
  local out, ok = run_under({ "lua5.4", path }, mode, max)
  assert(ok and out:match("ok\n$"), out)
  return out
end

describe("the injector", function()
  it("cuts send, recv, read, write, writev on unix and TCP stream sockets", function()
    child("rw", 3, [[
      local a, b = pair()
      eq(3, net.send(a, "0123456789"), "send")
      eq(3, lio.write(a, "abcdef"), "write")
      eq(3, lio.writev(a, { "x", "", "yz", "w" }), "writev")
      eq("012", net.recv(b, 100), "recv")
      eq("abc", lio.read(b, 100), "read")
      eq("xyz", lio.read(b, 3), "a read of 3")
      eq(nil, (net.recv(b, 100)), "drained")
      local l = assert(net.socket(net.INET, net.STREAM))
      assert(net.bind(l, "127.0.0.1", 0))
      assert(net.listen(l))
      local c = assert(net.socket(net.INET, net.STREAM))
      assert(net.connect(c, net.getsockname(l)))
      local s = assert(net.accept(l))
      eq(3, net.send(c, "hello"), "TCP send")
      eq(3, lio.write(c, "world"), "TCP write")
      local got = ""
      while #got < 6 do got = got .. assert(lio.read(s, 100)) end
      eq("helwor", got, "TCP reads of 3")
    ]])
  end)

  it("leaves pipes, eventfds, datagram and seqpacket sockets alone", function()
    child("rw", nil, [[
      local r, w = assert(lio.pipe())
      eq(10, lio.write(w, "0123456789"), "pipe write")
      eq("0123456789", lio.read(r, 100), "pipe read")
      local e = assert(lio.eventfd(0, lio.NONBLOCK))
      assert(lio.eventfd_write(e, 5))
      eq(5, lio.eventfd_read(e), "eventfd")
      for _, t in ipairs({ net.DGRAM, net.SEQPACKET }) do
        local a, b = pair(t)
        eq(10, net.send(a, "0123456789"), "send")
        eq("0123456789", net.recv(b, 100), "recv")
      end
    ]])
  end)

  it("cuts only the directions asked for", function()
    child("r", nil, [[
      local a, b = pair()
      eq(10, net.send(a, "0123456789"), "send")
      eq("0", net.recv(b, 100), "recv")
    ]])
    child("w", nil, [[
      local a, b = pair()
      eq(1, net.send(a, "0123456789"), "send")
      eq(1, net.send(a, "123456789"), "send")
      eq("01", net.recv(b, 100), "recv")
    ]])
  end)

  it("leaves calls of N bytes or fewer alone", function()
    child("rw", 4, [[
      local a, b = pair()
      eq(4, net.send(a, "0123"), "send")
      eq(2, net.send(a, "45"), "send")
      eq("012", net.recv(b, 3), "recv")
      eq("345", net.recv(b, 5), "a recv of 5 cut to 4, 3 there")
    ]])
  end)

  it("owes an edge-triggered reader an edge while bytes are left, then none", function()
    child("r", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(b, 7, IN | ET))
      sendall(a, "hello")
      eq(1, wait(ep, evs, 1000), "the kernel's edge")
      local got = ""
      for i = 1, 5 do
        got = got .. assert(net.recv(b, 100))
        if i < 5 then
          -- owed: at once, whatever the timeout (a fractional one takes
          -- epoll_pwait2, a whole one epoll_wait)
          local n, e = wait(ep, evs, i % 2 == 0 and 5000.5 or 5000)
          eq("7:" .. IN, e, "the owed event after read " .. i)
          eq(1, n, "one event")
        end
        eq(0, wait(ep, evs), "nothing more after read " .. i)
      end
      eq("hello", got, "all of it")
    ]])
  end)

  it("owes an edge-triggered writer an edge, a level-triggered fd nothing", function()
    child("w", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(a, 1, OUT | ET))
      eq("1:" .. OUT, select(2, wait(ep, evs)), "the kernel's edge at ADD")
      eq(0, wait(ep, evs), "no more")
      eq(1, net.send(a, "abc"), "send")
      eq("1:" .. OUT, select(2, wait(ep, evs)), "the owed edge")
      eq(0, wait(ep, evs), "no more")
      assert(ep:add(b, 2, OUT))
      eq("2:" .. OUT, select(2, wait(ep, evs)), "level-triggered")
      eq(1, net.send(b, "abc"), "send")
      eq("2:" .. OUT, select(2, wait(ep, evs)), "level-triggered, once")
    ]])
  end)

  it("merges an owed edge with the kernel's event for the same fd", function()
    child("rw", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(b, 5, IN | OUT | ET))
      sendall(a, "xyz")
      eq(1, wait(ep, evs), "the kernel's edges")
      eq("x", net.recv(b, 100), "recv")   -- owes IN
      eq(1, net.send(b, "qq"), "send")    -- owes OUT
      eq(1, net.send(a, "w"), "send")     -- the kernel's edge for b
      eq("5:" .. (IN | OUT), select(2, wait(ep, evs)), "one event")
      eq(0, wait(ep, evs), "then none")
    ]])
  end)

  it("never reports more than maxevents: the rest stay owed", function()
    child("r", nil, [[
      local a1, b1 = pair()
      local a2, b2 = pair()
      local ep = assert(epoll.create())
      assert(ep:add(b1, 1, IN | ET))
      assert(ep:add(b2, 2, IN | ET))
      sendall(a1, "ab")
      sendall(a2, "ab")
      eq(2, wait(ep, epoll.events(4)), "the kernel's edges")
      eq("a", net.recv(b1, 100), "recv 1")
      eq("a", net.recv(b2, 100), "recv 2")
      local evs = epoll.events(1)
      local n1, e1 = wait(ep, evs)
      local n2, e2 = wait(ep, evs)
      eq(1, n1, "first")
      eq(1, n2, "second")
      local both = { e1, e2 }
      table.sort(both)
      eq("1:" .. IN .. " 2:" .. IN, table.concat(both, " "), "each once")
      eq(0, wait(ep, evs), "then none")
    ]])
  end)

  it("honours EPOLLONESHOT: a disarmed registration is owed nothing until MOD", function()
    child("r", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(b, 9, IN | ET | ONESHOT))
      sendall(a, "abc")
      eq(1, wait(ep, evs), "the kernel's event")
      eq("a", net.recv(b, 100), "recv")
      eq(0, wait(ep, evs), "disarmed")
      assert(ep:modify(b, 9, IN | ET | ONESHOT))
      eq("9:" .. IN, select(2, wait(ep, evs)), "re-armed: the kernel reports")
      eq("b", net.recv(b, 100), "recv")
      eq(0, wait(ep, evs), "disarmed again")
    ]])
  end)

  it("owes a nested epoll set readiness in the set holding it", function()
    child("r", nil, [[
      local a, b = pair()
      local inner = assert(epoll.create())
      local outer = assert(epoll.create())
      local evs = epoll.events(4)
      assert(inner:add(b, 3, IN | ET))
      assert(outer:add(inner, 4, IN))            -- level-triggered, as a host does
      sendall(a, "abc")
      eq("4:" .. IN, select(2, wait(outer, evs)), "the kernel's")
      eq("3:" .. IN, select(2, wait(inner, evs)), "inside")
      eq(0, wait(outer, evs), "nothing left inside")
      eq("a", net.recv(b, 100), "recv")
      eq("4:" .. IN, select(2, wait(outer, evs)), "owed inside: ready outside")
      eq("3:" .. IN, select(2, wait(inner, evs)), "the owed edge")
      eq(0, wait(outer, evs), "settled")
    ]])
  end)

  it("disarms a oneshot registration in the kernel too when it reports an owed edge", function()
    child("r", nil, [[
      local a, b = pair()
      local inner = assert(epoll.create())
      local outer = assert(epoll.create())
      local evs = epoll.events(4)
      assert(inner:add(b, 3, IN | ET))
      assert(outer:add(inner, 4, IN | ONESHOT))
      sendall(a, "abc")
      eq(1, wait(inner, evs), "inside, first: the outer item lapses")
      assert(outer:modify(inner, 4, IN | ONESHOT))
      eq(0, wait(outer, evs), "nothing ready inside")
      eq("a", net.recv(b, 100), "recv")
      eq("4:" .. IN, select(2, wait(outer, evs)), "owed only")
      eq("3:" .. IN, select(2, wait(inner, evs)), "inside")
      sendall(a, "d")                            -- the kernel sees the inner set ready
      eq(0, wait(outer, evs), "the outer registration is disarmed")
    ]])
  end)

  it("settles what is owed at MOD, forgets at DEL and close", function()
    child("r", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(b, 1, IN | ET))
      sendall(a, "abcdef")
      eq(1, wait(ep, evs), "the kernel's")
      eq("a", net.recv(b, 100), "recv")
      assert(ep:modify(b, 8, IN | ET))
      eq("8:" .. IN, select(2, wait(ep, evs)), "one event, the kernel's, new data")
      eq("b", net.recv(b, 100), "recv")
      assert(ep:delete(b))
      eq(0, wait(ep, evs), "deleted")
      assert(ep:add(b, 2, IN | ET))
      eq("2:" .. IN, select(2, wait(ep, evs)), "added again: the kernel's")
      eq("c", net.recv(b, 100), "recv")
      local n = b:fileno()
      b:close()
      -- at once a readable socket on the number: a registration not
      -- forgotten at close would report it
      local c, d = pair()
      local reused = c:fileno() == n and c or d:fileno() == n and d
      assert(reused, "fd " .. n .. " not reused")
      sendall(reused == c and d or c, "x")
      eq(0, wait(ep, evs), "nothing stale for fd " .. n)
    ]])
  end)

  it("lets an owed edge lapse once the fd is drained", function()
    child("r", nil, [[
      local a, b = pair()
      local ep = assert(epoll.create())
      local evs = epoll.events(4)
      assert(ep:add(b, 1, IN | ET))
      sendall(a, "ab")
      eq(1, wait(ep, evs), "the kernel's")
      eq("a", net.recv(b, 100), "recv")
      eq("b", net.recv(b, 100), "recv")
      eq(0, wait(ep, evs), "lapsed")
    ]])
  end)

  it("cuts readv, recvmsg, recv_into, sendmsg, writev, sendto; not MSG_PEEK, MSG_WAITALL, MSG_OOB",
    function()
      local path = files.tmpfile([[
import os, socket
def eq(want, got, what):
    if want != got:
        raise SystemExit("%s: expected %r, got %r" % (what, want, got))
a, b = socket.socketpair()
eq(2, a.send(b"0123456789"), "send")
eq(2, a.sendmsg([b"ab", b"cd"]), "sendmsg")
eq(2, os.writev(a.fileno(), [b"x", b"yz"]), "writev")
a.setblocking(False)
rest = b"456789"
while rest:
    rest = rest[a.send(rest):]
eq(b"01abxy456789", b.recv(100, socket.MSG_PEEK), "MSG_PEEK")
buf = bytearray(100)
eq(2, b.recv_into(buf), "recv_into")
eq(b"ab", b.recvmsg(100)[0], "recvmsg")
x, y = bytearray(1), bytearray(5)
eq(2, os.readv(b.fileno(), [x, y]), "readv")
eq(b"xy", bytes(x) + bytes(y[:1]), "readv's bytes")
eq(b"4567", b.recv(4, socket.MSG_WAITALL), "MSG_WAITALL")
eq(b"89", b.recv(100), "the rest")
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
eq(2, c.sendto(b"hello", l.getsockname()), "sendto")
eq(3, c.send(b"xyz", socket.MSG_OOB), "MSG_OOB send")
got = b""
while len(got) < 4:
    got += s.recv(100)
eq(b"hexy", got, "TCP recvs, up to the urgent byte")
eq(b"z", s.recv(1, socket.MSG_OOB), "MSG_OOB recv")
print("ok")
]])
      finally(function() os.remove(path) end)
      local out, ok = run_under({ "python3", path }, "rw", 2, true)
      assert(ok and out:match("ok\n$"), out)
    end)

  it("refuses a mistyped setting", function()
    local out, ok = run_under({ "lua5.4", "-e", "print('ran')" }, "both")
    assert.is_false(ok)
    assert.matches("partial_io: LEPOLL_PARTIAL_IO must be r, w or rw, not both", out, 1, true)
    assert.is_nil(out:find("ran", 1, true))
    out, ok = run_under({ "lua5.4", "-e", "print('ran')" }, "rw", "0")
    assert.is_false(ok)
    assert.matches("LEPOLL_PARTIAL_IO_MAX must be a positive integer, not 0", out, 1, true)
  end)
end)
