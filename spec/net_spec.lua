-- lepoll.net: sockets (INET, INET6, UNIX; stream and datagram).
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local files = require "support.files"
local process = require "support.process"
local cleanup = require "support.cleanup"
local assert_fail = require("support.result").assert_fail

local E = net.errno

-- Every socket a test makes goes through track(); after_each closes them.
local track, closeall = cleanup.tracker()

local function sock(family, stype, flags)
  return track(assert(net.socket(family, stype, flags)))
end

-- A listening TCP socket on host (port 0) and its real address.
local function listener(family, host, flags)
  local s = sock(family, net.STREAM, flags)
  assert(net.bind(s, host, 0))
  assert(net.listen(s))
  local h, p = net.getsockname(s)
  return s, h, p
end

-- listener, client, accepted server side
local function tcp_pair(family, host)
  local s, h, p = listener(family, host)
  local c = sock(family, net.STREAM)
  assert(net.connect(c, h, p))
  local a = track(assert(net.accept(s)))
  return s, c, a
end

local fdflags, fdcount = files.fdflags, files.count_fds
local O_NONBLOCK, O_CLOEXEC = 2048, 524288  -- 04000, 02000000 (asm-generic)
local mypid = files.pid()

-- Wait (bounded) until fd is writable: true, or false on timeout.
local function wait_writable(fd)
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  assert(ep:add(fd, 1, epoll.OUT))
  if assert(ep:wait(evs, 10000)) ~= 1 then return false end
  local _, flags = evs:get(1)
  return flags & epoll.OUT ~= 0
end

-- Is there an IPv6 loopback here? Checked, not assumed.
local has_ipv6 = (function()
  local s = net.socket(net.INET6, net.STREAM)
  if not s then return false end
  local ok = net.bind(s, "::1", 0)
  s:close()
  return ok == true
end)()

local function mktmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -m 700 " .. d))
  return d
end

local tmpdir
setup(function() tmpdir = mktmpdir() end)
teardown(function() os.execute("rm -rf " .. tmpdir) end)
after_each(closeall)

describe("lepoll.net constants", function()
  it("has families, types, flags, SOMAXCONN as distinct integers", function()
    for _, k in ipairs { "INET", "INET6", "UNIX", "STREAM", "DGRAM", "SEQPACKET",
                         "NONBLOCK", "CLOEXEC", "SOMAXCONN", "PEEK" } do
      assert.equal("number", math.type(net[k]) and "number", k)
    end
    assert.are_not.equal(net.INET, net.INET6)
    assert.are_not.equal(net.INET, net.UNIX)
    assert.are_not.equal(net.STREAM, net.DGRAM)
    assert.equal(0, net.NONBLOCK & net.CLOEXEC)
  end)

  it("names options by strings", function()
    assert.equal("reuseaddr", net.SO_REUSEADDR)
    assert.equal("nodelay", net.TCP_NODELAY)
    assert.equal("v6only", net.IPV6_V6ONLY)
    assert.equal("error", net.SO_ERROR)
    assert.equal("linger", net.SO_LINGER)
  end)

  it("has an errno table and a version", function()
    assert.equal(11, E.EAGAIN)
    assert.equal("number", type(E.EINPROGRESS))
    assert.equal("number", type(E.EPIPE))
    assert.equal("lepoll 0.1.0", net._VERSION)
  end)

  it("names every errno an accept loop or a connection compares against", function()
    -- accept(2): EPROTO, ENONET & co are pending network errors to skip
    local want = { EAGAIN = 11, EWOULDBLOCK = 11, EINTR = 4, EPIPE = 32,
      ECONNRESET = 104, ECONNABORTED = 103, ECONNREFUSED = 111,
      EINPROGRESS = 115, EALREADY = 114, EISCONN = 106, ENOTCONN = 107,
      ETIMEDOUT = 110, EADDRINUSE = 98, EADDRNOTAVAIL = 99, EMFILE = 24,
      ENFILE = 23, ENOBUFS = 105, ENOMEM = 12, EPROTO = 71, ENONET = 64,
      ENOPROTOOPT = 92, EHOSTDOWN = 112, EHOSTUNREACH = 113,
      ENETDOWN = 100, ENETUNREACH = 101, EOPNOTSUPP = 95, ENOTSUP = 95,
      ENOTSOCK = 88, EMSGSIZE = 90, ESHUTDOWN = 108, ENOSR = 63 }
    for name, v in pairs(want) do
      assert.equal(v, E[name], name)
    end
  end)
end)

describe("net.socket", function()
  it("returns an Fd, always close-on-exec", function()
    local s = sock(net.INET, net.STREAM)
    assert.matches("^lepoll.Fd %(fd %d+%)$", tostring(s))
    assert.equal(O_CLOEXEC, fdflags(s) & O_CLOEXEC)
    assert.equal(0, fdflags(s) & O_NONBLOCK)
    assert.equal(net.STREAM, net.getsockopt(s, "type"))
    assert.equal(net.INET, net.getsockopt(s, "domain"))
  end)

  it("takes NONBLOCK, and CLOEXEC given or not", function()
    local s = sock(net.INET6, net.DGRAM, net.NONBLOCK)
    assert.equal(O_NONBLOCK | O_CLOEXEC, fdflags(s) & (O_NONBLOCK | O_CLOEXEC))
    local u = sock(net.UNIX, net.DGRAM, net.CLOEXEC)
    assert.equal(O_CLOEXEC, fdflags(u) & (O_NONBLOCK | O_CLOEXEC))
    assert.equal(net.DGRAM, net.getsockopt(s, "type"))
    assert.equal(net.INET6, net.getsockopt(s, "domain"))
    assert.equal(net.UNIX, net.getsockopt(u, "domain"))
  end)

  it("fails with the triple when the kernel refuses", function()
    assert_fail(E.ESOCKTNOSUPPORT, net.socket(net.INET, net.SEQPACKET))
  end)
end)

describe("net.bind", function()
  it("binds 127.0.0.1 port 0 to a real port", function()
    local s = sock(net.INET, net.STREAM)
    assert.is_true(net.bind(s, "127.0.0.1", 0))
    local h, p = net.getsockname(s)
    assert.equal("127.0.0.1", h)
    assert.is_true(p > 0 and p <= 65535)
  end)

  it("reads * and localhost in the socket's family", function()
    local a = sock(net.INET, net.DGRAM)
    assert.is_true(net.bind(a, "*", 0))
    assert.equal("0.0.0.0", (net.getsockname(a)))
    local b = sock(net.INET, net.DGRAM)
    assert.is_true(net.bind(b, "localhost", 0))
    assert.equal("127.0.0.1", (net.getsockname(b)))
    if has_ipv6 then
      local c = sock(net.INET6, net.DGRAM)
      assert.is_true(net.bind(c, "localhost", 0))
      assert.equal("::1", (net.getsockname(c)))
      local d = sock(net.INET6, net.DGRAM)
      assert.is_true(net.bind(d, "*", 0))
      assert.equal("::", (net.getsockname(d)))
    end
  end)

  it("fails with EADDRINUSE on a taken port", function()
    local _, _, p = listener(net.INET, "127.0.0.1")
    local s = sock(net.INET, net.STREAM)
    assert_fail(E.EADDRINUSE, net.bind(s, "127.0.0.1", p))
  end)

  it("fails with EADDRNOTAVAIL on an address that is not ours", function()
    local s = sock(net.INET, net.STREAM)
    assert_fail(E.EADDRNOTAVAIL, net.bind(s, "192.0.2.1", 0))
  end)

  it("fails with EBADF on a closed integer fd", function()
    local s = assert(net.socket(net.INET, net.STREAM))
    local n = s:fileno()
    s:close()
    assert_fail(E.EBADF, net.bind(n, "127.0.0.1", 0))
  end)

  it("fails with ENOTSOCK on an fd that is no socket", function()
    local ep = track(assert(epoll.create()))
    assert_fail(E.ENOTSOCK, net.bind(ep, "127.0.0.1", 0))
  end)

  it("binds UNIX paths, up to 107 bytes, and fails with EADDRINUSE", function()
    local path = tmpdir .. "/b.sock"
    local s = sock(net.UNIX, net.STREAM)
    assert.is_true(net.bind(s, path))
    assert.equal(path, (net.getsockname(s)))
    assert.equal(1, select("#", net.getsockname(s)))  -- no port for UNIX
    local t = sock(net.UNIX, net.STREAM)
    assert_fail(E.EADDRINUSE, net.bind(t, path))
    local long = tmpdir .. "/" .. ("p"):rep(107 - #tmpdir - 1)
    assert.equal(107, #long)
    local u = sock(net.UNIX, net.DGRAM)
    assert.is_true(net.bind(u, long))
    assert.equal(long, (net.getsockname(u)))
    local v = sock(net.UNIX, net.DGRAM)
    assert_fail(E.ENOENT, net.bind(v, tmpdir .. "/missing/x.sock"))
  end)

  it("binds abstract UNIX names and autobinds on \"\"", function()
    local name = "\0lepoll-net-spec-" .. mypid
    local s = sock(net.UNIX, net.STREAM)
    assert.is_true(net.bind(s, name))
    assert.equal(name, (net.getsockname(s)))
    local max = "\0" .. ("a"):rep(107)
    local m = sock(net.UNIX, net.DGRAM)
    assert.is_true(net.bind(m, max))
    assert.equal(max, (net.getsockname(m)))
    local a = sock(net.UNIX, net.DGRAM)
    assert.is_true(net.bind(a, ""))
    assert.matches("^%z%x%x%x%x%x$", (net.getsockname(a)))
  end)
end)

describe("net.listen", function()
  it("listens with the default and a given backlog", function()
    local s = sock(net.INET, net.STREAM)
    assert.is_true(net.bind(s, "127.0.0.1", 0))
    assert.is_false(net.getsockopt(s, "acceptconn"))
    assert.is_true(net.listen(s))
    assert.is_true(net.getsockopt(s, "acceptconn"))
    local t = sock(net.INET, net.STREAM)
    assert.is_true(net.bind(t, "127.0.0.1", 0))
    assert.is_true(net.listen(t, 1))
  end)

  it("fails with EOPNOTSUPP on a datagram socket", function()
    local s = sock(net.INET, net.DGRAM)
    assert_fail(E.EOPNOTSUPP, net.listen(s))
  end)
end)

describe("net.accept", function()
  it("returns the connection and the peer's host and port", function()
    local s, h, p = listener(net.INET, "127.0.0.1")
    local c = sock(net.INET, net.STREAM)
    assert.is_true(net.connect(c, h, p))
    local a, ph, pp = net.accept(s)
    track(a)
    assert.matches("^lepoll.Fd %(fd %d+%)$", tostring(a))
    local ch, cp = net.getsockname(c)
    assert.equal(ch, ph)
    assert.equal(cp, pp)
    assert.equal(O_CLOEXEC, fdflags(a) & (O_CLOEXEC | O_NONBLOCK))
  end)

  it("makes a non-blocking connection when asked, CLOEXEC always", function()
    local s, h, p = listener(net.INET, "127.0.0.1")
    local c = sock(net.INET, net.STREAM)
    assert.is_true(net.connect(c, h, p))
    local a = track(assert(net.accept(s, net.NONBLOCK)))
    assert.equal(O_CLOEXEC | O_NONBLOCK, fdflags(a) & (O_CLOEXEC | O_NONBLOCK))
    assert_fail(E.EAGAIN, net.recv(a, 10))
  end)

  it("returns the EAGAIN triple on a non-blocking listener", function()
    local s = listener(net.INET, "127.0.0.1", net.NONBLOCK)
    assert_fail(E.EAGAIN, net.accept(s))
  end)

  it("fails with EINVAL on a socket that is not listening", function()
    local s = sock(net.INET, net.STREAM)
    assert_fail(E.EINVAL, net.accept(s))
  end)

  it("returns \"\" and no port for an unnamed UNIX peer", function()
    local path = tmpdir .. "/acc.sock"
    local s = sock(net.UNIX, net.STREAM)
    assert.is_true(net.bind(s, path))
    assert.is_true(net.listen(s))
    local c = sock(net.UNIX, net.STREAM)
    assert.is_true(net.connect(c, path))
    local n = table.pack(net.accept(s))
    track(n[1])
    assert.equal(2, n.n)
    assert.equal("", n[2])
    assert.equal(path, (net.getpeername(c)))
    assert.equal("", (net.getpeername(n[1])))
  end)
end)

describe("net.connect", function()
  it("connects over 127.0.0.1", function()
    local _, c, a = tcp_pair(net.INET, "127.0.0.1")
    assert.equal(5, net.send(c, "hello"))
    assert.equal("hello", net.recv(a, 100))
  end)

  it("connects over ::1", function()
    if not has_ipv6 then return pending("no IPv6 loopback on this machine") end
    local s, c, a = tcp_pair(net.INET6, "::1")
    local h, p = net.getsockname(s)
    assert.equal("::1", h)
    assert.same({ "::1", p }, { net.getpeername(c) })
    assert.same({ net.getsockname(c) }, { net.getpeername(a) })
    assert.equal(3, net.send(a, "six"))
    assert.equal("six", net.recv(c, 3))
  end)

  it("takes an IPv6 zone by interface name or number (fe80::1%lo, %1)", function()
    if not has_ipv6 then return pending("no IPv6 loopback on this machine") end
    -- no link-local address is configured on lo: the kernel answers, the
    -- address itself is taken (a wrong zone raises, see the misuse table)
    for _, host in ipairs({ "fe80::1%lo", "fe80::1%1", "::1%lo" }) do
      local fd = assert(net.socket(net.INET6, net.STREAM, net.NONBLOCK))
      local ok, err, en = net.connect(fd, host, 9)
      assert(ok or (type(err) == "string" and math.type(en) == "integer"), host)
      fd:close()
    end
  end)

  it("fails with ECONNREFUSED on a port bound but not listening", function()
    -- kept bound (not closed), so no other socket, and no self-connect from
    -- an ephemeral port, can answer on it
    local s = sock(net.INET, net.STREAM)
    assert.is_true(net.bind(s, "127.0.0.1", 0))
    local _, p = net.getsockname(s)
    local c = sock(net.INET, net.STREAM)
    assert_fail(E.ECONNREFUSED, net.connect(c, "127.0.0.1", p))
  end)

  it("returns EINPROGRESS when non-blocking, then SO_ERROR 0 once writable", function()
    local s, h, p = listener(net.INET, "127.0.0.1")
    local c = sock(net.INET, net.STREAM, net.NONBLOCK)
    local ok, msg, en = net.connect(c, h, p)
    assert_fail(E.EINPROGRESS, ok, msg, en)
    assert.is_true(wait_writable(c))
    assert.equal(0, net.getsockopt(c, "error"))
    assert.same({ h, p }, { net.getpeername(c) })
    track(assert(net.accept(s)))
  end)

  it("reports a refused non-blocking connect through SO_ERROR", function()
    local s = sock(net.INET, net.STREAM)   -- bound, never listening
    assert.is_true(net.bind(s, "127.0.0.1", 0))
    local _, p = net.getsockname(s)
    local c = sock(net.INET, net.STREAM, net.NONBLOCK)
    local ok, _, en = net.connect(c, "127.0.0.1", p)
    assert.is_nil(ok)
    if en == E.EINPROGRESS then
      assert.is_true(wait_writable(c))
      assert.equal(E.ECONNREFUSED, net.getsockopt(c, "error"))
      assert.equal(0, net.getsockopt(c, "error"))  -- reading clears it
    else
      assert.equal(E.ECONNREFUSED, en)
    end
  end)

  it("connects UNIX stream sockets, ENOENT for a missing path", function()
    local path = tmpdir .. "/conn.sock"
    local s = sock(net.UNIX, net.STREAM)
    assert.is_true(net.bind(s, path))
    assert.is_true(net.listen(s))
    local c = sock(net.UNIX, net.STREAM)
    assert.is_true(net.connect(c, path))
    local a = track(assert(net.accept(s)))
    assert.equal(4, net.send(a, "unix"))
    assert.equal("unix", net.recv(c, 10))
    local d = sock(net.UNIX, net.STREAM)
    assert_fail(E.ENOENT, net.connect(d, tmpdir .. "/nobody.sock"))
    local e = sock(net.UNIX, net.STREAM)
    assert_fail(E.ECONNREFUSED, net.connect(e, "\0lepoll-nobody-" .. mypid))
  end)
end)

describe("net.getsockname / net.getpeername", function()
  it("report both ends of a connection", function()
    local s, c, a = tcp_pair(net.INET, "127.0.0.1")
    local sh, sp = net.getsockname(s)
    assert.same({ sh, sp }, { net.getpeername(c) })
    assert.same({ sh, sp }, { net.getsockname(a) })
    assert.same({ net.getsockname(c) }, { net.getpeername(a) })
  end)

  it("getpeername fails with ENOTCONN when not connected", function()
    local s = sock(net.INET, net.STREAM)
    assert_fail(E.ENOTCONN, net.getpeername(s))
  end)

  it("getsockname of an unbound socket is the any-address, port 0", function()
    assert.same({ "0.0.0.0", 0 }, { net.getsockname(sock(net.INET, net.DGRAM)) })
    assert.same({ "" }, { net.getsockname(sock(net.UNIX, net.DGRAM)) })
  end)
end)

describe("net.setsockopt / net.getsockopt", function()
  local roundtrips = {
    { net.INET, net.STREAM, "reuseaddr", { true, false } },
    { net.INET, net.STREAM, "reuseport", { true, false } },
    { net.INET, net.STREAM, "keepalive", { true, false } },
    { net.INET, net.STREAM, "nodelay", { true, false } },
    { net.INET, net.STREAM, "keepidle", { 30, 7 } },
    { net.INET, net.STREAM, "keepintvl", { 5, 9 } },
    { net.INET, net.STREAM, "keepcnt", { 3, 4 } },
    { net.INET, net.STREAM, "linger", { 5, 0, false } },
    { net.INET, net.DGRAM, "broadcast", { true, false } },
    { net.INET6, net.STREAM, "v6only", { true, false } },
  }
  for _, t in ipairs(roundtrips) do
    it("round-trips " .. t[3], function()
      local s = sock(t[1], t[2])
      for _, v in ipairs(t[4]) do
        assert.is_true(net.setsockopt(s, t[3], v))
        assert.equal(v, net.getsockopt(s, t[3]))
      end
    end)
  end

  it("round-trips rcvbuf and sndbuf (the kernel doubles them)", function()
    local s = sock(net.INET, net.STREAM)
    for _, name in ipairs { "rcvbuf", "sndbuf" } do
      assert.is_true(net.setsockopt(s, name, 65536))
      assert.equal(131072, net.getsockopt(s, name))
      assert.is_true(net.setsockopt(s, name, 32768))
      assert.equal(65536, net.getsockopt(s, name))
    end
  end)

  it("reads error, type, domain and acceptconn", function()
    local s = sock(net.UNIX, net.DGRAM)
    assert.equal(0, net.getsockopt(s, "error"))
    assert.equal(net.DGRAM, net.getsockopt(s, "type"))
    assert.equal(net.UNIX, net.getsockopt(s, "domain"))
    assert.is_false(net.getsockopt(s, "acceptconn"))
    assert.equal(false, net.getsockopt(s, "linger"))
  end)

  it("accepts option constants", function()
    local s = sock(net.INET, net.STREAM)
    assert.is_true(net.setsockopt(s, net.TCP_NODELAY, true))
    assert.is_true(net.getsockopt(s, net.TCP_NODELAY))
  end)

  it("fails with the kernel's errno", function()
    local u = sock(net.UNIX, net.STREAM)
    assert_fail(E.EOPNOTSUPP, net.setsockopt(u, "nodelay", true))
    assert_fail(E.EOPNOTSUPP, net.getsockopt(u, "v6only"))
    local t = sock(net.INET, net.STREAM)
    assert_fail(E.EINVAL, net.setsockopt(t, "keepidle", 0))
    assert_fail(E.EOPNOTSUPP, net.getsockopt(t, "v6only"))
  end)
end)

describe("net.shutdown", function()
  it("\"w\" makes the peer read \"\"", function()
    local _, c, a = tcp_pair(net.INET, "127.0.0.1")
    assert.is_true(net.shutdown(c, "w"))
    assert.equal("", net.recv(a, 10))
    assert.equal(2, net.send(a, "ok"))  -- the other direction still works
    assert.equal("ok", net.recv(c, 10))
    assert_fail(E.EPIPE, net.send(c, "x"))
  end)

  it("\"r\" and \"rw\"", function()
    local a, b = track(net.socketpair())
    assert.is_true(net.shutdown(a, "r"))
    assert.equal("", net.recv(a, 10))
    assert.is_true(net.shutdown(b, "rw"))
    assert.equal("", net.recv(b, 10))
    assert_fail(E.EPIPE, net.send(b, "x"))
  end)

  it("fails with ENOTCONN when not connected", function()
    assert_fail(E.ENOTCONN, net.shutdown(sock(net.INET, net.STREAM), "rw"))
  end)
end)

describe("net.send / net.recv", function()
  it("send takes i and j as string.sub does", function()
    local a, b = track(net.socketpair(net.UNIX, net.SEQPACKET))
    local s = "abcdef"
    local cases = { { 2 }, { 2, 3 }, { -2 }, { -100, 2 }, { 0, -1 }, { 3, 100 },
                    { 1, -7 }, { 1, -6 } }
    for _, c in ipairs(cases) do
      local want = s:sub(c[1], c[2])
      assert.equal(#want, net.send(a, s, c[1], c[2]))
      assert.equal(want, net.recv(b, 100))
    end
  end)

  it("recv returns at most max bytes, \"\" at end of stream", function()
    local a, b = track(net.socketpair())
    assert.equal(10, net.send(a, "0123456789"))
    assert.equal("0123", net.recv(b, 4))
    assert.equal("456789", net.recv(b, 100))
    a:close()
    assert.equal("", net.recv(b, 100))
  end)

  it("recv with net.PEEK leaves the bytes queued for the next recv", function()
    local a, b = track(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK))
    assert.equal(2, net.PEEK)  -- MSG_PEEK, the Linux ABI
    assert_fail(E.EAGAIN, net.recv(b, 10, net.PEEK))
    assert.equal(10, net.send(a, "0123456789"))
    assert.equal("0123", net.recv(b, 4, net.PEEK))
    assert.equal("0123456789", net.recv(b, 100, net.PEEK))
    assert.equal("012", net.recv(b, 3, 0))  -- 0: no flags, a plain recv
    assert.equal("3456789", net.recv(b, 100))
    a:close()
    assert.equal("", net.recv(b, 100, net.PEEK))
    local big = ("p"):rep(40000)  -- past the stack buffer: the luaL_Buffer path
    local c, d = track(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK))
    assert.equal(#big, net.send(c, big))
    assert.equal(big, net.recv(d, 1 << 20, net.PEEK))
    assert.equal(big, net.recv(d, 1 << 20))
  end)

  it("recv reads large amounts through the buffer path", function()
    local a, b = track(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK))
    local data = ("0123456789abcdef"):rep(4096)  -- 64 KiB
    local sent = 0
    repeat
      local n = assert(net.send(a, data, sent + 1))
      sent = sent + n
    until sent == #data
    local got = {}
    local total = 0
    repeat
      local s = assert(net.recv(b, 1 << 20))
      got[#got + 1] = s
      total = total + #s
    until total == #data
    assert.equal(data, table.concat(got))
    assert.is_true(#got[1] > 16384)
  end)

  it("recv and send return the EAGAIN triple when non-blocking", function()
    local a, b = track(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK))
    assert_fail(E.EAGAIN, net.recv(b, 10))
    local chunk = ("x"):rep(65536)
    local ok, msg, en
    for _ = 1, 1000 do  -- bounded: a socket buffer is far smaller
      ok, msg, en = net.send(a, chunk)
      if not ok then break end
    end
    assert_fail(E.EAGAIN, ok, msg, en)
  end)

  it("send to a closed peer is the EPIPE triple, no SIGPIPE", function()
    local a, b = track(net.socketpair())
    b:close()
    assert_fail(E.EPIPE, net.send(a, "are you there?"))
    local _, c, s = tcp_pair(net.INET, "127.0.0.1")
    s:close()
    local ok, msg, en
    for _ = 1, 100 do  -- the first send may be taken before the RST
      ok, msg, en = net.send(c, "x")
      if not ok then break end
    end
    assert.is_nil(ok)
    assert.equal("string", type(msg))
    assert.is_true(en == E.EPIPE or en == E.ECONNRESET)
    assert_fail(E.EPIPE, net.send(c, "x"))
  end)

  it("fails with ENOTCONN / EDESTADDRREQ on unconnected sockets", function()
    assert_fail(E.ENOTCONN, net.recv(sock(net.INET, net.STREAM), 1))
    assert_fail(E.EDESTADDRREQ, net.send(sock(net.INET, net.DGRAM), "x"))
  end)
end)

describe("net.sendto / net.recvfrom", function()
  it("sends datagrams over 127.0.0.1", function()
    local r = sock(net.INET, net.DGRAM)
    assert.is_true(net.bind(r, "127.0.0.1", 0))
    local h, p = net.getsockname(r)
    local w = sock(net.INET, net.DGRAM)
    assert.equal(5, net.sendto(w, "hello", h, p))
    local data, fh, fp = net.recvfrom(r, 100)
    assert.equal("hello", data)
    assert.equal("127.0.0.1", fh)  -- w was autobound to 0.0.0.0
    assert.equal(select(2, net.getsockname(w)), fp)
    assert.equal(3, net.sendto(w, "abcdef", h, p) - 3)
    assert.equal("abc", net.recvfrom(r, 3))  -- truncated datagram
    assert.equal(0, net.sendto(w, "", h, p))
    assert.equal("", net.recvfrom(r, 10))  -- an empty datagram
  end)

  it("sends datagrams over ::1", function()
    if not has_ipv6 then return pending("no IPv6 loopback on this machine") end
    local r = sock(net.INET6, net.DGRAM)
    assert.is_true(net.bind(r, "::1", 0))
    local h, p = net.getsockname(r)
    local w = sock(net.INET6, net.DGRAM)
    assert.is_true(net.bind(w, "::1", 0))
    assert.equal(2, net.sendto(w, "v6", "::1", p))
    assert.same({ "v6", net.getsockname(w) }, { net.recvfrom(r, 100) })
    assert.equal(h, "::1")
  end)

  it("sends UNIX datagrams to paths; an unbound sender has no address", function()
    local path = tmpdir .. "/dg.sock"
    local r = sock(net.UNIX, net.DGRAM)
    assert.is_true(net.bind(r, path))
    local w = sock(net.UNIX, net.DGRAM)
    assert.equal(4, net.sendto(w, "anon", path))
    assert.same({ n = 1, "anon" }, table.pack(net.recvfrom(r, 100)))
    local wpath = tmpdir .. "/dgw.sock"
    local w2 = sock(net.UNIX, net.DGRAM)
    assert.is_true(net.bind(w2, wpath))
    assert.equal(5, net.sendto(w2, "named", path))
    local t = table.pack(net.recvfrom(r, 100))
    assert.same({ n = 2, "named", wpath }, t)
    assert_fail(E.ENOENT, net.sendto(w, "x", tmpdir .. "/nobody.sock"))
  end)

  it("recvfrom returns EAGAIN when non-blocking", function()
    local r = sock(net.INET, net.DGRAM, net.NONBLOCK)
    assert.is_true(net.bind(r, "127.0.0.1", 0))
    assert_fail(E.EAGAIN, net.recvfrom(r, 100))
  end)

  it("recvfrom on a connected stream returns the data alone", function()
    local a, b = track(net.socketpair())
    assert.equal(2, net.send(a, "hi"))
    assert.same({ n = 1, "hi" }, table.pack(net.recvfrom(b, 10)))
  end)
end)

describe("net.socketpair", function()
  it("defaults to a UNIX stream pair, both ends usable", function()
    local a, b = track(net.socketpair())
    assert.matches("^lepoll.Fd", tostring(a))
    assert.matches("^lepoll.Fd", tostring(b))
    assert.equal(net.STREAM, net.getsockopt(a, "type"))
    assert.equal(net.UNIX, net.getsockopt(b, "domain"))
    assert.equal(O_CLOEXEC, fdflags(a) & (O_CLOEXEC | O_NONBLOCK))
    assert.equal(3, net.send(a, "a→b" and "a2b"))
    assert.equal("a2b", net.recv(b, 10))
    assert.equal(3, net.send(b, "b2a"))
    assert.equal("b2a", net.recv(a, 10))
  end)

  it("makes datagram and non-blocking pairs", function()
    local a, b = track(net.socketpair(net.UNIX, net.DGRAM, net.NONBLOCK))
    assert.equal(net.DGRAM, net.getsockopt(a, "type"))
    assert.equal(O_NONBLOCK, fdflags(b) & O_NONBLOCK)
    assert_fail(E.EAGAIN, net.recv(b, 10))
    assert.equal(1, net.send(a, "1"))
    assert.equal(1, net.send(a, "2"))
    assert.equal("1", net.recv(b, 10))
    assert.equal("2", net.recv(b, 10))
  end)

  it("fails with EOPNOTSUPP for INET", function()
    assert_fail(E.EOPNOTSUPP, net.socketpair(net.INET))
  end)
end)

describe("bad arguments", function()
  -- { label, call, pattern of the error message }
  local function cases()
    local s = sock(net.INET, net.STREAM)
    local u = sock(net.UNIX, net.DGRAM)
    local six = sock(net.INET6, net.STREAM)
    local closed = assert(net.socket(net.INET, net.STREAM))
    closed:close()
    local fake = { fileno = function() return "x" end }
    local huge = 2 ^ 32 + 3
    return {
      { "socket()", function() return net.socket() end, "#1.-integer expected" },
      { "socket family string", function() return net.socket("inet", net.STREAM) end,
        "#1.-integer expected" },
      { "socket family 9999", function() return net.socket(9999, net.STREAM) end,
        "#1.-unknown address family" },
      { "socket family -1", function() return net.socket(-1, net.STREAM) end, "#1.-range" },
      { "socket no type", function() return net.socket(net.INET) end, "#2.-integer expected" },
      { "socket type 77", function() return net.socket(net.INET, 77) end,
        "#2.-unknown socket type" },
      { "socket type 1.5", function() return net.socket(net.INET, 1.5) end,
        "#2.-integer representation" },
      { "socket type|NONBLOCK",
        function() return net.socket(net.INET, net.STREAM | net.NONBLOCK) end,
        "#2.-unknown socket type" },
      { "socket flags 1", function() return net.socket(net.INET, net.STREAM, 1) end,
        "#3.-unknown flag" },
      { "socket flags str", function() return net.socket(net.INET, net.STREAM, "x") end,
        "#3.-integer expected" },
      { "socketpair family", function() return net.socketpair(12345) end,
        "#1.-unknown address family" },
      { "socketpair type", function() return net.socketpair(net.UNIX, -3) end, "#2.-range" },
      { "socketpair flags", function() return net.socketpair(net.UNIX, net.STREAM, 3) end,
        "#3.-unknown flag" },
      { "bind nil fd", function() return net.bind(nil, "127.0.0.1", 0) end, "#1.-fd expected" },
      { "bind -1", function() return net.bind(-1, "127.0.0.1", 0) end, "#1.-range" },
      { "bind 2^32+3", function() return net.bind(huge, "127.0.0.1", 0) end, "#1.-range" },
      { "bind 1.5 fd", function() return net.bind(1.5, "127.0.0.1", 0) end,
        "#1.-integer representation" },
      { "bind closed Fd", function() return net.bind(closed, "127.0.0.1", 0) end,
        "closed lepoll.Fd" },
      { "bind fileno not int", function() return net.bind(fake, "127.0.0.1", 0) end,
        "#1.-did not return an integer" },
      { "bind port -1", function() return net.bind(s, "127.0.0.1", -1) end, "#3.-range" },
      { "bind port 65536", function() return net.bind(s, "127.0.0.1", 65536) end, "#3.-range" },
      { "bind port 1.5", function() return net.bind(s, "127.0.0.1", 1.5) end,
        "#3.-integer representation" },
      { "bind port string", function() return net.bind(s, "127.0.0.1", "80") end,
        "#3.-integer expected" },
      { "bind no port", function() return net.bind(s, "127.0.0.1") end, "#3.-integer expected" },
      { "bind host number", function() return net.bind(s, 127, 0) end, "#2.-string expected" },
      { "bind host name", function() return net.bind(s, "example.com", 0) end,
        "#2.-not a numeric IPv4" },
      { "bind v6 on v4", function() return net.bind(s, "::1", 0) end, "#2.-not a numeric IPv4" },
      { "bind v4 on v6", function() return net.bind(six, "127.0.0.1", 0) end,
        "#2.-not a numeric IPv6" },
      { "bind bracketed", function() return net.bind(six, "[::1]", 0) end,
        "#2.-not a numeric IPv6" },
      { "bind unknown zone", function() return net.bind(six, "fe80::1%nosuchif0", 0) end,
        "#2.-not a numeric IPv6" },
      { "bind empty zone", function() return net.bind(six, "fe80::1%", 0) end,
        "#2.-not a numeric IPv6" },
      { "bind zone 2^32", function() return net.bind(six, "fe80::1%4294967296", 0) end,
        "#2.-not a numeric IPv6" },
      { "bind zone on v4", function() return net.bind(s, "127.0.0.1%lo", 0) end,
        "#2.-not a numeric IPv4" },
      { "bind 256.1.1.1", function() return net.bind(s, "256.0.0.1", 0) end,
        "#2.-not a numeric IPv4" },
      { "bind NUL in host", function() return net.bind(s, "127.0.0.1\0x", 0) end,
        "#2.-zero byte" },
      { "bind unix long", function() return net.bind(u, "/tmp/" .. ("x"):rep(103)) end,
        "#2.-too long" },
      { "bind unix abstract long", function() return net.bind(u, "\0" .. ("x"):rep(108)) end,
        "#2.-too long" },
      { "bind unix NUL", function() return net.bind(u, "/tmp/a\0b") end, "#2.-zero byte" },
      { "bind unix port", function() return net.bind(u, "/tmp/x", 80) end, "#3.-no port" },
      { "listen backlog -1", function() return net.listen(s, -1) end, "#2.-range" },
      { "listen backlog 2^31", function() return net.listen(s, 2 ^ 31) end, "#2.-range" },
      { "listen backlog str", function() return net.listen(s, "x") end, "#2.-integer expected" },
      { "listen closed", function() return net.listen(closed) end, "closed lepoll.Fd" },
      { "accept huge", function() return net.accept(huge) end, "#1.-range" },
      { "accept flags", function() return net.accept(s, 4) end, "#2.-unknown flag" },
      { "recv flags", function() return net.recv(s, 1, net.PEEK | 1) end, "#3.-unknown flag" },
      { "recv flags str", function() return net.recv(s, 1, "peek") end,
        "#3.-integer expected" },
      { "recv flags -1", function() return net.recv(s, 1, -1) end, "#3.-range" },
      { "accept table", function() return net.accept({}) end, "#1.-fd expected" },
      { "connect bad host", function() return net.connect(s, "localhost.", 1) end,
        "#2.-not a numeric" },
      { "connect port 65536", function() return net.connect(s, "127.0.0.1", 65536) end,
        "#3.-range" },
      { "connect closed", function() return net.connect(closed, "127.0.0.1", 1) end,
        "closed lepoll.Fd" },
      { "getsockname bool", function() return net.getsockname(true) end, "#1.-fd expected" },
      { "getpeername -5", function() return net.getpeername(-5) end, "#1.-range" },
      { "shutdown how", function() return net.shutdown(s, "x") end, "#2.-invalid option 'x'" },
      { "shutdown how NUL", function() return net.shutdown(s, "w\0junk") end,
        "#2.-invalid option 'w' %(a zero byte follows%)" },
      { "shutdown how rw NUL", function() return net.shutdown(s, "rw\0") end,
        "#2.-invalid option 'rw' %(a zero byte follows%)" },
      { "shutdown how number", function() return net.shutdown(s, 1) end,
        "#2.-string expected, got number" },
      { "shutdown none", function() return net.shutdown(s) end, "#2.-string expected" },
      { "shutdown closed", function() return net.shutdown(closed, "w") end, "closed lepoll.Fd" },
      { "setsockopt name", function() return net.setsockopt(s, "nope", true) end,
        "#2.-unknown socket option 'nope'" },
      { "setsockopt name nil", function() return net.setsockopt(s, nil, true) end,
        "#2.-string expected" },
      { "setsockopt name NUL", function() return net.setsockopt(s, "nodelay\0x", true) end,
        "#2.-unknown socket option" },
      { "getsockopt name NUL", function() return net.getsockopt(s, "error\0") end,
        "#2.-unknown socket option" },
      { "setsockopt bool int", function() return net.setsockopt(s, "nodelay", 1) end,
        "#3.-boolean expected" },
      { "setsockopt int bool", function() return net.setsockopt(s, "rcvbuf", true) end,
        "#3.-integer expected" },
      { "setsockopt int -1", function() return net.setsockopt(s, "sndbuf", -1) end, "#3.-range" },
      { "setsockopt int 2^31", function() return net.setsockopt(s, "rcvbuf", 2 ^ 31) end,
        "#3.-range" },
      { "setsockopt linger true", function() return net.setsockopt(s, "linger", true) end,
        "#3.-integer or false expected" },
      { "setsockopt linger nil", function() return net.setsockopt(s, "linger") end,
        "#3.-integer or false expected" },
      { "setsockopt linger -1", function() return net.setsockopt(s, "linger", -1) end,
        "#3.-range" },
      { "setsockopt read-only", function() return net.setsockopt(s, "error", 0) end,
        "#2.-read%-only" },
      { "setsockopt closed", function() return net.setsockopt(closed, "nodelay", true) end,
        "closed lepoll.Fd" },
      { "getsockopt name", function() return net.getsockopt(s, "SO_REUSEADDR") end,
        "#2.-unknown socket option" },
      { "getsockopt huge", function() return net.getsockopt(huge, "error") end, "#1.-range" },
      { "send no data", function() return net.send(s) end, "#2.-string expected" },
      { "send number", function() return net.send(s, 42) end, "#2.-string expected" },
      { "send i 1.5", function() return net.send(s, "x", 1.5) end,
        "#3.-integer representation" },
      { "send j str", function() return net.send(s, "x", 1, "y") end,
        "#4.-integer expected, got string" },
      { "send i numeric str", function() return net.send(s, "x", "1") end,
        "#3.-integer expected, got string" },
      { "send j numeric str", function() return net.send(s, "x", 1, "-1") end,
        "#4.-integer expected, got string" },
      { "send nan", function() return net.send(s, 0 / 0) end, "#2.-string expected, got number" },
      { "send getfd number", function() return net.send({ getfd = 42 }, "x") end,
        "#1.-getfd is a number, not a function" },
      { "recv fileno string", function() return net.recv({ getfd = false, fileno = "x" }, 1) end,
        "#1.-fileno is a string, not a function" },
      { "recv getfd 3.5", function() return net.recv({ getfd = function() return 3.5 end }, 1) end,
        "#1.-getfd%(%) did not return an integer" },
      { "recv getfd -1.0",
        function() return net.recv({ getfd = function() return -1.0 end }, 1) end,
        "#1.-getfd%(%) returned an fd out of range" },
      { "recv 3.5", function() return net.recv(3.5, 1) end, "#1.-integer representation" },
      { "send closed", function() return net.send(closed, "x") end, "closed lepoll.Fd" },
      { "recv max 0", function() return net.recv(s, 0) end, "#2.-range" },
      { "recv max -1", function() return net.recv(s, -1) end, "#2.-range" },
      { "recv max 2^30+1", function() return net.recv(s, 2 ^ 30 + 1) end, "#2.-range" },
      { "recv max nil", function() return net.recv(s) end, "#2.-integer expected" },
      { "recv max nan", function() return net.recv(s, 0 / 0) end, "#2.-integer representation" },
      { "recv closed", function() return net.recv(closed, 1) end, "closed lepoll.Fd" },
      { "recvfrom max 0", function() return net.recvfrom(s, 0) end, "#2.-range" },
      { "recvfrom huge fd", function() return net.recvfrom(huge, 1) end, "#1.-range" },
      { "sendto data", function() return net.sendto(s, nil, "127.0.0.1", 1) end,
        "#2.-string expected" },
      { "sendto host", function() return net.sendto(s, "x", "nohost", 1) end,
        "#3.-not a numeric" },
      { "sendto port", function() return net.sendto(s, "x", "127.0.0.1", 70000) end,
        "#4.-range" },
      { "sendto unix long", function() return net.sendto(u, "x", ("/x"):rep(60)) end,
        "#3.-too long" },
      { "sendto closed", function() return net.sendto(closed, "x", "/tmp/x") end,
        "closed lepoll.Fd" },
    }
  end

  it("raises an error naming the argument, for every function", function()
    local checked, names = 0, {}
    for _, c in ipairs(cases()) do
      local ok, err = pcall(c[2])
      assert.is_false(ok, c[1] .. " did not raise")
      assert.truthy(tostring(err):find(c[3]), c[1] .. ": unexpected error: " .. tostring(err))
      checked = checked + 1
      local fname = tostring(err):match("'lepoll%.net%.(%w+)'")
        or tostring(err):match("'(%w+)'") or "?"
      names[fname] = true
    end
    assert.is_true(checked > 70)
    for _, fname in ipairs { "socket", "socketpair", "bind", "listen", "accept", "connect",
                             "getsockname", "getpeername", "shutdown", "setsockopt",
                             "getsockopt", "send", "recv", "sendto", "recvfrom" } do
      assert.is_true(names[fname], "no bad-argument case for " .. fname)
    end
  end)

  it("takes integral floats as fds, directly and from getfd() or fileno()", function()
    local shapes = {
      function(o) return o:fileno() + 0.0 end,
      function(o) return { getfd = function() return o:fileno() + 0.0 end } end,
      function(o) return { fileno = function() return o:fileno() + 0.0 end } end,
    }
    for i, as in ipairs(shapes) do
      local l = sock(net.INET, net.STREAM)
      assert.is_true(net.setsockopt(as(l), "reuseaddr", true), i)
      assert.is_true(net.getsockopt(as(l), "reuseaddr"), i)
      assert.is_true(net.bind(as(l), "127.0.0.1", 0), i)
      assert.is_true(net.listen(as(l)), i)
      local h, p = net.getsockname(as(l))
      local c = sock(net.INET, net.STREAM)
      assert.is_true(net.connect(as(c), h, p), i)
      local a = track(assert(net.accept(as(l))))
      assert.same({ net.getsockname(c) }, { net.getpeername(as(a)) }, i)
      assert.equal(2, net.send(as(c), "hi"), i)
      assert.equal("hi", net.recv(as(a), 10), i)
      assert.is_true(net.shutdown(as(c), "w"), i)
      assert.equal("", net.recv(as(a), 10), i)
      local r = sock(net.INET, net.DGRAM)
      assert.is_true(net.bind(r, "127.0.0.1", 0))
      local rh, rp = net.getsockname(r)
      local u = sock(net.INET, net.DGRAM)
      assert.equal(2, net.sendto(as(u), "dg", rh, rp), i)
      assert.equal("dg", (net.recvfrom(as(r), 10)), i)
    end
  end)

  it("never acts on fd 3 for 2^32+3", function()
    local ok = pcall(net.getsockopt, 2 ^ 32 + 3, "type")
    assert.is_false(ok)
    ok = pcall(net.getsockopt, math.tointeger(2 ^ 32 + 3), "type")
    assert.is_false(ok)
  end)

  it("takes fd objects with :getfd() and :fileno()", function()
    local a, b = track(net.socketpair())
    local viagetfd = { getfd = function() return a:fileno() end }
    local viafileno = setmetatable({}, { __index = { fileno = function() return b:fileno() end } })
    assert.equal(2, net.send(viagetfd, "ok"))
    assert.equal("ok", net.recv(viafileno, 10))
    assert.equal(2, net.send(a:fileno(), "ok"))
    assert.equal("ok", net.recv(b:fileno(), 10))
    -- getfd false: fileno is used
    local skip = { getfd = false, fileno = function() return b:fileno() end }
    assert.equal(2, net.send(a, "ok"))
    assert.equal("ok", net.recv(skip, 10))
  end)
end)

describe("a getfd() that calls back into lepoll.net", function()
  -- Each call's fileno() makes the same call again on the same object: the
  -- recursion must stop at Lua's C-call limit as a catchable error on a
  -- C stack as small as stock Lua needs for it (recv's 16 KiB buffer is
  -- never live while fileno() runs). One child process per call.
  it("ends in a Lua 'stack overflow' error on a 256 KiB C stack", function()
    local script = files.tmpfile([=[
      local net = require "lepoll.net"
      local calls = {
        recv = function(o) return net.recv(o, 1) end,
        ["recv big"] = function(o) return net.recv(o, 100000) end,
        recvfrom = function(o) return net.recvfrom(o, 1) end,
        send = function(o) return net.send(o, "x") end,
        sendto = function(o) return net.sendto(o, "x", "127.0.0.1", 9) end,
        accept = function(o) return net.accept(o) end,
        getsockname = function(o) return net.getsockname(o) end,
        getsockopt = function(o) return net.getsockopt(o, "error") end,
      }
      local call = assert(calls[arg[1]])
      local obj = { fileno = function(self) return call(self) end }
      local ok, err = pcall(call, obj)
      print(ok, (tostring(err):match("stack overflow")))
    ]=])
    finally(function() os.remove(script) end)
    for _, name in ipairs { "recv", "recv big", "recvfrom", "send", "sendto", "accept",
                            "getsockname", "getsockopt" } do
      local rest, how, code, err = process.small_stack(script, name)
      assert.equal("false\tstack overflow\n", rest, name .. ": " .. err)
      assert.same({ "exit", 0 }, { how, code }, name)
    end
  end)
end)

describe("fd hygiene", function()
  it("leaks no fd over error paths and garbage-collected sockets", function()
    collectgarbage()
    collectgarbage()
    local before = fdcount()
    local l = listener(net.INET, "127.0.0.1", net.NONBLOCK)
    local refused = sock(net.INET, net.STREAM)   -- bound, never listening
    assert.is_true(net.bind(refused, "127.0.0.1", 0))
    local _, rport = net.getsockname(refused)
    for _ = 1, 200 do
      assert_fail(E.EAGAIN, net.accept(l))                   -- Fd made, then fail
      assert_fail(E.EOPNOTSUPP, net.socketpair(net.INET))   -- two Fds made, then fail
      assert_fail(E.ESOCKTNOSUPPORT, net.socket(net.INET, net.SEQPACKET))
      assert.is_false(pcall(net.bind, l, "bad", 0))
      local c = assert(net.socket(net.INET, net.STREAM))
      assert_fail(E.ECONNREFUSED, net.connect(c, "127.0.0.1", rport))
    end
    local function litter()  -- in a frame of its own: nothing stays on our stack
      for _ = 1, 200 do
        local a, b = net.socketpair()
        assert.truthy(a and b)
        assert.truthy(net.socket(net.INET6, net.DGRAM))
      end
    end
    litter()
    closeall()
    collectgarbage()
    collectgarbage()
    assert.equal(before, fdcount())
  end)

  it("closes an accepted connection that is garbage-collected", function()
    local s, h, p = listener(net.INET, "127.0.0.1")
    local c = sock(net.INET, net.STREAM)
    assert.is_true(net.connect(c, h, p))
    local function dropped() assert.truthy(net.accept(s)) end
    dropped()
    collectgarbage()
    collectgarbage()
    assert.equal("", net.recv(c, 10))  -- the server side is gone
  end)
end)
