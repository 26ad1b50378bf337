-- spec/support/invariants.lua: the checker the framework specs run after
-- every step catches each broken invariant it states (corrupted on
-- purpose here), and passes a healthy loop.
local lepoll = require "lepoll"
local connm = require "lepoll._conn"
local invariants = require "support.invariants"
local client = require "support.client"

local L = connm.layout

-- A loop with one accepted connection whose handler waits in read.
local function parked()
  local loop = lepoll.loop()
  finally(function() loop:close() end)
  local conn
  local server = assert(loop:listen({ port = 0 }, function(c)
    conn = c
    c:read()
  end))
  local _, port = server:address()
  local s = client.connect(port)
  finally(function() s:close() end)
  local deadline = lepoll.now() + client.WAIT_MS / 1000
  while not (conn and conn[L.READER]) and lepoll.now() < deadline do loop:step(0.01) end
  assert.truthy(conn and conn[L.READER], "the handler did not park")
  return loop, conn
end

local function broken(loop, pattern)
  local ok, err = pcall(invariants.check, loop)
  assert.is_false(ok)
  assert.matches(pattern, err)
end

describe("the invariant checker", function()
  it("passes a healthy loop, open and closed", function()
    local loop = parked()
    assert.is_true(invariants.check(loop))
    loop:close()
    assert.is_true(invariants.check(loop))
  end)

  it("catches a parked reader without a negative wanted size", function()
    local loop, conn = parked()
    local st = conn[L.STATE]
    conn[L.STATE] = L.READY
    broken(loop, "a reader is parked but STATE is 1")
    conn[L.STATE] = st
  end)

  it("catches a negative wanted size without a reader", function()
    local loop, conn = parked()
    local t = conn[L.READER]
    conn[L.READER] = false
    broken(loop, "STATE %-%d+ %(a parked reader's size%) but no reader")
    conn[L.READER] = t
  end)

  it("catches DRAINED on a connection not registered", function()
    local loop, conn = parked()
    local st, x, t = conn[L.STATE], conn[L.EXTRAS], conn[L.READER]
    conn[L.STATE], conn[L.EXTRAS], conn[L.READER] = L.DRAINED, nil, false
    broken(loop, "DRAINED but not registered")
    conn[L.STATE], conn[L.EXTRAS], conn[L.READER] = st, x, t
  end)

  it("catches extras made without a need", function()
    local loop, conn = parked()
    local x = conn[L.EXTRAS]
    conn[L.EXTRAS] = { conn = conn, made_for = "deadline", heap_index = false }
    broken(loop, "extras made for deadline without the need")
    conn[L.EXTRAS] = x
  end)

  it("catches a count of live objects that does not add up", function()
    local loop = parked()
    loop.nactive = loop.nactive + 1
    broken(loop, "nactive is %d+; connections 1 %+ servers 1")
    loop.nactive = loop.nactive - 1
  end)
end)
