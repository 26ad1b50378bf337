-- lepoll.http1: the strict HTTP/1.1 head, chunk-size and trailer parser.
local http1 = require "lepoll.http1"

local MAX_LINE, MAX_HEAD, MAX_FIELDS = 8192, 16384, 100

local function newreq()
  return { method = false, target = false, path = false, query = false,
    version = false, headers = false }
end

-- request() on s from init with the default limits (or lim): its results
-- packed, and the table it filled.
local function parse(s, init, lim)
  lim = lim or {}
  local req = newreq()
  local r = table.pack(http1.request(s, init or 1, init or 1, req,
    lim.line or MAX_LINE, lim.head or MAX_HEAD, lim.fields or MAX_FIELDS))
  return r, req
end

local function rejected(s, lim)
  local r = parse(s, 1, lim)
  assert.equal(3, r.n, "not rejected: " .. string.format("%q", s))
  assert.is_nil(r[1])
  return r[2], r[3]
end

local HEAD = "GET / HTTP/1.1\r\nHost: x\r\n"

describe("http1.request", function()
  it("parses a wrk request", function()
    local s = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    local r, req = parse(s)
    assert.same({ n = 3, #s + 1, 0, 0 }, r)
    assert.equal("GET", req.method)
    assert.equal("/", req.target)
    assert.equal("/", req.path)
    assert.is_nil(req.query)
    assert.equal(11, req.version)
    assert.same({ host = "127.0.0.1:8080" }, req.headers)
  end)

  it("splits path and query, keeps the method's case", function()
    local r, req = parse("get /a/b?x=1&y=?2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal("get", req.method)
    assert.equal("/a/b?x=1&y=?2", req.target)
    assert.equal("/a/b", req.path)
    assert.equal("x=1&y=?2", req.query)
    r, req = parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal("/a", req.path)
    assert.equal("", req.query)
  end)

  it("refuses an absolute-form without //host (RFC 9110 4.2.1)", function()
    for _, t in ipairs({ "http:/a", "foo:bar", "a:80", "urn:x/y", "http:///a", "http://u@h/",
                         "http://exampl|.com/", "http://h:99999/" }) do
      local r = parse("GET " .. t .. " HTTP/1.1\r\nHost: h\r\n\r\n")
      assert.same({ n = 3, nil, 400, "invalid target" }, r, t)
    end
  end)

  it("takes the absolute-form's path, / when it is empty", function()
    local cases = {
      { "http://h/a?b", "/a", "b" }, { "http://h:80", "/", nil },
      { "HTTPS://h?q", "/", "q" }, { "http://h/", "/", nil },
      { "http://[::1]:8080/x", "/x", nil },
    }
    for _, c in ipairs(cases) do
      local r, req = parse("GET " .. c[1] .. " HTTP/1.1\r\nHost: h\r\n\r\n")
      assert.equal(3, r.n, c[1])
      assert.equal(c[1], req.target)
      assert.equal(c[2], req.path, c[1])
      assert.equal(c[3], req.query, c[1])
    end
  end)

  it("takes * with OPTIONS and authority-form with CONNECT", function()
    local r, req = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal("*", req.target)
    assert.equal("*", req.path)
    r, req = parse("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal("h:443", req.path)
  end)

  it("takes HTTP/1.0 without Host, and 1.x as 1.1", function()
    local r, req = parse("GET / HTTP/1.0\r\n\r\n")
    assert.same({ n = 3, 19, 0, 0 }, r)
    assert.equal(10, req.version)
    assert.same({}, req.headers)
    r, req = parse("GET / HTTP/1.7\r\nHost: h\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal(11, req.version)
  end)

  it("lower-cases names, trims OWS, joins repeats (cookie with '; ')", function()
    local r, req = parse("GET / HTTP/1.1\r\nHOST: h\r\nX-A:  1 \t\r\nx-a:2\r\n"
      .. "Cookie: a=1\r\ncookie:b=2 \r\nEmpty:\r\nX-Sp: a  b\r\n"
      .. "X-Obs: \128\255\r\n\r\n")
    assert.equal(3, r.n)
    assert.same({ host = "h", ["x-a"] = "1, 2", cookie = "a=1; b=2", empty = "",
      ["x-sp"] = "a  b", ["x-obs"] = "\128\255" }, req.headers)
  end)

  it("lower-cases long names too", function()
    local name = ("N"):rep(100)
    local r, req = parse(HEAD .. name .. ": v\r\n" .. name .. ": w\r\n\r\n")
    assert.equal(3, r.n)
    assert.equal("v, w", req.headers[name:lower()])
  end)

  it("gives the body length and the Connection and Expect flags", function()
    local cases = {
      { "Content-Length: 42\r\n", 42, 0 },
      { "Content-Length: 7\r\nContent-Length: 7\r\n", 7, 0 },
      { "Content-Length: 5, 5\r\n", 5, 0 },
      { "Content-Length: 007\r\n", 7, 0 },
      { "Content-Length: 9223372036854775807\r\n", math.maxinteger, 0 },
      { "Transfer-Encoding: chunked\r\n", -1, 0 },
      { "Transfer-Encoding: CHUNKED\r\n", -1, 0 },
      { "Connection: close\r\n", 0, http1.CLOSE },
      { "Connection: Keep-Alive\r\n", 0, http1.KEEPALIVE },
      { "Connection: foo, upgrade , close\r\n", 0, http1.UPGRADE | http1.CLOSE },
      { "Connection: close\r\nConnection: keep-alive\r\n", 0, http1.CLOSE | http1.KEEPALIVE },
      { "Expect: 100-continue\r\n", 0, http1.CONTINUE },
      { "Expect: 100-Continue\r\n", 0, http1.CONTINUE },
      { "Expect: 200-ok\r\n", 0, http1.EXPECT },
      { "Expect: 100-continue\r\nExpect: 100-continue\r\n", 0, http1.EXPECT },
    }
    for _, c in ipairs(cases) do
      local s = HEAD .. c[1] .. "\r\n"
      local r = parse(s)
      assert.same({ n = 3, #s + 1, c[2], c[3] }, r, c[1])
    end
    -- HTTP/1.0: a 100-continue is ignored (RFC 9110 10.1.1), others not
    assert.same({ n = 3, 41, 0, 0 }, (parse("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")))
    assert.same({ n = 3, 35, 0, http1.EXPECT },
      (parse("GET / HTTP/1.0\r\nExpect: 1-more\r\n\r\n")))
  end)

  it("has distinct flag bits", function()
    local seen = 0
    for _, k in ipairs({ "CLOSE", "KEEPALIVE", "UPGRADE", "CONTINUE", "EXPECT" }) do
      assert.equal(0, seen & http1[k], k)
      seen = seen | http1[k]
    end
    assert.matches("^lepoll %d", http1._VERSION)
  end)

  it("skips up to 8 empty lines before the request line", function()
    local s = ("\r\n"):rep(8) .. HEAD .. "\r\n"
    local r, req = parse(s)
    assert.same({ n = 3, #s + 1, 0, 0 }, r)
    assert.equal("GET", req.method)
    assert.same({ n = 3, nil, 400, "too many empty lines" },
      (parse(("\r\n"):rep(9) .. HEAD .. "\r\n")))
  end)

  it("parses pipelined requests one after the other (init > 1)", function()
    local a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    local b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
    local c = "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    local buf = a .. b .. c
    local r1, q1 = parse(buf)
    assert.same({ n = 3, #a + 1, 0, 0 }, r1)
    assert.equal("/a", q1.path)
    local r2, q2 = parse(buf, r1[1])
    assert.same({ n = 3, #a + #b - 2, 3, 0 }, r2)
    assert.equal("POST", q2.method)
    local r3, q3 = parse(buf, r2[1] + r2[2])
    assert.same({ n = 3, #buf + 1, 0, http1.CLOSE }, r3)
    assert.equal("/c", q3.path)
    -- at the very end: nothing yet
    assert.same({ n = 2, false, #buf + 1 }, (parse(buf, #buf + 1)))
  end)

  it("leaves req alone unless the head is complete and valid", function()
    for _, s in ipairs({ HEAD, HEAD .. "X: \0\r\n\r\n", HEAD .. "Host: y\r\n\r\n" }) do
      local _, req = parse(s)
      assert.same(newreq(), req)
    end
  end)

  it("keeps a head beyond 32 fields, and exactly max_fields", function()
    local lines = {}
    for i = 1, 40 do lines[i] = ("F%d: v%d\r\n"):format(i, i) end
    local s = HEAD .. table.concat(lines) .. "\r\n"
    local r, req = parse(s, 1, { fields = 41 })
    assert.same({ n = 3, #s + 1, 0, 0 }, r)
    assert.equal("v40", req.headers.f40)
    assert.equal("x", req.headers.host)
    assert.same({ n = 3, nil, 431, "too many header fields" }, (parse(s, 1, { fields = 40 })))
  end)
end)

-- Every prefix fed in order, each call resuming at the scan the last one
-- returned: false until the head is complete, then what the whole gives.
local function feed(buf, init, lim)
  lim = lim or {}
  local whole, wreq = parse(buf, init, lim)
  local scan = init
  for i = init - 1, #buf do
    local req = newreq()
    local prefix = buf:sub(1, i)
    local r = table.pack(http1.request(prefix, init, scan, req,
      lim.line or MAX_LINE, lim.head or MAX_HEAD, lim.fields or MAX_FIELDS))
    if r[1] == false then
      assert.equal(2, r.n)
      assert.is_true(r[2] >= scan and r[2] <= #prefix + 1)
      scan = r[2]
    else
      assert.same(whole, r, ("prefix of %d bytes"):format(i))
      if r[1] then assert.same(wreq, req) end
      return i, r
    end
  end
  assert.same(false, whole[1])
  return nil
end

describe("http1.request fed a byte at a time", function()
  local requests = {
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "\r\n\r\nPOST /up?x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n"
      .. "Cookie: a\r\nCookie: b\r\nExpect: 100-continue\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET http://h/p?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      .. "Connection: keep-alive\r\n\r\n",
  }

  it("is false until complete, then gives what the whole head gives", function()
    for _, s in ipairs(requests) do
      for _, pre in ipairs({ "", "GET /prev HTTP/1.1\r\nHost: h\r\n\r\n" }) do
        local buf = pre .. s .. "GET /next"
        local at = feed(buf, #pre + 1)
        assert.equal(#pre + #s, at, s)
      end
    end
  end)

  it("with more than 32 fields", function()
    local s = HEAD .. ("A: b\r\n"):rep(40) .. "\r\n"
    assert.equal(#s, (feed(s, 1)))
  end)

  it("ends as the whole does when the head is rejected", function()
    local bad = {
      HEAD .. "X: a\rb\r\n\r\n", HEAD .. "Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n", "GET / HTTP/3.0\r\nHost: h\r\n\r\n",
      HEAD .. " folded\r\n\r\n",
    }
    for _, s in ipairs(bad) do
      local at, r = feed(s, 1)
      assert.truthy(at, s)
      assert.is_nil(r[1])
    end
    -- limits: rejected as soon as the bytes there break them
    local at, r = feed("GET /" .. ("a"):rep(100) .. " HTTP/1.1\r\n\r\n", 1, { line = 50 })
    assert.equal(51, at)
    assert.same({ n = 3, nil, 414, "request line too long" }, r)
    at, r = feed(HEAD .. "X: " .. ("a"):rep(100) .. "\r\n\r\n", 1, { head = 60 })
    assert.equal(61, at)
    assert.same({ n = 3, nil, 431, "header section too large" }, r)
    at, r = feed(HEAD .. "A: 1\r\nB: 2\r\n\r\n", 1, { fields = 2 })
    assert.equal(#HEAD + 7, at)
    assert.same({ n = 3, nil, 431, "too many header fields" }, r)
  end)

  it("costs O(n): a resumed call looks only at the new line", function()
    -- a scan past the request line is trusted: the bytes before it are not
    -- looked at again until the head is complete
    local s = HEAD .. "A: 1\r\n"
    local r = parse(s)
    assert.same({ n = 2, false, #s + 1 }, r)
    local req = newreq()
    local bad = "GET / HTTP/1.1\r\nHost: \0\r\nA: 1\r\n"
    assert.same({ false, #s + 7 },
      { http1.request(bad .. "B: 2\r\n", 1, #s + 1, req, 100, 1000, 10) })
    -- and checked again once complete: a buffer changed behind the scan
    -- is still rejected, never trusted
    assert.same({ nil, 400, "control byte in field value" },
      { http1.request(bad .. "\r\n", 1, #s + 1, req, 100, 1000, 10) })
  end)
end)

describe("http1.request rejects", function()
  local function withfield(f) return HEAD .. f .. "\r\n\r\n" end
  local cases = {
    -- framing
    { withfield("Content-Length: 1\r\nTransfer-Encoding: chunked"), 400,
      "content-length and transfer-encoding" },
    { withfield("Transfer-Encoding: chunked\r\nContent-Length: 1"), 400,
      "content-length and transfer-encoding" },
    { withfield("Content-Length: 1\r\nContent-Length: 2"), 400, "conflicting content-length" },
    { withfield("Content-Length: 1, 2"), 400, "conflicting content-length" },
    { withfield("Content-Length: +3"), 400, "invalid content-length" },
    { withfield("Content-Length: -1"), 400, "invalid content-length" },
    { withfield("Content-Length: 1 2"), 400, "invalid content-length" },
    { withfield("Content-Length: "), 400, "invalid content-length" },
    { withfield("Content-Length: 1,"), 400, "invalid content-length" },
    { withfield("Content-Length: 0x10"), 400, "invalid content-length" },
    { withfield("Content-Length: 9223372036854775808"), 400, "invalid content-length" },
    { withfield("Content-Length: 99999999999999999999999"), 400, "invalid content-length" },
    { withfield("Transfer-Encoding: gzip"), 400, "chunked not final" },
    { withfield("Transfer-Encoding: chunked, gzip"), 400, "chunked not final" },
    { withfield("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip"), 400,
      "chunked not final" },
    { withfield("Transfer-Encoding: chunked, chunked"), 400, "chunked twice" },
    { withfield("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"), 400, "chunked twice" },
    { withfield("Transfer-Encoding: gzip, chunked"), 501, "unsupported transfer-coding" },
    { withfield("Transfer-Encoding: gzip;q=1, chunked"), 501, "unsupported transfer-coding" },
    { withfield("Transfer-Encoding: chunked;x=1"), 400, "invalid transfer-encoding" },
    { withfield("Transfer-Encoding: "), 400, "invalid transfer-encoding" },
    { withfield("Transfer-Encoding: chunked,"), 400, "invalid transfer-encoding" },
    { withfield("Transfer-Encoding: ,chunked"), 400, "invalid transfer-encoding" },
    { withfield("Transfer-Encoding: \"chunked\""), 400, "invalid transfer-encoding" },
    { "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
      "transfer-encoding on http/1.0" },
    -- bare CR (CVE-2023-30589) and bare LF
    { "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare CR in request line" },
    { "GET / HTTP/1.1\rHost: x\r\n\r\n", 400, "bare CR in request line" },
    { "GET\r/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare CR in request line" },
    { withfield("Fo\ro: x"), 400, "bare CR in field name" },
    { withfield("Foo: a\rb"), 400, "bare CR in field value" },
    { withfield("Foo: ab\r"), 400, "bare CR in field value" },
    { HEAD .. "\rFoo: y\r\n\r\n", 400, "bare CR in field name" },
    { HEAD .. "\r\r\n", 400, "bare CR in field name" },
    { "GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "bare LF in request line" },
    { "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare LF in request line" },
    { "GET / HTTP/1.1\r\nHost: x\n\r\n", 400, "bare LF in field line" },
    { HEAD .. "\n", 400, "bare LF in field line" },
    { HEAD .. "Foo: a\nb\r\n\r\n", 400, "bare LF in field line" },
    -- field syntax
    { withfield("Foo : x"), 400, "whitespace before colon" },
    { withfield("Foo\t: x"), 400, "whitespace before colon" },
    { withfield("Foo: a\r\n b"), 400, "obs-fold" },
    { withfield("Foo: a\r\n\tb"), 400, "obs-fold" },
    { "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, "whitespace before first field" },
    { withfield(": x"), 400, "empty field name" },
    { withfield("Foo"), 400, "missing colon" },
    { withfield("Fo\"o: x"), 400, "invalid field name" },
    { withfield("F o: x"), 400, "invalid field name" },
    { withfield("F\128: x"), 400, "invalid field name" },
    -- request line
    { "GET / HTTP/1.1\r\n\r\n", 400, "missing host" },
    { withfield("Host: y"), 400, "duplicate host" },
    { withfield("HOST: x"), 400, "duplicate host" },
    { "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate host" },
    { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "unsupported http version" },
    { "GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, "unsupported http version" },
    { "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, "invalid http version" },
    { "GET / HTTP/11\r\nHost: x\r\n\r\n", 400, "invalid http version" },
    { "GET / http/1.1\r\nHost: x\r\n\r\n", 400, "invalid http version" },
    { "GET / HTTP/1.a\r\nHost: x\r\n\r\n", 400, "invalid http version" },
    { "GET /\r\nHost: x\r\n\r\n", 400, "missing http version" },
    { "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid target" },
    { "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid target" },
    { "GET /\128 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid target" },
    { "GET abc HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid target" },
    { "GET 1http://h/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid target" },
    { "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "asterisk-form without options" },
    { "CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n", 400, "connect needs authority-form" },
    { " GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid method" },
    { "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid method" },
  }
  -- Host values
  for _, v in ipairs({ "a b", "x:99999", "x:1:2", "ex@mple", "[::1", "[]", "[::g]",
    "x:+1", "%zz", "a%4", "x:123456" }) do
    cases[#cases + 1] = { "GET / HTTP/1.1\r\nHost: " .. v .. "\r\n\r\n", 400, "invalid host" }
  end
  -- each control byte and DEL in a field name, a field value and the target
  for b = 0, 127 do
    if b < 32 or b == 127 then
      local c = string.char(b)
      if b ~= 13 and b ~= 10 then
        cases[#cases + 1] = { withfield("F" .. c .. "o: x"), 400, "control byte in field name" }
        cases[#cases + 1] = { "GET /" .. c .. " HTTP/1.1\r\nHost: x\r\n\r\n", 400,
          "control byte in target" }
      end
      if b ~= 13 and b ~= 10 and b ~= 9 then
        cases[#cases + 1] = { withfield("Foo: a" .. c .. "b"), 400, "control byte in field value" }
        cases[#cases + 1] = { withfield("Foo: " .. c), 400, "control byte in field value" }
      end
    end
  end

  it("every malformed or ambiguous shape, with its status and reason", function()
    for _, c in ipairs(cases) do
      local status, reason = rejected(c[1])
      assert.same({ c[2], c[3] }, { status, reason }, string.format("%q", c[1]))
    end
  end)

  it("takes the Host values the grammar allows", function()
    for _, v in ipairs({ "", "h", "h:", "h:0", "h:65535", "127.0.0.1:8080", "[::1]:80",
      "[v1.x]", "a-b.c_d~e!$&'()*+,;=", "%41b", "xn--bcher-kva.example" }) do
      local r, req = parse("GET / HTTP/1.1\r\nHost: " .. v .. "\r\n\r\n")
      if v == "[v1.x]" then
        assert.same({ n = 3, nil, 400, "invalid host" }, r)  -- IPvFuture: not taken
      else
        assert.equal(3, r.n, v)
        assert.is_truthy(r[1], v)
        assert.equal(v, req.headers.host)
      end
    end
  end)

  it("a request line longer than max_line: 414, complete or not", function()
    local line = "GET /" .. ("a"):rep(95) .. " HTTP/1.1"  -- 109 bytes
    assert.equal(3, (parse(line .. "\r\nHost: x\r\n\r\n", 1, { line = 109 })).n)
    assert.same({ 414, "request line too long" },
      { rejected(line .. "\r\nHost: x\r\n\r\n", { line = 108 }) })
    assert.same({ 414, "request line too long" }, { rejected(line, { line = 108 }) })
    assert.same({ n = 2, false, 1 }, (parse(line, 1, { line = 109 })))
    assert.same({ n = 2, false, 1 }, (parse(line .. "\r", 1, { line = 109 })))
    -- the empty lines before it count
    assert.same({ 414, "request line too long" },
      { rejected("\r\n" .. line .. "\r\nHost: x\r\n\r\n", { line = 110 }) })
  end)

  it("a head larger than max_head or with too many fields: 431, complete or not", function()
    local s = HEAD .. "A: 1\r\nB: 2\r\n\r\n"  -- 41 bytes, 3 fields
    assert.equal(3, (parse(s, 1, { head = #s, fields = 3 })).n)
    assert.same({ 431, "header section too large" }, { rejected(s, { head = #s - 1 }) })
    assert.same({ 431, "too many header fields" }, { rejected(s, { fields = 2 }) })
    local part = HEAD .. ("X: " .. ("y"):rep(50) .. "\r\n"):rep(3)
    assert.same({ 431, "header section too large" }, { rejected(part, { head = 100 }) })
    assert.same({ 431, "header section too large" }, { rejected(part .. "Z: 1", { head = #part }) })
    assert.same({ n = 2, false, #part + 1 }, (parse(part .. "\r", 1, { head = #part + 1 })))
    assert.same({ 431, "too many header fields" },
      { rejected(HEAD .. "A: 1\r\nB", { fields = 2 }) })
    assert.same({ n = 2, false, #HEAD + 7 }, (parse(HEAD .. "A: 1\r\n\r", 1, { fields = 2 })))
    -- the request line alone can be larger than the head (414 decides)
    assert.same({ 431, "header section too large" },
      { rejected("GET / HTTP/1.1\r\n", { head = 15 }) })
  end)
end)

describe("http1.chunk", function()
  it("parses sizes, upper- and lower-case hex, extensions", function()
    local cases = {
      { "0\r\n", 0, 4 }, { "1a\r\nxx", 26, 5 }, { "FF\r\n", 255, 5 }, { "fF\r\n", 255, 5 },
      { "0010\r\n", 16, 7 }, { "1;a\r\n", 1, 6 }, { "1;a=b\r\n", 1, 8 },
      { "1 ; a = b ;c\r\n", 1, 15 }, { "1;a=\"q \\\" \\\\ ;\"\r\n", 1, 18 },
      { "1\t;a=\"\"\r\n", 1, 10 }, { "4000000000000000\r\n", 1 << 62, 19 },
      { "1;a=\"\128\"\r\n", 1, 10 },
    }
    for _, c in ipairs(cases) do
      assert.same({ c[2], c[3] }, { http1.chunk(c[1], 1, 100) }, c[1])
    end
    assert.same({ 3, 9 }, { http1.chunk("abc\r\n3\r\nxyz", 6, 100) })
  end)

  it("is false until the line is complete", function()
    local line = "1f;name=\"v\"\r\n"
    for i = 0, #line - 1 do
      assert.same({ false }, { http1.chunk(line:sub(1, i), 1, 100) }, i)
    end
    assert.same({ 31, #line + 1 }, { http1.chunk(line, 1, 100) })
  end)

  it("rejects malformed lines", function()
    local cases = {
      { "x\r\n", "invalid chunk size" }, { "\r\n", "invalid chunk size" },
      { "-1\r\n", "invalid chunk size" }, { "+1\r\n", "invalid chunk size" },
      { "0x1\r\n", "invalid chunk size" }, { " 1\r\n", "invalid chunk size" },
      { "1 \r\n", "invalid chunk extension" }, { "1 x\r\n", "invalid chunk extension" },
      { "1;\r\n", "invalid chunk extension" }, { "1;=a\r\n", "invalid chunk extension" },
      { "1;a=\r\n", "invalid chunk extension" }, { "1;a=\"x\r\n", "invalid chunk extension" },
      { "1;a=b\"\r\n", "invalid chunk extension" }, { "1;a=\"\0\"\r\n", "invalid chunk extension" },
      { "1;a\0\r\n", "invalid chunk extension" },
      { "4000000000000001\r\n", "chunk size overflow" },
      { "10000000000000000\r\n", "chunk size overflow" },
      { "FFFFFFFFFFFFFFFFFFFF\r\n", "chunk size overflow" },
      { "1\n", "bare LF in chunk line" }, { "\n", "bare LF in chunk line" },
      { "1;a\n", "bare LF in chunk line" },
      { "1\rx", "bare CR in chunk line" }, { "1;a\r\r\n", "bare CR in chunk line" },
    }
    for _, c in ipairs(cases) do
      assert.same({ nil, 400, c[2] }, { http1.chunk(c[1], 1, 100) }, string.format("%q", c[1]))
    end
  end)

  it("limits the line, extensions included, complete or not", function()
    local line = "1;" .. ("e"):rep(8)   -- 10 bytes
    assert.same({ 1, 13 }, { http1.chunk(line .. "\r\n", 1, 10) })
    assert.same({ false }, { http1.chunk(line .. "\r", 1, 10) })
    assert.same({ nil, 400, "chunk extension too long" }, { http1.chunk(line .. "\r\n", 1, 9) })
    assert.same({ nil, 400, "chunk extension too long" }, { http1.chunk(line, 1, 9) })
    assert.same({ nil, 400, "chunk extension too long" },
      { http1.chunk(("0"):rep(200), 1, 100) })
  end)
end)

describe("http1.trailers", function()
  it("parses the fields into t, names lower-cased and repeats joined", function()
    local t = {}
    local s = "Expires: x\r\nX-Sum: 1\r\nx-sum: 2\r\n\r\nNEXT"
    assert.same({ #s - 3 }, { http1.trailers(s, 1, 1, t, 1000, 10) })
    assert.same({ expires = "x", ["x-sum"] = "1, 2" }, t)
    t = {}
    assert.same({ 3 }, { http1.trailers("\r\n", 1, 1, t, 10, 1) })
    assert.same({}, t)
    assert.same({ 6 }, { http1.trailers("0\r\n\r\nNEXT", 4, 4, t, 10, 1) })
  end)

  it("is false until complete, resuming where it stopped", function()
    local s = "A: 1\r\nB: 2\r\nA: 3\r\n\r\n"
    local scan = 1
    for i = 0, #s - 1 do
      local t = {}
      local r = { http1.trailers(s:sub(1, i), 1, scan, t, 100, 10) }
      assert.equal(false, r[1], i)
      assert.same({}, t)
      scan = r[2]
    end
    local t = {}
    assert.same({ #s + 1 }, { http1.trailers(s, 1, scan, t, 100, 10) })
    assert.same({ a = "1, 3", b = "2" }, t)
  end)

  it("rejects what a head rejects, and leaves t alone", function()
    local cases = {
      { "A : 1\r\n\r\n", 400, "whitespace before colon" },
      { "A: 1\r\n b\r\n\r\n", 400, "obs-fold" },
      { " A: 1\r\n\r\n", 400, "whitespace before first field" },
      { "A: 1\rb\r\n\r\n", 400, "bare CR in field value" },
      { "\rA: 1\r\n\r\n", 400, "bare CR in field name" },
      { "A: 1\n\r\n", 400, "bare LF in field line" },
      { "\n", 400, "bare LF in field line" },
      { "A: \0\r\n\r\n", 400, "control byte in field value" },
      { "A: 1\r\nB: 2\r\n\r\n", 431, "too many trailer fields", 1 },
      { "A: 1\r\nB", 431, "too many trailer fields", 1 },
      { "A: 12345678\r\n\r\n", 431, "trailer section too large", 10, 10 },
      { "A: 12345678", 431, "trailer section too large", 10, 10 },
    }
    for _, c in ipairs(cases) do
      local t = {}
      assert.same({ nil, c[2], c[3] },
        { http1.trailers(c[1], 1, 1, t, c[5] or 100, c[4] or 10) }, c[1])
      assert.same({}, t)
    end
  end)
end)

describe("lepoll.http1 bad arguments", function()
  it("raise naming the argument", function()
    local s, t = "GET / HTTP/1.1\r\n\r\n", {}
    local big = math.maxinteger
    local cases = {
      { "request", 1, 1, 1, 1, t, 1, 1, 1 }, { "request", 1, nil, 1, 1, t, 1, 1, 1 },
      { "request", 2, s, 0, 1, t, 1, 1, 1 }, { "request", 2, s, #s + 2, #s + 2, t, 1, 1, 1 },
      { "request", 2, s, "1", 1, t, 1, 1, 1 }, { "request", 2, s, 1.5, 1, t, 1, 1, 1 },
      { "request", 2, s, nil, 1, t, 1, 1, 1 },
      { "request", 3, s, 2, 1, t, 1, 1, 1 }, { "request", 3, s, 1, #s + 2, t, 1, 1, 1 },
      { "request", 3, s, 1, nil, t, 1, 1, 1 }, { "request", 3, s, 1, big, t, 1, 1, 1 },
      { "request", 4, s, 1, 1, nil, 1, 1, 1 }, { "request", 4, s, 1, 1, "t", 1, 1, 1 },
      { "request", 5, s, 1, 1, t, 0, 1, 1 }, { "request", 5, s, 1, 1, t, -1, 1, 1 },
      { "request", 5, s, 1, 1, t, nil, 1, 1 }, { "request", 5, s, 1, 1, t, 2 ^ 63, 1, 1 },
      { "request", 6, s, 1, 1, t, 1, 0, 1 }, { "request", 6, s, 1, 1, t, 1, "1", 1 },
      { "request", 7, s, 1, 1, t, 1, 1, 0 }, { "request", 7, s, 1, 1, t, 1, 1, nil },
      { "request", 7, s, 1, 1, t, 1, 1, 0.5 },
      { "chunk", 1, {}, 1, 1 }, { "chunk", 2, s, 0, 1 }, { "chunk", 2, s, #s + 2, 1 },
      { "chunk", 2, s, nil, 1 }, { "chunk", 3, s, 1, 0 }, { "chunk", 3, s, 1, nil },
      { "trailers", 1, 7, 1, 1, t, 1, 1 }, { "trailers", 2, s, 0, 1, t, 1, 1 },
      { "trailers", 3, s, 2, 1, t, 1, 1 }, { "trailers", 3, s, 1, #s + 2, t, 1, 1 },
      { "trailers", 4, s, 1, 1, false, 1, 1 }, { "trailers", 5, s, 1, 1, t, 0, 1 },
      { "trailers", 6, s, 1, 1, t, 1, -5 },
    }
    for _, c in ipairs(cases) do
      local name, argn = c[1], c[2]
      local ok, err = pcall(http1[name], table.unpack(c, 3, 3 + ({ request = 6,
        chunk = 2, trailers = 5 })[name]))
      assert.is_false(ok, name .. " #" .. argn)
      assert.matches(("bad argument #%d to '[%%w.]-%s'"):format(argn, name), err)
    end
    assert.same({}, t)
  end)
end)

describe("http1.field", function()
  it("makes a checked line and says which field it is", function()
    assert.same({ "Content-Type: text/plain\r\n", 0 },
      { http1.field("Content-Type", "text/plain") })
    assert.same({ "X: a\tb \xff\r\n", 0 }, { http1.field("X", "a\tb \xff") })
    assert.same({ "X: \r\n", 0 }, { http1.field("X", "") })
    local kinds = { ["content-length"] = 1, ["Connection"] = 2, ["TRANSFER-ENCODING"] = 3,
      ["date"] = 4, ["Server"] = 5, ["dates"] = 0, ["serve"] = 0 }
    for name, kind in pairs(kinds) do
      assert.equal(kind, select(2, http1.field(name, "1")), name)
    end
  end)

  it("refuses a name that is not a token and a value with a control byte", function()
    for _, n in ipairs({ "", "X Y", "X:Y", "X\r\nY", "X\0", "\xe9" }) do
      assert.same({ nil, 1 }, { http1.field(n, "v") }, n)
    end
    for _, v in ipairs({ "a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b", "a\1b", "a\127b" }) do
      assert.same({ nil, 2 }, { http1.field("X", v) }, v)
    end
  end)

  it("raises on arguments that are not strings", function()
    assert.error_matches(function() http1.field(nil, "v") end,
      "bad argument #1 to '[%w.]-field' %(string expected, got nil%)")
    assert.error_matches(function() http1.field("X", {}) end,
      "bad argument #2 to '[%w.]-field' %(string expected, got table%)")
  end)
end)

-- response() on s from 1 with the default limits (or lim): its results
-- packed, and the table it filled.
local function newres()
  return { status = false, reason = false, version = false, headers = false }
end

local function parse_res(s, lim)
  lim = lim or {}
  local res = newres()
  local r = table.pack(http1.response(s, 1, 1, res, lim.line or MAX_LINE,
    lim.head or MAX_HEAD, lim.fields or MAX_FIELDS))
  return r, res
end

-- Feed s to response() a byte at a time, resuming at the scan it returns:
-- the length at which it stopped being false, and its results then.
local function feed_res(s, lim)
  lim = lim or {}
  local scan = 1
  for n = 0, #s do
    local res = newres()
    local r = table.pack(http1.response(s:sub(1, n), 1, scan, res, lim.line or MAX_LINE,
      lim.head or MAX_HEAD, lim.fields or MAX_FIELDS))
    if r[1] ~= false then return n, r, res end
    scan = r[2]
  end
  return nil
end

describe("http1.response", function()
  it("parses status, reason, version and headers", function()
    local s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
      .. "X-A: 1\r\nx-a:  2 \r\n\r\nhello"
    local r, res = parse_res(s)
    assert.same({ n = 3, #s - 4, 5, 0 }, r)
    assert.same({ status = 200, reason = "OK", version = 11,
      headers = { ["content-type"] = "text/plain", ["content-length"] = "5", ["x-a"] = "1, 2" } },
      res)
  end)

  it("keeps set-cookie lines apart, in an array", function()
    local r, res = parse_res("HTTP/1.1 200 OK\r\n"
      .. "Set-Cookie: a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\nset-cookie: b=2\r\n"
      .. "Cookie: c\r\nCookie: d\r\nContent-Length: 0\r\n\r\n")
    assert.equal(3, r.n)
    assert.same({ "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "b=2" }, res.headers["set-cookie"])
    assert.equal("c; d", res.headers.cookie)
  end)

  it("gives the framing: length, chunked, until close, none", function()
    local cases = {
      { "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 12 },
      { "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", 3 },
      { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -1 },
      { "HTTP/1.1 200 OK\r\n\r\n", -2 },
      { "HTTP/1.0 200 OK\r\n\r\n", -2 },
      { "HTTP/1.1 204 No Content\r\n\r\n", 0 },
      { "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", 0 },
      { "HTTP/1.1 100 Continue\r\n\r\n", 0 },
      { "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n", 0 },
      { "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0 },
    }
    for _, c in ipairs(cases) do
      local r = parse_res(c[1])
      assert.same({ n = 3, #c[1] + 1, c[2], r[3] }, r, c[1])
    end
  end)

  it("gives the Connection flags", function()
    local r = parse_res("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    assert.equal(http1.CLOSE, r[3])
    r = parse_res("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nExpect: x\r\n\r\n")
    assert.equal(http1.KEEPALIVE, r[3])
    r = parse_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n\r\n")
    assert.equal(http1.UPGRADE, r[3])
  end)

  it("takes an empty reason, with or without its SP, and obs-text in it", function()
    for _, line in ipairs({ "HTTP/1.1 200 ", "HTTP/1.1 200", "HTTP/1.1 200 \xe9t\xe9 \tok" }) do
      local r, res = parse_res(line .. "\r\nContent-Length: 0\r\n\r\n")
      assert.equal(3, r.n, line)
      assert.equal(200, res.status)
      assert.equal(line:sub(14), res.reason)
    end
    local _, res = parse_res("HTTP/1.7 200 OK\r\n\r\n")
    assert.equal(11, res.version)
  end)

  it("parses a response after another in the buffer (init > 1)", function()
    local a = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    local b = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    local res = newres()
    assert.same({ #a + #b + 1, 0, 0 },
      { http1.response(a .. b, #a + 1, #a + 1, res, MAX_LINE, MAX_HEAD, MAX_FIELDS) })
    assert.equal(201, res.status)
  end)

  it("is false until complete when fed a byte at a time, then ends as the whole", function()
    local good = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n",
      "HTTP/1.0 302 Found\r\nLocation: /x\r\n" .. ("A: b\r\n"):rep(40) .. "\r\n",
    }
    for _, s in ipairs(good) do
      local at, r, res = feed_res(s .. "body")
      assert.equal(#s, at)
      local wr, wres = parse_res(s)
      assert.same(wr, r)
      assert.same(wres, res)
    end
    local at, r = feed_res("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n")
    assert.truthy(at)
    assert.same({ n = 3, nil, 400, "bare CR in field value" }, r)
  end)

  it("rejects every malformed or ambiguous shape, and leaves res alone", function()
    local OK = "HTTP/1.1 200 OK\r\n"
    local cases = {
      { "HTTP/1.1 200 OK\nA: b\r\n\r\n", 400, "bare LF in status line" },
      { "\r\nHTTP/1.1 200 OK\r\n\r\n", 400, "invalid status line" },
      { " HTTP/1.1 200 OK\r\n\r\n", 400, "invalid status line" },
      { "HTTP/1.1  200 OK\r\n\r\n", 400, "invalid status code" },
      { "HTTP/1.1 20 OK\r\n\r\n", 400, "invalid status code" },
      { "HTTP/1.1 2000 OK\r\n\r\n", 400, "invalid status code" },
      { "HTTP/1.1 099 x\r\n\r\n", 400, "invalid status code" },
      { "HTTP/1.1 600 x\r\n\r\n", 400, "invalid status code" },
      { "HTTP/1.1 2x0 OK\r\n\r\n", 400, "invalid status code" },
      { "http/1.1 200 OK\r\n\r\n", 400, "invalid status line" },
      { "HTTP/1 200 OK\r\n\r\n", 400, "invalid status line" },
      { "HTTP/2.0 200 OK\r\n\r\n", 505, "unsupported http version" },
      { "HTTP/1.1 200 O\rK\r\n\r\n", 400, "bare CR in status line" },
      { "HTTP/1.1 200 O\0K\r\n\r\n", 400, "control byte in reason phrase" },
      { "ICY 200 OK\r\n\r\n", 400, "invalid status line" },
      { OK .. "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "content-length and transfer-encoding" },
      { OK .. "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting content-length" },
      { OK .. "Content-Length: -1\r\n\r\n", 400, "invalid content-length" },
      { OK .. "Content-Length: 99999999999999999999\r\n\r\n", 400, "invalid content-length" },
      { OK .. "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "chunked not final" },
      { OK .. "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported transfer-coding" },
      { OK .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "chunked twice" },
      { "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "transfer-encoding on http/1.0" },
      { OK .. "A : b\r\n\r\n", 400, "whitespace before colon" },
      { OK .. "A: b\r\n folded\r\n\r\n", 400, "obs-fold" },
      { OK .. "A: b\nB: c\r\n\r\n", 400, "bare LF in field line" },
      { OK .. "A: b\0\r\n\r\n", 400, "control byte in field value" },
      { "HTTP/1.1 204 x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "content-length and transfer-encoding" },
    }
    for _, c in ipairs(cases) do
      local s, status, reason = c[1], c[2], c[3]
      local r, res = parse_res(s)
      assert.same({ n = 3, nil, status, reason }, r, s)
      assert.same(newres(), res)
    end
  end)

  it("limits the status line, the head and the fields, complete or not", function()
    local long = "HTTP/1.1 200 " .. ("a"):rep(100)
    assert.same({ n = 3, nil, 431, "status line too long" }, (parse_res(long, { line = 50 })))
    assert.same({ n = 3, nil, 431, "status line too long" },
      (parse_res(long .. "\r\n\r\n", { line = 50 })))
    local s = "HTTP/1.1 200 OK\r\nX: " .. ("a"):rep(100) .. "\r\n\r\n"
    assert.same({ n = 3, nil, 431, "header section too large" }, (parse_res(s, { head = 60 })))
    assert.same({ n = 3, nil, 431, "header section too large" },
      (parse_res(s:sub(1, 70), { head = 60 })))
    assert.same({ n = 3, nil, 431, "too many header fields" },
      (parse_res("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", { fields = 1 })))
  end)

  it("raises on bad arguments, naming them", function()
    local s, t = "HTTP/1.1 200 OK\r\n\r\n", {}
    local cases = {
      { 1, nil, 1, 1, t, 1, 1, 1 }, { 2, s, 0, 1, t, 1, 1, 1 }, { 2, s, #s + 2, 1, t, 1, 1, 1 },
      { 3, s, 2, 1, t, 1, 1, 1 }, { 4, s, 1, 1, "t", 1, 1, 1 }, { 5, s, 1, 1, t, 0, 1, 1 },
      { 6, s, 1, 1, t, 1, nil, 1 }, { 7, s, 1, 1, t, 1, 1, 0.5 },
    }
    for _, c in ipairs(cases) do
      assert.error_matches(function() http1.response(table.unpack(c, 2, 8)) end,
        ("bad argument #%d to '[%%w.]-response'"):format(c[1]))
    end
    assert.same({}, t)
  end)
end)
