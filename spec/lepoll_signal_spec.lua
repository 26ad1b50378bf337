-- lepoll framework: lepoll.on_signal through signalfd; SIGPIPE ignored.
local lepoll = require "lepoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local h = require "support.framework"

local function blocked(signo)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  local mask = tonumber(s:match("SigBlk:%s*(%x+)"), 16)
  return mask & (1 << (signo - 1)) ~= 0
end

local function kill_self(sig)
  assert(os.execute(("kill -%s %d"):format(sig, lio.getpid())))
end

describe("lepoll.on_signal", function()
  it("runs the handler in a coroutine for each signal, until cancelled", function()
    h.with_loop(function(loop)
      local got = {}
      local h1 = assert(loop:on_signal("USR1", function(signo)
        loop:sleep(0)  -- handlers may wait
        got[#got + 1] = signo
      end))
      local h2 = assert(loop:on_signal("SIGUSR2", function(signo) got[#got + 1] = signo end))
      assert.is_true(blocked(lio.SIGUSR1))
      kill_self("USR1")
      kill_self("USR2")
      h.wait_until(loop, function() return #got == 2 end, nil, "both handlers")
      table.sort(got)
      assert.same({ lio.SIGUSR1, lio.SIGUSR2 }, got)
      assert.is_true(h1:cancel())
      assert.is_true(h1:cancel())
      assert.is_false(blocked(lio.SIGUSR1))
      assert.is_true(blocked(lio.SIGUSR2))
      h2:cancel()
      assert.is_false(blocked(lio.SIGUSR2))
    end)
  end)

  it("accepts numbers and raises on unknown names", function()
    h.with_loop(function(loop)
      local sh = assert(loop:on_signal(lio.SIGUSR1, function() end))
      sh:cancel()
      assert.error_matches(function() loop:on_signal("NOPE", function() end) end,
        "bad argument #1 to 'on_signal' %(signal name or number expected, got 'NOPE'%)")
      assert.error_matches(function() loop:on_signal(0, function() end) end,
        "bad argument #1 to 'on_signal' %(signal name or number expected, got 0%)")
      assert.error_matches(function() loop:on_signal("USR1", "x") end,
        "bad argument #2 to 'on_signal' %(function expected, got string%)")
    end)
  end)

  it("leaves SIGINT and SIGTERM unblocked after the default loop's run()", function()
    h.with_default_loop(function(loop)
      lepoll.after(0, function() end)
      h.run(loop, nil, lepoll.run)
      assert.is_false(blocked(lio.SIGINT))
      assert.is_false(blocked(lio.SIGTERM))
    end)
  end)
end)

describe("SIGPIPE", function()
  it("never kills the process: writing to a closed pipe returns EPIPE", function()
    h.with_loop(function()  -- a loop ignores SIGPIPE
      local r, w = lio.pipe()
      r:close()
      local n, msg, en = lio.write(w, "x")
      w:close()
      assert.is_nil(n)
      assert.is_string(msg)
      assert.equal(net.errno.EPIPE, en)
    end)
  end)
end)
