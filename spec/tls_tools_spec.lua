-- lepoll's TLS with clients and servers no one here wrote: openssl
-- s_client, curl and python3's ssl module. The lepoll server runs in a
-- child process (spec/support/tls_app.lua); the lepoll client runs here.
local certs = require "support.certs"
local process = require "support.process"
local tools = require "support.http_tools"
local h = require "support.framework"
local tls = require "lepoll.tls"

local q = tools.shquote
local P

setup(function()
  tools.need("openssl")
  tools.need("curl")
  tools.need("python3")
  P = certs.make()
end)

-- Start tls_app.lua with key=value arguments: the Proc and its port.
local function app(args)
  args = args or {}
  local cmd = { process.lua_command(), "spec/support/tls_app.lua",
    q("cert=" .. (args.cert or P.cert)), q("key=" .. (args.key or P.key)) }
  for k, v in pairs(args) do
    if k ~= "cert" and k ~= "key" then cmd[#cmd + 1] = q(k .. "=" .. v) end
  end
  local p = process.spawn("sh -c " .. q("exec " .. table.concat(cmd, " ")), { limit = 120 })
  local _, port = p:listening("127.0.0.1")
  return p, port
end

-- Stop the app (SIGTERM: a graceful shutdown): the rest of its stdout;
-- raises unless it exited 0 with a clean stderr.
local function stop(p)
  p:kill("TERM")
  local out, how, code = p:wait()
  local err = p:stderr()
  p:close()
  assert(how == "exit" and code == 0 and not err:find("AddressSanitizer")
    and not err:find("runtime error"), ("the app ended by %s %s: %s")
    :format(tostring(how), tostring(code), err))
  return out
end

local function s_client(port, args, input)
  return tools.run(("printf %s | openssl s_client -connect 127.0.0.1:%d -CAfile %s %s")
    :format(q(input or ""), port, q(P.ca), args), 30)
end

describe("lepoll TLS with openssl s_client", function()
  it("serves a certificate per SNI name", function()
    local p, port = app({ sni_name = "b.test", sni_cert = P.b_cert, sni_key = P.b_key })
    local out = s_client(port, "-servername b.test")
    assert.matches("subject=CN ?= ?b%.test", out)
    assert.matches("Verify return code: 0 %(ok%)", out)
    out = s_client(port, "-servername localhost")
    assert.matches("subject=CN ?= ?localhost", out)
    assert.matches("Verify return code: 0 %(ok%)", out)
    stop(p)
  end)

  it("resumes a session: -sess_out, then -sess_in says Reused", function()
    local sess = os.tmpname()
    local p, port = app()
    -- the client reads until the server ends the connection: past the
    -- handshake, where the TLS 1.3 tickets come
    local out = s_client(port, "-ign_eof -servername localhost -sess_out " .. q(sess), "close\n")
    assert.matches("New, TLSv1%.3", out)
    out = s_client(port, "-ign_eof -servername localhost -sess_in " .. q(sess), "close\n")
    assert.matches("Reused, TLSv1%.3", out)
    stop(p)
    -- a server without tickets resumes nothing
    p, port = app({ tickets = "false" })
    os.remove(sess)
    out = s_client(port, "-ign_eof -servername localhost -sess_out " .. q(sess), "close\n")
    assert.matches("New, TLSv1%.3", out)
    assert(out:find("\nclose\n", 1, true), out)  -- it read to the end: the echo
    local f = io.open(sess, "rb")
    local kept = f and f:read("a") or ""
    if f then f:close() end
    assert.equal("", kept)  -- no ticket came: s_client had nothing to keep
    stop(p)
    os.remove(sess)
  end)

  it("selects an ALPN protocol the client offers", function()
    local p, port = app({ alpn = "h2,http/1.1" })
    local out = s_client(port, "-servername localhost -alpn http/1.1,foo")
    assert.matches("ALPN protocol: http/1%.1", out)
    out = s_client(port, "-servername localhost -alpn foo")
    assert.matches("No ALPN negotiated", out)
    stop(p)
  end)
end)

describe("lepoll.http over TLS with curl", function()
  it("answers with the CA trusted, and fails with exit 60 on a wrong host name", function()
    local p, port = app({ mode = "http" })
    local out, ok = tools.run(("curl -sS --max-time 20 --cacert %s https://localhost:%d/")
      :format(q(P.ca), port))
    assert(ok, out)
    assert.equal("hello\n", out)
    local _, ok2, code = tools.run(("curl -sS --max-time 20 --cacert %s"
      .. " --resolve wrong.test:%d:127.0.0.1 https://wrong.test:%d/"):format(q(P.ca), port, port))
    assert.is_false(ok2)
    assert.equal(60, code)
    -- keep-alive over one TLS session: two URLs, one connection
    out, ok = tools.run(("curl -sS --max-time 20 --cacert %s -w '[%%{num_connects}]'"
      .. " https://localhost:%d/ https://localhost:%d/"):format(q(P.ca), port, port))
    assert(ok, out)
    assert.equal("hello\n[1]hello\n[0]", out)
    stop(p)
  end)
end)

describe("lepoll.http over TLS under wrk", function()
  local SUMMARY = [[
done = function(summary)
  local e = summary.errors
  io.write(string.format("wrk-summary requests %d connect %d read %d write %d status %d "
    .. "timeout %d\n", summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
]]

  -- wrk against the app over https with extra wrk arguments: the number
  -- of requests it read, after checking it saw no error at all.
  local function wrk(port, args)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(SUMMARY)
    f:close()
    local out, ok = tools.run(("wrk %s --timeout 5s -s %s https://127.0.0.1:%d/")
      :format(args, q(script), port), 60)
    os.remove(script)
    assert(ok, out)
    local n, c, r, w, st, t = out:match(
      "wrk%-summary requests (%d+) connect (%d+) read (%d+) write (%d+) status (%d+) timeout (%d+)")
    assert(n, out)
    assert.same({ 0, 0, 0, 0, 0 }, { tonumber(c), tonumber(r), tonumber(w), tonumber(st),
      tonumber(t) }, out)
    assert.is_nil(out:find("Non%-2xx"), out)
    return tonumber(n)
  end

  it("serves 100 keep-alive connections, and a new handshake per request", function()
    tools.need("wrk")
    local p, port = app({ mode = "http" })
    assert.is_true(wrk(port, "-t1 -c100 -d1s") >= 100)
    -- Connection: close: wrk opens a new connection (a full handshake)
    -- for every request
    assert.is_true(wrk(port, "-t1 -c20 -d1s -H 'Connection: close'") >= 20)
    stop(p)
  end)
end)

describe("lepoll TLS with python3's ssl", function()
  -- Python's client sends 100,000 bytes, then ends with close_notify
  -- (unwrap) or is killed (SIGKILL: the kernel sends a FIN, and nothing
  -- else: the server sends nothing after the handshake, no tickets
  -- either, so no unread byte turns the FIN into a reset).
  local CLIENT = [[
import os, socket, ssl, sys
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
print("version", s.version(), flush=True)
s.sendall(b"x" * 100000)
if mode == "kill":
    os.kill(os.getpid(), 9)
s.unwrap()
]]

  it("serves python's client; close_notify and a killed client read differently", function()
    local p, port = app({ mode = "sink", tickets = "false" })
    local out, ok = tools.python(CLIENT, { port, P.ca, "clean" })
    assert(ok, out)
    assert.matches("version TLSv1.3", out)
    out = tools.python(CLIENT, { port, P.ca, "kill" })
    assert.matches("version TLSv1.3", out)
    assert.equal("100000 bytes, closed\n100000 bytes, closed truncated\n", stop(p))
  end)

  local BIG = [[
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", port))
print("rcvbuf", raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"big chain")
print("echo", s.recv(100).decode())
s.unwrap()
]]

  it("finishes a handshake whose certificate chain outgrows both socket buffers", function()
    local p, port = app({ cert = P.big_cert, key = P.big_key, sndbuf = 4096 })
    local out, ok = tools.python(BIG, { port, P.ca })
    assert(ok, out)
    assert.matches("echo big chain", out)
    -- the server's send buffer (4096, doubled by the kernel) and the
    -- client's receive buffer hold less than the chain: the server's
    -- handshake had to wait for the socket to be writable
    local rcvbuf = tonumber(out:match("rcvbuf (%d+)"))
    assert(P.big_size > 2 * 4096 + rcvbuf, ("chain %d B, buffers %d B")
      :format(P.big_size, 2 * 4096 + rcvbuf))
    stop(p)
  end)

  local SERVER = [[
import socket, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
c, _ = ls.accept()
try:
    s = ctx.wrap_socket(c, server_side=True)
except (ssl.SSLError, OSError):
    c.close()
    sys.exit(0)
if True:
    data = s.recv(100)
    s.sendall(b"python saw " + data)
    try:
        s.unwrap()
    except (ssl.SSLError, OSError):
        pass
    s.close()
]]

  it("lepoll's client verifies python's server, and refuses a self-signed one", function()
    local cases = { { P.cert, P.key, true }, { P.self_cert, P.self_key, false } }
    for _, case in ipairs(cases) do
      local p = tools.python_spawn(SERVER, { case[1], case[2] })
      local _, port = p:listening("127.0.0.1")
      h.with_task(function(loop)
        local ctx = assert(tls.context({ ca = P.ca }))
        local c, err = loop:connect("127.0.0.1", port,
          { tls = { ctx = ctx, server_name = "localhost" } })
        if case[3] then
          assert(c, err)
          assert(c:write("hi"))
          assert.equal("python saw hi", c:readn(13))
          assert.same({ nil, "closed" }, { c:read() })  -- python's unwrap(): close_notify
          c:close()
        else
          assert.is_nil(c)
          assert.matches("certificate verify failed: self%-signed certificate", err)
        end
      end)
      -- it serves one connection and exits
      local _, how, code = p:wait()
      p:close()
      assert.same({ "exit", 0 }, { how, code })
    end
  end)
end)
