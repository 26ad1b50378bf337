-- lepoll.http in a child process (spec/support/http_app.lua) driven by
-- clients no one here wrote: curl and python3's http.client.
local tools = require "support.http_tools"

local q = tools.shquote

-- A file of n pseudo-random bytes (every byte value, no pattern a
-- framing bug would preserve by luck): its path.
local function data_file(n, seed)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  local x, parts = seed or 1, {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    parts[#parts + 1] = string.char((x >> 16) & 0xff)
    if #parts == 4096 or i == n then
      f:write(table.concat(parts))
      parts = {}
    end
  end
  f:close()
  return path
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("lepoll.http with curl", function()
  local app, files
  before_each(function()
    tools.need("curl")
    files = {}
  end)
  after_each(function()
    for _, p in ipairs(files) do os.remove(p) end
    if app then app:stop() end
    app = nil
  end)
  local function tmp(path)
    files[#files + 1] = path
    return path
  end
  -- Run curl with args (a string): its stdout, whether it exited 0, and
  -- its -v trace (kept apart from the body: --stderr).
  local function curl(args)
    local log = tmp(os.tmpname())
    local out, ok = tools.run(("curl -sS -v --stderr %s --max-time 30 %s"):format(q(log), args))
    return out, ok, slurp(log)
  end

  it("reuses one keep-alive connection for two URLs", function()
    app = tools.app()
    local out, ok, log = curl(("-w ' [%%{num_connects}]\\n' %s %s")
      :format(q(app:url("/who")), q(app:url("/who"))))
    assert(ok, log)
    local p1, c1 = out:match("conn (%d+) request 1 %[(%d)%]")
    local p2, c2 = out:match("conn (%d+) request 2 %[(%d)%]")
    assert(p1 and p2, out)
    assert.equal(p1, p2)
    assert.same({ "1", "0" }, { c1, c2 })  -- the second transfer made no connect
    assert.matches("Re%-using existing connection", log)
  end)

  it("gets GET's head for -I, and no body bytes (the next request on the connection is whole)",
    function()
      app = tools.app()
      -- --next: a GET on the same connection after the HEADs; a stray body
      -- byte would make it a bad response
      local out, ok, log = curl(("-I %s -I %s --next -sS %s")
        :format(q(app:url("/")), q(app:url("/chunked?n=4")), q(app:url("/who"))))
      assert(ok, log)
      local heads = {}
      for h in out:gmatch("HTTP/1%.1 200 OK\r\n(.-)\r\n\r\n") do heads[#heads + 1] = h end
      assert.equal(2, #heads, out)
      assert.matches("Content%-Length: 6", heads[1])
      assert.matches("Transfer%-Encoding: chunked", heads[2])
      assert.matches("conn %d+ request 3$", out)
      assert.is_nil(out:find("hello\n", 1, true))
      assert.is_nil(out:find("piece", 1, true))
      assert.equal(2, select(2, log:gsub("Re%-using existing connection", "")))
    end)

  it("uploads chunked with -T - and gets the body back", function()
    app = tools.app()
    local src, dst = tmp(data_file(300000, 7)), tmp(os.tmpname())
    local _, ok, log = curl(("-T - -H 'Transfer-Encoding: chunked' -o %s %s < %s")
      :format(q(dst), q(app:url("/echo")), q(src)))
    assert(ok, log)
    assert.matches("> Transfer%-Encoding: chunked", log)
    assert.matches("< X%-Request%-TE: chunked", log)
    assert.equal(300000, #slurp(dst))
    assert.is_true(slurp(src) == slurp(dst))
  end)

  it("answers Expect: 100-continue at once: curl does not wait its --expect100-timeout",
    function()
      app = tools.app()
      local src, dst = tmp(data_file(200000, 3)), tmp(os.tmpname())
      local out, ok, log = curl(("--expect100-timeout 10 -H 'Expect: 100-continue' "
        .. "--data-binary @%s -o %s -w 'time %%{time_total}\\n' %s")
        :format(q(src), q(dst), q(app:url("/echo"))))
      assert(ok, log)
      assert.matches("> Expect: 100%-continue", log)
      assert.matches("< HTTP/1%.1 100 Continue", log)
      local t = tonumber(out:match("time ([%d.]+)"))
      assert.is_true(t < 3, "took " .. tostring(t) .. " s")
      assert.is_true(slurp(src) == slurp(dst))
    end)

  describe("answers 413 (or 401) before the body is sent: curl stops sending", function()
    local SIZE = 50000000
    -- PUT a SIZE-byte file to path (with curl's Expect: 100-continue or
    -- without): the reply is status, curl stopped sending early, and quickly
    local function upload(path, expect, status)
      local big = tmp(os.tmpname())
      assert(tools.run("truncate -s " .. SIZE .. " " .. q(big)))
      local out, ok, log = curl(("%s -T %s "
        .. "-w '\\ncode %%{http_code} up %%{size_upload} time %%{time_total}\\n' %s")
        :format(expect and "" or "-H 'Expect:'", q(big), q(app:url(path))))
      assert(ok, log)
      local got, up, t = out:match("code (%d+) up (%d+) time ([%d.]+)")
      assert(got, out)
      assert.equal(status, tonumber(got))
      assert.is_true(tonumber(up) < SIZE, out)
      assert.is_true(tonumber(t) < 5, out)
      assert.matches("< Connection: close", log)
      return log
    end

    it("from the handler, with Expect: 100-continue (no 100 goes out)", function()
      app = tools.app()
      local out = upload("/reject413", true, 413)
      assert.matches("> Expect: 100%-continue", out)
      assert.is_nil(out:find("100 Continue", 1, true))
    end)

    it("from the handler, without Expect", function()
      app = tools.app()
      upload("/reject413", false, 413)
      upload("/auth", false, 401)
    end)

    it("from the server, the Content-Length over max_body", function()
      app = tools.app({ max_body = 1000000 })
      upload("/echo", true, 413)
      upload("/echo", false, 413)
    end)
  end)

  it("completes a --limit-rate upload that lasts longer than body_timeout", function()
    app = tools.app({ body_timeout = 1.5 })
    local src = tmp(data_file(80000, 11))
    local out, ok, log = curl(("--limit-rate 32k -H 'Expect:' --data-binary @%s "
      .. "-w '\\ntime %%{time_total}\\n' %s"):format(q(src), q(app:url("/upload-count"))))
    assert(ok, log)
    assert.matches("^80000\ntime", out)
    assert.is_true(tonumber(out:match("time ([%d.]+)")) > 1.5, out)
  end)
end)

describe("lepoll.http with python3's http.client", function()
  local app
  before_each(function() tools.need("python3") end)
  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  it("takes a chunked upload (encode_chunked=True) and keeps the connection", function()
    app = tools.app()
    local out, ok = tools.python([[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
pieces = [(b"%05d:" % i) * (i % 7 + 1) for i in range(2000)]
c.request("POST", "/echo", body=iter(pieces), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
body = r.read()
print(r.status, r.getheader("X-Request-TE"), len(body), body == b"".join(pieces))
c.request("GET", "/who")
r = c.getresponse()
print(r.status, r.read().decode())
]], { tostring(app.port) })
    assert(ok, out)
    local want = 0
    for i = 0, 1999 do want = want + 6 * (i % 7 + 1) end
    assert.matches("^200 chunked " .. want .. " True\n200 conn %d+ request 2\n$", out)
  end)

  it("answers 100 GETs pipelined in one write, in order", function()
    app = tools.app()
    local out, ok = tools.python([[
import http.client, io, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
paths = ["/who" if i % 10 == 0 else "/p/%d" % i for i in range(1, 101)]
s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths))
class Keep(io.BufferedReader):  # a response's close must not close the stream
    def close(self): pass
f = Keep(socket.SocketIO(s, "rb"))
class One:  # every response reads from the same buffered stream
    def makefile(self, *a, **k): return f
for i, p in enumerate(paths, 1):
    r = http.client.HTTPResponse(One())
    r.begin()
    body = r.read().decode()
    want = "request %d" % i if p == "/who" else p
    print(i, r.status, "ok" if body.endswith(want) else "bad " + body)
s.close()
]], { tostring(app.port) })
    assert(ok, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local want = {}
    for i = 1, 100 do want[i] = i .. " 200 ok" end
    assert.same(want, lines)
    local seen = app:log()
    local order = {}
    for i = 1, 100 do order[i] = "GET " .. (i % 10 == 0 and "/who" or "/p/" .. i) end
    assert.same(order, seen)
  end)
end)
