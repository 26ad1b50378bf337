--- lepoll: a small, fast server framework on Linux epoll for Lua 5.4.
--
--     local lepoll = require "lepoll"
--     lepoll.listen({ host = "127.0.0.1", port = 8080 }, function(conn)
--       conn:write("hello\n")
--     end)
--     lepoll.run()
--
-- Every function below works on the default loop (created on first use,
-- with SIGINT/SIGTERM starting a graceful shutdown while it runs);
-- lepoll.loop() makes more loops with the same methods. The reference is
-- docs/framework.md.
local loopm = require "lepoll.loop"
local logm = require "lepoll._log"

local M = {
  _VERSION = "lepoll 0.1.0",
}

local default

--- The default loop (created on first use).
function M.default_loop()
  if not default or default.closed then
    default = loopm.new({ signals = true })
  end
  return default
end

--- A new loop: opts {events = 256, signals = false, shutdown_timeout = 10}.
function M.loop(opts)
  return loopm.new(opts)
end

--- Replace the logger (fn(message); nil restores stderr). Returns the old one.
M.set_logger = logm.set

--- Report a message through the logger.
M.log = logm.log

--- Seconds on CLOCK_MONOTONIC, the clock of every deadline.
M.now = loopm.now

-- lepoll.run(), lepoll.listen{...}, ...: the default loop's methods.
for _, name in ipairs({ "run", "step", "stop", "fileno", "timeout", "listen",
  "connect", "after", "every", "sleep", "spawn", "watch", "on_signal",
  "shutdown", "shutting_down", "close" }) do
  local method = loopm.Loop[name]
  M[name] = function(...)
    return method(M.default_loop(), ...)
  end
end

return M
