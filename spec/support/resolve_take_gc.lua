-- resolve_take_gc.lua - spec/resolve_spec.lua's check of Resolver:take
-- against a finalizer that runs inside it: a GC step in take's own
-- allocations (the table, the strings) calls a finalizer that closes the
-- pool, or cancels the lookup being taken. take must not read what that
-- freed (ASan tells, under make check-asan) and must return the answer
-- whole. "many" is 100 addresses of spec/support/resolve_gai_shim.c
-- (preloaded): a big take, often cut by a collection in generational
-- mode with a small minor multiplier. Prints "RESULT take_gc ok close N
-- cancel N" (how often each finalizer ran inside take), exits 0.
local resolver = require "lepoll.resolver"
local epoll = require "lepoll.epoll"

collectgarbage("generational", 1, 100)
local ep <close> = assert(epoll.create())
local evs = epoll.events(1)
local hits = { close = 0, cancel = 0 }

for attempt = 1, 4000 do
  local how = attempt % 2 == 0 and "close" or "cancel"
  local p = assert(resolver.new(1, 8))
  local id = assert(p:submit("many" .. attempt))
  local fd = assert(p:fileno())
  assert(ep:add(fd, 1, epoll.IN))
  assert(ep:wait(evs, 5000) == 1, "no answer in 5 s")
  assert(ep:delete(fd))
  local ran = false
  do
    local _ = setmetatable({}, { __gc = function()
      ran = true
      if how == "close" then p:close() else p:cancel(id) end
    end })
  end
  local junk = {}  -- moves where in take the next collection falls
  for i = 1, attempt % 50 do junk[i] = { i } end
  local ran_before = ran
  local ok, tid, addrs = pcall(p.take, p)
  if ok and ran and not ran_before then
    hits[how] = hits[how] + 1
    assert(tid == id, ("attempt %d: id %s, not %d"):format(attempt, tostring(tid), id))
    assert(type(addrs) == "table" and #addrs == 64 and addrs[1] == "127.0.0.1",
      ("attempt %d: addresses %s"):format(attempt, tostring(addrs)))
  end
  assert(#junk == attempt % 50)
  p:close()
  if hits.close >= 10 and hits.cancel >= 10 then break end
end
assert(hits.close > 0 and hits.cancel > 0,
  ("the finalizer never ran inside take: close %d, cancel %d"):format(hits.close, hits.cancel))
print(("RESULT take_gc ok close %d cancel %d"):format(hits.close, hits.cancel))
