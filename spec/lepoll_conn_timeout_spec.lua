-- lepoll framework: a connection's timeouts (idle, read, write, set per
-- connection), with real clients over loopback in the same process.
local lepoll = require "lepoll"
local h = require "support.framework"

describe("timeouts", function()
  it("closes an idle connection", function()
    h.with_task(function(loop)
      local r
      local server, port = h.serve(loop, function(conn) r = { conn:read() } end,
        { idle_timeout = 0.1 })
      local t0 = lepoll.now()  -- before the accept, where the idle time starts
      local c = assert(loop:connect("127.0.0.1", port))
      assert.same({ nil, "closed" }, { c:read() })
      local dt = lepoll.now() - t0
      assert.is_true(dt >= 0.09 and dt < 1, "closed after " .. dt)
      assert.same({ nil, "timeout" }, r)
      c:close()
      server:close()
    end)
  end)

  it("times out one read and keeps the connection", function()
    h.with_task(function(loop)
      local r1, r2
      local server, port = h.serve(loop, function(conn)
        r1 = { conn:read() }
        conn:set_timeouts({ read = false })
        r2 = conn:readn(4)  -- "late", a byte at a time over a slow network
        conn:write("got " .. r2)
      end, { read_timeout = 0.05 })
      local c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return r1 end, nil, "the read to time out")
      c:write("late")
      assert.equal("got late", c:readn(8))
      c:close()
      server:close()
      assert.same({ nil, "timeout" }, r1)
    end)
  end)

  it("times out a write to a peer that never reads", function()
    h.with_task(function(loop)
      local r
      local server, port = h.serve(loop, function(conn)
        local chunk = string.rep("w", 65536)
        for _ = 1, 10000 do
          local ok, err = conn:write(chunk)
          if not ok then
            r = err
            return
          end
        end
      end, { write_timeout = 0.1 })
      local c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return r end, nil, "the write to time out")
      assert.equal("timeout", r)
      c:close()
      server:close()
    end)
  end)

  it("set_timeouts changes one connection", function()
    h.with_task(function(loop)
      local r
      local server, port = h.serve(loop, function(conn)
        conn:set_timeouts({ read = 0.05 })
        assert.same({ read = 0.05, write = false, idle = false }, conn:timeouts())
        r = { conn:read() }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert.same({ nil, "closed" }, { c:read() })
      c:close()
      server:close()
      assert.same({ nil, "timeout" }, r)
      assert.error_matches(function() c:set_timeouts({ bogus = 1 }) end,
        "bad argument #1 to 'set_timeouts' %(unknown timeout 'bogus'%)")
    end)
  end)
end)
