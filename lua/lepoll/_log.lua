--- lepoll._log: the framework's replaceable logger (private; the public
-- entry point is lepoll.set_logger).
local M = {}

local role = require "lepoll._role"

local stderr = io.stderr

-- One write per line: workers share the master's stderr, and whole lines
-- (under PIPE_BUF) do not interleave. With workers, each line says which
-- process speaks.
local function default(msg)
  local who = role.role
  local tag = who == "single" and "lepoll: "
    or who == "master" and ("lepoll[master, pid %d]: "):format(role.pid or 0)
    or ("lepoll[worker %d, pid %d]: "):format(role.id, role.pid or 0)
  stderr:write(tag .. msg .. "\n")
  stderr:flush()
end

local current = default

--- Report a message through the current logger. A logger that raises is
-- not allowed to take the loop down: the failure goes to stderr.
function M.log(msg)
  msg = tostring(msg)
  local ok, err = pcall(current, msg)
  if not ok then
    default("logger failed: " .. tostring(err) .. " (message: " .. msg .. ")")
  end
end

--- Replace the logger: fn(message) receives one string per report (a
-- handler's error with its traceback, accept pauses, ...). nil restores
-- the default, which writes "lepoll: message" lines to stderr. Returns the
-- previous logger.
function M.set(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'set_logger' (function or nil expected, got "
      .. type(fn) .. ")", 2)
  end
  local old = current
  current = fn or default
  return old
end

--- The message handler of every protected call: keeps the traceback.
local function msgh(err)
  return debug.traceback(err, 2)
end
M.msgh = msgh

--- Call fn(a, b) protected and report its error: for the callbacks that
-- run on the loop itself (timers, watchers).
function M.call(fn, a, b)
  local ok, err = xpcall(fn, msgh, a, b)
  if not ok then M.log("callback failed: " .. tostring(err)) end
end

return M
