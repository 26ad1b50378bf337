--- lepoll._resolve: host names to addresses without blocking the loop,
-- lepoll.resolve (private). Names go to the loop's lepoll.resolver pool
-- (getaddrinfo(3) on its threads); its eventfd sits in the loop's epoll
-- set, and each answer resumes the coroutine that waits for it. Numeric
-- addresses never reach the pool.
local resolver = require "lepoll.resolver"
local epoll = require "lepoll.epoll"
local heap = require "lepoll._heap"
local connm = require "lepoll._conn"
local optionsm = require "lepoll._options"
local timerm = require "lepoll._timer"

local type, error, setmetatable, tostring, pairs = type, error, setmetatable,
  tostring, pairs
local co_yield = coroutine.yield
local heap_push, heap_remove = heap.push, heap.remove
local numeric = resolver.numeric
local now = timerm.now
local current, resume, WAIT = connm.current, connm.resume, connm.WAIT

local M = {}

local NOTCO = "lepoll.resolve must be called from a coroutine (a connection"
  .. " handler or lepoll.spawn)"
local DEFAULT_TIMEOUT = 10
M.DEFAULT_TIMEOUT = DEFAULT_TIMEOUT
local MAXNAME = 1024  -- lepoll.resolver's limit

-- A lookup a task waits for: a heap node (its deadline) and the answer.
local Lookup = {}
Lookup.__index = Lookup

-- The deadline came first: the pool forgets the lookup (a queued one
-- never runs, a late answer is freed), the task gets nil, "timeout".
function Lookup:_expire(loop)
  local r = loop.resolver
  r.waiting[self.id] = nil
  r.pool:cancel(self.id)
  loop.nactive = loop.nactive - 1
  self.err = "timeout"
  resume(loop, self.task, self)
end

-- The pool's eventfd is readable: hand every finished lookup to its task.
local function on_answers(r)
  local pool, waiting, loop = r.pool, r.waiting, r.loop
  pool:drain()
  while true do
    local id, addrs, msg, code = pool:take()
    if not id then return end
    local lk = waiting[id]
    if lk then  -- else: already timed out (cancel came after the answer)
      waiting[id] = nil
      heap_remove(loop.heap, lk)
      loop.nactive = loop.nactive - 1
      lk.addrs, lk.err, lk.code = addrs, msg, code
      resume(loop, lk.task, lk)
    end
  end
end

-- Put the pool's eventfd (new in a forked child) in the loop's epoll set,
-- edge-triggered: an inherited registration the child cannot remove (the
-- epoll set is the parent's too) then wakes it once per answer, never in
-- a loop. true, or nil, message, errno.
local function register(loop, r)
  local fd, gen, en = r.pool:fileno()
  if not fd then return nil, gen, en end
  if gen == r.gen then return true end
  if r.token then loop:_release(r.token) end
  r.fd, r.gen, r.token = fd, gen, loop:_token(r, on_answers)
  local ok, err
  ok, err, en = loop.ep:add(fd, r.token, epoll.IN | epoll.ET)
  if not ok then
    loop:_release(r.token)
    r.fd, r.gen, r.token = false, false, false
    return nil, err, en
  end
  return true
end

-- The loop's resolver, made on the first name it looks up.
local function loop_resolver(loop)
  local r = loop.resolver
  if r then return r end
  local pool, err, en = resolver.new(loop.resolver_threads, loop.resolver_queue)
  if not pool then return nil, "resolver: " .. err, en end
  r = { loop = loop, pool = pool, waiting = {}, fd = false, gen = false,
    token = false }
  loop.resolver = r
  return r
end

--- Close the loop's resolver (Loop:close): lookups in flight are
-- forgotten (their threads free them), the eventfd closed.
function M.close(loop)
  local r = loop.resolver
  if not r then return end
  loop.resolver = false
  -- No epoll_ctl DEL: closing the eventfd (pool:close) drops its
  -- registration, and the loop's epoll closes next. In a forked child
  -- that closes (or collects) the parent's loop, r.fd may be the
  -- parent's eventfd in the parent's epoll set (fork shares both): a DEL
  -- there would cut the parent off from its answers.
  if r.token then loop:_release(r.token) end
  r.waiting = {}
  r.pool:close()
end

-- opts: nil, a number (the timeout) or { timeout =, family = }; raises
-- naming argument 2 of fname.
local FAMILIES = { inet = true, inet6 = true }
local function check_opts(opts, fname)
  local function bad(msg)
    error(("bad argument #2 to '%s' (%s)"):format(fname, msg), 4)
  end
  if opts == nil then return DEFAULT_TIMEOUT, nil end
  if type(opts) == "number" then opts = { timeout = opts } end
  if type(opts) ~= "table" then bad("number or table expected, got " .. type(opts)) end
  local timeout, family = DEFAULT_TIMEOUT, nil
  for k, v in pairs(opts) do
    if k == "timeout" then
      if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
        bad("option 'timeout' must be a positive number, got " .. optionsm.shown(v))
      end
      timeout = v
    elseif k == "family" then
      if not FAMILIES[v] then
        bad("option 'family' must be 'inet' or 'inet6', got " .. optionsm.shown(v))
      end
      family = v
    else
      bad("unknown option " .. (type(k) == "string" and "'" .. k .. "'" or optionsm.shown(k)))
    end
  end
  return timeout, family
end

--- Look up name (from a coroutine, unless it is a numeric address):
-- an array of address strings, each once, in getaddrinfo's order; or nil,
-- "resolve NAME: reason", "EAI_..."; nil, "timeout"; nil, "resolver
-- busy". opts: a number (timeout, seconds, default 10) or { timeout =,
-- family = "inet" | "inet6" }. A numeric address (also "[::1]") is
-- answered at once, without the pool, anywhere.
function M.resolve(loop, name, opts, fname)
  fname = fname or "resolve"
  loop:_check_open(fname)
  if type(name) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(name)), 2)
  end
  if name:find("\0", 1, true) then
    error(("bad argument #1 to '%s' (host name without NUL expected)"):format(fname), 2)
  end
  local timeout, family = check_opts(opts, fname)
  local addr, fam = numeric(name)
  if addr then
    if family and fam ~= family then
      return nil, "resolve " .. name .. ": Address family for hostname not supported",
        "EAI_ADDRFAMILY"
    end
    return { addr }
  end
  local t = current(loop, 2, NOTCO)
  if #name > MAXNAME or name == "" then
    return nil, "resolve " .. name .. ": Name or service not known", "EAI_NONAME"
  end
  return M.lookup(loop, t, name, family, now() + timeout)
end

--- The lookup of a name by task t until deadline (absolute, on the loop's
-- clock): what resolve returns (lepoll.connect calls it with its own
-- deadline).
function M.lookup(loop, t, name, family, deadline)
  local r, err, en = loop_resolver(loop)
  if not r then return nil, err, en end
  local id
  id, err, en = r.pool:submit(name, family)
  if not id then return nil, err, en end  -- "resolver busy", or the pool's errno
  local ok
  ok, err, en = register(loop, r)
  if not ok then
    r.pool:cancel(id)
    return nil, "resolver: " .. tostring(err), en
  end
  local lk = setmetatable({ at = deadline, seq = 0, heap_index = false,
    task = t, id = id, addrs = false, err = false, code = false }, Lookup)
  r.waiting[id] = lk
  heap_push(loop.heap, lk)
  loop.nactive = loop.nactive + 1
  loop:_work_added()
  co_yield(WAIT)
  if lk.addrs then return lk.addrs end
  if lk.err == "timeout" then return nil, "timeout" end
  return nil, "resolve " .. name .. ": " .. lk.err, lk.code
end

return M
