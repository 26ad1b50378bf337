-- spec/support/invariants.lua: the checker the framework specs run after
-- every step catches each broken invariant it states (corrupted on
-- purpose here), and passes a healthy loop.
local connm = require "lepoll._conn"
local invariants = require "support.invariants"
local client = require "support.client"
local h = require "support.framework"

local L = connm.layout

-- One accepted connection on loop whose handler waits in read; returns it.
local function parked(loop)
  local conn
  local _, port = h.serve(loop, function(c)
    conn = c
    c:read()
  end)
  h.defer(client.connect(port))
  h.wait_until(loop, function() return conn and conn[L.READER] end, nil, "the handler to park")
  return conn
end

-- Set t's fields as changes says ({ key, value } pairs, a value may be
-- nil), assert that the checker then fails with pattern, and that it
-- passes again once the fields are back. They are put back before any
-- assertion can fail, so the harness's own checks (as the loop closes)
-- always see a sound loop.
local function corrupt(loop, t, changes, pattern)
  local old = {}
  for i, kv in ipairs(changes) do old[i] = t[kv[1]] end
  for _, kv in ipairs(changes) do t[kv[1]] = kv[2] end
  local ok, err = pcall(invariants.check, loop)
  for i, kv in ipairs(changes) do t[kv[1]] = old[i] end
  assert.is_false(ok)
  assert.matches(pattern, err)
  assert.is_true(invariants.check(loop))
end

describe("the invariant checker", function()
  it("passes a healthy loop, open and closed", function()
    h.with_loop(function(loop)
      parked(loop)
      assert.is_true(invariants.check(loop))
      loop:close()  -- the harness's close that follows is a no-op
      assert.is_true(invariants.check(loop))
    end)
  end)

  it("catches a parked reader without a negative wanted size", function()
    h.with_loop(function(loop)
      local conn = parked(loop)
      corrupt(loop, conn, { { L.STATE, L.READY } }, "a reader is parked but STATE is 1")
    end)
  end)

  it("catches a negative wanted size without a reader", function()
    h.with_loop(function(loop)
      local conn = parked(loop)
      corrupt(loop, conn, { { L.READER, false } },
        "STATE %-%d+ %(a parked reader's size%) but no reader")
    end)
  end)

  it("catches DRAINED on a connection not registered", function()
    h.with_loop(function(loop)
      local conn = parked(loop)
      corrupt(loop, conn, { { L.STATE, L.DRAINED }, { L.EXTRAS, nil }, { L.READER, false } },
        "DRAINED but not registered")
    end)
  end)

  it("catches extras made without a need", function()
    h.with_loop(function(loop)
      local conn = parked(loop)
      corrupt(loop, conn,
        { { L.EXTRAS, { conn = conn, made_for = "deadline", heap_index = false } } },
        "extras made for deadline without the need")
    end)
  end)

  it("catches a count of live objects that does not add up", function()
    h.with_loop(function(loop)
      parked(loop)
      corrupt(loop, loop, { { "nactive", loop.nactive + 1 } },
        "nactive is %d+; connections 1 %+ servers 1")
    end)
  end)

  it("passes extras made for a deadline after set_timeouts turned them off", function()
    h.with_loop(function(loop)
      local timed_out, waiting
      local server, port = h.serve(loop, function(conn)
        timed_out = { conn:read() }          -- times out: extras made for "deadline"
        conn:set_timeouts({ read = false })
        waiting = true
        conn:read()                          -- waits, with no timeout now
      end, { read_timeout = 0.05 })
      local c
      loop:spawn(function() c = assert(loop:connect("127.0.0.1", port)) end)
      h.wait_until(loop, function() return waiting end, nil, "the second read")
      assert.same({ nil, "timeout" }, timed_out)
      assert.is_true(invariants.check(loop))
      c:close()
      server:close()
    end)
  end)
end)
