--- lepoll._signal: signals through one signalfd in the loop's epoll set
-- (private: the public entry point is lepoll.on_signal).
local lio = require "lepoll.io"
local epoll = require "lepoll.epoll"
local connm = require "lepoll._conn"

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local signalfd_read = lio.signalfd_read

local M = {}

local Handle = {}
Handle.__index = Handle
M.Handle = Handle

local function signo_of(name)
  local v
  if math.type(name) == "integer" then
    if name >= 1 and name <= 64 then v = name end
  elseif type(name) == "string" then
    local n = name:upper():gsub("^SIG", "")
    v = lio.signals[n]
  end
  if not v then
    error("bad argument #1 to 'on_signal' (signal name or number expected, got "
      .. (type(name) == "string" and "'" .. name .. "'" or tostring(name)) .. ")", 3)
  end
  if v == lio.SIGKILL or v == lio.SIGSTOP then
    error("bad argument #1 to 'on_signal' (" .. (v == lio.SIGKILL and "SIGKILL" or "SIGSTOP")
      .. " cannot be caught)", 3)
  end
  return v
end

-- Read every pending signal and run its handlers (each in a coroutine, so
-- a handler may sleep or do I/O).
local function on_sigfd(loop)
  while loop.signalfd do
    local signo, sender = signalfd_read(loop.signalfd)
    if not signo then return end
    local list = loop.signal_handlers[signo]
    if list then
      local snapshot = table.move(list, 1, #list, 1, {})
      for i = 1, #snapshot do
        local h = snapshot[i]
        if not h.dead then connm.start(loop, { false }, h.fn, signo, sender) end
      end
    end
  end
end

-- (Re)create the signalfd for the signals that have handlers.
local function rebuild(loop)
  local set = {}
  for signo, list in pairs(loop.signal_handlers) do
    if #list > 0 then set[#set + 1] = signo end
  end
  local old, oldtok = loop.signalfd, loop.signalfd_token
  loop.signalfd, loop.signalfd_token = false, false
  if #set > 0 then
    local fd, err, en = lio.signalfd(set, lio.NONBLOCK)
    if not fd then return nil, err, en end
    local tok = loop:_token(loop, on_sigfd)
    local ok
    ok, err, en = loop.ep:add(fd, tok, epoll.IN)
    if not ok then
      fd:close()
      loop:_release(tok)
      return nil, err, en
    end
    loop.signalfd, loop.signalfd_token = fd, tok
  end
  if old then
    old:close()
    loop:_release(oldtok)
  end
  return true
end

M.rebuild = rebuild  -- a forked worker's loop makes its own (_loop.lua)

--- Call fn(signo, sender_pid) in a new coroutine whenever the signal
-- arrives (sender_pid: who sent it, 0 for the kernel or a terminal). The
-- signal is blocked and read from a signalfd (so it works with any
-- number of loops' hosts, but each signal belongs to one loop). Returns a
-- handle with :cancel().
function M.on_signal(loop, name, fn)
  loop:_check_open("on_signal")
  local signo = signo_of(name)
  if type(fn) ~= "function" then
    error("bad argument #2 to 'on_signal' (function expected, got " .. type(fn) .. ")", 2)
  end
  local h = setmetatable({ loop = loop, signo = signo, fn = fn, dead = false }, Handle)
  local list = loop.signal_handlers[signo]
  if list then
    list[#list + 1] = h
    return h
  end
  loop.signal_handlers[signo] = { h }
  local ok, err, en = rebuild(loop)
  if not ok then
    loop.signal_handlers[signo] = nil
    rebuild(loop)
    return nil, err, en
  end
  return h
end

--- Remove the handler. When a signal has no handler left it is unblocked
-- (its default action applies again). Idempotent; returns true.
function Handle:cancel()
  if self.dead then return true end
  self.dead = true
  local loop = self.loop
  local list = loop.signal_handlers[self.signo]
  for i = #list, 1, -1 do
    if list[i] == self then table.remove(list, i) end
  end
  if #list == 0 then
    if loop.signalfd then on_sigfd(loop) end  -- deliver what is pending first
    loop.signal_handlers[self.signo] = nil
    rebuild(loop)
    lio.sigmask("unblock", { self.signo })
  end
  return true
end

return M
