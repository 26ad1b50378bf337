-- lepoll framework: listeners. examples/hello.lua in a child process with
-- plain blocking clients; accept under fd exhaustion (RLIMIT_NOFILE 64);
-- no fd left behind after 10,000 connections; IPv4, IPv6 and unix sockets.
local net = require "lepoll.net"
local client = require "support.client"
local process = require "support.process"
local h = require "support.framework"

-- A blocking client: connect, read to EOF.
local function fetch(port)
  local s = assert(net.socket(net.INET, net.STREAM))
  local ok, err = net.connect(s, "127.0.0.1", port)
  if not ok then
    s:close()
    return nil, err
  end
  local parts = {}
  while true do
    local d = net.recv(s, 4096)
    if not d or d == "" then break end
    parts[#parts + 1] = d
  end
  s:close()
  return table.concat(parts)
end

local function listening_port(proc)
  local line = proc:line()
  assert(line, "the server printed nothing: " .. proc:stderr())
  local host, port = line:match("^listening on (.+):(%d+)$")
  assert(host, "unexpected first line: " .. line)
  return tonumber(port)
end

describe("examples/hello.lua", function()
  local proc
  after_each(function() if proc then proc:close() end end)

  it("serves 1,000 sequential and 200 concurrent clients exactly 'hello\\n'", function()
    proc = process.script("examples/hello.lua", "0")
    local port = listening_port(proc)
    for i = 1, 1000 do
      local got = fetch(port)
      if got ~= "hello\n" then assert.equal("hello\n", got, "client " .. i) end
    end
    local socks = {}
    finally(function() for _, s in ipairs(socks) do s:close() end end)
    for i = 1, 200 do
      local s = assert(net.socket(net.INET, net.STREAM))
      socks[i] = s
      assert(net.connect(s, "127.0.0.1", port))
    end
    for i = 1, 200 do
      local parts = {}
      while true do
        local d = net.recv(socks[i], 4096)
        if not d or d == "" then break end
        parts[#parts + 1] = d
      end
      assert.equal("hello\n", table.concat(parts))
    end
    assert.is_true(proc:kill("TERM"))
    local _, how, code = proc:wait()
    assert.same({ "exit", 0 }, { how, code })
  end)
end)

describe("accept under EMFILE", function()
  local proc, script
  after_each(function()
    if proc then proc:close() end
    if script then os.remove(script) end
  end)

  -- The server holds each connection until its client closes it.
  local SERVER = [[
    local lepoll = require "lepoll"
    local server = assert(lepoll.listen({ port = 0, accept_backoff = 0.05 }, function(conn)
      conn:write("hi\n")
      while conn:read() do end
    end))
    local host, port = server:address()
    io.stdout:write("listening on ", host, ":", port, "\n")
    io.stdout:flush()
    lepoll.run()
  ]]

  local function cputicks(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    local rest = s:match("%) (.*)$")
    local fields = {}
    for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
    return tonumber(fields[12]) + tonumber(fields[13])  -- utime + stime
  end

  local function child_of(pid)
    local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
    local s = f and f:read("a") or ""
    if f then f:close() end
    return tonumber(s:match("%d+"))
  end

  it("keeps serving once fds free up, without spinning meanwhile", function()
    script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(SERVER)
    f:close()
    proc = process.spawn("prlimit --nofile=64:64 " .. process.lua_command() .. " "
      .. process.shquote(script))
    local port = listening_port(proc)
    local pid = assert(child_of(proc.pid), "no server pid")
    local clients = {}
    finally(function() for _, s in ipairs(clients) do pcall(s.close, s) end end)
    -- 100 clients: the kernel completes every handshake (backlog), the
    -- server runs out of fds after about 55 of them
    for i = 1, 100 do
      local s = assert(net.socket(net.INET, net.STREAM))
      clients[i] = s
      assert(net.connect(s, "127.0.0.1", port))
    end
    local served = 0
    for i = 1, 40 do
      if client.recv_upto(clients[i], 3) == "hi\n" then served = served + 1 end
    end
    assert.equal(40, served)
    -- exhausted now: measure the server's CPU for a second
    local getconf = io.popen("getconf CLK_TCK")
    local tick = tonumber(getconf:read("l")) or 100
    getconf:close()
    local c0 = cputicks(pid)
    local t0 = os.time()
    os.execute("sleep 1")
    local used = (cputicks(pid) - c0) / tick
    assert.is_true(used < 0.2, ("server used %.2fs of CPU in ~%ds while out of fds")
      :format(used, os.time() - t0 + 1))
    assert.matches("pausing accepts", proc:stderr())
    -- free fds: the waiting clients get served
    for i = 1, 40 do clients[i]:close() end
    for i = 41, 80 do
      assert.equal("hi\n", client.recv_upto(clients[i], 3), "client " .. i)
    end
  end)
end)

describe("lepoll.listen", function()
  it("returns a server with :address() (real port for port 0) and :close()", function()
    h.with_loop(function(loop)
      local s = assert(loop:listen({ host = "127.0.0.1", port = 0, backlog = 16,
        reuseport = true }, function() end))
      local host, p = s:address()
      assert.equal("127.0.0.1", host)
      assert.is_true(p > 0)
      assert.matches("lepoll.Server %(127.0.0.1:%d+%)", tostring(s))
      assert.is_true(s:close())
      assert.is_true(s:close())
      assert.same({ nil, "closed" }, { s:address() })
      assert.equal(-1, s:fileno())
    end)
  end)

  it("reports a bind failure as nil, message, errno", function()
    h.with_loop(function(loop)
      local s1 = assert(loop:listen({ port = 0 }, function() end))
      local _, p = s1:address()
      local s2, msg, en = loop:listen({ port = p, reuseaddr = false }, function() end)
      assert.is_nil(s2)
      assert.matches("bind 127.0.0.1:" .. p, msg)
      assert.equal(net.errno.EADDRINUSE, en)
    end)
  end)

  it("listens on IPv6", function()
    h.with_loop(function(loop)
      local s = assert(loop:listen({ host = "::1", port = 0, v6only = true },
        function(c) c:write("v6\n") end))
      local host, p = s:address()
      assert.equal("::1", host)
      local got
      loop:spawn(function()
        local c = assert(loop:connect("::1", p))
        got = c:readline()
        c:close()
        s:close()
      end)
      h.run(loop)
      assert.equal("v6", got)
    end)
  end)

  it("raises on bad options", function()
    h.with_loop(function(loop)
      local handler = function() end
      local function opt(name)
        return "bad argument #1 to 'listen' %(option '" .. name .. "'"
      end
      for _, case in ipairs({
        { "x", "bad argument #1 to 'listen' %(table expected, got string%)" },
        { {}, opt("port") }, { { port = -1 }, opt("port") }, { { port = 70000 }, opt("port") },
        { { port = 1.5 }, opt("port") }, { { path = "" }, opt("path") },
        { { path = "/tmp/x", port = 1 },
          "bad argument #1 to 'listen' %(options 'path' and 'port'" },
        { { port = 0, backlog = 0 }, opt("backlog") }, { { port = 0, hwm = -5 }, opt("hwm") },
        { { port = 0, idle_timeout = "x" }, opt("idle_timeout") },
        { { port = 0, host = 7 }, opt("host") },
        { { port = 0, accept_backoff = 0 }, opt("accept_backoff") },
      }) do
        assert.error_matches(function() loop:listen(case[1], handler) end, case[2])
      end
      assert.error_matches(function() loop:listen({ port = 0 }, "nope") end,
        "bad argument #2 to 'listen'")
    end)
  end)

  it("leaves no fd behind after 10,000 connections", function()
    h.with_loop(function(loop)
      local server = assert(loop:listen({ port = 0, backlog = 512 }, function(c)
        c:write("hello\n")
      end))
      local _, port = server:address()
      local ok, workers = 0, 100
      for _ = 1, workers do  -- 100 workers x 100 connections, concurrently
        loop:spawn(function()
          for _ = 1, 100 do
            local c = assert(loop:connect("127.0.0.1", port))
            if c:readn(6) == "hello\n" then ok = ok + 1 end
            c:close()
          end
          workers = workers - 1
          if workers == 0 then
            server:close()
            loop:stop()
          end
        end)
      end
      h.run(loop, 30)
      assert.equal(10000, ok)
      assert.equal(10000, server:stats().accepted)
      assert.equal(0, server:stats().active)
      loop:close()
      assert.same({}, h.open_fds())  -- none since the loop was made
    end)
  end)
end)
