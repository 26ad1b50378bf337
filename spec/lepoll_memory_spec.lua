-- lepoll framework: what an idle connection costs in Lua heap. The bound
-- is the budget docs/framework.md explains (a coroutine with three call
-- records on its 40-slot minimum stack, and the connection table):
-- one call record more, or a stack that doubled, fails it.
local net = require "lepoll.net"
local client = require "support.client"
local h = require "support.framework"
local invariants = require "support.invariants"

local CONNS = 400      -- both ends in this process: stays under 1024 fds
local BUDGET = 1380    -- bytes of Lua heap per idle connection (1345 measured)

local function heap_bytes()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

describe("an idle connection", function()
  it("costs at most " .. BUDGET .. " bytes of Lua heap, handler waiting in read", function()
    h.with_loop(function(loop)
      local connect, closeall = client.connector()
      h.defer(closeall)
      local started = 0
      local server = assert(loop:listen({ port = 0, backlog = CONNS }, function(conn)
        started = started + 1
        while true do
          local data = conn:read()
          if not data or not conn:write(data) then return end
        end
      end))
      local _, port = server:address()
      -- what the clients and the loop's tables need is there before the count
      local socks = {}
      for i = 1, CONNS do socks[i] = connect(port) end
      invariants.presize_fd_table(loop, 4 * CONNS)
      invariants.check(loop)  -- its own bookkeeping, too
      local before = heap_bytes()
      h.wait_until(loop, function() return server:stats().active == CONNS end, nil,
        CONNS .. " connections")
      assert.equal(CONNS, started)
      local per = (heap_bytes() - before) / CONNS
      assert.is_true(per > 0)
      assert.is_true(per <= BUDGET, ("%.1f bytes per connection"):format(per))
      -- and they are still served
      assert.equal(1, net.send(socks[CONNS], "x"))
      local got = h.wait_until(loop, function() return net.recv(socks[CONNS], 16) end, nil,
        "the echo")
      assert.equal("x", got)
    end)
  end)
end)
