local lepoll = require "lepoll"
local process = require "support.process"

describe("support.process", function()
  it("runs a Lua child with the spec's paths and collects its output", function()
    local probe = [[print(package.path:match("lua/%?%.lua") ~= nil); io.stdout:flush(); os.exit(3)]]
    local p = process.spawn(process.lua_command() .. " -e " .. process.shquote(probe))
    finally(function() p:close() end)
    assert.equal("true", p:line())
    local rest, how, code = p:wait()
    assert.equal("", rest)
    assert.equal("exit", how)
    assert.equal(3, code)
  end)

  it("signals a child by pid", function()
    local p = process.spawn("sh -c 'echo up; exec sleep 30'")
    finally(function() p:close() end)
    assert.equal("up", p:line())
    assert.is_true(p:kill("TERM"))
    local _, how, code = p:wait()
    assert.is_true(how == "signal" or code ~= 0)
  end)
end)

describe("support.files", function()
  local files = require "support.files"
  local lio = require "lepoll.io"

  it("lists this process's fds, the new ones included, and opens none for good", function()
    local before, n = files.fds()
    assert.equal(n, files.count_fds())
    local r, w = lio.pipe()
    local rfd, wfd = r:fileno(), w:fileno()
    local t, m = files.fds()
    r:close()
    w:close()
    assert.equal(n + 2, m)
    assert.matches("^pipe:%[%d+%]$", t[rfd])
    assert.equal(t[rfd], t[wfd])
    assert.same(before, (files.fds()))
  end)

  it("lists the framework's modules by file", function()
    local mods = files.framework_modules()
    local names = {}
    for i, m in ipairs(mods) do
      names[m[1]] = m[2]
      if i > 1 then assert.is_true(mods[i - 1][2] < m[2]) end
    end
    assert.equal("lua/lepoll/init.lua", names.lepoll)
  end)
end)

describe("support.framework", function()
  local h = require "support.framework"
  local invariants = require "support.invariants"
  local lio = require "lepoll.io"

  it("fails a test that leaves an fd open", function()
    local r, w
    local ok, err = pcall(h.with_loop, function() r, w = lio.pipe() end)
    r:close()
    w:close()
    assert.is_false(ok)
    assert.matches("the test left 2 fd%(s%) open: fd %d+ %-> pipe:", err)
  end)

  it("closes what a test defers, before the fd check", function()
    local r, w
    h.with_loop(function()
      r, w = lio.pipe()
      h.defer(r)
      h.defer(function() w:close() end)
    end)
    assert.equal("lepoll.Fd (closed)", tostring(r))
    assert.equal("lepoll.Fd (closed)", tostring(w))
  end)

  it("fails a test on a log line it did not expect", function()
    local ok, err = pcall(h.with_loop, function(loop)
      loop:spawn(function() error("unannounced failure") end)
    end)
    assert.is_false(ok)
    assert.matches("the framework logged 1 unexpected line%(s%):\n.*unannounced failure", err)
  end)

  it("hands a test the lines it expects, and fails it when none came", function()
    local lines
    h.with_loop(function(loop)
      lines = h.expect_log("announced failure")
      loop:spawn(function() error("announced failure") end)
    end)
    assert.equal(1, #lines)
    assert.matches("task failed: .*announced failure", lines[1])
    local ok, err = pcall(h.with_loop, function() h.expect_log("never logged") end)
    assert.is_false(ok)
    assert.matches("no log line matched the expected never logged", err)
  end)

  it("raises the test's own error first", function()
    local r, w
    local ok, err = pcall(h.with_loop, function()
      r, w = lio.pipe()
      error("the test's own")
    end)
    r:close()
    w:close()
    assert.is_false(ok)
    assert.matches("the test's own", err)
  end)

  it("sees what a loop holds until it is closed", function()
    h.with_loop(function(loop)
      local server = assert(loop:listen({ port = 0 }, function() end))
      local t = loop:after(10, function() end)
      local live = table.concat(invariants.live_objects(loop), "; ")
      assert.matches("server lepoll%.Server", live)
      assert.matches("1 timer%(s%)", live)
      invariants.check(loop)
      t:cancel()
      server:close()
      loop:close()
      assert.same({}, invariants.live_objects(loop))
      invariants.check(loop)  -- a closed loop passes
    end)
  end)

  it("bounds wait_until, run, task and poll", function()
    h.with_loop(function(loop)
      local t0 = lepoll.now()
      assert.error_matches(function()
        h.wait_until(loop, function() return false end, 0.05, "nothing")
      end, "timed out waiting for nothing %(0%.")
      assert.is_true(lepoll.now() - t0 >= 0.05)
      local t = loop:every(0.01, function() end)
      assert.error_matches(function() h.run(loop, 0.05) end, "run%(%) did not return within 0%.")
      t:cancel()
      assert.error_matches(function()
        h.task(loop, function() loop:sleep(10) end, 0.05)
      end, "the test's task did not return within 0%.")
      assert.error_matches(function() h.poll(function() return false end, 0.05, "it") end,
        "timed out waiting for it %(0%.")
    end)
  end)

  it("waits inside a task by sleeping on the loop", function()
    h.with_task(function(loop)
      local flag = false
      loop:after(0.01, function() flag = true end)
      assert.is_true(h.wait_until(loop, function() return flag end, 5, "the timer"))
    end)
  end)

  it("raises a task's error, and a run() that ends before the task", function()
    local ok, err = pcall(h.with_task, function() error("inside the task") end)
    assert.is_false(ok)
    assert.matches("inside the task", err)
    ok, err = pcall(h.with_task, function(loop)
      loop:stop()
      loop:sleep(10)
    end)
    assert.is_false(ok)
    assert.matches("^run%(%) returned before the test's task did", err)
  end)
end)
