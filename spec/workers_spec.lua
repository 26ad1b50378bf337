-- lepoll --workers N: a master, one loop per worker, restarts, drains,
-- reloads (SIGHUP re-exec), and socket activation by
-- systemd-socket-activate. The app is spec/support/workers_app.lua, run by
-- the lepoll program; the clients are python3 (spec/support/workers_client.py),
-- curl, h2load and systemd-socket-activate: none written here.
local process = require "support.process"
local tools = require "support.http_tools"

local sh = process.shquote
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local HOST = BUILD .. "/bin/lepoll"
local APP = "spec/support/workers_app.lua"
local CLIENT = "spec/support/workers_client.py"

local started = {}
after_each(function()
  for i = #started, 1, -1 do
    started[i]:close()
    started[i] = nil
  end
end)

-- The master's pid (the command timeout(1) runs).
local function master_pid(p)
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(p.pid, p.pid)))
  local s = f:read("a")
  f:close()
  return assert(tonumber(s:match("%d+")), "no master process")
end

-- Start the app: args before the script (e.g. {"--workers", "2"}), app
-- options after it; prefix: a command put before the program
-- (systemd-socket-activate ...), which starts it on the first connection
-- to activate_port: a client makes it. Returns the Proc, the port, the
-- master pid.
local function start(pre, opts, prefix, activate_port)
  local args = {}
  for _, a in ipairs(pre or {}) do args[#args + 1] = a end
  args[#args + 1] = APP
  for _, a in ipairs(opts or { "port=0" }) do args[#args + 1] = a end
  -- valgrind 3.19 has no pidfd_open (ENOSYS): under make check-valgrind
  -- the program runs natively here (the rest of the suite covers its
  -- code under valgrind)
  local cmd = process.program(HOST, args, { native = true })
  if prefix then cmd = prefix .. " " .. cmd end
  local p = process.spawn(cmd, { limit = 120 })
  started[#started + 1] = p
  local first
  if activate_port then
    first = tools.spawn("python3 " .. CLIENT .. " activated " .. activate_port, 30)
  end
  local line = p:line()
  local port = tonumber((line or ""):match("^listening on .*:(%d+)$"))
  assert(port or (line or ""):match("^listening on /"),
    "expected 'listening on ...', got " .. tostring(line) .. "\n" .. p:stderr())
  if first then
    local out = first:wait()
    first:close()
    assert(out:match("^reply worker "), "the first connection: " .. out)
  end
  return p, port, master_pid(p)
end

local function curl(url)
  local out, ok = tools.run("curl -sS --max-time 10 " .. sh(url), 20)
  assert(ok, "curl " .. url .. ": " .. out)
  return out
end

-- "worker ID pid PID inode INODE init ID" -> id, pid, inode, init
local function who(reply)
  local id, pid, inode, init = reply:match("worker (%S+) pid (%d+) inode (%S+) init (%S+)")
  assert(id, "not a worker's reply: " .. reply)
  return id, tonumber(pid), inode, init
end

-- Replies from new connections until every one of n workers answered
-- (bounded): worker id -> { pid =, inode =, init = }.
local function workers(port, n)
  local seen, count = {}, 0
  for _ = 1, 200 do
    local id, pid, inode, init = who(curl(("http://127.0.0.1:%d/"):format(port)))
    if not seen[id] then
      seen[id] = { pid = pid, inode = inode, init = init }
      count = count + 1
      if count == n then return seen end
    end
  end
  error("only " .. count .. " of " .. n .. " workers answered")
end

local function python(args, limit)
  local out, ok = tools.run("python3 " .. CLIENT .. " " .. args, limit or 60)
  assert(ok, "workers_client.py " .. args .. ": " .. out)
  local r = {}
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^(%S+) (.*)$")
    if k then r[k] = v end
  end
  return r, out
end

local function alive(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return not stat:match("^%d+ %b() Z")  -- a zombie is gone but for its reaping
end

-- The master's stderr once it says what (a plain string), within 20 s.
local function wait_log(p, what)
  local deadline = os.time() + 20
  while true do
    local err = p:stderr()
    if err:find(what, 1, true) or os.time() > deadline then return err end
    os.execute("sleep 0.05")  -- a log line has no event to wait on
  end
end

-- The master's stderr once it has exited (Proc:wait), checked for errors.
local function finish(p)
  local _, how, code = p:wait()
  local err = p:stderr()
  assert.is_nil(err:find("AddressSanitizer") or err:find("runtime error"), err)
  return how, code, err
end

-- While one worker's loop is held by /spin, a new connection goes to
-- the other: with a shared socket (EPOLLEXCLUSIVE) an idle machine wakes
-- the same worker each time, so this is how both are seen to serve.
local function spin(target)
  local r, out = python("spin " .. sh(target))
  assert.is_truthy(r.other and r.spinner, out)
  assert.are_not.equal(r.other, r.spinner, out)
end


describe("lepoll --workers", function()
  it("serves from N workers, each with its id, its init_worker and a named log", function()
    local p, port, master = start({ "--workers", "2" })
    local seen = workers(port, 2)
    assert.are_not.equal(seen["0"].pid, seen["1"].pid)
    assert.equal("0", seen["0"].init)
    assert.equal("1", seen["1"].init)
    for _, w in pairs(seen) do assert.are_not.equal(master, w.pid) end
    -- each worker accepts on a socket of its own (SO_REUSEPORT)
    assert.are_not.equal(seen["0"].inode, seen["1"].inode)
    assert.equal("LISTEN_FDS=- LISTEN_PID=- LISTEN_FDNAMES=- LEPOLL_OLD_WORKERS=-\n",
      curl(("http://127.0.0.1:%d/env"):format(port)))
    p:kill("TERM")
    local how, code, err = finish(p)
    assert.equal("exit", how)
    assert.equal(0, code)
    assert.truthy(err:find(("lepoll[worker 1, pid %d]: init_worker 1"):format(seen["1"].pid),
      1, true), err)
    assert.truthy(err:find(("lepoll[master, pid %d]: worker 0 started"):format(master), 1, true),
      err)
  end)

  it("spreads new connections within 20% of an even share", function()
    local _, port = start({ "--workers", "2" })
    local _, r = python(("counts %d 2000"):format(port))
    local a = tonumber(r:match("worker 0 (%d+)"))
    local b = tonumber(r:match("worker 1 (%d+)"))
    assert.is_truthy(a and b, r)
    assert.equal(2000, a + b)
    assert.is_true(math.abs(a - 1000) <= 200 and math.abs(b - 1000) <= 200, r)
  end)

  it("replaces a worker killed with SIGKILL within 1 s; only its connections fail", function()
    local _, port = start({ "--workers", "2" })
    workers(port, 2)
    local r, out = python(("kill9 %d"):format(port))
    assert.equal("3 of 3", r.victim_failed, out)
    assert.equal("15 of 15", r.survivor_ok, out)
    local ms = tonumber((r.replacement or ""):match("after_ms (%d+)"))
    assert.is_truthy(ms, out)
    assert.is_true(ms < 1000, out)
  end)

  it("drains on SIGTERM: the request in flight is answered, then the master exits 0", function()
    local p, port, master = start({ "--workers", "2" })
    local seen = workers(port, 2)
    local r, out = python(("drain %d %d"):format(port, master))
    assert.equal("answered", r.inflight, out)
    assert.equal("yes", r.closed, out)
    assert.equal("yes", r.refused, out)
    local how, code = finish(p)
    assert.equal("exit", how)
    assert.equal(0, code)
    for _, w in pairs(seen) do assert.is_false(alive(w.pid)) end
  end)

  it("drains once when SIGINT reaches the whole process group (Ctrl-C)", function()
    local p, port, master = start({ "--workers", "2" })
    local r, out = python(("group %d %d"):format(port, master))
    assert.equal("answered", r.inflight, out)
    local how, code, err = finish(p)
    assert.equal("exit", how)
    assert.equal(0, code, err)
    assert.is_nil(err:find("killed by signal"), err)
  end)

  it("lets a reload's old workers finish their drain when SIGTERM comes", function()
    local p, port, master = start({ "--workers", "2" })
    local r, out = python(("reload_term %d %d"):format(port, master))
    assert.equal("2", r.new_workers, out)
    assert.equal("answered", r.inflight, out)
    local _, code, err = finish(p)
    assert.equal(0, code, err)
  end)

  it("moves a listener whose address changed at a reload, and refuses the old one", function()
    local file = os.tmpname()
    local function write(v)
      local f = assert(io.open(file, "w"))
      f:write(v)
      f:close()
    end
    write("0")
    local p, port, master = start({ "--workers", "2" }, { "port_file=" .. file })
    workers(port, 2)
    local net = require "lepoll.net"
    local probe = assert(net.socket(net.INET, net.STREAM))
    assert(net.bind(probe, "127.0.0.1", 0))
    local _, port2 = net.getsockname(probe)
    probe:close()
    write(tostring(port2))
    assert(os.execute("kill -HUP " .. master))
    -- the reload's trial prints it, then the new image
    assert.equal(("listening on 127.0.0.1:%d"):format(port2), p:line())
    assert.equal(("listening on 127.0.0.1:%d"):format(port2), p:line())
    workers(port2, 2)
    -- the old port: refused once the old workers have drained
    local deadline = os.time() + 10
    local function refused()
      local _, ok = tools.run(("curl -sS --max-time 2 http://127.0.0.1:%d/"):format(port), 10)
      return not ok
    end
    local was_refused
    repeat was_refused = refused() until was_refused or os.time() > deadline
    os.remove(file)
    assert.is_true(was_refused)
    p:kill("TERM")
    local _, code, err = finish(p)
    assert.equal(0, code, err)
    assert.truthy(err:find("no listener takes 127.0.0.1:" .. port, 1, true), err)
  end)

  it("shares a TLS context made before run(): a session from one worker resumes on the other",
    function()
      local certs = require "support.certs"
      local P = certs.make()
      local p, port = start({ "--workers", "2" }, { "port=0", "cert=" .. P.cert, "key=" .. P.key })
      local sess = os.tmpname()
      local function s_client(args)
        -- -ign_eof: read to the server's close, past the TLS 1.3 tickets
        local out = tools.run(("printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client"
          .. " -connect 127.0.0.1:%d -CAfile %s -servername localhost -ign_eof %s")
          :format(port, sh(P.ca), args), 30)
        return out, (out:match("worker (%d) pid"))
      end
      local out, first = s_client("-sess_out " .. sh(sess))
      assert.matches("New, TLSv1%.3", out)
      assert.is_truthy(first, out)
      local other
      for _ = 1, 60 do  -- new connections until the kernel hands one to the other worker
        out, other = s_client("-sess_in " .. sh(sess))
        if other and other ~= first then break end
      end
      os.remove(sess)
      assert.are_not.equal(first, other, out)
      assert.matches("Reused, TLSv1%.3", out)
      p:kill("TERM")
      local _, code = finish(p)
      assert.equal(0, code)
    end)

  it("refuses a reload whose script fails while it loads, and serves on", function()
    local file = os.tmpname()
    os.remove(file)
    local p, port, master = start({ "--workers", "2" }, { "port=0", "fail_file=" .. file })
    local before = workers(port, 2)
    local f = assert(io.open(file, "w"))
    f:close()
    assert(os.execute("kill -HUP " .. master))
    local err = wait_log(p, "reload refused")
    assert.truthy(err:find("reload refused: the new image exited with status 1", 1, true), err)
    local now = workers(port, 2)
    assert.equal(before["0"].pid, now["0"].pid)
    assert.equal(before["1"].pid, now["1"].pid)
    os.remove(file)
    assert(os.execute("kill -HUP " .. master))
    local deadline = os.time() + 20
    local moved
    repeat
      local id, pid = who(curl(("http://127.0.0.1:%d/"):format(port)))
      moved = pid ~= before[id].pid
    until moved or os.time() > deadline
    assert.is_true(moved)
    p:kill("TERM")
    local _, code = finish(p)
    assert.equal(0, code)
  end)

  it("closes everything at a second SIGTERM", function()
    local p, port, master = start({ "--workers", "2" }, { "port=0", "shutdown_timeout=30" })
    workers(port, 2)
    local r, out = python(("immediate %d %d"):format(port, master))
    assert.equal("cut", r.inflight, out)
    assert.is_true(tonumber(r.inflight_ms) < 3000, out)
    local how, code = finish(p)
    assert.equal("exit", how)
    assert.equal(0, code)
  end)

  it("backs off restarting a worker that fails at once (no fork storm)", function()
    local p = start({ "--workers", "2" }, { "port=0", "fail_worker=1" })
    -- 0.25 + 0.5 + 1 s of back-off: at most four starts of worker 1 in ~2 s
    local deadline = os.time() + 10
    local err
    repeat
      err = p:stderr()
      os.execute("sleep 0.05")  -- a log line has no event to wait on
    until select(2, err:gsub("restarting it in", "")) >= 3 or os.time() > deadline
    local starts = select(2, err:gsub("worker 1 started", ""))
    assert.truthy(err:find("restarting it in 0.25s", 1, true), err)
    assert.truthy(err:find("restarting it in 0.5s", 1, true), err)
    assert.truthy(err:find("restarting it in 1s", 1, true), err)
    assert.is_true(starts <= 4, err)
    assert.truthy(err:find("init_worker 1 fails", 1, true), err)
  end)

  it("reloads on SIGHUP under load: 0 failed requests, same sockets, old workers gone", function()
    tools.need("h2load")
    local p, port, master = start({ "--workers", "2" })
    local before = workers(port, 2)
    local load = tools.spawn(("h2load --h1 -c 16 -D 3 http://127.0.0.1:%d/"):format(port), 30)
    -- mid-load: h2load has connected and is sending
    local deadline = os.time() + 5
    repeat
      local f = io.popen(("ss -tnH state established '( dport = :%d )' | wc -l"):format(port))
      local n = tonumber(f:read("a"))
      f:close()
    until n >= 16 or os.time() > deadline
    assert(os.execute("kill -HUP " .. master))
    local out = load:wait()
    load:close()
    local after = workers(port, 2)
    local total, succeeded, failed, errored = out:match(
      "requests: (%d+) total, %d+ started, %d+ done, (%d+) succeeded, (%d+) failed, (%d+) errored")
    assert.is_truthy(total, out)
    assert.equal("0", failed, out)
    assert.equal("0", errored, out)
    assert.equal(total, succeeded, out)
    assert.is_true(tonumber(total) > 1000, out)
    for id, w in pairs(after) do
      assert.are_not.equal(before[id].pid, w.pid)
      assert.equal(before[id].inode, w.inode)  -- passed, never re-bound
    end
    -- the old workers drain and are reaped
    deadline = os.time() + 10
    while (alive(before["0"].pid) or alive(before["1"].pid)) and os.time() < deadline do
      curl(("http://127.0.0.1:%d/"):format(port))
    end
    assert.is_false(alive(before["0"].pid))
    assert.is_false(alive(before["1"].pid))
    assert.equal(master, master_pid(p))  -- the same process, re-executed
    p:kill("TERM")
    local how, code, err = finish(p)
    assert.equal(0, code, err)
    assert.equal("exit", how)
    assert.truthy(err:find("reload: re-executing with 2 listening sockets", 1, true), err)
    -- the new workers served before the old were told to drain
    local s1 = err:find("worker 1 started", err:find("reload: re-executing", 1, true), true)
    local s2 = err:find("reload: telling old worker", 1, true)
    assert.is_true(s1 ~= nil and s2 ~= nil and s1 < s2, err)
  end)

  it("a second SIGHUP while old workers drain leaves their requests in flight alone", function()
    -- the second image must not tell a worker the first already told to
    -- drain: a second TERM closes every connection at once
    local p, port, master = start({ "--workers", "2" }, { "port=0", "shutdown_timeout=30" })
    local r, out = python(("rehup %d %d"):format(port, master))
    assert.equal("drained", r.first_reload, out)
    assert.equal("answered", r.inflight, out)
    p:kill("TERM")
    local how, code, err = finish(p)
    assert.equal("exit", how)
    assert.equal(0, code, err)
    assert.equal(2, select(2, err:gsub("reload: re%-executing", "")), err)
  end)

  it("runs from lepoll.workers{} in the script, and in the shared mode", function()
    local p, port = start(nil, { "port=0", "lua_workers=2", "mode=shared" })
    spin(tostring(port))
    p:kill("TERM")
    local _, code = finish(p)
    assert.equal(0, code)
  end)

  it("serves a unix socket from every worker (one shared socket)", function()
    local path = os.tmpname()
    os.remove(path)
    local p, _, master = start({ "--workers", "2" }, { "path=" .. path })
    spin(path)
    -- a reload passes the socket on, and with it the duty to remove it
    assert(os.execute("kill -HUP " .. master))
    wait_log(p, "telling old worker")
    spin(path)
    p:kill("TERM")
    local _, code = finish(p)
    assert.equal(0, code)
    assert.is_nil(io.open(path))  -- the master removed it
  end)
end)

describe("lepoll.workers and --workers refuse what they cannot use", function()
  local function run(args)
    local out, ok = process.sh(process.program(HOST, args), 30)
    return out, ok
  end

  it("names the bad value", function()
    local out, ok = run({ "--workers", "0", "-e", "print(1)" })
    assert.is_false(ok)
    assert.truthy(out:find("'--workers' needs an integer 1..1024 or 'auto', got '0'", 1, true), out)
    assert.is_nil(out:find("^1\n"))  -- nothing ran
    out = run({ "-e", "print(pcall(require('lepoll').workers, {count = 0, mode = 'x'}))" })
    assert.truthy(out:find("bad argument #1 to 'workers' (option '", 1, true), out)
    out = run({ "-e", "local l = require 'lepoll'; l.listen({port = 0}, print);"
      .. " print(pcall(l.workers, {count = 2}))" })
    assert.truthy(out:find("false\tlepoll.workers: must come before lepoll.listen", 1, true), out)
    out = run({ "--workers=auto", "-e", "local l = require 'lepoll';"
      .. " print(l.worker_count() >= 1, l.worker_id())" })
    assert.equal("true\tnil\n", out)
  end)

  it("refuses connections made before the workers start", function()
    local out, ok = run({ "--workers", "2", "-e", [[
      local l = require "lepoll"
      local s = assert(l.listen({ port = 0 }, function() end))
      local _, port = s:address()
      l.spawn(function() l.connect("127.0.0.1", port) end)
      print(pcall(l.run))]] })
    assert.is_true(ok, out)
    assert.truthy(out:find("false\t.*connections made before the workers start"), out)
  end)
end)

describe("socket activation", function()
  -- systemd-socket-activate takes no port 0: a free port from the kernel,
  -- closed just before; nothing else on this machine binds it meanwhile
  local function free_port()
    local net = require "lepoll.net"
    local fd = assert(net.socket(net.INET, net.STREAM))
    assert(net.bind(fd, "127.0.0.1", 0))
    local _, port = net.getsockname(fd)
    fd:close()
    return port
  end

  it("systemd-socket-activate -l 127.0.0.1:PORT lepoll --workers 2 serves; workers see no LISTEN_*",
    function()
      tools.need("systemd-socket-activate")
      local port = free_port()
      local p, got, master = start({ "--workers", "2" }, { "port=8" },
        "systemd-socket-activate -l " .. sh("127.0.0.1:" .. port), port)
      assert.equal(port, got)  -- the inherited socket, not port 8
      spin(tostring(port))  -- both workers serve the one inherited socket
      assert.equal("LISTEN_FDS=- LISTEN_PID=- LISTEN_FDNAMES=- LEPOLL_OLD_WORKERS=-\n",
        curl(("http://127.0.0.1:%d/env"):format(port)))
      assert.is_true(master > 0)
      p:kill("TERM")
      local _, code = finish(p)
      assert.equal(0, code)
    end)

  it("matches LISTEN_FDNAMES to a listener's name, without workers", function()
    tools.need("systemd-socket-activate")
    local port = free_port()
    local p, got = start(nil, { "port=0", "name=web" },
      "systemd-socket-activate --fdname=web -l " .. sh("127.0.0.1:" .. port), port)
    assert.equal(port, got)
    assert.equal("0", (who(curl(("http://127.0.0.1:%d/"):format(port)))))
    p:kill("TERM")
    local _, code = finish(p)
    assert.equal(0, code)
  end)
end)
