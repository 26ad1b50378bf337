-- resolve_exit.lua NAME - spec/resolve_spec.lua's plain script that looks
-- a name up on a loop, closes the loop and ends: lua.c's lua_close then
-- unloads the C modules while the pool's threads are leaving. Names of
-- spec/support/resolve_gai_shim.c (preloaded): "fast" answers at once
-- (four lookups, four threads, all woken by the close); "block" stays in
-- getaddrinfo until the shim lets it return at exit, after lua_close.
local lepoll = require "lepoll"

local name = assert(arg[1], "usage: resolve_exit.lua fast|block")
local loop = lepoll.loop()
local timed_out = false
local guard = loop:after(5, function()
  timed_out = true
  loop:stop()
end)
if name == "block" then
  loop:spawn(function() loop:resolve("block", 30) end)
  loop:spawn(function()
    while loop.resolver.pool:stats().running < 1 do loop:sleep(0.001) end
    guard:cancel()
    loop:stop()
  end)
else
  local left = 4
  for i = 1, 4 do
    loop:spawn(function()
      assert(loop:resolve(name .. i))
      left = left - 1
      if left == 0 then guard:cancel() end
    end)
  end
end
loop:run()
assert(not timed_out, "the lookups took more than 5 s")
local threads = loop.resolver.pool:stats().threads
loop:close()
print("closed, threads " .. threads)
