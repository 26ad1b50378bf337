-- lepoll framework: graceful shutdown. A server in a separate process is
-- sent SIGTERM with requests in flight: it stops accepting, lets them
-- finish, then run() returns and the script exits.
local lepoll = require "lepoll"
local net = require "lepoll.net"
local send_all = require "support.client".send_all
local process = require "support.process"
local h = require "support.framework"

local SERVER = [[
  local lepoll = require "lepoll"
  local server = assert(lepoll.listen({ port = 0 }, function(conn)
    local line = conn:readline()
    io.stdout:write("got ", tostring(line), "\n")
    io.stdout:flush()
    lepoll.sleep(0.3)                 -- a slow request
    conn:write("reply to " .. tostring(line) .. "\n")
  end))
  local host, port = server:address()
  io.stdout:write("listening on ", host, ":", port, "\n")
  io.stdout:flush()
  lepoll.run()
  io.stdout:write("drained\n")
]]

describe("graceful shutdown", function()
  local proc, script
  after_each(function()
    if proc then proc:close() end
    if script then os.remove(script) end
  end)

  it("on SIGTERM lets in-flight clients get their full reply, then exits", function()
    script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(SERVER)
    f:close()
    proc = process.script(script)
    local line = assert(proc:line(), proc:stderr())
    local port = tonumber(line:match("listening on .+:(%d+)"))
    local clients = {}
    finally(function() for _, s in ipairs(clients) do s:close() end end)
    for i = 1, 5 do
      local s = assert(net.socket(net.INET, net.STREAM))
      clients[i] = s
      assert(net.connect(s, "127.0.0.1", port))
      send_all(s, "req" .. i .. "\n")
    end
    local got = {}
    for _ = 1, 5 do got[#got + 1] = proc:line() end   -- all five in their handlers
    table.sort(got)
    assert.same({ "got req1", "got req2", "got req3", "got req4", "got req5" }, got)
    assert.is_true(proc:kill("TERM"))
    -- the listener closes soon after the signal: poll for that, bounded.
    -- A probe that races the close can be reset from the accept queue
    -- (ECONNRESET); only a refusal says the port is closed.
    local function refused()
      local late <close> = assert(net.socket(net.INET, net.STREAM))
      local ok, _, e = net.connect(late, "127.0.0.1", port)
      return not ok and e == net.errno.ECONNREFUSED
    end
    h.poll(refused, 5, "the listener to close")   -- no longer accepting
    for i = 1, 5 do
      local parts = {}
      while true do
        local d = net.recv(clients[i], 100)
        if not d or d == "" then break end
        parts[#parts + 1] = d
      end
      assert.equal("reply to req" .. i .. "\n", table.concat(parts))
    end
    local rest, how, code = proc:wait()
    assert.matches("drained\n$", rest)   -- after any late probe's "got nil"
    assert.same({ "exit", 0 }, { how, code })
  end)
end)

describe("loop:shutdown", function()
  it("closes what is left at the deadline and returns from run()", function()
    h.with_loop(function(loop)
      local told, result
      local server = assert(loop:listen({ port = 0 }, function(conn)
        told = { conn:read() }          -- the shutdown is news once
        result = { conn:read() }        -- then the read waits, and never gets data
      end))
      local _, port = server:address()
      local client
      loop:spawn(function()
        client = assert(loop:connect("127.0.0.1", port))
        h.wait_until(loop, function() return server:stats().active == 1 end, nil, "the accept")
        assert.is_false(loop:shutting_down())
        loop:shutdown(0.1)
        assert.is_true(loop:shutting_down())
      end)
      local t0 = lepoll.now()
      h.run(loop, h.WAIT)
      local dt = lepoll.now() - t0
      assert.is_true(dt >= 0.1 and dt < 2, "took " .. dt)
      assert.same({ nil, "shutdown" }, told)
      assert.same({ nil, "closed" }, result)
      assert.equal(0, server:stats().active)
      client:close()
    end)
  end)

  it("returns at once when nothing is in flight", function()
    h.with_loop(function(loop)
      local server = assert(loop:listen({ port = 0 }, function() end))
      loop:after(0.01, function() loop:shutdown() end)
      h.run(loop, h.WAIT)
      assert.equal(-1, server:fileno())  -- the listener is closed
    end)
  end)
end)
