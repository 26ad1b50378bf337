-- lepoll.tls, the C module alone: two sessions on the ends of a
-- non-blocking socketpair, driven in turn by bounded loops (no epoll: a
-- side that wants to read simply gets another turn after the other side).
local tls = require "lepoll.tls"
local net = require "lepoll.net"
local lio = require "lepoll.io"
local certs = require "support.certs"
local cleanup = require "support.cleanup"

local E = net.errno
local track, closeall = cleanup.tracker()
local p

-- OpenSSL writes with write(2): a closed peer must give EPIPE, not SIGPIPE
-- (the framework's loop does the same).
assert(lio.ignore_signal(lio.SIGPIPE))

local function ctx(opts)
  return track(assert(tls.context(opts)))
end

local function server_ctx(extra)
  local o = { cert = p.cert, key = p.key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return ctx(o)
end

local function client_ctx(extra)
  local o = { ca = p.ca }
  for k, v in pairs(extra or {}) do o[k] = v end
  return ctx(o)
end

-- A connected pair of non-blocking sockets: a (the server's), b (the client's).
local function sockets()
  return track(assert(net.socketpair(net.UNIX, net.STREAM, net.NONBLOCK)))
end

-- Sessions on a fresh socketpair: client, server, client fd, server fd.
local function pair(sctx, cctx, copts)
  local a, b = sockets()
  local s = track(assert(tls.new(sctx, a, "server")))
  local c = track(assert(tls.new(cctx, b, "client", copts)))
  return c, s, b, a
end

-- One handshake turn for a side not finished yet; st keeps its outcome and
-- every want it reported.
local function turn(side, st)
  if st.done then return end
  local ok, msg, extra = side:handshake()
  if ok == false then
    st.wants[msg] = (st.wants[msg] or 0) + 1
  else
    st.done, st.ok, st.msg, st.extra = true, ok, msg, extra
  end
end

-- Both handshakes, client first, in turn until both ended (true or nil) or
-- 200 rounds passed; each side's outcome { done, ok, msg, extra, wants }.
local function drive(c, s)
  local cs, ss = { wants = {} }, { wants = {} }
  for _ = 1, 200 do
    turn(c, cs)
    turn(s, ss)
    if cs.done and ss.done then break end
  end
  return cs, ss
end

local function connect(c, s)
  local cs, ss = drive(c, s)
  assert.is_true(cs.ok, "client: " .. tostring(cs.msg))
  assert.is_true(ss.ok, "server: " .. tostring(ss.msg))
end

-- Read from side until n bytes came (the writer may need turns: give it
-- more via the optional pump function); bounded.
local function read_n(side, n, pump)
  local got = {}
  local have = 0
  for _ = 1, 10000 do
    if have >= n then break end
    local s, want = side:read(n - have)
    if s then
      got[#got + 1] = s
      have = have + #s
    else
      assert.equal(false, s, "read: " .. tostring(want))
      if pump then pump() end
    end
  end
  return table.concat(got)
end

describe("lepoll.tls (C)", function()
  lazy_setup(function() p = certs.make() end)
  lazy_teardown(function() certs.cleanup() end)
  after_each(function() closeall() end)

  it("names OpenSSL's version and the module's", function()
    assert.matches("^OpenSSL 3%.", tls.version)
    assert.matches("^lepoll ", tls._VERSION)
    assert.is_number(tls.errno.EPIPE)
  end)

  describe("context", function()
    it("takes no options, or an empty table", function()
      assert.matches("^lepoll%.tls%.context %(", tostring(ctx()))
      assert.matches("^lepoll%.tls%.context %(", tostring(ctx({})))
    end)

    it("raises on each bad option, naming the field", function()
      local cases = {
        { { bogus = 1 }, "field 'bogus': unknown option" },
        { { cert = 1 }, "field 'cert': string expected, got number" },
        { { key = true }, "field 'key': string expected, got boolean" },
        { { password = {} }, "field 'password': string expected, got table" },
        { { ca = false }, "field 'ca': string expected, got boolean" },
        { { verify = "yes" }, "field 'verify': boolean expected, got string" },
        { { tickets = 0 }, "field 'tickets': boolean expected, got number" },
        { { alpn = "h2" }, "field 'alpn': table expected, got string" },
        { { alpn = { 1 } }, "field 'alpn': item 1: string expected, got number" },
        { { alpn = { "h2", "" } }, "field 'alpn': item 2: 1..255 bytes expected" },
        { { alpn = { ("x"):rep(256) } }, "field 'alpn': item 1: 1..255 bytes expected" },
        { { alpn = { x = "h2" } }, "field 'alpn': array of strings expected" },
        { { sni = { ["a.test"] = 1 } }, "field 'sni': 'a.test': open lepoll.tls.context expected" },
        { { sni = { "x" } }, "field 'sni': host names expected as keys" },
        { { min_version = "SSLv3" }, "field 'min_version': unknown version 'SSLv3'" },
        { { max_version = 1.3 }, "field 'max_version': string expected, got number" },
        { { min_version = "TLSv1.3", max_version = "TLSv1.2" },
          "field 'max_version': below min_version" },
        { { ciphers = 7 }, "field 'ciphers': string expected, got number" },
        { { ciphersuites = false }, "field 'ciphersuites': string expected, got boolean" },
        { { cert = "a\0b" }, "field 'cert': contains a zero byte" },
        { { key = p.key }, "field 'key': given without 'cert'" },
      }
      for _, case in ipairs(cases) do
        assert.has_error(function() tls.context(case[1]) end,
          "bad argument #1 to 'context' (" .. case[2] .. ")")
      end
      assert.has_error(function() tls.context({ [1] = "x" }) end,
        "bad argument #1 to 'context' (field names must be strings, got number)")
      assert.has_error(function() tls.context("x") end,
        "bad argument #1 to 'context' (table expected, got string)")
    end)

    it("reads its options raw: a metatable's __index is never consulted", function()
      local function never(_, k) error("__index ran for " .. k) end
      ctx(setmetatable({ cert = p.cert, key = p.key }, { __index = never }))
      -- values __index would give are neither checked nor used (an unknown
      -- version, a path computed and collected while C held it)
      local sctx = ctx(setmetatable({ cert = p.cert, key = p.key }, { __index = function(_, k)
        collectgarbage()
        if k == "min_version" then return "bogus" end
        if k == "max_version" then return "TLSv1.2" end
        if k == "ca" then return ("/nonexistent/%d"):format(42) end
      end }))
      local c, s = pair(sctx, client_ctx(), { server_name = "localhost" })
      connect(c, s)
      assert.equal("TLSv1.3", c:info().version)
    end)

    it("rejects a closed context in sni", function()
      local b = tls.context({ cert = p.b_cert, key = p.b_key })
      b:close()
      assert.has_error(function() tls.context({ sni = { ["b.test"] = b } }) end,
        "bad argument #1 to 'context' (field 'sni': 'b.test': open lepoll.tls.context expected)")
    end)

    it("returns nil and OpenSSL's reason for files it cannot load", function()
      local v, msg = tls.context({ cert = p.dir .. "/none.pem" })
      assert.is_nil(v)
      assert.equal("tls: cert " .. p.dir .. "/none.pem: No such file or directory", msg)
      v, msg = tls.context({ cert = p.cert, key = p.dir .. "/none.key" })
      assert.is_nil(v)
      assert.equal("tls: key " .. p.dir .. "/none.key: No such file or directory", msg)
      v, msg = tls.context({ ca = p.dir .. "/none-ca.pem" })
      assert.is_nil(v)
      assert.equal("tls: ca " .. p.dir .. "/none-ca.pem: No such file or directory", msg)
      v, msg = tls.context({ cert = p.key })
      assert.is_nil(v)
      assert.matches("^tls: cert " .. p.key:gsub("%p", "%%%0") .. ": ", msg)
    end)

    it("returns nil for a key that does not match the certificate", function()
      local v, msg = tls.context({ cert = p.cert, key = p.other_key })
      assert.is_nil(v)
      assert.equal("tls: key " .. p.other_key .. ": key values mismatch", msg)
    end)

    it("loads an encrypted key with its password only, never prompting", function()
      ctx({ cert = p.cert, key = p.enc_key, password = p.password })
      local v, msg = tls.context({ cert = p.cert, key = p.enc_key, password = "wrong" })
      assert.is_nil(v)
      assert.matches("^tls: key .*enc%.key: ", msg)
      v, msg = tls.context({ cert = p.cert, key = p.enc_key })
      assert.is_nil(v)
      assert.matches("^tls: key .*enc%.key: ", msg)
    end)

    it("loads a CA folder, and returns nil for cipher lists that match nothing", function()
      ctx({ ca = p.dir })
      local v, msg = tls.context({ ciphers = "NO-SUCH-CIPHER" })
      assert.is_nil(v)
      assert.equal("tls: ciphers NO-SUCH-CIPHER: no cipher match", msg)
      v, msg = tls.context({ ciphersuites = "TLS_NO_SUCH" })
      assert.is_nil(v)
      assert.matches("^tls: ciphersuites TLS_NO_SUCH: ", msg)
    end)

    it("closes once, by close, __close and __gc; new() refuses a closed one", function()
      local c = tls.context()
      c:close()
      c:close()
      assert.equal("lepoll.tls.context (closed)", tostring(c))
      local a, b = sockets()
      assert.has_error(function() tls.new(c, a, "server") end,
        "attempt to use a closed TLS context")
      do local d <close> = tls.context() assert.truthy(d) end
      collectgarbage()
      assert.truthy(b)
    end)
  end)

  describe("new", function()
    it("checks its arguments", function()
      local s = server_ctx()
      local a = sockets()
      assert.has_error(function() tls.new(nil, a, "server") end,
        "bad argument #1 to 'new' (lepoll.tls.context expected, got nil)")
      assert.has_error(function() tls.new(s, "x", "server") end,
        "bad argument #2 to 'new' (fd expected, got string)")
      assert.has_error(function() tls.new(s, a, "both") end,
        "bad argument #3 to 'new' (invalid option 'both')")
      assert.has_error(function() tls.new(s, a, "server", { server_name = "x" }) end,
        "bad argument #4 to 'new' (field 'server_name': client only)")
      assert.has_error(function() tls.new(s, a, "client", { sni = "x" }) end,
        "bad argument #4 to 'new' (field 'sni': unknown option)")
      assert.has_error(function() tls.new(s, a, "client", { verify = 1 }) end,
        "bad argument #4 to 'new' (field 'verify': boolean expected, got number)")
      assert.has_error(function() tls.new(s, a, "client", { server_name = false }) end,
        "bad argument #4 to 'new' (field 'server_name': string expected, got boolean)")
      assert.has_error(function() tls.new(s, a, "client", { server_name = "" }) end,
        "bad argument #4 to 'new' (field 'server_name': empty or contains a zero byte)")
      assert.has_error(function() tls.new(s, a, "client", { alpn = { "" } }) end,
        "bad argument #4 to 'new' (field 'alpn': item 1: 1..255 bytes expected)")
      assert.has_error(function() tls.new(s, a, "client", { session = "junk" }) end,
        "bad argument #4 to 'new' (field 'session': not a TLS session)")
    end)

    it("reads its options raw: a metatable's __index is never consulted", function()
      local opts = setmetatable({ server_name = "localhost" }, { __index = function(_, k)
        error("__index ran for " .. k)
      end })
      local a, b = sockets()
      local s = track(assert(tls.new(server_ctx(), a, "server")))
      local c = track(assert(tls.new(client_ctx(), b, "client", opts)))
      connect(c, s)
      assert.equal("localhost", s:info().sni)
    end)

    it("takes the context after the fd: a fileno() method that closes it", function()
      local cctx = tls.context({ ca = p.ca })
      local a = sockets()
      local fdobj = setmetatable({}, { __index = { fileno = function()
        cctx:close()
        collectgarbage()
        return a:fileno()
      end } })
      assert.has_error(function() tls.new(cctx, fdobj, "client") end,
        "attempt to use a closed TLS context")
    end)

    it("takes an fd object or its number, and never closes it", function()
      local sctx = server_ctx()
      local a = sockets()
      local s = tls.new(sctx, a:fileno(), "server")
      assert.equal(a:fileno(), s:fd())
      assert.equal("lepoll.tls.session (fd " .. a:fileno() .. ", server)", tostring(s))
      s:free()
      local s2 <close> = assert(tls.new(sctx, a, "server"))
      assert.equal(a:fileno(), s2:fd())
      assert.not_matches("closed", tostring(a))
    end)
  end)

  describe("handshake", function()
    it("connects a client and a server and reports what they agreed", function()
      local c, s = pair(server_ctx(), client_ctx(), { server_name = "localhost" })
      local cs, ss = drive(c, s)
      assert.is_true(cs.ok)
      assert.is_true(ss.ok)
      assert.truthy(ss.wants.read)  -- the server waited for the ClientHello
      local ci, si = c:info(), s:info()
      assert.equal("TLSv1.3", ci.version)
      assert.equal(ci.cipher, si.cipher)
      assert.matches("^TLS_", ci.cipher)
      assert.is_true(ci.bits >= 128)
      assert.is_nil(ci.alpn)
      assert.equal("localhost", ci.sni)
      assert.equal("localhost", si.sni)
      assert.equal("CN=localhost", ci.subject)
      assert.equal("CN=lepoll test CA", ci.issuer)
      assert.is_nil(si.subject)  -- no client certificate
      assert.is_false(ci.resumed)
      assert.is_true(ci.verified)
      assert.is_false(si.verified)
      -- and data flows both ways
      assert.equal(5, c:write("hello"))
      assert.equal("hello", read_n(s, 5))
      assert.equal(3, s:write("abcdef", 4))
      assert.equal("def", read_n(c, 3))
      assert.equal(0, s:write("abc", 4))
    end)

    it("honours min_version and max_version", function()
      local c, s = pair(server_ctx({ max_version = "TLSv1.2" }), client_ctx(),
        { server_name = "localhost" })
      connect(c, s)
      assert.equal("TLSv1.2", c:info().version)
      c, s = pair(server_ctx({ min_version = "TLSv1.3" }),
        client_ctx({ max_version = "TLSv1.2" }), { server_name = "localhost" })
      local cs, ss = drive(c, s)
      assert.is_nil(ss.ok)
      assert.matches("^tls: ", ss.msg)
      assert.is_nil(cs.ok)
      assert.matches("^tls: ", cs.msg)
    end)

    it("switches to the sni context a ClientHello names", function()
      local b = ctx({ cert = p.b_cert, key = p.b_key })
      local sctx = server_ctx({ sni = { ["b.test"] = b, ["*.wild.test"] = b } })
      b:close()  -- the parent keeps what it uses
      local function subject(name)
        local c, s = pair(sctx, client_ctx({ verify = false }), { server_name = name })
        connect(c, s)
        assert.equal(name, s:info().sni)
        return c:info().subject
      end
      assert.equal("CN=b.test", subject("b.test"))
      assert.equal("CN=b.test", subject("B.Test"))
      assert.equal("CN=b.test", subject("x.wild.test"))
      assert.equal("CN=localhost", subject("a.x.wild.test"))  -- one label only
      assert.equal("CN=localhost", subject("wild.test"))
      assert.equal("CN=localhost", subject("localhost"))
      -- and verifies against the switched certificate
      local c, s = pair(sctx, client_ctx(), { server_name = "b.test" })
      connect(c, s)
      assert.is_true(c:info().verified)
    end)

    -- A TLS 1.2 ClientHello (ECDHE-ECDSA-AES128-GCM-SHA256, P-256, SHA-256)
    -- whose server_name extension has the given body.
    local function hello(sni)
      local function u16(n) return string.pack(">I2", n) end
      local ext = "\0\0" .. u16(#sni) .. sni
        .. "\0\10\0\4\0\2\0\23"  -- supported_groups: secp256r1
        .. "\0\13\0\4\0\2\4\3"    -- signature_algorithms: ecdsa_secp256r1_sha256
      local body = "\3\3" .. ("r"):rep(32) .. "\0" .. u16(2) .. "\xc0\x2b" .. "\1\0"
        .. u16(#ext) .. ext
      local hs = "\1" .. string.pack(">I3", #body) .. body
      return "\22\3\1" .. u16(#hs) .. hs
    end
    local function entry(t, name) return string.char(t) .. string.pack(">s2", name) end

    it("reads the server name of a raw ClientHello, and refuses malformed ones", function()
      local b = ctx({ cert = p.b_cert, key = p.b_key })
      local sctx = server_ctx({ sni = { ["b.test"] = b } })
      local function serve(sni)
        local a, c = sockets()
        local s = track(assert(tls.new(sctx, a, "server")))
        assert(net.send(c, hello(sni)))
        local v, msg = s:handshake()
        return v, msg, s, c
      end
      -- well formed: the switch happened (b.test's certificate went out)
      local v, msg, s, c = serve(string.pack(">s2", entry(0, "b.test")))
      assert.same({ false, "read" }, { v, msg })
      assert.equal("b.test", s:info().sni)
      assert.truthy(assert(net.recv(c, 65536)):find("b.test", 1, true))
      v, msg, s, c = serve(string.pack(">s2", entry(0, "LocalHost")))
      assert.same({ false, "read" }, { v, msg })
      assert.equal("LocalHost", s:info().sni)
      assert.is_nil(assert(net.recv(c, 65536)):find("b.test", 1, true))
      local bad = {
        "",                                                    -- no list
        "\0",                                                  -- half a length
        string.pack(">s2", ""),                                -- an empty list
        "\0\10" .. entry(0, "b.test"),                          -- list longer than the body
        "\0\8" .. entry(0, "b.test"),                           -- list shorter than the body
        string.pack(">s2", entry(1, "b.test")),                -- not a host name
        string.pack(">s2", "\0\0\7b.test"),                     -- name longer than the list
        string.pack(">s2", entry(0, "b.test") .. entry(0, "x")), -- two names
        string.pack(">s2", entry(0, "b\0test")),                -- a zero byte
        string.pack(">s2", entry(0, ("a"):rep(256))),          -- over 255 bytes
      }
      for i, sni in ipairs(bad) do
        v, msg, s = serve(sni)
        assert.is_nil(v, "case " .. i)
        assert.matches("^tls: ", msg)
        assert.is_nil(s:info().sni, "case " .. i)
      end
    end)

    it("selects ALPN by the server's preference; no overlap is no ALPN", function()
      local sctx = server_ctx({ alpn = { "h2", "http/1.1" } })
      local c, s = pair(sctx, client_ctx({ alpn = { "http/1.1", "h2" } }),
        { server_name = "localhost" })
      connect(c, s)
      assert.equal("h2", c:info().alpn)
      assert.equal("h2", s:info().alpn)
      c, s = pair(sctx, client_ctx({ alpn = { "h2" } }),
        { server_name = "localhost", alpn = { "http/1.1" } })  -- new's overrides
      connect(c, s)
      assert.equal("http/1.1", c:info().alpn)
      c, s = pair(sctx, client_ctx({ alpn = { "spdy/1" } }), { server_name = "localhost" })
      connect(c, s)
      assert.is_nil(c:info().alpn)
      assert.is_nil(s:info().alpn)
      c, s = pair(sctx, client_ctx({ alpn = { "h2" } }),
        { server_name = "localhost", alpn = {} })  -- offers none
      connect(c, s)
      assert.is_nil(c:info().alpn)
    end)
  end)

  describe("verification", function()
    local function failure(sopts, copts, cctx)
      local c, s = pair(ctx(sopts), cctx or client_ctx(), copts)
      local cs, ss = drive(c, s)
      assert.is_nil(cs.ok)
      assert.is_nil(ss.ok)  -- the client's alert ends the server's too
      assert.matches("^tls: ", ss.msg)
      return cs.msg
    end

    it("refuses an expired certificate", function()
      assert.equal("tls: certificate verify failed: certificate has expired",
        failure({ cert = p.expired_cert, key = p.expired_key }, { server_name = "localhost" }))
    end)

    it("refuses a self-signed certificate", function()
      assert.equal("tls: certificate verify failed: self-signed certificate",
        failure({ cert = p.self_cert, key = p.self_key }, { server_name = "localhost" }))
    end)

    it("refuses a certificate for another host name", function()
      assert.equal("tls: certificate verify failed: hostname mismatch",
        failure({ cert = p.cert, key = p.key }, { server_name = "b.test" }))
    end)

    it("matches an IP literal against the certificate's IP addresses, without SNI", function()
      for _, ip in ipairs({ "127.0.0.1", "::1" }) do
        local c, s = pair(server_ctx(), client_ctx(), { server_name = ip })
        connect(c, s)
        assert.is_true(c:info().verified)
        assert.is_nil(s:info().sni)
      end
      assert.equal("tls: certificate verify failed: IP address mismatch",
        failure({ cert = p.cert, key = p.key }, { server_name = "127.0.0.2" }))
    end)

    it("checks the chain only without a server_name", function()
      local c, s = pair(server_ctx(), client_ctx())
      connect(c, s)
      assert.is_true(c:info().verified)
      assert.is_nil(c:info().sni)
    end)

    it("uses the system's CAs without ca, which do not know ours", function()
      assert.equal("tls: certificate verify failed: unable to get local issuer certificate",
        failure({ cert = p.cert, key = p.key }, { server_name = "localhost" }, ctx()))
    end)

    it("accepts anything with verify = false, in the context or in new", function()
      local sctx = ctx({ cert = p.self_cert, key = p.self_key })
      local c, s = pair(sctx, client_ctx({ verify = false }), { server_name = "localhost" })
      connect(c, s)
      assert.is_false(c:info().verified)
      assert.equal("CN=localhost", c:info().subject)
      c, s = pair(sctx, client_ctx(), { server_name = "localhost", verify = false })
      connect(c, s)
      assert.is_false(c:info().verified)
    end)

    describe("of clients (mTLS)", function()
      local function mtls() return server_ctx({ ca = p.ca, verify = true }) end

      it("refuses a client without a certificate", function()
        local c, s = pair(mtls(), client_ctx(), { server_name = "localhost" })
        local cs, ss = drive(c, s)
        assert.is_nil(ss.ok)
        assert.equal("tls: peer did not return a certificate", ss.msg)
        -- TLS 1.3: the client is done first, and hears of it when it reads
        assert.is_true(cs.ok)
        local v, msg = c:read(100)
        assert.is_nil(v)
        assert.equal("tls: tlsv13 alert certificate required", msg)
      end)

      it("refuses a client certificate it cannot verify", function()
        local c, s = pair(mtls(), client_ctx({ cert = p.self_cert, key = p.self_key }),
          { server_name = "localhost" })
        local _, ss = drive(c, s)
        assert.equal("tls: certificate verify failed: self-signed certificate", ss.msg)
      end)

      it("accepts a client certificate signed by its CA", function()
        local c, s = pair(mtls(), client_ctx({ cert = p.client_cert, key = p.client_key }),
          { server_name = "localhost" })
        connect(c, s)
        local si = s:info()
        assert.equal("CN=client", si.subject)
        assert.equal("CN=lepoll test CA", si.issuer)
        assert.is_true(si.verified)
        assert.is_true(c:info().verified)
      end)
    end)
  end)

  describe("resumption", function()
    -- A full connection; the client reads the server's first bytes (the
    -- tickets came before them). Returns the session string the client got.
    local function first(sctx, cctx, name)
      local c, s = pair(sctx, cctx, { server_name = name or "localhost" })
      connect(c, s)
      if c:info().version == "TLSv1.3" then
        assert.is_nil(c:session())  -- tickets come after the handshake
      end
      assert.equal(2, s:write("hi"))
      assert.equal("hi", read_n(c, 2))
      return c:session()
    end

    it("resumes a TLS 1.3 session from a ticket", function()
      local sctx, cctx = server_ctx(), client_ctx()
      local sess = first(sctx, cctx)
      assert.is_string(sess)
      local c, s = pair(sctx, cctx, { server_name = "localhost", session = sess })
      connect(c, s)
      assert.is_true(c:info().resumed)
      assert.is_true(s:info().resumed)
      assert.is_true(c:info().verified)  -- the session remembers
      assert.equal("CN=localhost", c:info().subject)
    end)

    it("resumes a TLS 1.2 session from a ticket", function()
      local sctx, cctx = server_ctx({ max_version = "TLSv1.2" }), client_ctx()
      local sess = first(sctx, cctx)
      assert.is_string(sess)
      local c, s = pair(sctx, cctx, { server_name = "localhost", session = sess })
      connect(c, s)
      assert.equal("TLSv1.2", c:info().version)
      assert.is_true(c:info().resumed)
    end)

    -- A parent whose sni child b.test requires client certificates (mTLS),
    -- and a child open.test that does not.
    local function sni_ctx()
      local b = ctx({ cert = p.b_cert, key = p.b_key, ca = p.ca, verify = true })
      local open = ctx({ cert = p.b_cert, key = p.b_key })
      return server_ctx({ sni = { ["b.test"] = b, ["open.test"] = open } })
    end

    it("never resumes a session under another context: an sni child's mTLS holds", function()
      local sctx, cctx = sni_ctx(), client_ctx({ verify = false })
      local sess = first(sctx, cctx)  -- localhost: the parent, no client certificate
      assert.is_string(sess)
      -- the parent's ticket keys open it on b.test: it must not resume there,
      -- and without a client certificate the full handshake is refused
      local c, s = pair(sctx, cctx, { server_name = "b.test", session = sess })
      local _, ss = drive(c, s)
      assert.is_nil(ss.ok)
      assert.equal("tls: peer did not return a certificate", ss.msg)
      assert.is_false(c:info().resumed)
      -- nor under a child without mTLS, nor on a context of its own
      c, s = pair(sctx, cctx, { server_name = "open.test", session = sess })
      connect(c, s)
      assert.is_false(s:info().resumed)
      assert.equal("open.test", s:info().sni)
      c, s = pair(ctx({ cert = p.cert, key = p.key }), cctx,
        { server_name = "localhost", session = sess })
      connect(c, s)
      assert.is_false(s:info().resumed)
    end)

    it("resumes within one context, and within one sni child", function()
      local sctx = sni_ctx()
      local cctx = client_ctx({ verify = false, cert = p.client_cert, key = p.client_key })
      for _, name in ipairs({ "localhost", "b.test", "open.test" }) do
        local sess = first(sctx, cctx, name)
        assert.is_string(sess)
        local c, s = pair(sctx, cctx, { server_name = name, session = sess })
        connect(c, s)
        assert.is_true(s:info().resumed, name)
        assert.equal(name, s:info().sni)
        assert.equal(name == "localhost" and "CN=localhost" or "CN=b.test", c:info().subject)
      end
      -- the mTLS child's session remembers the client's certificate
      local sess = first(sctx, cctx, "b.test")
      local c, s = pair(sctx, cctx, { server_name = "b.test", session = sess })
      connect(c, s)
      assert.is_true(s:info().resumed)
      assert.equal("CN=client", s:info().subject)
      assert.is_true(s:info().verified)
    end)

    it("issues no tickets with tickets = false", function()
      local sctx, cctx = server_ctx({ tickets = false }), client_ctx()
      assert.is_nil(first(sctx, cctx))
      -- and a ticket from a server with other keys does not resume here
      local sess = first(server_ctx(), cctx)
      local c, s = pair(sctx, cctx, { server_name = "localhost", session = sess })
      connect(c, s)
      assert.is_false(c:info().resumed)
    end)
  end)

  describe("reading and writing", function()
    local function connected(sopts)
      local c, s, cfd, sfd = pair(server_ctx(sopts), client_ctx(), { server_name = "localhost" })
      connect(c, s)
      return c, s, cfd, sfd
    end

    it("reports the peer's close_notify as closed", function()
      local c, s = connected()
      assert.is_true(s:shutdown())
      local v, msg, extra = c:read(10)
      assert.is_nil(v)
      assert.equal("closed", msg)
      assert.is_nil(extra)
      assert.is_true(c:shutdown())
      assert.same({ nil, "closed" }, { s:read(10) })
    end)

    it("reports an end without close_notify as closed, truncated", function()
      local c, _, _, sfd = connected()
      assert.is_false((c:read(10)))
      sfd:close()
      assert.same({ nil, "closed", "truncated" }, { c:read(10) })
    end)

    it("reports a peer that is gone as a socket error with its errno", function()
      local c, _, _, sfd = connected()
      sfd:close()
      local v, msg, en = c:write("x")
      assert.is_nil(v)
      assert.equal("tls: Broken pipe", msg)
      assert.equal(E.EPIPE, en)
      assert.same({ nil, "tls: shutdown after a fatal error" }, { c:shutdown() })
    end)

    it("reports a handshake the peer abandons as truncated", function()
      local a, b = sockets()
      local c = track(assert(tls.new(client_ctx(), b, "client")))
      assert.same({ false, "read" }, { c:handshake() })
      assert.is_string(net.recv(a, 65536))  -- the ClientHello: unread, it would reset
      a:close()
      assert.same({ nil, "closed", "truncated" }, { c:handshake() })
    end)

    it("reads at most max bytes and holds the rest (pending)", function()
      local c, s = connected()
      assert.equal(100, s:write(("x"):rep(100)))
      assert.equal(("x"):rep(10), c:read(10))
      assert.equal(90, c:pending())
      assert.equal(("x"):rep(90), c:read(1 << 30))  -- a huge max, no huge buffer
      assert.equal(0, c:pending())
      assert.same({ false, "read" }, { c:read(1 << 30) })
      assert.has_error(function() c:read(0) end,
        "bad argument #1 to 'read' (out of range [1, 1073741824])")
      assert.has_error(function() c:read((1 << 30) + 1) end,
        "bad argument #1 to 'read' (out of range [1, 1073741824])")
      assert.has_error(function() c:write(7) end,
        "bad argument #1 to 'write' (string expected, got number)")
      assert.has_error(function() c:write("x", 0) end,
        "bad argument #2 to 'write' (out of range [1, " .. math.maxinteger .. "])")
    end)

    it("writes partially into a small send buffer, then wants write", function()
      local c, s, cfd = connected()
      -- room for a few records, not for all: the peer reads nothing yet
      assert(net.setsockopt(cfd, "sndbuf", 65536))
      local data = {}
      for i = 1, 1 << 16 do data[i] = string.char(i % 251) .. "abcdefghijklmno" end
      data = table.concat(data)  -- 1 MiB, not one repeated byte
      -- each write takes part of it (a record at a time), until the buffer is full
      local sent, want = 0, nil
      for _ = 1, 1000 do
        local m, w = c:write(data, sent + 1)
        if not m then
          assert.is_false(m)
          want = w
          break
        end
        assert.is_true(m > 0 and m <= #data - sent)
        sent = sent + m
      end
      assert.equal("write", want)
      assert.is_true(sent > 0 and sent < #data)
      -- the same bytes again when the peer has read: all arrive, in order
      local got = {}
      local have = 0
      for _ = 1, 100000 do
        if have >= #data then break end
        local chunk = s:read(1 << 20)
        if chunk then got[#got + 1] = chunk; have = have + #chunk end
        if sent < #data then
          local m, w = c:write(data, sent + 1)
          if m then sent = sent + m else assert.equal("write", w) end
        end
      end
      assert.equal(#data, have)
      assert.is_true(table.concat(got) == data)
    end)

    it("wants write during a handshake whose chain outgrows the send buffer", function()
      assert.is_true(p.big_size > 80000)
      local c, s, _, sfd = pair(ctx({ cert = p.big_cert, key = p.big_key }), client_ctx(),
        { server_name = "localhost" })
      assert(net.setsockopt(sfd, "sndbuf", 4096))
      local cs, ss = drive(c, s)
      assert.is_true(cs.ok, cs.msg)
      assert.is_true(ss.ok, ss.msg)
      assert.is_true((ss.wants.write or 0) > 0)
      assert.is_true(c:info().verified)
      assert.equal(4, c:write("ping"))
      assert.equal("ping", read_n(s, 4))
    end)

    it("refuses garbage instead of a ClientHello, and instead of a ServerHello", function()
      math.randomseed(11)
      local junk = {}
      for i = 1, 2000 do junk[i] = string.char(math.random(0, 255)) end
      junk = table.concat(junk)
      local a, b = sockets()
      local s = track(assert(tls.new(server_ctx(), a, "server")))
      assert(net.send(b, junk))
      local v, msg = s:handshake()
      assert.is_nil(v)
      assert.matches("^tls: ", msg)
      a, b = sockets()
      local c = track(assert(tls.new(client_ctx(), b, "client")))
      assert.same({ false, "read" }, { c:handshake() })
      assert(net.send(a, "HTTP/1.1 400 Bad Request\r\n\r\n" .. junk))
      v, msg = c:handshake()
      assert.is_nil(v)
      assert.matches("^tls: ", msg)
    end)
  end)

  describe("lifetime", function()
    it("raises on every method after free, which is idempotent", function()
      local c = pair(server_ctx(), client_ctx())
      c:free()
      c:free()
      assert.equal("lepoll.tls.session (freed)", tostring(c))
      local calls = {
        function() c:handshake() end, function() c:read(1) end,
        function() c:write("x") end, function() c:shutdown() end,
        function() c:pending() end, function() c:info() end,
        function() c:session() end, function() c:fd() end,
      }
      for _, f in ipairs(calls) do
        assert.has_error(f, "attempt to use a freed TLS session")
      end
    end)

    it("keeps a session usable after its fd and context closed, and collects it", function()
      local sctx = server_ctx()
      local c, s, cfd, sfd = pair(sctx, client_ctx(), { server_name = "localhost" })
      connect(c, s)
      sctx:close()  -- the sessions keep the SSL_CTX they use
      assert.equal(2, s:write("hi"))
      assert.equal("hi", read_n(c, 2))
      cfd:close()
      sfd:close()
      local v, msg, en = s:write("hi")
      assert.is_nil(v)
      assert.equal("tls: Bad file descriptor", msg)
      assert.equal(E.EBADF, en)
      -- __gc of sessions whose fds are gone: SSL_free writes nothing
      local weak = setmetatable({ c, s }, { __mode = "v" })
      closeall()
      c, s = nil, nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)
  end)
end)
