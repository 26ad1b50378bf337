-- lepoll framework: timers (after, every, cancel, sleep) and the heap
-- behind them.
local lepoll = require "lepoll"
local heap = require "lepoll._heap"
local h = require "support.framework"
local invariants = require "support.invariants"

describe("lepoll._heap", function()
  it("pops nodes in (deadline, insertion) order with removals", function()
    local hp = heap.new()
    local nodes = {}
    math.randomseed(42)
    for i = 1, 2000 do
      local n = { at = math.random(1, 300), id = i }
      nodes[i] = n
      heap.push(hp, n)
    end
    for i = 1, 2000, 3 do heap.remove(hp, nodes[i]) end
    for i = 2, 2000, 7 do  -- move some deadlines
      local n = nodes[i]
      if n.heap_index then
        n.at = math.random(1, 300)
        heap.update(hp, n)
      end
    end
    local last, count = nil, 0
    while true do
      local n = heap.pop(hp)
      if not n then break end
      count = count + 1
      if last then
        assert.is_true(last.at < n.at or (last.at == n.at and last.seq < n.seq))
      end
      assert.is_false(n.heap_index)
      last = n
    end
    assert.equal(2000 - 667, count)
    assert.equal(0, hp.n)
  end)
end)

describe("lepoll.after", function()
  it("fires timers in deadline order, ties first in first out", function()
    h.with_loop(function(loop)
      local fired = {}
      local delays = { 0.05, 0.01, 0.03, 0.02, 0.04, 0.01, 0 }
      -- before the first after(): its deadline counts from its call, and
      -- a busy machine may let time pass before the next line
      local t0 = lepoll.now()
      for i, d in ipairs(delays) do
        loop:after(d, function() fired[#fired + 1] = i end)
      end
      h.run(loop)
      assert.same({ 7, 2, 6, 4, 3, 5, 1 }, fired)
      assert.is_true(lepoll.now() - t0 >= 0.05)
    end)
  end)

  it("passes the timer, and cancel prevents firing", function()
    h.with_loop(function(loop)
      local got, fired2 = nil, false
      local t1
      t1 = loop:after(0.01, function(t) got = t end)
      local t2 = loop:after(0.01, function() fired2 = true end)
      assert.is_true(t2:pending())
      assert.is_true(t2:cancel())
      assert.is_false(t2:cancel())
      assert.is_false(t2:pending())
      h.run(loop)
      assert.equal(t1, got)
      assert.is_false(fired2)
      assert.is_false(t1:pending())
    end)
  end)

  it("logs a raising callback and keeps going", function()
    h.with_loop(function(loop)
      local msgs = h.expect_log("timer oops")
      local after = false
      loop:after(0, function() error("timer oops") end)
      loop:after(0.01, function() after = true end)
      h.run(loop)
      assert.is_true(after)
      assert.equal(1, #msgs)
      assert.matches("timer oops", msgs[1])
    end)
  end)

  it("handles 100,000 pending timers", function()
    h.with_loop(function(loop)
      local n, last, ordered = 0, -1, true
      local timers = {}
      for i = 1, 100000 do
        local d = (i * 7919 % 100000) / 1e6  -- 0 .. 0.1 s, shuffled
        timers[i] = loop:after(d, function(t)
          local at = invariants.timer_deadline(t)
          if at < last then ordered = false end
          last = at
          n = n + 1
        end)
      end
      for i = 1, 100000, 2 do timers[i]:cancel() end
      h.run(loop)
      assert.equal(50000, n)
      assert.is_true(ordered)
    end)
  end)

  it("raises on bad arguments", function()
    h.with_loop(function(loop)
      local f = function() end
      local seconds = "bad argument #1 to 'after' %(non%-negative number of seconds expected"
      local fn = "bad argument #2 to 'after' %(function expected"
      for _, case in ipairs({ { -1, f, seconds }, { 0 / 0, f, seconds }, { "1", f, seconds },
        { math.huge, f, seconds }, { 1, nil, fn }, { 1, 2, fn } }) do
        assert.error_matches(function() loop:after(case[1], case[2]) end, case[3])
      end
      assert.error_matches(function() loop:every(0, f) end,
        "bad argument #1 to 'every' %(positive interval expected, got 0%)")
    end)
  end)
end)

describe("lepoll.every", function()
  it("repeats until cancelled", function()
    h.with_loop(function(loop)
      local n = 0
      loop:every(0.005, function(t)
        n = n + 1
        if n == 5 then t:cancel() end
      end)
      h.run(loop)
      assert.equal(5, n)
    end)
  end)

  it("an unref'd timer fires while the loop runs for others, and lets run() return", function()
    h.with_loop(function(loop)
      local ticks = 0
      local t = loop:every(0.005, function() ticks = ticks + 1 end):unref()
      assert.is_true(t:pending())
      local slept = false
      loop:spawn(function()
        loop:sleep(0.06)
        slept = true
      end)
      h.run(loop)  -- returns once the sleeper is done: the timer holds nothing
      assert.is_true(slept)
      assert.is_true(ticks >= 3, "ticks: " .. ticks)
      assert.is_true(t:pending())
      -- held again, it keeps run() running until cancelled
      local n0 = ticks
      t:ref():ref()
      loop:after(0.05, function() t:cancel() end)
      h.run(loop)
      assert.is_true(ticks > n0)
      assert.is_false(t:pending())
      assert.equal(t, t:unref())  -- a dead timer: nothing to let go
    end)
  end)
end)

describe("lepoll.sleep and lepoll.spawn", function()
  it("suspends only the calling coroutine", function()
    h.with_loop(function(loop)
      local order = {}
      loop:spawn(function(a, b)
        order[#order + 1] = "a start " .. a .. b
        assert.is_true(loop:sleep(0.02))
        order[#order + 1] = "a end"
      end, 1, 2)
      loop:spawn(function(...)
        order[#order + 1] = "b start " .. select("#", ...)
        loop:sleep(0.01)
        order[#order + 1] = "b end"
      end, 1, 2, 3)
      order[#order + 1] = "main"
      h.run(loop)
      assert.same({ "a start 12", "b start 3", "main", "b end", "a end" }, order)
    end)
  end)

  it("sleep(0) lets the other coroutines run first", function()
    h.with_loop(function(loop)
      local order = {}
      loop:spawn(function()
        loop:sleep(0)
        order[#order + 1] = 1
      end)
      loop:spawn(function() order[#order + 1] = 2 end)
      h.run(loop)
      assert.same({ 2, 1 }, order)
    end)
  end)

  it("a coroutine that calls coroutine.yield itself runs again after the others", function()
    h.with_loop(function(loop)
      local order = {}
      loop:spawn(function()
        order[#order + 1] = "a1"
        coroutine.yield("ignored")
        order[#order + 1] = "a2"
        coroutine.yield()
        order[#order + 1] = "a3"
      end)
      loop:spawn(function()
        order[#order + 1] = "b1"
        loop:sleep(0)
        order[#order + 1] = "b2"
      end)
      h.run(loop)
      assert.same({ "a1", "b1", "a2", "b2", "a3" }, order)
    end)
  end)

  it("a coroutine of the script's own, even inside a task, cannot wait on the loop", function()
    h.with_loop(function(loop)
      local ok, err
      loop:spawn(function()
        local inner = coroutine.create(function() return loop:sleep(0.01) end)
        ok, err = coroutine.resume(inner)
      end)
      h.run(loop)
      assert.is_false(ok)
      assert.matches("lepoll.sleep must be called from a coroutine", err)
    end)
  end)

  it("sleep outside a coroutine raises", function()
    h.with_loop(function(loop)
      assert.error_matches(function() loop:sleep(0.01) end, "must be called from a coroutine")
      assert.error_matches(function() loop:spawn("x") end,
        "bad argument #1 to 'spawn' %(function expected, got string%)")
    end)
  end)

  it("logs a raising coroutine", function()
    h.with_loop(function(loop)
      local msgs = h.expect_log("late failure")
      loop:spawn(function()
        loop:sleep(0.001)
        error("late failure")
      end)
      h.run(loop)
      assert.equal(1, #msgs)
      assert.matches("late failure", msgs[1])
    end)
  end)
end)
