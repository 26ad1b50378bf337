-- lepoll framework: timers (after, every, cancel, sleep) and the heap
-- behind them.
local lepoll = require "lepoll"
local heap = require "lepoll._heap"

describe("lepoll.timer heap", function()
  it("pops nodes in (deadline, insertion) order with removals", function()
    local h = heap.new()
    local nodes = {}
    math.randomseed(42)
    for i = 1, 2000 do
      local n = { at = math.random(1, 300), id = i }
      nodes[i] = n
      heap.push(h, n)
    end
    for i = 1, 2000, 3 do heap.remove(h, nodes[i]) end
    for i = 2, 2000, 7 do  -- move some deadlines
      local n = nodes[i]
      if n.heap_index then
        n.at = math.random(1, 300)
        heap.update(h, n)
      end
    end
    local last, count = nil, 0
    while true do
      local n = heap.pop(h)
      if not n then break end
      count = count + 1
      if last then
        assert.is_true(last.at < n.at or (last.at == n.at and last.seq < n.seq))
      end
      assert.is_false(n.heap_index)
      last = n
    end
    assert.equal(2000 - 667, count)
    assert.equal(0, h.n)
  end)
end)

describe("lepoll.after", function()
  it("fires timers in deadline order, ties first in first out", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local fired = {}
    local delays = { 0.05, 0.01, 0.03, 0.02, 0.04, 0.01, 0 }
    for i, d in ipairs(delays) do
      loop:after(d, function() fired[#fired + 1] = i end)
    end
    local t0 = lepoll.now()
    loop:run()
    assert.same({ 7, 2, 6, 4, 3, 5, 1 }, fired)
    assert.is_true(lepoll.now() - t0 >= 0.05)
  end)

  it("passes the timer, and cancel prevents firing", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local got, fired2 = nil, false
    local t1
    t1 = loop:after(0.01, function(t) got = t end)
    local t2 = loop:after(0.01, function() fired2 = true end)
    assert.is_true(t2:pending())
    assert.is_true(t2:cancel())
    assert.is_false(t2:cancel())
    assert.is_false(t2:pending())
    loop:run()
    assert.equal(t1, got)
    assert.is_false(fired2)
    assert.is_false(t1:pending())
  end)

  it("logs a raising callback and keeps going", function()
    local msgs = {}
    local old = lepoll.set_logger(function(m) msgs[#msgs + 1] = m end)
    finally(function() lepoll.set_logger(old) end)
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local after = false
    loop:after(0, function() error("timer oops") end)
    loop:after(0.01, function() after = true end)
    loop:run()
    assert.is_true(after)
    assert.equal(1, #msgs)
    assert.matches("timer oops", msgs[1])
  end)

  it("handles 100,000 pending timers", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local n, last, ordered = 0, -1, true
    local timers = {}
    for i = 1, 100000 do
      local d = (i * 7919 % 100000) / 1e6  -- 0 .. 0.1 s, shuffled
      timers[i] = loop:after(d, function(t)
        if t.at < last then ordered = false end
        last = t.at
        n = n + 1
      end)
    end
    for i = 1, 100000, 2 do timers[i]:cancel() end
    loop:run()
    assert.equal(50000, n)
    assert.is_true(ordered)
  end)

  it("raises on bad arguments", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local f = function() end
    for _, args in ipairs({ { -1, f }, { 0 / 0, f }, { "1", f }, { math.huge, f },
      { 1, nil }, { 1, 2 } }) do
      assert.has_error(function() loop:after(args[1], args[2]) end)
    end
    assert.has_error(function() loop:every(0, f) end)
  end)
end)

describe("lepoll.every", function()
  it("repeats until cancelled", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local n = 0
    loop:every(0.005, function(t)
      n = n + 1
      if n == 5 then t:cancel() end
    end)
    loop:run()
    assert.equal(5, n)
  end)
end)

describe("lepoll.sleep and lepoll.spawn", function()
  it("suspends only the calling coroutine", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
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
    loop:run()
    assert.same({ "a start 12", "b start 3", "main", "b end", "a end" }, order)
  end)

  it("sleep(0) lets the other coroutines run first", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local order = {}
    loop:spawn(function()
      loop:sleep(0)
      order[#order + 1] = 1
    end)
    loop:spawn(function() order[#order + 1] = 2 end)
    loop:run()
    assert.same({ 2, 1 }, order)
  end)

  it("a coroutine that calls coroutine.yield itself runs again after the others", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
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
    loop:run()
    assert.same({ "a1", "b1", "a2", "b2", "a3" }, order)
  end)

  it("a coroutine of the script's own, even inside a task, cannot wait on the loop", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    local ok, err
    loop:spawn(function()
      local inner = coroutine.create(function() return loop:sleep(0.01) end)
      ok, err = coroutine.resume(inner)
    end)
    loop:run()
    assert.is_false(ok)
    assert.matches("lepoll.sleep must be called from a coroutine", err)
  end)

  it("sleep outside a coroutine raises", function()
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    assert.error_matches(function() loop:sleep(0.01) end, "must be called from a coroutine")
    assert.has_error(function() loop:spawn("x") end)
  end)

  it("logs a raising coroutine", function()
    local msgs = {}
    local old = lepoll.set_logger(function(m) msgs[#msgs + 1] = m end)
    finally(function() lepoll.set_logger(old) end)
    local loop = lepoll.loop()
    finally(function() loop:close() end)
    loop:spawn(function()
      loop:sleep(0.001)
      error("late failure")
    end)
    loop:run()
    assert.equal(1, #msgs)
    assert.matches("late failure", msgs[1])
  end)
end)
