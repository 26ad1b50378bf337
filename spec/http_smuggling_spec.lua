-- Request smuggling shapes, as raw bytes from python3's socket module to
-- lepoll.http in a child process (spec/support/http_app.lua): each is
-- refused with its documented status (docs/http.md, "What the parser
-- refuses"), the connection closes, and the follower request sent behind
-- it on the same connection never reaches the handler (the app records
-- every target its handler saw: GET /log).
local tools = require "support.http_tools"

-- The client: for each case (a line "name hex-bytes" in the file argv[2]),
-- a new connection, the bytes in one write, then everything the server
-- sends until it closes (or 5 s pass). Prints a line per case: name,
-- the first status code, how the connection ended, the responses seen.
local CLIENT = [[
import socket, sys
port = int(sys.argv[1])
for line in open(sys.argv[2]):
    name, hexraw = line.split()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(bytes.fromhex(hexraw))
    got, end = b"", "closed"
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        end = "open"
    except ConnectionResetError:
        end = "reset"
    s.close()
    status = got[9:12].decode("latin-1") if got.startswith(b"HTTP/1.1 ") else "none"
    print(name, status, end, got.count(b"\r\nContent-Length: "))
]]

local function follower(name)
  return "GET /smuggled?" .. name .. " HTTP/1.1\r\nHost: a\r\n\r\n"
end

-- A POST to route?name (default /front) whose head carries fields, then body.
local function front(name, fields, body, version, route)
  return "POST " .. (route or "/front") .. "?" .. name .. " HTTP/" .. (version or "1.1") .. "\r\n"
    .. fields .. "\r\n" .. body
end

-- A chunked POST to /echo?name (the handler reads the body): the head is
-- good, the chunked body is not.
local function chunked(name, body)
  return "POST /echo?" .. name .. " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. body .. follower(name)
end

-- { name, bytes, status, whether the handler sees the front request }
local function cases()
  local list = {}
  local function add(name, raw, status, reaches)
    list[#list + 1] = { name = name, raw = raw, status = status or 400, reaches = reaches }
  end
  local function head(name, fields, status, version)
    -- the body: a terminal chunk and the follower; a server that believes
    -- another framing than chunked reads the follower as the next request
    local body = "0\r\n\r\n" .. follower(name)
    fields = fields:gsub("LEN", tostring(#body))
    add(name, front(name, fields, body, version), status)
  end
  local H = "Host: a\r\n"
  head("cl-te", H .. "Content-Length: LEN\r\nTransfer-Encoding: chunked\r\n")
  head("te-cl", H .. "Transfer-Encoding: chunked\r\nContent-Length: LEN\r\n")
  head("two-cl", H .. "Content-Length: 5\r\nContent-Length: LEN\r\n")
  head("cl-list", H .. "Content-Length: 5, LEN\r\n")
  head("cl-plus", H .. "Content-Length: +LEN\r\n")
  head("cl-minus", H .. "Content-Length: -1\r\n")
  head("cl-space-inside", H .. "Content-Length: 1 LEN\r\n")
  head("cl-overflow", H .. "Content-Length: 18446744073709551621\r\n")
  head("cl-hex", H .. "Content-Length: 0x10\r\n")
  head("te-not-final-chunked", H .. "Transfer-Encoding: chunked, identity\r\n")
  head("te-chunked-twice-list", H .. "Transfer-Encoding: chunked, chunked\r\n")
  head("te-chunked-twice-lines",
    H .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")
  head("te-on-http10", "Transfer-Encoding: chunked\r\n", 400, "1.0")
  head("te-unknown-coding", H .. "Transfer-Encoding: gzip, chunked\r\n", 501)
  head("te-space-before-colon", H .. "Transfer-Encoding : chunked\r\nContent-Length: LEN\r\n")
  head("cl-tab-before-colon", H .. "Content-Length\t: LEN\r\n")
  head("bare-cr-field", H .. "X-A: y\rTransfer-Encoding: chunked\r\n")  -- CVE-2023-30589
  head("bare-cr-line-end", H .. "X-A: y\r\rTransfer-Encoding: chunked\r\n")
  add("bare-cr-request-line", "POST /front?bare-cr-request-line HTTP/1.1\rHost: a\r\n"
    .. "Content-Length: 0\r\n\r\n" .. follower("bare-cr-request-line"))
  add("bare-lf", "GET /front?bare-lf HTTP/1.1\nHost: a\n\n" .. follower("bare-lf"))
  head("bare-lf-field", H .. "X-A: y\nTransfer-Encoding: chunked\r\n")
  head("obs-fold", H .. "X-A: y\r\n Transfer-Encoding: chunked\r\n")
  head("obs-fold-te", H .. "Transfer-Encoding:\r\n chunked\r\n")
  head("nul-in-value", H .. "X-A: a\0b\r\nTransfer-Encoding: chunked\r\n")
  head("ctl-in-value", H .. "X-A: a\1b\r\nTransfer-Encoding: chunked\r\n")
  head("del-in-value", H .. "X-A: a\127b\r\nTransfer-Encoding: chunked\r\n")
  head("nul-in-name", H .. "X\0A: b\r\nTransfer-Encoding: chunked\r\n")
  head("no-host", "Transfer-Encoding: chunked\r\n")
  head("two-hosts", H .. "Host: b\r\nTransfer-Encoding: chunked\r\n")
  -- a good head, a bad chunked body: the handler runs, its body read fails
  local function body(name, raw, status)
    add(name, chunked(name, raw), status, true)
  end
  body("chunk-size-overflow", "10000000000000000\r\n\r\n")  -- 2^64: wraps to 0
  body("chunk-size-overflow-long", ("f"):rep(40) .. "\r\n\r\n")
  body("chunk-size-not-hex", "5g\r\nhello\r\n0\r\n\r\n")
  body("chunk-size-signed", "-5\r\nhello\r\n0\r\n\r\n")
  body("chunk-no-crlf-after-data", "5\r\nhelloXX0\r\n\r\n")
  body("chunk-huge-extension", "5;" .. ("e"):rep(5000) .. "\r\nhello\r\n0\r\n\r\n")
  body("chunk-bare-lf", "5\nhello\r\n0\r\n\r\n")
  body("trailer-too-many", "0\r\n" .. ("X-T: 1\r\n"):rep(200) .. "\r\n", 431)
  body("trailer-bare-cr", "0\r\nX-T: 1\rX-U: 2\r\n\r\n")
  return list
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

describe("lepoll.http against request smuggling (raw bytes from python3)", function()
  local app
  after_each(function() if app then app:stop() end end)

  it("refuses every shape, closes, and never runs the follower", function()
    tools.need("python3")
    tools.need("curl")
    app = tools.app()
    local list = cases()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    for _, c in ipairs(list) do f:write(c.name, " ", hex(c.raw), "\n") end
    f:close()
    local out, ok = tools.python(CLIENT, { tostring(app.port), path }, 120)
    os.remove(path)
    assert(ok, out)
    local got = {}
    for name, status, ending, n in out:gmatch("(%S+) (%S+) (%S+) (%d+)\n") do
      got[name] = { status, ending, tonumber(n) }
    end
    local want, have = {}, {}
    for _, c in ipairs(list) do
      want[c.name] = { tostring(c.status), "closed", 1 }
      have[c.name] = got[c.name] or out
    end
    assert.same(want, have)
    -- what the handler saw: the fronts whose head was good, nothing else
    local seen = app:log()
    local fronts = {}
    for _, c in ipairs(list) do
      if c.reaches then fronts[#fronts + 1] = "POST /echo?" .. c.name end
    end
    assert.same(fronts, seen)
  end)

  -- so that the cases above are refused for what they are, not for
  -- something else the helpers got wrong
  it("serves the well-formed twins of those shapes, and their followers",
    function()
      tools.need("python3")
      app = tools.app()
      local E = "/echo"  -- the handler reads the body: the connection is kept
      local twins = {
        { "cl", front("cl", "Host: a\r\nContent-Length: 3\r\n", "abc", nil, E) },
        { "te", front("te", "Host: a\r\nTransfer-Encoding: chunked\r\n",
          "3;x=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", nil, E) },
        { "cl-same-twice", front("cl-same-twice",
          "Host: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n", "abc", nil, E) },
        { "tab-in-value", front("tab-in-value", "Host: a\r\nX-A: a\tb\r\nContent-Length: 0\r\n", "",
          nil, E) },
        { "http10-no-host", front("http10-no-host",
          "Connection: keep-alive\r\nContent-Length: 0\r\n", "", "1.0", E) },
      }
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      for _, t in ipairs(twins) do
        -- Connection: close on a follower lets the client read to the end
        local close = "GET /after?" .. t[1]
          .. " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        f:write(t[1], " ", hex(t[2] .. close), "\n")
      end
      f:close()
      local out, ok = tools.python(CLIENT, { tostring(app.port), path }, 60)
      os.remove(path)
      assert(ok, out)
      local want, seen_want = {}, {}
      for _, t in ipairs(twins) do
        want[#want + 1] = t[1] .. " 200 closed 2"
        seen_want[#seen_want + 1] = "POST /echo?" .. t[1]
        seen_want[#seen_want + 1] = "GET /after?" .. t[1]
      end
      assert.same(want, (function()
        local l = {}
        for line in out:gmatch("[^\n]+") do l[#l + 1] = line end
        return l
      end)())
      assert.same(seen_want, (app:log()))
    end)
end)
