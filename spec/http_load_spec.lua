-- lepoll.http in a child process (spec/support/http_app.lua) under load
-- from wrk and h2load (HTTP/1.1, keep-alive) at 64 and 1000 connections,
-- a second or two each: no errors, every response 2xx, every request the
-- clients counted answered by the handler.
local tools = require "support.http_tools"

local q = tools.shquote
local NOFILE = 4096  -- 1000 connections and then some, for both sides

-- wrk's summary, one line (wrk's own script API; LuaJIT inside wrk)
local WRK_SCRIPT = [[
done = function(summary)
  local e = summary.errors
  io.write(string.format("wrk-summary requests %d connect %d read %d write %d status %d "
    .. "timeout %d\n", summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
]]

local function ulimited(cmdline)
  return ("sh -c %s"):format(q(("ulimit -n %d && exec %s"):format(NOFILE, cmdline)))
end

describe("lepoll.http under load", function()
  local app
  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  local function wrk(conns, threads, seconds)
    tools.need("wrk")
    app = tools.app({}, NOFILE)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(WRK_SCRIPT)
    f:close()
    local out, ok = tools.run(ulimited(("wrk -t%d -c%d -d%ds --timeout 5s -s %s %s")
      :format(threads, conns, seconds, q(script), q(app:url("/")))), 60)
    os.remove(script)
    assert(ok, out)
    local n, c, r, w, st, t = out:match(
      "wrk%-summary requests (%d+) connect (%d+) read (%d+) write (%d+) status (%d+) timeout (%d+)")
    assert(n, out)
    assert.same({ connect = 0, read = 0, write = 0, status = 0, timeout = 0 },
      { connect = tonumber(c), read = tonumber(r), write = tonumber(w), status = tonumber(st),
        timeout = tonumber(t) }, out)
    assert.is_nil(out:find("Non%-2xx"), out)
    n = tonumber(n)
    assert.is_true(n >= conns, out)
    local _, hellos = app:log()
    -- wrk counts the responses it read; the handler may have answered a
    -- few more it stopped reading at the end
    assert.is_true(hellos >= n, ("handler answered %d, wrk read %d"):format(hellos, n))
  end

  local function h2load(conns, threads, seconds)
    tools.need("h2load")
    app = tools.app({}, NOFILE)
    local out, ok = tools.run(ulimited(("h2load --h1 -c %d -t %d -D %d %s")
      :format(conns, threads, seconds, q(app:url("/")))), 60)
    assert(ok, out)
    local total, done, succeeded, failed, errored, timeout = out:match(
      "requests: (%d+) total, %d+ started, (%d+) done, (%d+) succeeded, (%d+) failed, "
      .. "(%d+) errored, (%d+) timeout")
    local s2, s3, s4, s5 = out:match("status codes: (%d+) 2xx, (%d+) 3xx, (%d+) 4xx, (%d+) 5xx")
    assert(total and s2, out)
    assert.same({ failed = 0, errored = 0, timeout = 0, s3 = 0, s4 = 0, s5 = 0 },
      { failed = tonumber(failed), errored = tonumber(errored), timeout = tonumber(timeout),
        s3 = tonumber(s3), s4 = tonumber(s4), s5 = tonumber(s5) }, out)
    assert.equal(tonumber(done), tonumber(succeeded), out)
    assert.equal(tonumber(done), tonumber(s2), out)
    assert.is_true(tonumber(done) >= conns, out)
    local _, hellos = app:log()
    assert.is_true(hellos >= tonumber(done),
      ("handler answered %d, h2load counted %s"):format(hellos, done))
  end

  it("wrk, 64 connections", function() wrk(64, 1, 1) end)
  it("wrk, 1000 connections", function() wrk(1000, 2, 2) end)
  it("h2load --h1, 64 connections", function() h2load(64, 1, 1) end)
  it("h2load --h1, 1000 connections", function() h2load(1000, 2, 2) end)
end)
