-- http.request over https: against lepoll.http over TLS on the same loop,
-- python3's http.server wrapped by ssl and nginx's `listen ... ssl`
-- (spec/support/http_servers.lua), with the certificates of
-- spec/support/certs.lua. Every URL names "localhost": the client
-- connects by name, and the certificate must name it.
local h = require "support.framework"
local certs = require "support.certs"
local servers = require "support.http_servers"
local http = require "lepoll.http"
local tls = require "lepoll.tls"
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local poolm = require "lepoll._http_pool"

local P   -- the certificates
local CA  -- a client context that trusts the test CA

setup(function()
  P = certs.make()
  CA = assert(tls.context{ ca = P.ca })
end)

-- The tls option of a client that trusts the test CA: a new table each
-- time (the pool keys TLS settings by what they say, not by the table).
local function trust(extra)
  local t = { ctx = CA }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local TRUNCATED = "truncated: the server closed without TLS close_notify"

-- 16 MiB of "0123456789abcdef", as every server here sends it.
local BIG = 16 * 1024 * 1024
local PATTERN = ("0123456789abcdef"):rep(8192)

-- Whether fd has something to read (or its end) now.
local function readable(fd)
  local ep <close> = assert(epoll.create())
  assert(ep:add(fd, 0, epoll.IN))
  return assert(ep:wait(epoll.events(1), 0)) > 0
end

-- The loop's one idle pooled connection.
local function pooled(loop)
  local found
  for _, list in pairs(poolm.get(loop).idle) do
    for _, c in ipairs(list) do
      assert(not found, "more than one idle connection")
      found = c
    end
  end
  return assert(found, "no idle connection")
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- GET path on a TLS connection of our own, read the response (it has a
-- Content-Length), then read on: how the server ended the idle connection
-- (conn:read's second and third values).
local function idle_end(loop, port, path)
  local c = assert(loop:connect("localhost", port, { tls = trust() }))
  assert(c:write("GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\n\r\n"))
  local len
  while true do
    local line = assert(c:readline())
    if line == "" then break end
    len = len or tonumber(line:lower():match("^content%-length: *(%d+)"))
  end
  assert(c:readn(assert(len, "a content-length")))
  local s, err, why = c:read()
  c:close()
  assert.is_nil(s)
  return err, why
end

-- lepoll.http's side: /conn answers "ID N\n" (the connection's number and
-- its request count), POST echoes (201), /upload counts the body's
-- bytes, /chunked and /big stream, /redirect?URL redirects there; the
-- TLS facts of the last connection go into seen.
local function app(seen)
  local ids, nconn = setmetatable({}, { __mode = "k" }), 0
  return function(req, res)
    local c = req:connection()
    local id = ids[c]
    if not id then
      nconn = nconn + 1
      id = { nconn, 0 }
      ids[c] = id
    end
    id[2] = id[2] + 1
    local t = c:tls()
    seen.sni, seen.alpn = t.sni, t.alpn
    local path = req.path
    if path == "/upload" then
      local n = 0
      while true do
        local s = req:read()
        if not s then break end
        n = n + #s
      end
      return res:finish(tostring(n))
    elseif req.method == "POST" then
      res:status(201)
      return res:finish(assert(req:body()))
    elseif path == "/conn" then
      return res:finish(id[1] .. " " .. id[2] .. "\n")
    elseif path == "/chunked" then
      for _, s in ipairs({ "lep", "oll-", "chunks" }) do assert(res:write(s)) end
      return res:finish()
    elseif path == "/big" then
      local n = tonumber(req.headers["x-size"])
      res:header("Content-Length", n)
      local piece = PATTERN:sub(1, 65536)
      while n > 0 do
        if not res:write(n < #piece and piece:sub(1, n) or piece) then return end
        n = n - #piece
      end
      return res:finish()
    elseif path == "/redirect" then
      res:status(302)
      res:header("Location", req.query)
      return res:finish()
    end
    res:finish("lepoll " .. req.target .. "\n")
  end
end

-- Listen with lepoll.http over TLS on loop, 127.0.0.1, a free port.
local function listen(loop, cert, key, handler, opts)
  local o = { loop = loop, port = 0,
    tls = assert(tls.context{ cert = cert, key = key, alpn = { "h2", "http/1.1" } }) }
  for k, v in pairs(opts or {}) do o[k] = v end
  local s = assert(http.listen(o, handler))
  h.defer(s)
  local _, port = s:address()
  return port
end

-- The servers, each with four certificates: good (localhost), b (b.test),
-- expired, self (self-signed).
local CERTS = function()
  return { { P.cert, P.key }, { P.b_cert, P.b_key }, { P.expired_cert, P.expired_key },
    { P.self_cert, P.self_key } }
end

local function by_name(list)
  return { good = list[1], b = list[2], expired = list[3], self = list[4] }
end

local KINDS = {
  {
    name = "lepoll.http on the same loop",
    serve = function(loop, seen)
      local ports = {}
      for i, c in ipairs(CERTS()) do ports[i] = listen(loop, c[1], c[2], app(seen or {})) end
      return by_name(ports)
    end,
    post = function(r)
      assert.equal(201, r.status)
      assert.equal("posted over tls", r.body)
    end,
    chunked = { "/chunked", "lepoll-chunks" },
    big = { "/big", { ["X-Size"] = BIG } },
    -- a server of its own whose idle connections close after 0.1 s
    closer = function(loop)
      return listen(loop, P.cert, P.key, app({}), { keepalive_timeout = 0.1 }), "/conn"
    end,
  },
  {
    name = "python3's http.server with ssl",
    external = function() return servers.python_tls(CERTS()) end,
    post = function(r)
      assert.equal(201, r.status)
      assert.equal("posted over tls", r.body)
    end,
    chunked = { "/chunked", "python-chunks", { ["x-trailer"] = "t" } },
    big = { "/big", { ["X-Size"] = BIG } },
    -- /bye: close_notify right after the response
    closer = function(_, ports) return ports.good, "/bye" end,
  },
  {
    name = "nginx with listen ssl",
    external = function()
      local ngx = servers.nginx{ big = BIG, tls = CERTS() }
      return { ports = ngx.tls_ports, stop = ngx.stop }
    end,
    post = function(r, id)
      -- nginx's return: the body was read and dropped, on the same connection
      assert.equal(200, r.status)
      assert.equal(id .. " 6\n", r.body)
    end,
    chunked = { "/page.shtml", "a/page.shtmlb\n" },
    big = { "/big.bin" },
    -- /short: keepalive_timeout 200ms
    closer = function(_, ports) return ports.good, "/short" end,
  },
}

for _, K in ipairs(KINDS) do
  describe("http.request over https against " .. K.name, function()
    -- started here, not in a test: the checks of a test count its fds
    local ext
    setup(function() ext = K.external and K.external() end)
    teardown(function() if ext then ext.stop() end end)

    local function ports(loop)
      if not ext then return K.serve(loop) end
      return by_name(ext.ports)
    end

    it("GET and POST: six requests over one TLS connection", function()
      h.with_task(function(loop)
        local base = "https://localhost:" .. ports(loop).good
        local first
        for i = 1, 5 do
          local r = assert(http.request{ url = base .. "/conn", loop = loop, tls = trust() })
          assert.equal(200, r.status)
          local id, n = r.body:match("^(%d+) (%d+)\n$")
          first = first or id
          assert.equal(first, id)
          assert.equal(tostring(i), n)
        end
        K.post(assert(http.request{ url = base .. "/conn", loop = loop, tls = trust(),
          body = "posted over tls" }), first)
        local st = http.pool_stats(loop)
        assert.equal(1, st.made)
        assert.equal(5, st.reused)
        assert.equal(1, st.idle)
      end, 30)
    end)

    it("reads a chunked response", function()
      h.with_task(function(loop)
        local url = "https://localhost:" .. ports(loop).good .. K.chunked[1]
        local r = assert(http.request{ url = url, loop = loop, tls = trust() })
        assert.equal("chunked", r.headers["transfer-encoding"])
        assert.equal(K.chunked[2], r.body)
        assert.same(K.chunked[3], r.trailers)
        assert.equal(1, http.pool_stats(loop).idle)
      end, 30)
    end)

    it("streams a 16 MiB body, then pools the connection", function()
      h.with_task(function(loop)
        local url = "https://localhost:" .. ports(loop).good .. K.big[1]
        local r = assert(http.request{ url = url, loop = loop, tls = trust(), stream = true,
          headers = K.big[2], max_body = 1024 })
        assert.equal(tostring(BIG), r.headers["content-length"])
        local total = 0
        while true do
          local s, err = r:read()
          assert.is_nil(err)
          if not s then break end
          local off = total % 16
          assert(s == PATTERN:sub(off + 1, off + #s), "the bytes at " .. total)
          total = total + #s
        end
        assert.equal(BIG, total)
        assert.equal(1, http.pool_stats(loop).idle)
      end, 60)
    end)

    it("checks the host name: the certificate must name the URL's host", function()
      h.with_task(function(loop)
        local pt = ports(loop)
        local r = assert(http.request{ url = "https://127.0.0.1:" .. pt.good .. "/conn",
          loop = loop, tls = trust() })
        assert.equal(200, r.status)
        assert.same({ nil, "tls: certificate verify failed: hostname mismatch" },
          { http.request{ url = "https://localhost:" .. pt.b .. "/", loop = loop,
            tls = trust() } })
        assert.same({ nil, "tls: certificate verify failed: IP address mismatch" },
          { http.request{ url = "https://127.0.0.1:" .. pt.b .. "/", loop = loop,
            tls = trust() } })
        -- the name asked for (SNI) and checked can be given
        r = assert(http.request{ url = "https://127.0.0.1:" .. pt.b .. "/conn", loop = loop,
          tls = trust{ server_name = "b.test" } })
        assert.equal(200, r.status)
        -- by default only the system's CAs are trusted
        assert.same({ nil, "tls: certificate verify failed: unable to get local issuer"
          .. " certificate" }, { http.request{ url = "https://localhost:" .. pt.good .. "/",
            loop = loop } })
      end, 30)
    end)

    it("refuses an expired and a self-signed certificate unless verify = false", function()
      h.with_task(function(loop)
        local pt = ports(loop)
        local function get(port, t)
          return http.request{ url = "https://localhost:" .. port .. "/conn", loop = loop,
            tls = t }
        end
        assert.same({ nil, "tls: certificate verify failed: certificate has expired" },
          { get(pt.expired, trust()) })
        assert.same({ nil, "tls: certificate verify failed: self-signed certificate" },
          { get(pt.self, trust()) })
        assert.equal(200, assert(get(pt.expired, trust{ verify = false })).status)
        assert.equal(200, assert(get(pt.self, { verify = false })).status)
      end, 30)
    end)

    it("never lends a connection made with other TLS settings", function()
      h.with_task(function(loop)
        local pt = ports(loop)
        local self_url = "https://localhost:" .. pt.self .. "/conn"
        assert(http.request{ url = self_url, loop = loop, tls = { verify = false } })
        assert.equal(1, http.pool_stats(loop).idle)
        -- the idle connection did not verify: a verifying request makes its own
        assert.same({ nil, "tls: certificate verify failed: self-signed certificate" },
          { http.request{ url = self_url, loop = loop, tls = trust() } })
        assert.same({ nil, "tls: certificate verify failed: self-signed certificate" },
          { http.request{ url = self_url, loop = loop } })
        assert(http.request{ url = self_url, loop = loop, tls = { verify = false } })
        local st = http.pool_stats(loop)
        assert.equal(1, st.made)  -- what the handshake refused is not counted
        assert.equal(1, st.reused)
        -- and the other way round, on a server both can reach
        local url = "https://localhost:" .. pt.good .. "/conn"
        local a = assert(http.request{ url = url, loop = loop, tls = trust() })
        local b = assert(http.request{ url = url, loop = loop, tls = trust{ verify = false } })
        local c = assert(http.request{ url = url, loop = loop, tls = trust() })
        assert.are_not.equal(a.body:match("^%d+"), b.body:match("^%d+"))
        assert.equal(a.body:match("^%d+"), c.body:match("^%d+"))
        st = http.pool_stats(loop)
        assert.equal(3, st.made)
        assert.equal(3, st.idle)
        assert.equal(3, count(st.hosts))
      end, 30)
    end)

    it("a pooled connection the server ends with close_notify: the next request succeeds",
      function()
        h.with_task(function(loop)
          local port, path = K.closer(loop, ports(loop))
          local url = "https://localhost:" .. port .. path
          -- the server's idle end is a close_notify, not a bare close
          assert.same({ "closed" }, { idle_end(loop, port, path) })
          assert.equal(200, assert(http.request{ url = url, loop = loop,
            tls = trust() }).status)
          -- a close_notify that came with the response (read ahead by
          -- OpenSSL) keeps the connection out of the pool at once; one
          -- that comes later is found before the connection is lent
          if http.pool_stats(loop).idle == 1 then
            local fd = pooled(loop):fileno()
            h.wait_until(loop, function() return readable(fd) end, 5, "the server's end")
          end
          local r = assert(http.request{ url = url, loop = loop, tls = trust() })
          assert.equal(200, r.status)
          local st = http.pool_stats(loop)
          assert.equal(2, st.made)
          assert.equal(0, st.reused)
        end, 30)
      end)
  end)
end

-- A raw lepoll TLS server for the ends of a body: /cut-length,
-- /cut-chunked, /cut-eof end with a bare FIN (no close_notify), /eof with
-- close_notify.
local function raw_ends(loop)
  local ctx = assert(tls.context{ cert = P.cert, key = P.key })
  local s, port = h.serve(loop, function(c)
    local path = assert(c:readline()):match("^GET (%S+)")
    repeat until assert(c:readline()) == ""
    local cut = true
    if path == "/cut-length" then
      assert(c:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."))
    elseif path == "/cut-chunked" then
      assert(c:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"))
    elseif path == "/cut-eof" then
      assert(c:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil a bare close\n"))
    else
      assert(c:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close_notify\n"))
      cut = false
    end
    if cut then
      assert(c:flush())
      assert(net.shutdown(c:fileno(), "w"))  -- under TLS: no close_notify
      c:read()  -- until the client closes
    end
  end, { tls = ctx })
  h.defer(s)
  return port
end

local ENDS = {
  { name = "lepoll (raw TLS)", serve = raw_ends },
  { name = "python3's http.server with ssl",
    external = function() return servers.python_tls({ { P.cert, P.key } }) end },
}

for _, K in ipairs(ENDS) do
  describe("http.request over https: how a body ends, against " .. K.name, function()
    local ext
    setup(function() ext = K.external and K.external() end)
    teardown(function() if ext then ext.stop() end end)

    local function base(loop)
      local port
      if ext then
        port = ext.ports[1]
      else
        port = K.serve(loop)
      end
      return "https://localhost:" .. port
    end

    it("a server that dies mid-body without close_notify: an error", function()
      h.with_task(function(loop)
        local b = base(loop)
        local function get(path, stream)
          return http.request{ url = b .. path, loop = loop, tls = trust(), stream = stream }
        end
        assert.same({ nil, "closed" }, { get("/cut-length") })
        assert.same({ nil, "closed" }, { get("/cut-chunked") })
        -- a body delimited by the close: a bare end is a cut, not its end
        assert.same({ nil, TRUNCATED }, { get("/cut-eof") })
        local r = assert(get("/cut-eof", true))
        local got = {}
        while true do
          local s, err = r:read()
          if not s then
            assert.equal(TRUNCATED, err)
            break
          end
          got[#got + 1] = s
        end
        assert.equal("until a bare close\n", table.concat(got))
        assert.equal(0, http.pool_stats(loop).idle)
      end, 30)
    end)

    it("a body delimited by the close and ended by close_notify is complete", function()
      h.with_task(function(loop)
        local r = assert(http.request{ url = base(loop) .. "/eof", loop = loop,
          tls = trust() })
        assert.equal(200, r.status)
        assert.equal("until close_notify\n", r.body)
        assert.equal(0, http.pool_stats(loop).idle)
      end, 30)
    end)
  end)
end

describe("http.request over https: lepoll.http's view", function()
  it("sends SNI (not for an IP address) and offers http/1.1 by ALPN", function()
    h.with_task(function(loop)
      local seen = {}
      local port = KINDS[1].serve(loop, seen).good
      assert(http.request{ url = "https://localhost:" .. port .. "/", loop = loop,
        tls = trust() })
      assert.equal("localhost", seen.sni)
      assert.equal("http/1.1", seen.alpn)
      assert(http.request{ url = "https://127.0.0.1:" .. port .. "/", loop = loop,
        tls = trust() })
      assert.is_nil(seen.sni)
      -- the caller's ALPN list replaces it
      assert(http.request{ url = "https://localhost:" .. port .. "/", loop = loop,
        tls = trust{ alpn = { "h2" } } })
      assert.equal("h2", seen.alpn)
    end)
  end)

  it("uploads 16 MiB chunked, and waits for 100-continue, over TLS", function()
    h.with_task(function(loop)
      local port = KINDS[1].serve(loop).good
      local piece = PATTERN:sub(1, 65536)
      local n = 0
      local r = assert(http.request{ url = "https://localhost:" .. port .. "/upload",
        loop = loop, tls = trust(), body = function()
          if n == 256 then return nil end
          n = n + 1
          return piece
        end })
      assert.equal(tostring(BIG), r.body)
      local t0 = loop.now
      r = assert(http.request{ url = "https://localhost:" .. port .. "/upload", loop = loop,
        tls = trust(), body = "after the 100", expect_continue = true })
      assert.equal("13", r.body)
      assert.is_true(loop.now - t0 < 0.9)
      assert.equal(1, http.pool_stats(loop).made)
    end, 60)
  end)

  it("a redirect to another host leaves the caller's server_name behind", function()
    h.with_task(function(loop)
      local pt = KINDS[1].serve(loop)
      local there = "https://localhost:" .. pt.good .. "/there"
      -- b.test's server, reached by address under its name, sends us to localhost
      local r = assert(http.request{ url = "https://127.0.0.1:" .. pt.b .. "/redirect?"
        .. there, loop = loop, tls = trust{ server_name = "b.test" }, redirects = 1 })
      assert.equal(200, r.status)
      assert.equal("lepoll /there\n", r.body)
    end)
  end)

  it("times out on a server that never shakes hands, within the timeout", function()
    h.with_task(function(loop)
      local s, port = h.serve(loop, function(c) repeat until not c:read() end)
      h.defer(s)
      local t0 = loop.now
      assert.same({ nil, "timeout" }, { http.request{ url = "https://localhost:" .. port .. "/",
        loop = loop, tls = trust(), timeout = 0.3 } })
      local took = loop.now - t0
      assert.is_true(took >= 0.29 and took < 2 * h.SLOW, "took " .. took)
    end)
  end)

  it("reaches [::1] by its address, checked against the certificate's", function()
    h.with_task(function(loop)
      local port = listen(loop, P.cert, P.key, app({}), { host = "::1" })
      local r = assert(http.request{ url = "https://[::1]:" .. port .. "/x", loop = loop,
        tls = trust() })
      assert.equal("lepoll /x\n", r.body)
      port = listen(loop, P.b_cert, P.b_key, app({}), { host = "::1" })
      assert.same({ nil, "tls: certificate verify failed: IP address mismatch" },
        { http.request{ url = "https://[::1]:" .. port .. "/", loop = loop, tls = trust() } })
    end)
  end)

  it("raises on a bad tls option, naming it", function()
    h.with_task(function(loop)
      for _, t in ipairs({ 5, "yes", { vrfy = false }, { verify = "no" }, { alpn = "h2" },
        { alpn = { 1 } }, { ctx = {} }, { server_name = 1 } }) do
        assert.error_matches(function()
          http.request{ url = "https://localhost:1/", loop = loop, tls = t }
        end, "bad argument #1 to 'request' %(option 'tls' must be true, a TLS context or a"
          .. " table {ctx = context, server_name = string, verify = boolean, alpn = {string,"
          .. " %.%.%.}, session = string}, got ", nil, "tls = " .. tostring(t))
      end
    end)
  end)
end)
