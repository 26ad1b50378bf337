-- TLS under lepoll's connections (lepoll._tls): a lepoll server and a
-- lepoll client on one loop. Clients and servers no one here wrote are in
-- spec/tls_tools_spec.lua.
local h = require "support.framework"
local certs = require "support.certs"
local tls = require "lepoll.tls"
local net = require "lepoll.net"
local partial = require "support.partial"

local P  -- the test certificates (support.certs)

setup(function() P = certs.make() end)

local function server_ctx(cert, key, extra)
  local t = { cert = cert or P.cert, key = key or P.key }
  for k, v in pairs(extra or {}) do t[k] = v end
  return assert(tls.context(t))
end

local function client_ctx(extra)
  local t = { ca = P.ca }
  for k, v in pairs(extra or {}) do t[k] = v end
  return assert(tls.context(t))
end

-- An echo handler that records how its reads ended.
local function echo_into(ends)
  return function(c)
    while true do
      local s, err, why = c:read()
      if not s then
        ends[#ends + 1] = { err, why }
        return
      end
      assert(c:write(s))
    end
  end
end

-- n bytes that no framing bug keeps by luck.
local function data(n, seed)
  local parts, x = {}, seed or 7
  for i = 1, n do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    parts[i] = string.char((x >> 16) & 0xff)
  end
  return table.concat(parts)
end

describe("lepoll TLS connections", function()
  it("echo through a verified handshake; conn:tls() tells the session's facts", function()
    h.with_task(function(loop)
      local ends = {}
      local ctx = server_ctx(nil, nil, { alpn = { "h2", "x/1" } })
      local srv = assert(loop:listen({ port = 0, tls = ctx }, echo_into(ends)))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx(), alpn = { "x/1" } } }))
      assert(c:write("hello over tls\n"))
      assert.equal("hello over tls", c:readline())
      local t = c:tls()
      assert.equal("TLSv1.3", t.version)
      assert.equal("x/1", t.alpn)
      assert.is_true(t.verified)
      assert.is_false(t.resumed)
      assert.matches("CN=localhost", t.subject)
      c:close()
      h.wait_until(loop, function() return #ends == 1 end, 5, "the server's end of stream")
      assert.same({ "closed" }, ends[1])  -- close_notify: no "truncated"
      srv:close()
    end)
  end)

  it("a plain connection has no conn:tls()", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0 }, function(c) c:close() end))
      local c = assert(loop:connect(srv:address()))
      assert.is_nil(c:tls())
      c:close()
      srv:close()
    end)
  end)

  it("reads bytes OpenSSL decrypted ahead, though the socket is drained", function()
    h.with_task(function(loop)
      local got
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, function(c)
        -- one byte a read: the rest of each record waits inside OpenSSL,
        -- not in the kernel, and no edge will come for it
        local parts = {}
        while #parts < 300 do
          local s = assert(c:read(1))
          parts[#parts + 1] = s
        end
        got = table.concat(parts)
        c:write("ok")
      end))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      local msg = data(300)
      assert(c:write(msg))
      assert.equal("ok", c:readn(2))
      assert.equal(msg, got)
      c:close()
      srv:close()
    end)
  end)

  it("echoes 16 MiB to a slow reader; the write buffer counts plaintext", function()
    h.with_task(function(loop)
      local ends = {}
      local srv = assert(loop:listen({ port = 0, tls = server_ctx(), hwm = 65536 },
        echo_into(ends)))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      local block = data(65536, 3)
      local n = partial.bulk(256, 4)  -- 16 MiB; 256 KiB a byte a syscall
      local writer_done = false
      loop:spawn(function()
        for _ = 1, n do assert(c:write(block)) end
        writer_done = true
      end)
      local got, reads = 0, 0
      while got < n * #block do
        local s = assert(c:read(4096))
        local off = got % #block
        assert(s == block:sub(off + 1, off + #s), "echoed bytes differ at " .. got)
        got = got + #s
        reads = reads + 1
        if reads % 64 == 0 then loop:sleep(0.001) end  -- a slow reader
        assert(c:pending() <= 65536 + #block)
      end
      assert.is_true(writer_done)
      assert.is_true(srv:stats().max_queued <= 65536 + #block)
      c:close()
      srv:close()
    end, 120)
  end)

  it("resumes a TLS 1.3 session from a ticket that came after the handshake", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, echo_into({})))
      local _, port = srv:address()
      local cctx = client_ctx()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = cctx } }))
      assert(c:write("x"))
      assert.equal("x", c:read())  -- the tickets came with or before the echo
      local session = c:tls().session
      assert.is_string(session)
      c:close()
      local c2 = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = cctx, session = session } }))
      assert.is_true(c2:tls().resumed)
      c2:close()
      srv:close()
    end)
  end)

  it("refuses an expired and a self-signed certificate, and says why", function()
    h.with_task(function(loop)
      local cases = {
        { P.expired_cert, P.expired_key, "certificate has expired" },
        { P.self_cert, P.self_key, "self%-signed certificate" },
      }
      for _, case in ipairs(cases) do
        local srv = assert(loop:listen({ port = 0, tls = server_ctx(case[1], case[2]) },
          echo_into({})))
        local _, port = srv:address()
        local c, err = loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } })
        assert.is_nil(c)
        assert.matches("^tls: certificate verify failed: " .. case[3], err)
        -- explicit: verification off
        c = assert(loop:connect("127.0.0.1", port,
          { tls = { ctx = client_ctx(), verify = false } }))
        assert.is_false(c:tls().verified)
        c:close()
        h.wait_until(loop, function() return srv:stats().tls_failures == 1 end, 5,
          "the server's failed handshake")
        srv:close()
      end
    end)
  end)

  it("checks the host name: the certificate's names, not just its chain", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, echo_into({})))
      local _, port = srv:address()
      local c, err = loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx(), server_name = "b.test" } })
      assert.is_nil(c)
      assert.matches("^tls: certificate verify failed: ", err)
      c = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx(), server_name = "localhost" } }))
      c:close()
      srv:close()
    end)
  end)

  it("serves two certificates by SNI", function()
    h.with_task(function(loop)
      local ctx = server_ctx(nil, nil, { sni = { ["b.test"] = server_ctx(P.b_cert, P.b_key) } })
      local srv = assert(loop:listen({ port = 0, tls = ctx }, echo_into({})))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx(), server_name = "b.test" } }))
      assert.matches("CN=b.test", c:tls().subject)
      c:close()
      c = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx(), server_name = "localhost" } }))
      assert.matches("CN=localhost", c:tls().subject)
      c:close()
      srv:close()
    end)
  end)

  it("ends a handshake that never comes after handshake_timeout", function()
    h.with_task(function(loop)
      local served = false
      local srv = assert(loop:listen({ port = 0, tls = server_ctx(), handshake_timeout = 0.2 },
        function() served = true end))
      local c = assert(loop:connect(srv:address()))  -- plain TCP: no ClientHello
      local t0 = loop.now
      assert.same({ nil, "closed" }, { c:read() })
      assert(loop.now - t0 >= 0.19, "closed before the handshake timeout")
      assert.is_false(served)
      assert.equal(1, srv:stats().tls_failures)
      c:close()
      srv:close()
    end)
  end)

  it("times out a client handshake the server never answers", function()
    h.with_task(function(loop)
      local hold = {}
      local srv = assert(loop:listen({ port = 0 }, function(c)
        hold[#hold + 1] = c
        c:read()  -- reads the ClientHello, answers nothing
        loop:sleep(5)
      end))
      local _, port = srv:address()
      local t0 = loop.now
      local c, err = loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx() }, handshake_timeout = 0.2 })
      assert.is_nil(c)
      assert.equal("tls: handshake timed out", err)
      assert(loop.now - t0 < 2)
      for _, x in ipairs(hold) do x:close() end
      srv:close()
    end)
  end)

  it("says 'truncated' when the peer's stream ends without close_notify", function()
    h.with_task(function(loop)
      local ends = {}
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, echo_into(ends)))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      assert(c:write("part of a body"))
      assert.equal("part of a body", c:readn(14))
      -- the TCP stream ends, no close_notify: what a killed client does
      assert(net.shutdown(c:fileno(), "w"))
      h.wait_until(loop, function() return #ends == 1 end, 5, "the server's end of stream")
      assert.same({ "closed", "truncated" }, ends[1])
      c:close()
      srv:close()
    end)
  end)

  it("reports a handshake with garbage as a failure, and serves the next client", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, echo_into({})))
      local _, port = srv:address()
      local raw = assert(loop:connect("127.0.0.1", port))
      assert(raw:write(("\22\3\1\0\5garbage"):rep(20)))
      local s = raw:read()
      assert(s == nil or #s > 0)
      raw:close()
      h.wait_until(loop, function() return srv:stats().tls_failures == 1 end, 5, "the failure")
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      assert(c:write("still"))
      assert.equal("still", c:readn(5))
      c:close()
      srv:close()
    end)
  end)

  it("shutdown('w') sends close_notify: the peer reads 'closed', then answers", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, function(c)
        local parts = {}
        while true do
          local s, err, why = c:read()
          if not s then
            assert.equal("closed", err)
            assert.is_nil(why)
            break
          end
          parts[#parts + 1] = s
        end
        c:write("got " .. #table.concat(parts))
      end))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      assert(c:write(("z"):rep(100000)))
      assert(c:shutdown("w"))
      assert.equal("got 100000", c:readn(10))
      c:close()
      srv:close()
    end)
  end)

  it("asks for a client certificate when the server's context verifies (mTLS)", function()
    h.with_task(function(loop)
      local seen = {}
      local sctx = server_ctx(nil, nil, { verify = true, ca = P.ca })
      local srv = assert(loop:listen({ port = 0, tls = sctx }, function(c)
        seen[#seen + 1] = c:tls().subject
        c:write("welcome")
      end))
      local _, port = srv:address()
      -- with a certificate the CA signed: the handler sees who it is
      local cctx = client_ctx({ cert = P.client_cert, key = P.client_key })
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = cctx } }))
      assert.equal("welcome", c:readn(7))
      c:close()
      assert.matches("CN=client", seen[1])
      -- without one: TLS 1.3 ends the client's handshake before the server
      -- refuses, so the client hears it on its first read
      c = loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } })
      if c then
        local s, err = c:read()
        assert.is_nil(s)
        assert.matches("^tls: ", err)
        c:close()
      end
      h.wait_until(loop, function() return srv:stats().tls_failures == 1 end, 5, "the refusal")
      assert.equal(1, #seen)
      srv:close()
    end)
  end)

  it("a client that only writes, then closes, ends cleanly (the tickets it never read)",
    function()
    h.with_task(function(loop)
      local ends, n = {}, 0
      -- Under the partial-I/O injector the server's own ticket is written a
      -- byte at a time, the rest when it next calls OpenSSL: after the
      -- client closed, which answers it with a reset. There the server
      -- sends no tickets, and the rest still holds.
      local sctx = server_ctx(nil, nil, partial.ON and { tickets = false } or nil)
      local srv = assert(loop:listen({ port = 0, tls = sctx }, function(c)
        loop:sleep(0.05)  -- the client is done and closed before this reads
        while true do
          local s, err, why = c:read()
          if not s then
            ends[1] = { err, why }
            return
          end
          n = n + #s
        end
      end))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port, { tls = { ctx = client_ctx() } }))
      -- more than the socket buffers hold: when write returns, the tail is
      -- still in the client's kernel, and a reset would drop it
      local size = partial.bulk(4 * 1024 * 1024, 256 * 1024)
      assert(c:write(("w"):rep(size)))
      c:close()
      h.wait_until(loop, function() return ends[1] end, 10, "the server's end of stream")
      assert.same({ "closed" }, ends[1])  -- close_notify and a FIN, no reset
      assert.equal(size, n)
      srv:close()
    end)
  end)

  it("fails the connection when a write gives up with a record half sent", function()
    h.with_task(function(loop)
      local got, go = {}, false
      local srv = assert(loop:listen({ port = 0, tls = server_ctx() }, function(c)
        h.wait_until(loop, function() return go end, 10, "the client's second write")
        while true do
          local s = c:read()
          if not s then break end
          got[#got + 1] = s
        end
        got.done = true
      end))
      local _, port = srv:address()
      local c = assert(loop:connect("127.0.0.1", port,
        { tls = { ctx = client_ctx() }, write_timeout = 0.3, hwm = 1 }))
      -- the server reads nothing yet: this write times out, and OpenSSL
      -- keeps a record made of its bytes
      assert.same({ nil, "timeout" }, { c:write(("A"):rep(4 * 1024 * 1024)) })
      go = true
      -- on plain TCP the next write would go on; over TLS it would carry
      -- the old record in place of its own bytes
      local ok, err = c:write(("B"):rep(40000))
      assert.is_nil(ok)
      assert.equal("tls: a write gave up with a record half sent", err)
      c:close()
      h.wait_until(loop, function() return got.done end, 10, "the server's end of stream")
      assert.is_nil(table.concat(got):find("B", 1, true))
      srv:close()
    end)
  end)

  it("returns an error, leaking nothing, for TLS settings OpenSSL refuses", function()
    h.with_task(function(loop)
      local srv = assert(loop:listen({ port = 0 }, function(c) c:read() end))
      local _, port = srv:address()
      for _, t in ipairs({ { session = "not a session" }, { server_name = "" },
        { server_name = ("a"):rep(300) } }) do
        t.ctx = client_ctx()
        local c, err = loop:connect("127.0.0.1", port, { tls = t, timeout = 2 })
        assert.is_nil(c)
        assert.matches("^tls: ", err)
      end
      srv:close()
    end)  -- the harness fails the test if a socket stayed open
  end)

  it("checks the tls options where they are given", function()
    h.with_task(function(loop)
      assert.error_matches(function() loop:listen({ port = 0, tls = {} }, print) end,
        "option 'tls' must be a TLS context")
      assert.error_matches(function() loop:connect("127.0.0.1", 1, { tls = 5 }) end,
        "option 'tls' must be true, a TLS context or a table")
      assert.error_matches(function() loop:connect("127.0.0.1", 1, { tls = { vrfy = false } }) end,
        "option 'tls' must be a table without field 'vrfy'")
      assert.error_matches(function() loop:connect("127.0.0.1", 1, { tls = { verify = 0 } }) end,
        "option 'tls' must be a table whose verify is a boolean")
      assert.error_matches(function() loop:connect("127.0.0.1", 1, { tls = { alpn = { 1 } } }) end,
        "option 'tls' must be a table whose alpn is an array of strings")
      assert.error_matches(function()
        loop:connect("127.0.0.1", 1, { tls = { server_name = false } })
      end, "option 'tls' must be a table whose server_name is a string")
    end)
  end)
end)
