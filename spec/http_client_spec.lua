-- http.request: the HTTP/1.1 client, against lepoll.http on the same
-- loop, raw servers that misbehave on purpose, python3's http.server and
-- nginx. The harness (support.framework) fails a test that leaves an fd
-- open: every connection the client pooled is closed with the loop.
local h = require "support.framework"
local http = require "lepoll.http"
local servers = require "support.http_servers"

local SLOW = h.SLOW

-- An HTTP server on loop at 127.0.0.1, a free port: its base URL, and
-- the set of connections its handler saw.
local function serve(loop, handler, opts)
  opts = opts or {}
  opts.loop, opts.port = loop, 0
  local conns = {}
  local s = assert(http.listen(opts, function(req, res)
    conns[req:connection()] = true
    return handler(req, res)
  end))
  h.defer(s)
  local _, port = s:address()
  return "http://127.0.0.1:" .. port, conns
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- A raw server: handler(conn) gets each accepted connection.
local function raw(loop, handler)
  local s, port = h.serve(loop, handler)
  h.defer(s)
  return "http://127.0.0.1:" .. port
end

-- Read a request head from conn (raw servers): its text.
local function read_head(conn)
  local lines = {}
  while true do
    local l = conn:readline()
    if not l or l == "" then return table.concat(lines, "\n") end
    lines[#lines + 1] = l
  end
end

local function echo(req, res)
  local body = assert(req:body())
  res:header("X-Method", req.method)
  res:header("X-Got-Length", req.headers["content-length"] or "-")
  res:header("X-Got-TE", req.headers["transfer-encoding"] or "-")
  res:finish(req.method .. " " .. req.target .. " " .. body)
end

describe("http.request against lepoll.http", function()
  it("GETs, POSTs and HEADs on one kept-alive connection", function()
    h.with_task(function(loop)
      local base, conns = serve(loop, echo)
      local r = assert(http.request{ url = base .. "/a?b=1", loop = loop })
      assert.equal(200, r.status)
      assert.equal("OK", r.reason)
      assert.equal(11, r.version)
      assert.equal("GET /a?b=1 ", r.body)
      assert.equal("text/plain", r:header("Content-Type") or "text/plain")
      assert.equal("GET", r:header("X-METHOD"))
      r = assert(http.request{ url = base .. "/p", body = "hello", loop = loop })
      assert.equal("POST /p hello", r.body)
      assert.equal("5", r.headers["x-got-length"])
      r = assert(http.request{ url = base .. "/h", method = "HEAD", loop = loop })
      assert.equal(200, r.status)
      assert.equal("", r.body)
      assert.equal(tostring(#"HEAD /h "), r.headers["content-length"])
      r = assert(http.request{ url = base .. "/put", method = "PUT", loop = loop })
      assert.equal("PUT /put ", r.body)
      assert.equal("0", r.headers["x-got-length"])
      for i = 1, 20 do
        assert.equal("GET /" .. i .. " ", assert(http.request{ url = base .. "/" .. i,
          loop = loop }).body)
      end
      assert.equal(1, count(conns))
      local st = http.pool_stats(loop)
      assert.equal(1, st.made)
      assert.equal(23, st.reused)
      assert.equal(1, st.idle)
    end)
  end)

  it("sends Host, User-Agent, the caller's headers, repeated fields", function()
    h.with_task(function(loop)
      local seen
      local base = serve(loop, function(req, res)
        seen = req.headers
        res:finish()
      end)
      local _, port = base:match("(.*):(%d+)$")
      assert(http.request{ url = base .. "/", loop = loop,
        headers = { ["X-A"] = { "1", "2" }, ["X-N"] = 5 } })
      assert.equal("127.0.0.1:" .. port, seen.host)
      assert.matches("^lepoll/%d+%.%d+%.%d+$", seen["user-agent"])
      assert.equal("1, 2", seen["x-a"])
      assert.equal("5", seen["x-n"])
      assert.is_nil(seen.connection)
      assert(http.request{ url = base .. "/", loop = loop,
        headers = { ["User-Agent"] = "me", Host = "example" } })
      assert.equal("me", seen["user-agent"])
      assert.equal("example", seen.host)
    end)
  end)

  it("sends a function body chunked, or as is with a Content-Length", function()
    h.with_task(function(loop)
      local base = serve(loop, echo)
      local parts = { "a", "", "bc", "def" }
      local i = 0
      local r = assert(http.request{ url = base .. "/c", loop = loop, body = function()
        i = i + 1
        return parts[i]
      end })
      assert.equal("POST /c abcdef", r.body)
      assert.equal("chunked", r.headers["x-got-te"])
      i = 0
      r = assert(http.request{ url = base .. "/c", loop = loop, method = "PUT",
        headers = { ["content-length"] = "6" }, body = function()
          i = i + 1
          return parts[i]
        end })
      assert.equal("PUT /c abcdef", r.body)
      assert.equal("6", r.headers["x-got-length"])
    end)
  end)

  it("reads chunked responses with trailers, and streams them", function()
    h.with_task(function(loop)
      local base = serve(loop, function(_, res)
        for k = 1, 5 do assert(res:write(tostring(k):rep(k))) end
        res:finish()
      end)
      local r = assert(http.request{ url = base .. "/", loop = loop })
      assert.equal("1223334444", r.body:sub(1, 10))
      assert.is_nil(r.headers["content-length"])
      r = assert(http.request{ url = base .. "/", loop = loop, stream = true })
      assert.is_nil(r.body)
      local got = {}
      while true do
        local s, err = r:read(3)
        assert.is_nil(err)
        if not s then break end
        assert.is_true(#s <= 3)
        got[#got + 1] = s
      end
      assert.equal("122333444455555", table.concat(got))
      assert.is_nil(r:read())
      assert.equal(1, http.pool_stats(loop).idle)
    end)
  end)

  it("refuses a body over max_body, and does not reuse that connection", function()
    h.with_task(function(loop)
      local base, conns = serve(loop, function(req, res)
        if req.path == "/chunked" then
          res:write(("x"):rep(600))
          return res:finish(("y"):rep(600))
        end
        res:finish(("x"):rep(1000))
      end)
      assert.same({ nil, "response body too large" },
        { http.request{ url = base .. "/", loop = loop, max_body = 999 } })
      assert.same({ nil, "response body too large" },
        { http.request{ url = base .. "/chunked", loop = loop, max_body = 1000 } })
      assert.equal(1000, #assert(http.request{ url = base .. "/", loop = loop,
        max_body = 1000 }).body)
      assert.equal(3, count(conns))
    end)
  end)

  it("follows redirects when asked: 303 and POST-302 become GET, 307 keeps the body", function()
    h.with_task(function(loop)
      local base = serve(loop, function(req, res)
        local body = req:body()
        local n = tonumber(req.path:match("^/r(%d+)$"))
        if n and n > 0 then
          res:status(tonumber(req.query or "302"))
          res:header("Location", "/r" .. (n - 1) .. (req.query and "?" .. req.query or ""))
          return res:finish("moved")
        end
        if req.path == "/rel/a" then
          res:status(301)
          res:header("Location", "b")
          return res:finish()
        end
        res:finish(req.method .. " " .. req.target .. " " .. body)
      end)
      local r = assert(http.request{ url = base .. "/r3", loop = loop })
      assert.equal(302, r.status)
      assert.equal("/r2", r.headers.location)
      assert.equal("moved", r.body)
      r = assert(http.request{ url = base .. "/r3", loop = loop, redirects = 3 })
      assert.equal(200, r.status)
      assert.equal("GET /r0 ", r.body)
      r = assert(http.request{ url = base .. "/r3", loop = loop, redirects = 2 })
      assert.equal(302, r.status)
      r = assert(http.request{ url = base .. "/r2", loop = loop, redirects = 5, body = "x" })
      assert.equal("GET /r0 ", r.body)
      r = assert(http.request{ url = base .. "/r2?307", loop = loop, redirects = 5, body = "x" })
      assert.equal("POST /r0?307 x", r.body)
      r = assert(http.request{ url = base .. "/r1?303", loop = loop, redirects = 1,
        method = "PUT", body = "x" })
      assert.equal("GET /r0?303 ", r.body)
      r = assert(http.request{ url = base .. "/rel/a", loop = loop, redirects = 1 })
      assert.equal("GET /rel/b ", r.body)
      -- a body function is not replayed: the 307 is the answer
      local sent = false
      r = assert(http.request{ url = base .. "/r1?307", loop = loop, redirects = 1,
        body = function() if not sent then sent = true return "once" end end })
      assert.equal(307, r.status)
    end)
  end)

  it("drops Authorization and Cookie on a redirect to another host", function()
    h.with_task(function(loop)
      local seen
      local other = serve(loop, function(req, res)
        seen = req.headers
        res:finish("other")
      end)
      local _, oport = other:match("(.*):(%d+)$")
      local base = serve(loop, function(req, res)
        seen = req.headers
        res:status(302)
        res:header("Location", req.path == "/same" and "/x"
          or "http://localhost:" .. oport .. "/there")
        res:finish()
      end)
      local hdrs = { Authorization = "Basic eDp5", Cookie = "a=1", ["X-Keep"] = "k" }
      local r = assert(http.request{ url = base .. "/away", loop = loop, redirects = 1,
        headers = hdrs })
      assert.equal("other", r.body)
      assert.is_nil(seen.authorization)
      assert.is_nil(seen.cookie)
      assert.equal("k", seen["x-keep"])
      assert.equal("localhost:" .. oport, seen.host)
      assert(http.request{ url = other .. "/same", loop = loop, headers = hdrs })
      assert.equal("Basic eDp5", seen.authorization)
    end)
  end)

  it("Expect: 100-continue: the body follows the 100; a final answer first keeps it", function()
    h.with_task(function(loop)
      local bodies = {}
      local base, conns = serve(loop, function(req, res)
        if req.path == "/deny" then
          res:status(401)
          return res:finish("no")
        end
        bodies[#bodies + 1] = assert(req:body())
        res:finish("got " .. bodies[#bodies])
      end)
      local t0 = loop.now
      local r = assert(http.request{ url = base .. "/ok", loop = loop, body = "data",
        expect_continue = true })
      assert.equal("got data", r.body)
      assert.is_true(loop.now - t0 < 0.9)
      r = assert(http.request{ url = base .. "/deny", loop = loop, body = "secret",
        expect_continue = true })
      assert.equal(401, r.status)
      assert.equal("no", r.body)
      assert.same({ "data" }, bodies)
      -- the connection that heard the 401 is not reused
      assert(http.request{ url = base .. "/ok", loop = loop, body = "x" })
      assert.equal(2, count(conns))
    end)
  end)

  it("Expect: 100-continue: a server that says nothing gets the body after ~1 s", function()
    h.with_task(function(loop)
      local base = raw(loop, function(conn)
        local head = read_head(conn)
        assert.matches("Expect: 100%-continue", head)
        local body = conn:readn(4)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
        conn:read()
      end)
      local t0 = loop.now
      local r = assert(http.request{ url = base .. "/", loop = loop, body = "late",
        expect_continue = true })
      assert.equal("late", r.body)
      local waited = loop.now - t0
      assert.is_true(waited >= 0.95 and waited < 3 * SLOW, "waited " .. waited)
    end)
  end)

  it("keeps at most max_idle_per_host idle connections", function()
    h.with_task(function(loop)
      local release = false
      local base, conns = serve(loop, function(_, res)
        h.wait_until(loop, function() return release end, 5, "the release")
        res:finish("x")
      end)
      http.pool_config{ loop = loop, max_idle_per_host = 2 }
      local done = 0
      for _ = 1, 5 do
        loop:spawn(function()
          assert(http.request{ url = base .. "/", loop = loop })
          done = done + 1
        end)
      end
      h.wait_until(loop, function() return count(conns) == 5 end, 5, "five connections")
      release = true
      h.wait_until(loop, function() return done == 5 end, 5, "five responses")
      local st = http.pool_stats(loop)
      assert.equal(2, st.idle)
      assert.equal(5, st.made)
      http.close_idle(loop)
      assert.equal(0, http.pool_stats(loop).idle)
    end)
  end)

  it("lets run() return with connections idle in the pool", function()
    h.with_loop(function(loop)
      local status, server_side
      local s = assert(http.listen({ loop = loop, port = 0 }, function(req, res)
        server_side = req:connection()
        res:finish("x")
      end))
      h.defer(s)
      local _, port = s:address()
      loop:spawn(function()
        local url = "http://127.0.0.1:" .. port .. "/"
        status = assert(http.request{ url = url, loop = loop }).status
        s:close()
        server_side:close()  -- its keep-alive wait would hold run() for 75 s
      end)
      -- the request's task ends, the server is gone: so must run() end,
      -- with the client's connection still pooled (its idle timeout is 30 s)
      local guard = loop:after(10, function() loop:stop() end):unref()
      local t0 = loop.now
      loop:run()
      guard:cancel()
      assert.equal(200, status)
      assert.is_true(loop.now - t0 < 5, "run() waited for the pool")
      assert.equal(1, http.pool_stats(loop).idle)
      http.close_idle(loop)
    end)
  end)

  it("closes idle connections after idle_timeout", function()
    h.with_task(function(loop)
      local base = serve(loop, function(_, res) res:finish("x") end)
      http.pool_config{ loop = loop, idle_timeout = 0.2 }
      assert(http.request{ url = base .. "/", loop = loop })
      assert.equal(1, http.pool_stats(loop).idle)
      h.wait_until(loop, function() return http.pool_stats(loop).idle == 0 end, 3,
        "the idle connection to expire")
      assert(http.request{ url = base .. "/", loop = loop })
      assert.equal(2, http.pool_stats(loop).made)
    end)
  end)

  it("a pooled connection the server closed while idle: the next request succeeds", function()
    h.with_task(function(loop)
      local base, conns = serve(loop, function(_, res) res:finish("x") end,
        { keepalive_timeout = 0.1 })
      assert(http.request{ url = base .. "/", loop = loop })
      local c = next(conns)
      h.wait_until(loop, function() return c:closed() end, 3, "the server's close")
      local r = assert(http.request{ url = base .. "/", loop = loop })
      assert.equal("x", r.body)
      assert.equal(2, count(conns))
    end)
  end)

  it("retries an idempotent request once when a reused connection dies unanswered", function()
    h.with_task(function(loop)
      local n = 0
      local base = raw(loop, function(conn)
        n = n + 1
        read_head(conn)
        assert(conn:write("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" .. n))
        -- the second request on this connection is read, then dropped
        read_head(conn)
      end)
      assert.equal("1", assert(http.request{ url = base .. "/", loop = loop }).body)
      assert.equal("2", assert(http.request{ url = base .. "/", loop = loop }).body)
      assert.same({ nil, "closed" }, { http.request{ url = base .. "/", loop = loop,
        method = "POST", body = "x" } })
    end)
  end)
end)

describe("http.request against broken servers", function()
  -- A raw server that answers bytes, then waits for the client to close
  -- (or closes at once: close).
  local function answer(bytes, close)
    return function(conn)
      read_head(conn)
      conn:write(bytes)
      if not close then repeat until not conn:read() end
    end
  end

  it("refuses malformed or ambiguous heads and bodies, closing the connection", function()
    local cases = {
      { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "invalid response: content-length and transfer-encoding" },
      { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        "invalid response: conflicting content-length" },
      { "HTTP/1.1 2000 OK\r\n\r\n", "invalid response: invalid status code" },
      { "HTTP/1.1 200 OK\nX: y\r\n\r\n", "invalid response: bare LF in status line" },
      { "SSH-2.0-OpenSSH\r\n", "invalid response: invalid status line" },
      { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "invalid response: invalid chunk size" },
      { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
        "invalid response: no CRLF after chunk data" },
      { "HTTP/1.1 200 OK\r\nX: " .. ("a"):rep(70000) .. "\r\n\r\n",
        "invalid response: header section too large" },
      { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed", true },
      { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "closed", true },
    }
    for _, c in ipairs(cases) do
      h.with_task(function(loop)
        local base = raw(loop, answer(c[1], c[3]))
        assert.same({ nil, c[2] }, { http.request{ url = base .. "/", loop = loop } }, c[1])
        assert.equal(0, http.pool_stats(loop).idle)
      end)
    end
  end)

  it("reads a body delimited by the close, and does not pool that connection", function()
    h.with_task(function(loop)
      local base = raw(loop, function(conn)
        read_head(conn)
        conn:write("HTTP/1.1 200 OK\r\nX: 1\r\n\r\nuntil the ")
        conn:write("end")
      end)
      local r = assert(http.request{ url = base .. "/", loop = loop })
      assert.equal("until the end", r.body)
      assert.equal(0, http.pool_stats(loop).idle)
    end)
  end)

  it("skips 1xx interim responses", function()
    h.with_task(function(loop)
      local base = raw(loop, answer("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
      local r = assert(http.request{ url = base .. "/", loop = loop })
      assert.equal(200, r.status)
      assert.equal("ok", r.body)
      assert.is_nil(r.headers.link)
    end)
  end)

  it("times out on a server that never answers, within the timeout", function()
    h.with_task(function(loop)
      local base = raw(loop, function(conn) repeat until not conn:read() end)
      local t0 = loop.now
      assert.same({ nil, "timeout" },
        { http.request{ url = base .. "/", loop = loop, timeout = 0.3 } })
      local took = loop.now - t0
      assert.is_true(took >= 0.29 and took < 2 * SLOW, "took " .. took)
      -- and one that stops in the middle of a body
      base = raw(loop, answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
      assert.same({ nil, "timeout" },
        { http.request{ url = base .. "/", loop = loop, timeout = 0.3 } })
    end)
  end)

  it("times out sending a body the server does not read", function()
    h.with_task(function(loop)
      local base = raw(loop, function(conn)
        read_head(conn)
        h.wait_until(loop, function() return conn:closed() end, 10, "the client's close")
      end)
      local big = ("z"):rep(64 * 1024 * 1024)
      local t0 = loop.now
      assert.same({ nil, "timeout" },
        { http.request{ url = base .. "/", loop = loop, body = big, timeout = 0.5 } })
      assert.is_true(loop.now - t0 < 3 * SLOW)
    end)
  end)

  it("streams 16 MiB without holding it", function()
    h.with_task(function(loop)
      local piece = ("0123456789abcdef"):rep(4096)  -- 64 KiB
      local base = raw(loop, function(conn)
        read_head(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: " .. 256 * #piece .. "\r\n\r\n")
        for _ = 1, 256 do if not conn:write(piece) then return end end
        conn:read()
      end)
      local r = assert(http.request{ url = base .. "/", loop = loop, stream = true,
        max_body = 1024 })
      collectgarbage()
      local before = collectgarbage("count")
      -- the live heap (after a full collection, every 32 reads): the
      -- pieces read and dropped are garbage, not growth
      local total, peak, reads = 0, 0, 0
      while true do
        local s, err = r:read()
        assert.is_nil(err)
        if not s then break end
        total = total + #s
        reads = reads + 1
        if reads % 32 == 0 then
          s = nil  -- luacheck: ignore
          collectgarbage()
          peak = math.max(peak, collectgarbage("count") - before)
        end
      end
      assert.equal(16 * 1024 * 1024, total)
      assert.is_true(reads >= 256)
      assert.is_true(peak < 2048, "live heap growth " .. peak .. " KiB")
    end)
  end)

  it("closes a streamed response abandoned with res:close()", function()
    h.with_task(function(loop)
      local base = serve(loop, function(_, res) res:finish(("x"):rep(100000)) end)
      local r = assert(http.request{ url = base .. "/", loop = loop, stream = true })
      assert.equal(10, #r:read(10))
      assert.is_true(r:close())
      assert.is_nil(r:read())
      assert.equal(0, http.pool_stats(loop).idle)
    end)
  end)

  it("reports a refused connection", function()
    h.with_task(function(loop)
      local s, port = h.serve(loop, function() end)
      s:close()
      assert.same({ nil, "connect 127.0.0.1:" .. port .. ": Connection refused" },
        { http.request{ url = "http://127.0.0.1:" .. port .. "/", loop = loop } })
    end)
  end)
end)

describe("http.request against servers no one here wrote", function()
  it("python3 http.server: HTTP/1.0 bodies until the close, chunked with trailers, POST", function()
    local py = servers.python()
    finally(py.stop)
    h.with_task(function(loop)
      local base = "http://127.0.0.1:" .. py.port
      local r = assert(http.request{ url = base .. "/x?y", loop = loop })
      assert.equal(200, r.status)
      assert.equal(10, r.version)
      assert.equal("python /x?y\n", r.body)
      r = assert(http.request{ url = base .. "/big", loop = loop,
        headers = { ["X-Repeat"] = 50000 } })
      assert.equal(("python /big\n"):rep(50000), r.body)
      r = assert(http.request{ url = base .. "/chunked", loop = loop })
      assert.equal("python-chunks", r.body)
      assert.same({ ["x-trailer"] = "t" }, r.trailers)
      r = assert(http.request{ url = base .. "/p", loop = loop, body = "echo me" })
      assert.equal(201, r.status)
      assert.equal("echo me", r.body)
      assert.equal(0, http.pool_stats(loop).idle)
    end, 60)
  end)

  it("nginx: keep-alive reuse, a redirect, chunked (SSI), 16 MiB, HEAD", function()
    local ngx = servers.nginx{ big = 16 * 1024 * 1024 }
    finally(ngx.stop)
    h.with_task(function(loop)
      local base = "http://127.0.0.1:" .. ngx.port
      local first
      for i = 1, 10 do
        local r = assert(http.request{ url = base .. "/conn", loop = loop })
        local conn, n = r.body:match("^(%d+) (%d+)\n$")
        first = first or conn
        assert.equal(first, conn)
        assert.equal(tostring(i), n)
      end
      local r = assert(http.request{ url = base .. "/moved", loop = loop, redirects = 1 })
      assert.equal("hello from nginx\n", r.body)
      r = assert(http.request{ url = base .. "/page.shtml", loop = loop })
      assert.equal("chunked", r.headers["transfer-encoding"])
      assert.equal("a/page.shtmlb\n", r.body)
      r = assert(http.request{ url = base .. "/big.bin", loop = loop, max_body = 32 * 1024 * 1024 })
      assert.equal(16 * 1024 * 1024, #r.body)
      r = assert(http.request{ url = base .. "/big.bin", loop = loop, method = "HEAD" })
      assert.equal(tostring(16 * 1024 * 1024), r.headers["content-length"])
      assert.equal("", r.body)
      r = assert(http.request{ url = base .. "/conn", loop = loop })
      assert.equal(first, r.body:match("^(%d+)"))
      assert.equal(1, http.pool_stats(loop).made)
    end, 60)
  end)

  it("nginx closing an idle keep-alive connection: the next request succeeds", function()
    local ngx = servers.nginx{ keepalive = "1s" }
    finally(ngx.stop)
    h.with_task(function(loop)
      local base = "http://127.0.0.1:" .. ngx.port
      local a = assert(http.request{ url = base .. "/conn", loop = loop }).body:match("^%d+")
      loop:sleep(1.5)  -- nginx's keepalive_timeout passes: it closes the connection
      local b = assert(http.request{ url = base .. "/conn", loop = loop }).body:match("^%d+")
      assert.are_not.equal(a, b)
      assert.equal(2, http.pool_stats(loop).made)
    end, 30)
  end)
end)

describe("http.request misuse", function()
  it("raises outside a coroutine", function()
    h.with_loop(function(loop)
      assert.error_matches(function() http.request{ url = "http://127.0.0.1:1/", loop = loop } end,
        "http.request must be called from a coroutine")
    end)
  end)

  it("raises on bad options, URLs and headers, naming them", function()
    h.with_task(function(loop)
      local cases = {
        { 5, "string or table expected, got number" },
        { {}, "option 'url' is required" },
        { { url = "http://h/", tiemout = 1 }, "unknown option 'tiemout'" },
        { { url = "http://h/", timeout = 0 }, "option 'timeout' must be a positive number, got 0" },
        { { url = "http://h/", method = "GE T" }, "option 'method' must be a token string" },
        { { url = "http://h/", body = 5 }, "option 'body' must be a string or a function" },
        { { url = "ftp://h/" }, "invalid url 'ftp://h/': scheme ftp not supported" },
        { { url = "http://u@h/" }, "user info in url" },
        { { url = "http://h:0/" }, "invalid port" },
        { { url = "http://h:99999/" }, "invalid port" },
        { { url = "/relative" }, "not an absolute http%(s%) url" },
        { { url = "http://h/a b" }, "invalid path" },
        { { url = "http://h/", headers = { ["X Y"] = "1" } }, "invalid header name 'X Y'" },
        { { url = "http://h/", headers = { X = "a\r\nB: c" } }, "invalid value for header 'X'" },
        { { url = "http://h/", headers = { ["Transfer-Encoding"] = "chunked" } },
          "header 'transfer%-encoding' is the client's" },
        { { url = "http://h/", body = "abc", headers = { ["Content-Length"] = "2" } },
          "header 'content%-length' does not match the body" },
      }
      for _, c in ipairs(cases) do
        local o = c[1]
        if type(o) == "table" then o.loop = o.loop or loop end
        assert.error_matches(function() http.request(o) end,
          "bad argument #1 to 'request' %(.*" .. c[2], nil, tostring(c[2]))
      end
      assert.error_matches(function() http.pool_config{ idle = 1 } end,
        "bad argument #1 to 'pool_config' %(unknown option 'idle'%)")
    end)
  end)
end)
