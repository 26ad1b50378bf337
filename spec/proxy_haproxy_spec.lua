-- The PROXY protocol with senders no one here wrote: HAProxy 2.6 (Debian's
-- haproxy) in front of lepoll backends with send-proxy and send-proxy-v2,
-- and curl --haproxy-protocol straight to a backend. Each backend is the
-- host program running an app this spec writes (build/bin/lepoll app.lua,
-- one process); HAProxy's frontend socket is bound here (127.0.0.1, port
-- 0) by a python3 wrapper that execs haproxy with it (bind fd@N).
local process = require "support.process"
local tools = require "support.http_tools"
local certs = require "support.certs"

local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local shquote = process.shquote

-- The backend: lepoll.http behind a PROXY listener. "/" answers what the
-- connection knows: "peer HOST:PORT proxy HOST:PORT vN"; "/load" answers
-- "ok" and prints "busy" once, after its 100th request (the spec's cue
-- for "under load"). Arguments: mode (v1, v2, any), then cert and key
-- for TLS. Prints "listening on 127.0.0.1:PORT" first.
local APP = [[
local lepoll = require "lepoll"
local http = require "lepoll.http"
local tls = require "lepoll.tls"
local mode, cert, key = ...
local opts = { host = "127.0.0.1", port = 0, proxy_protocol = mode,
  trusted = { "127.0.0.0/8" } }
if cert then opts.tls = assert(tls.context({ cert = cert, key = key })) end
local loads = 0
local srv = assert(http.listen(opts, function(req, res)
  if req.path == "/load" then
    loads = loads + 1
    if loads == 100 then
      io.stdout:write("busy\n")
      io.stdout:flush()
    end
    return res:finish("ok\n")
  end
  local host, port = req:peer()
  local conn = req:connection()
  local ph, pp, info = conn:proxied()
  res:finish(("peer %s:%s proxy %s:%s v%s\n"):format(host, port, ph, pp,
    info and info.version))
end))
local _, port = srv:address()
io.stdout:write(("listening on 127.0.0.1:%d\n"):format(port))
io.stdout:flush()
lepoll.run()
]]

-- HAProxy on a socket bound here: argv[1] is its configuration, whose
-- "@FD@" becomes the listening socket's fd.
local WRAPPER = [==[
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(512)
fd = s.fileno()
os.set_inheritable(fd, True)
with open(sys.argv[1]) as f:
    cfg = f.read().replace("@FD@", str(fd))
with open(sys.argv[1], "w") as f:
    f.write(cfg)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
os.execvp("haproxy", ["haproxy", "-db", "-f", sys.argv[1]])
]==]

local dir
setup(function()
  tools.need("curl")
  tools.need("wrk")
  tools.need("python3")
  assert(os.execute("command -v haproxy >/dev/null"),
    "haproxy not found: install the Debian package haproxy (.ci/deps lists it)")
  dir = os.tmpname()
  assert(os.remove(dir))
  assert(os.execute("mkdir -m 700 " .. shquote(dir)))
  for name, text in pairs({ ["app.lua"] = APP, ["haproxy.py"] = WRAPPER }) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
end)
teardown(function()
  if dir then os.execute("rm -rf " .. shquote(dir)) end
end)

-- Every child a test starts; after_each stops what is still running.
local children = {}
after_each(function()
  for i = #children, 1, -1 do
    children[i]:close()
    children[i] = nil
  end
end)

local function backend(mode, cert, key)
  local p = process.spawn(process.program(BUILD .. "/bin/lepoll",
    { dir .. "/app.lua", mode, cert, key }), { limit = 60 })
  children[#children + 1] = p
  local _, port = p:listening("127.0.0.1")
  return p, port
end

local function haproxy(config, name)
  local path = dir .. "/" .. name .. ".cfg"
  local f = assert(io.open(path, "w"))
  f:write(config)
  f:close()
  local p = process.spawn("python3 " .. shquote(dir .. "/haproxy.py") .. " " .. shquote(path),
    { limit = 60 })
  children[#children + 1] = p
  local _, port = p:listening("127.0.0.1")
  return p, port
end

local DEFAULTS = [[
global
  nbthread 1
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout queue 5s
]]

-- A backend stopped with SIGTERM: it must exit 0 with nothing on stderr
-- (no handler error, no log line).
local function stopped(p)
  assert.is_true(p:kill("TERM"))
  local _, how, code = p:wait()
  -- valgrind's own lines ("--pid-- WARNING: unhandled ... syscall",
  -- "==pid== ...") are not the backend's
  local err = p:stderr():gsub("%-%-%d+%-%-[^\n]*\n", ""):gsub("==%d+==[^\n]*\n", "")
  assert.same({ "exit", 0, "" }, { how, code, err })
end

local function curl(args)
  local out, ok = tools.run("curl -sS --max-time 10 " .. args, 30)
  assert(ok, "curl failed: " .. out)
  return out
end

describe("PROXY protocol from HAProxy 2.6 and curl #build", function()
  it("send-proxy and send-proxy-v2 (with a CRC32C): peer() is curl's own address", function()
    local b1, p1 = backend("v1")
    local b2, p2 = backend("v2")
    local _, port = haproxy(DEFAULTS .. ([[
frontend fe
  bind fd@@FD@
  unique-id-format %%{+X}o\ %%ci:%%cp_%%fi:%%fp_%%Ts_%%rt
  use_backend be2 if { path_beg /v2 }
  default_backend be1
backend be1
  server s1 127.0.0.1:%d send-proxy
backend be2
  server s2 127.0.0.1:%d send-proxy-v2 proxy-v2-options crc32c,unique-id
]]):format(p1, p2), "two")
    for _, path in ipairs({ "/v1", "/v2" }) do
      local out = curl(("-w ' %%{local_ip}:%%{local_port}' http://127.0.0.1:%d%s")
        :format(port, path))
      local peer, proxyhost, v, me = out:match("^peer (%S+) proxy (%S+):%d+ v(%d)\n (%S+)$")
      assert.equal(me, peer, out)
      assert.equal("127.0.0.1", proxyhost)
      assert.equal(path:sub(3), v)
    end
    stopped(b1)
    stopped(b2)
  end)

  it("curl --haproxy-protocol, over plain HTTP and before TLS", function()
    local P = certs.make()
    local b1, p1 = backend("v1")
    local b2, p2 = backend("any", P.cert, P.key)
    local out = curl(("--haproxy-protocol -w ' %%{local_ip}:%%{local_port}'"
      .. " http://127.0.0.1:%d/"):format(p1))
    local peer, proxy, me = out:match("^peer (%S+) proxy (%S+) v1\n (%S+)$")
    assert.equal(me, peer, out)
    -- curl names itself in the header: what it says and what the kernel says agree
    assert.equal(me, proxy, out)
    out = curl(("--haproxy-protocol --cacert %s --resolve localhost:%d:127.0.0.1"
      .. " -w ' %%{local_ip}:%%{local_port}' https://localhost:%d/"):format(shquote(P.ca),
      p2, p2))
    peer, proxy, me = out:match("^peer (%S+) proxy (%S+) v1\n (%S+)$")
    assert.equal(me, peer, out)
    assert.equal(me, proxy, out)
    stopped(b1)
    stopped(b2)
  end)

  it("two backends, one sent SIGTERM under load: no client sees an error", function()
    local b1, p1 = backend("v2")
    local b2, p2 = backend("v1")
    local _, port = haproxy(DEFAULTS .. ([[
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response junk-response response-timeout
frontend fe
  bind fd@@FD@
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:%d send-proxy-v2 check inter 100ms fall 1 rise 1
  server s2 127.0.0.1:%d send-proxy check inter 100ms fall 1 rise 1
]]):format(p1, p2), "pair")
    local load = tools.spawn(("wrk -t1 -c16 -d2s http://127.0.0.1:%d/load"):format(port), 30)
    children[#children + 1] = load
    -- under load: the first backend has served its 100th request
    assert.equal("busy", b1:line())
    stopped(b1)  -- a graceful shutdown: it drains, then exits 0
    local report, how, code = load:wait()
    assert.same({ "exit", 0 }, { how, code }, report)
    local requests = tonumber(report:match("(%d+) requests in"))
    assert.is_true(requests and requests > 200, report)
    assert.is_nil(report:find("Socket errors", 1, true), report)
    assert.is_nil(report:find("Non%-2xx"), report)
    -- the second backend took the load and is still well
    local out = curl(("http://127.0.0.1:%d/load"):format(port))
    assert.equal("ok\n", out)
    stopped(b2)
  end)
end)
