--- lepoll._watch: callbacks on any fd's readiness (pipes, eventfds, a
-- LuaSocket socket, ...) (private: the public entry point is lepoll.watch).
local epoll = require "lepoll.epoll"
local logm = require "lepoll._log"

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local tointeger = math.tointeger
local IN, OUT, RDHUP, HUP, ERR = epoll.IN, epoll.OUT, epoll.RDHUP, epoll.HUP,
  epoll.ERR

local M = {}

local Watch = {}
Watch.__index = Watch
Watch._iswatch = true
M.Watch = Watch

local MODES = { r = IN | RDHUP, w = OUT, rw = IN | RDHUP | OUT }

local function on_watch(w, fl)
  local r = fl & (IN | RDHUP | HUP | ERR) ~= 0 and w.wr
  local wr = fl & (OUT | HUP | ERR) ~= 0 and w.ww
  local mode = r and (wr and "rw" or "r") or (wr and "w")
  if mode then logm.call(w.fn, w, mode) end
end

-- An fd number from fd: an integer (or an integral float: LuaSocket's
-- getfd() returns 3.0 under Lua 5.4), or an object with a getfd or
-- fileno method (the first that is a function).
local function fdnum(fd)
  local t = type(fd)
  local n = t == "number" and tointeger(fd)
  if not n and (t == "userdata" or t == "table") then
    local ok, get = pcall(function() return fd.getfd end)
    if not (ok and type(get) == "function") then
      ok, get = pcall(function() return fd.fileno end)
    end
    if ok and type(get) == "function" then
      local v = get(fd)
      n = type(v) == "number" and tointeger(v)
    end
  end
  if n and n >= 0 and n <= 0x7fffffff then return n end
  error("bad argument #1 to 'watch' (fd expected: a non-negative integer, lepoll.Fd or an"
    .. " object with :getfd()/:fileno(), got " .. tostring(fd) .. ")", 3)
end

--- Call fn(handle, "r" | "w" | "rw") while the fd is ready for what mode
-- asks (level-triggered: read or write it, or the call repeats). An error
-- in fn is logged. Returns the handle (handle:cancel(); cancel before
-- closing the fd), or nil, message, errno (e.g. EPERM for a regular file).
function M.watch(loop, fd, mode, fn)
  loop:_check_open("watch")
  local n = fdnum(fd)
  local flags = MODES[mode]
  if not flags then
    error("bad argument #2 to 'watch' ('r', 'w' or 'rw' expected, got "
      .. tostring(mode) .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #3 to 'watch' (function expected, got " .. type(fn) .. ")", 2)
  end
  local w = setmetatable({ loop = loop, fd = n, obj = fd, fn = fn, dead = false, flags = flags,
    wr = flags & IN ~= 0, ww = flags & OUT ~= 0 }, Watch)
  w.tok = loop:_token(w, on_watch)
  local ok, err, en = loop.ep:add(n, w.tok, flags)
  if not ok then
    loop:_release(w.tok)
    return nil, err, en
  end
  loop.nactive = loop.nactive + 1
  return w
end

--- Stop watching. Idempotent; returns true.
function Watch:cancel()
  if self.dead then return true end
  self.dead = true
  local loop = self.loop
  if not loop.closed then loop.ep:delete(self.fd) end  -- ENOENT/EBADF if closed: fine
  loop:_release(self.tok)
  loop.nactive = loop.nactive - 1
  return true
end

return M
