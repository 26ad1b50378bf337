-- lepoll.http: what an idle keep-alive connection costs in Lua heap, after
-- it was served. The budget is the framework's idle connection
-- (spec/lepoll_memory_spec.lua) plus the state serve() keeps between
-- requests and its entry among the idle: a request's tables kept alive,
-- or a connection coroutine whose stack grew while a handler ran (the
-- reason requests run in pooled workers), fails it.
local net = require "lepoll.net"
local http = require "lepoll.http"
local client = require "support.client"
local h = require "support.framework"
local invariants = require "support.invariants"

local CONNS = 400      -- both ends in this process: stays under 1024 fds
local BUDGET = 1600    -- bytes per idle connection (about 1,560 measured)
local GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

local function heap_bytes()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

describe("an idle lepoll.http keep-alive connection", function()
  it("costs at most " .. BUDGET .. " bytes of Lua heap after a request", function()
    h.with_loop(function(loop)
      local connect, closeall = client.connector()
      h.defer(closeall)
      local served = 0
      local server = assert(http.listen({ loop = loop, port = 0, backlog = CONNS },
        function(_, res)
          served = served + 1
          res:header("Content-Type", "text/plain")
          res:finish("hello\n")
        end))
      h.defer(server)
      local _, port = server:address()
      local socks = {}
      invariants.presize_fd_table(loop, 4 * CONNS)
      -- one connection served first: the worker pool and the server's
      -- tables exist before the count; the others connect (not accepted
      -- yet: the loop does not run) before it too
      socks[CONNS] = connect(port)
      assert.equal(#GET, net.send(socks[CONNS], GET))
      h.wait_until(loop, function() return served == 1 end, nil, "the first request")
      for i = 1, CONNS - 1 do socks[i] = connect(port) end
      local before = heap_bytes()
      for i = 1, CONNS - 1 do assert.equal(#GET, net.send(socks[i], GET)) end
      h.wait_until(loop, function() return served == CONNS end, nil, CONNS .. " requests")
      -- every answer read, so nothing is queued on the server's side
      for i = 1, CONNS do
        local got = ""
        h.wait_until(loop, function()
          got = got .. (net.recv(socks[i], 4096) or "")
          return got:find("hello\n", 1, true)
        end, nil, "answer " .. i)
      end
      local per = (heap_bytes() - before) / (CONNS - 1)
      assert.is_true(per > 0)
      assert.is_true(per <= BUDGET, ("%.1f bytes per connection"):format(per))
      assert.equal(CONNS, server:stats().active)
    end)
  end)
end)
