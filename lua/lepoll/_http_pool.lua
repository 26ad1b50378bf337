--- lepoll._http_pool: http.request's idle keep-alive connections, per
-- loop and per key (scheme://host:port, and what the TLS settings say),
-- bounded per key and in all, closed after an idle timeout (private; the
-- reference is docs/http.md).
--
-- A connection comes here only after a response was read to its end with
-- nothing after it and neither side asked to close (_http_client.lua
-- decides). Before it is lent again it must look alive: not closed, not
-- expired, no decrypted bytes waiting inside OpenSSL (TLS), and a recv(2)
-- that would block (EAGAIN); bytes or an end of
-- stream there mean the server closed it or broke it while idle, and it
-- is closed instead. The newest idle connection is lent first (the one
-- least likely to have been closed by the server's own idle timeout).
local net = require "lepoll.net"
local connm = require "lepoll._conn"

local setmetatable, pairs, next = setmetatable, pairs, next
local min = math.min
local recv = net.recv
local hold = connm.hold
local EAGAIN = net.errno.EAGAIN

local M = {}

local DEFAULTS = { idle_timeout = 30, max_idle_per_host = 8, max_idle = 64 }
M.DEFAULTS = DEFAULTS

-- loop -> its pool (weak: a loop that is gone takes its pool along; its
-- connections were closed with it)
local pools = setmetatable({}, { __mode = "k" })

local function get(loop)
  local p = pools[loop]
  if not p then
    p = {
      loop = loop,
      idle = {},        -- key -> array of idle connections, oldest first
      since = {},       -- idle connection -> when it became idle
      nidle = 0,
      idle_timeout = DEFAULTS.idle_timeout,
      max_idle_per_host = DEFAULTS.max_idle_per_host,
      max_idle = DEFAULTS.max_idle,
      sweeper = false,  -- the timer that closes expired ones, while any
      made = 0,         -- connections the client opened
      reused = 0,       -- requests sent on a connection from the pool
    }
    pools[loop] = p
  end
  return p
end
M.get = get

-- Whether an idle connection still looks usable: open, and a recv that
-- would block (it reads nothing when the connection is good).
local function leftover(c)
  return c._tls and require("lepoll._tls").buffered(c)
end

local function alive(c)
  if c:closed() or leftover(c) then return false end
  local s, _, en = recv(c:fileno(), 1)
  return s == nil and en == EAGAIN
end

-- Close the expired and the dead; stop when no one is idle.
local function sweep(p)
  local now = p.loop.now
  local idle, since = p.idle, p.since
  for key, list in pairs(idle) do
    local keep = 0
    for i = 1, #list do
      local c = list[i]
      list[i] = nil
      if now - since[c] < p.idle_timeout and alive(c) then
        keep = keep + 1
        list[keep] = c
      else
        since[c] = nil
        p.nidle = p.nidle - 1
        c:close(true)
      end
    end
    if keep == 0 then idle[key] = nil end
  end
  if p.nidle == 0 and p.sweeper then
    p.sweeper:cancel()
    p.sweeper = false
  end
end

--- An idle connection for key on loop that looks alive, or nil.
function M.take(loop, key)
  local p = pools[loop]
  local list = p and p.idle[key]
  if not list then return nil end
  local now = loop.now
  while true do
    local n = #list
    if n == 0 then
      p.idle[key] = nil
      return nil
    end
    local c = list[n]
    list[n] = nil
    p.nidle = p.nidle - 1
    local t = p.since[c]
    p.since[c] = nil
    if now - t < p.idle_timeout and alive(c) then
      p.reused = p.reused + 1
      hold(c, true)
      return c
    end
    c:close(true)
  end
end

--- Keep c (its response read to the end) for key on loop, or close it
-- when the pool is full for key or in all.
function M.put(loop, key, c)
  local p = get(loop)
  if c:closed() or c:pending() > 0 or leftover(c) or p.nidle >= p.max_idle then
    return c:close(true)
  end
  local list = p.idle[key]
  if not list then
    list = {}
    p.idle[key] = list
  elseif #list >= p.max_idle_per_host then
    return c:close(true)
  end
  list[#list + 1] = c
  p.since[c] = loop.now
  p.nidle = p.nidle + 1
  -- idle connections and their sweep let run() return: a script whose
  -- requests are done ends without waiting out the idle timeout
  hold(c, false)
  -- a loop that was closed cancelled the timer: start another
  if not (p.sweeper and p.sweeper:pending()) then
    p.sweeper = loop:every(min(5, p.idle_timeout / 2), function() sweep(p) end):unref()
  end
end

--- Count a connection the client opened on loop.
function M.opened(loop)
  local p = get(loop)
  p.made = p.made + 1
end

--- Close every idle connection of loop's pool (and stop its timer).
function M.close_idle(loop)
  local p = pools[loop]
  if not p then return end
  for key, list in pairs(p.idle) do
    for i = 1, #list do
      p.since[list[i]] = nil
      list[i]:close(true)
    end
    p.idle[key] = nil
  end
  p.nidle = 0
  if p.sweeper then
    p.sweeper:cancel()
    p.sweeper = false
  end
end

--- The numbers of loop's pool: {idle, made, reused, hosts = {key -> idle}}.
function M.stats(loop)
  local p = get(loop)
  local hosts = {}
  for key, list in pairs(p.idle) do hosts[key] = #list end
  return { idle = p.nidle, made = p.made, reused = p.reused, hosts = hosts,
    idle_timeout = p.idle_timeout, max_idle_per_host = p.max_idle_per_host,
    max_idle = p.max_idle }
end

--- Set loop's pool limits from the checked table o (idle_timeout,
-- max_idle_per_host, max_idle; absent ones keep their value). Idle
-- connections over a new bound are closed at once.
function M.configure(loop, o)
  local p = get(loop)
  for k in pairs(DEFAULTS) do
    if o[k] ~= nil then p[k] = o[k] end
  end
  if p.sweeper then
    p.sweeper:cancel()
    p.sweeper = false
  end
  -- over the new bounds: the oldest go first
  for key, list in pairs(p.idle) do
    while #list > p.max_idle_per_host or (p.nidle > p.max_idle and #list > 0) do
      local c = table.remove(list, 1)
      p.since[c] = nil
      p.nidle = p.nidle - 1
      c:close(true)
    end
    if #list == 0 then p.idle[key] = nil end
  end
  if next(p.idle) then
    p.sweeper = loop:every(min(5, p.idle_timeout / 2), function() sweep(p) end):unref()
  end
end

return M
