-- lepoll.http, driven in-process: a server on a test loop, clients on the
-- same loop (support.http_client reads what the server really sent).
local h = require "support.framework"
local hc = require "support.http_client"
local http = require "lepoll.http"

-- An HTTP server on loop at 127.0.0.1, a free port: the server, its port.
local function serve(loop, handler, opts)
  opts = opts or {}
  opts.loop, opts.port = loop, 0
  local s = assert(http.listen(opts, handler))
  local _, port = s:address()
  return s, port
end

local function hello(_, res)
  res:header("Content-Type", "text/plain")
  res:finish("hello\n")
end

-- Connect to port on loop, send raw, return the connection.
local function send(loop, port, raw)
  local c = assert(loop:connect("127.0.0.1", port))
  h.defer(c)
  if raw then assert(c:write(raw)) end
  return c
end

describe("lepoll.http server", function()
  it("answers GET / with 200, Date, Server and Content-Length", function()
    h.with_task(function(loop)
      local _, port = serve(loop, hello)
      local c = send(loop, port, hc.get("/"))
      local r = assert(hc.read(c))
      assert.equal(200, r.status)
      assert.equal("OK", r.reason)
      assert.equal("hello\n", r.body)
      assert.equal("6", r.headers["content-length"])
      assert.equal("text/plain", r.headers["content-type"])
      assert.equal("lepoll", r.headers.server)
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r.headers.date)
      assert.is_nil(r.headers.connection)
    end)
  end)

  it("gives the handler method, target, path, query, version and headers", function()
    h.with_task(function(loop)
      local seen
      local _, port = serve(loop, function(req, res)
        seen = { req.method, req.target, req.path, req.query, req.version,
          req.headers["x-a"], req:header("X-A"), req.headers.cookie }
        res:finish()
      end)
      local c = send(loop, port, "POST /a/b?x=1&y HTTP/1.1\r\nHost: t\r\nX-A:  1 \r\n"
        .. "x-a: 2\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Length: 0\r\n\r\n")
      local r = assert(hc.read(c))
      assert.equal(200, r.status)
      assert.equal("0", r.headers["content-length"])
      assert.same({ "POST", "/a/b?x=1&y", "/a/b", "x=1&y", 11, "1, 2", "1, 2", "a=1; b=2" }, seen)
    end)
  end)

  it("keeps a connection alive and answers pipelined requests in order", function()
    h.with_task(function(loop)
      local _, port = serve(loop, function(req, res) res:finish(req.path) end)
      local raw = {}
      for i = 1, 50 do raw[i] = hc.get("/" .. i) end
      local c = send(loop, port, table.concat(raw))
      for i = 1, 50 do
        local r = assert(hc.read(c))
        assert.equal("/" .. i, r.body)
      end
      assert(c:write(hc.get("/again")))
      assert.equal("/again", assert(hc.read(c)).body)
    end)
  end)

  it("honours Connection: close both ways, and HTTP/1.0", function()
    h.with_task(function(loop)
      local _, port = serve(loop, function(req, res)
        if req.path == "/bye" then res:header("Connection", "close") end
        res:finish("x")
      end)
      local c = send(loop, port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      local r = assert(hc.read(c))
      assert.equal("close", r.headers.connection)
      assert.is_true((hc.closed(c)))
      c = send(loop, port, hc.get("/bye"))
      r = assert(hc.read(c))
      assert.equal("close", r.headers.connection)
      assert.is_true((hc.closed(c)))
      c = send(loop, port, "GET / HTTP/1.0\r\n\r\n")
      r = assert(hc.read(c))
      assert.equal("x", r.body)
      assert.is_true((hc.closed(c)))
      c = send(loop, port, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      r = assert(hc.read(c))
      assert.equal("keep-alive", r.headers.connection)
      assert(c:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
      assert.equal("x", assert(hc.read(c)).body)
    end)
  end)

  it("streams chunked on 1.1 and close-delimited on 1.0", function()
    h.with_task(function(loop)
      local _, port = serve(loop, function(_, res)
        for i = 1, 3 do assert(res:write("part" .. i .. ";")) end
        assert(res:finish("end"))
      end)
      local c = send(loop, port, hc.get("/"))
      local r = assert(hc.read(c))
      assert.is_true(r.chunked)
      assert.equal("part1;part2;part3;end", r.body)
      assert.is_nil(r.headers["content-length"])
      c = send(loop, port, "GET / HTTP/1.0\r\n\r\n")
      r = assert(hc.read(c))
      assert.is_false(r.chunked)
      assert.is_true(r.closed)
      assert.equal("part1;part2;part3;end", r.body)
    end)
  end)

  it("answers HEAD with GET's head and no body bytes", function()
    h.with_task(function(loop)
      local _, port = serve(loop, function(req, res)
        if req.path == "/stream" then res:write("abc") end
        res:finish("hello\n")
      end)
      local c = send(loop, port, hc.get("/", nil, "HEAD") .. hc.get("/stream", nil, "HEAD")
        .. hc.get("/"))
      local r = assert(hc.read(c, true))
      assert.equal("6", r.headers["content-length"])
      r = assert(hc.read(c, true))
      assert.equal("chunked", r.headers["transfer-encoding"])
      r = assert(hc.read(c))  -- the GET after them: no stray bytes between
      assert.equal("hello\n", r.body)
    end)
  end)

  it("reads Content-Length and chunked bodies, with trailers", function()
    h.with_task(function(loop)
      local got = {}
      local _, port = serve(loop, function(req, res)
        got[#got + 1] = assert(req:body())
        got[#got + 1] = req.trailers and req.trailers["x-sum"] or false
        res:finish("ok")
      end)
      local c = send(loop, port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        .. "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 13\r\n\r\n" .. hc.get("/"))
      for _ = 1, 3 do assert.equal("ok", assert(hc.read(c)).body) end
      assert.same({ "hello", false, "abc0123456789", "13", "", false }, got)
    end)
  end)

  it("parses trailers that arrive after the body's last chunk, in a read of their own", function()
    h.with_task(function(loop)
      local pieces, trailer = {}, nil
      local _, port = serve(loop, function(req, res)
        while true do
          local s = req:read()
          if not s then break end
          pieces[#pieces + 1] = s
        end
        trailer = req.trailers and req.trailers["x-sum"]
        res:finish("ok")
      end)
      local c = send(loop, port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        .. "\r\n3\r\nabc\r\n0\r\n")
      -- the handler has the data and waits in the trailers, its buffer spent
      h.wait_until(loop, function() return table.concat(pieces) == "abc" end, nil, "the chunk")
      assert(c:write("X-Sum: 3\r\n\r\n"))
      assert.equal("ok", assert(hc.read(c)).body)
      assert.equal("abc", table.concat(pieces))
      assert.equal("3", trailer)
    end)
  end)

  it("streams a large body through req:read", function()
    h.with_task(function(loop)
      local total = 0
      local _, port = serve(loop, function(req, res)
        while true do
          local s = req:read(1000)
          if not s then break end
          assert(#s <= 1000)
          total = total + #s
        end
        res:finish(tostring(total))
      end)
      local body = string.rep("z", 300000)
      local c = send(loop, port, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: "
        .. #body .. "\r\n\r\n")
      assert(c:write(body))
      assert.equal("300000", assert(hc.read(c)).body)
    end)
  end)

  describe("Expect", function()
    it("sends 100 Continue when the handler first reads the body", function()
      h.with_task(function(loop)
        local _, port = serve(loop, function(req, res) res:finish(assert(req:body())) end)
        local c = send(loop, port, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
          .. "Content-Length: 4\r\n\r\n")
        local r = assert(hc.read(c))
        assert.equal(100, r.status)
        assert(c:write("data"))
        r = assert(hc.read(c))
        assert.equal("data", r.body)
      end)
    end)

    it("skips it when the handler answers first, and closes", function()
      h.with_task(function(loop)
        local _, port = serve(loop, function(_, res)
          res:status(401)
          res:finish("no")
        end)
        local c = send(loop, port, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
          .. "Content-Length: 100000\r\n\r\n")
        local r = assert(hc.read(c))
        assert.equal(401, r.status)
        assert.equal("close", r.headers.connection)
      end)
    end)

    it("answers other expectations with 417", function()
      h.with_task(function(loop)
        local called = false
        local _, port = serve(loop, function(_, res) called = true; res:finish() end)
        local c = send(loop, port, "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n")
        assert.equal(417, assert(hc.read(c)).status)
        assert.is_false(called)
      end)
    end)
  end)

  describe("limits", function()
    local function status_of(opts, raw, handler)
      local st, closed
      h.with_task(function(loop)
        local _, port = serve(loop, handler or hello, opts)
        local c = send(loop, port, raw)
        local r = assert(hc.read(c))
        st = r.status
        assert.equal("close", r.headers.connection)
        closed = hc.closed(c)
      end)
      assert.is_true(closed)
      return st
    end

    it("414 for a long request line", function()
      assert.equal(414, status_of({ max_request_line = 100 },
        "GET /" .. ("a"):rep(200) .. " HTTP/1.1\r\nHost: a\r\n\r\n"))
      assert.equal(414, status_of({ max_request_line = 100 }, "GET /" .. ("a"):rep(200)))
    end)

    it("431 for a big header section or too many fields", function()
      assert.equal(431, status_of({ max_header_size = 200 },
        hc.get("/", "X-Big: " .. ("b"):rep(300) .. "\r\n")))
      local many = {}
      for i = 1, 11 do many[i] = "X-" .. i .. ": 1\r\n" end
      assert.equal(431, status_of({ max_headers = 10 }, hc.get("/", table.concat(many))))
    end)

    it("413 for a body over max_body, before reading it when the length says so", function()
      local body_handler = function(req, res)
        local b, err = req:body()
        assert.is_nil(b)
        assert.equal("body too large", err)
        assert.same({ nil, "response finished" }, { res:finish("late") })
      end
      assert.equal(413, status_of({ max_body = 10 },
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", body_handler))
      assert.equal(413, status_of({ max_body = 10 },
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n", body_handler))
    end)

    it("408 when a head takes longer than header_timeout in all", function()
      h.with_task(function(loop)
        local _, port = serve(loop, hello, { header_timeout = 0.3 })
        local c = send(loop, port, "G")
        local start = loop.now
        -- a byte every 50 ms: each read makes progress, the head never ends
        for ch in ("ET / HTTP/1.1\r\nHost: a\r\nX: "):gmatch(".") do
          loop:sleep(0.05)
          if not c:write(ch) then break end
          if loop.now - start > 1 then break end
        end
        local r = assert(hc.read(c))
        assert.equal(408, r.status)
        assert.is_true(loop.now - start < 1.5)
      end)
    end)

    it("408 when the body makes no progress for body_timeout", function()
      h.with_task(function(loop)
        local got
        local _, port = serve(loop, function(req, res)
          got = { req:body() }
          res:finish()
        end, { body_timeout = 0.2 })
        local c = send(loop, port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        local r = assert(hc.read(c))
        assert.equal(408, r.status)
        assert.same({ nil, "timeout" }, got)
      end)
    end)

    it("closes an idle keep-alive connection silently after keepalive_timeout", function()
      h.with_task(function(loop)
        local _, port = serve(loop, hello, { keepalive_timeout = 0.2 })
        local c = send(loop, port, hc.get("/"))
        assert.equal(200, assert(hc.read(c)).status)
        local start = loop.now
        local s, err = c:read()
        assert.is_nil(s)
        assert.equal("closed", err)
        assert.is_true(loop.now - start >= 0.15)
      end)
    end)

    it("says Connection: close on the max_requests-th response", function()
      h.with_task(function(loop)
        local _, port = serve(loop, hello, { max_requests = 3 })
        local c = send(loop, port, hc.get("/") .. hc.get("/") .. hc.get("/") .. hc.get("/"))
        assert.is_nil(assert(hc.read(c)).headers.connection)
        assert.is_nil(assert(hc.read(c)).headers.connection)
        assert.equal("close", assert(hc.read(c)).headers.connection)
        assert.is_true((hc.closed(c)))
      end)
    end)
  end)

  describe("res:header", function()
    it("refuses CR, LF, NUL and other control bytes, and bad names", function()
      h.with_task(function(loop)
        local errs = {}
        local _, port = serve(loop, function(_, res)
          for _, v in ipairs({ "a\r\nX-Evil: 1", "a\nb", "a\0b", "a\rb", "a\1b", "a\127b" }) do
            local ok, e = pcall(res.header, res, "X-Test", v)
            errs[#errs + 1] = not ok and e:match("bad argument #2 to 'header'") ~= nil
          end
          for _, n in ipairs({ "X Test", "X:Test", "X\r\nTest", "", "X\0" }) do
            local ok, e = pcall(res.header, res, n, "v")
            errs[#errs + 1] = not ok and e:match("bad argument #1 to 'header'") ~= nil
          end
          res:header("X-Ok", "a\tb")
          res:finish("x")
        end)
        local c = send(loop, port, hc.get("/"))
        local r = assert(hc.read(c))
        assert.equal("a\tb", r.headers["x-ok"])
        assert.is_nil(r.headers["x-evil"])
        for i, v in ipairs(errs) do assert(v, "case " .. i) end
        assert.equal(11, #errs)
      end)
    end)
  end)

  describe("a handler that raises", function()
    it("before the head: 500 and the error logged", function()
      h.with_task(function(loop)
        local lines = h.expect_log("handler failed.*boom")
        local _, port = serve(loop, function() error("boom") end)
        local c = send(loop, port, hc.get("/"))
        local r = assert(hc.read(c))
        assert.equal(500, r.status)
        assert.equal("close", r.headers.connection)
        assert.equal(1, #lines)
      end)
    end)

    it("after the head: the response is cut short, no terminal chunk", function()
      h.with_task(function(loop)
        h.expect_log("handler failed.*midway")
        local _, port = serve(loop, function(_, res)
          res:write("first")
          error("midway")
        end)
        local c = send(loop, port, hc.get("/"))
        local r = assert(hc.read(c))
        assert.equal(200, r.status)
        assert.is_true(r.truncated)
        assert.equal("first", r.body)
      end)
    end)
  end)

  it("refuses a smuggling attempt and never runs the follower", function()
    h.with_task(function(loop)
      local paths = {}
      local _, port = serve(loop, function(req, res)
        paths[#paths + 1] = req.path
        res:finish()
      end)
      local c = send(loop, port, "POST /front HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
      local r = assert(hc.read(c))
      assert.equal(400, r.status)
      assert.is_true((hc.closed(c)))
      assert.same({}, paths)
    end)
  end)

  describe("graceful shutdown", function()
    it("closes idle keep-alive connections, lets one in flight finish with close", function()
      h.with_loop(function(loop)
        local release = false
        local _, port = serve(loop, function(req, res)
          if req.path == "/slow" then
            h.wait_until(loop, function() return release end, 5, "release")
          end
          res:finish("done")
        end)
        local results = {}
        loop:spawn(function()
          local idle = send(loop, port, hc.get("/"))
          assert.equal(200, assert(hc.read(idle)).status)
          local busy = send(loop, port, hc.get("/slow"))
          loop:sleep(0.05)
          loop:shutdown(5)
          results.idle_closed = hc.closed(idle)
          release = true
          local r = assert(hc.read(busy))
          results.busy = { r.status, r.body, r.headers.connection }
          loop:stop()
        end)
        h.run(loop, 10)  -- returns once the server's connections are done,
        h.run(loop, 10)  -- then the client reads what the busy one was sent
        assert.is_true(results.idle_closed)
        assert.same({ 200, "done", "close" }, results.busy)
      end)
    end)
  end)
end)
