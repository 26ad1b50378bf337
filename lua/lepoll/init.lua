--- lepoll: a small, fast server framework on Linux epoll for Lua 5.4.
--
--     local lepoll = require "lepoll"
--     lepoll.listen({ host = "127.0.0.1", port = 8080 }, function(conn)
--       conn:write("hello\n")
--     end)
--     lepoll.run()
--
-- Every lepoll.X below is loop:X on the default loop (made on first use;
-- SIGINT/SIGTERM start a graceful shutdown while it runs). Each names the
-- file that holds it; lepoll.loop() makes more loops with the same
-- methods. The reference is docs/framework.md.
local loopm = require "lepoll._loop"
local logm = require "lepoll._log"
local timerm = require "lepoll._timer"
local listenm = require "lepoll._listen"
local connectm = require "lepoll._connect"
local watchm = require "lepoll._watch"
local resolvem = require "lepoll._resolve"
local signalm = require "lepoll._signal"
local role = require "lepoll._role"

local M = {
  _VERSION = "lepoll 0.1.0",
}

local default
local Loop = loopm.Loop

--- The default loop (made on first use, again after it was closed).
local function default_loop()
  if not default or default.closed then
    default = loopm.new({ signals = true })
  end
  return default
end
M.default_loop = default_loop

--- A new loop: opts {events = 256, signals = false, shutdown_timeout = 10,
-- resolver_threads = 4, resolver_queue = 256} (_loop.lua).
function M.loop(opts)
  return loopm.new(opts)
end

--- Replace the logger (fn(message); nil restores stderr); returns the old
-- one (_log.lua).
M.set_logger = logm.set

--- Report a message through the logger (_log.lua).
M.log = logm.log

--- Seconds on CLOCK_MONOTONIC, the clock of every deadline (_timer.lua).
M.now = timerm.now

-- The default loop's methods: each a tail call, so errors point at the
-- caller's line.

--- Run the default loop (_loop.lua).
function M.run() return Loop.run(default_loop()) end
--- One iteration of the default loop (_loop.lua).
function M.step(timeout) return Loop.step(default_loop(), timeout) end
--- Make run() return (_loop.lua).
function M.stop() return Loop.stop(default_loop()) end
--- The default loop's epoll fd, for hosts (_loop.lua).
function M.fileno() return Loop.fileno(default_loop()) end
--- Seconds to the next deadline, for hosts (_loop.lua).
function M.timeout() return Loop.timeout(default_loop()) end
--- Graceful shutdown (_loop.lua).
function M.shutdown(timeout) return Loop.shutdown(default_loop(), timeout) end
--- Whether a shutdown began (_loop.lua).
function M.shutting_down() return Loop.shutting_down(default_loop()) end
--- Close the default loop (_loop.lua).
function M.close() return Loop.close(default_loop()) end
--- Run fn(...) in a new coroutine (_loop.lua).
function M.spawn(fn, ...) return Loop.spawn(default_loop(), fn, ...) end
--- Listen and serve (_listen.lua).
function M.listen(opts, handler) return listenm.listen(default_loop(), opts, handler) end
--- Connect from a coroutine (_connect.lua).
function M.connect(host, port, opts) return connectm.connect(default_loop(), host, port, opts) end
--- Call fn once, sec seconds from now (_timer.lua).
function M.after(sec, fn) return timerm.after(default_loop(), sec, fn) end
--- Call fn every sec seconds (_timer.lua).
function M.every(sec, fn) return timerm.every(default_loop(), sec, fn) end
--- Suspend the calling coroutine (_timer.lua).
function M.sleep(sec) return timerm.sleep(default_loop(), sec) end
--- Names to addresses, from a coroutine (_resolve.lua).
function M.resolve(name, opts) return resolvem.resolve(default_loop(), name, opts) end
--- Watch any fd (_watch.lua).
function M.watch(fd, mode, fn) return watchm.watch(default_loop(), fd, mode, fn) end
--- Handle a signal (_signal.lua).
function M.on_signal(sig, fn) return signalm.on_signal(default_loop(), sig, fn) end

-- Workers (_workers.lua, _role.lua) ---------------------------------------------

--- Run the app on several workers under a master: opts {count = n or
-- "auto" (default: the CPUs this process may run on), mode = "reuseport"
-- (one socket per worker per listener) | "shared" (one socket, woken
-- with EPOLLEXCLUSIVE), init_worker = fn(id)}. Before the first listen.
function M.workers(opts)
  return require("lepoll._workers").configure(default and not default.closed and default, opts)
end

--- Call fn(id) in each worker after it starts (before its loop runs);
-- without workers, once when run() starts, with id 0.
function M.init_worker(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'init_worker' (function expected, got " .. type(fn) .. ")", 2)
  end
  role.hooks[#role.hooks + 1] = fn
  return true
end

--- This worker's number, 0..worker_count()-1 (0 without workers; nil in
-- the master).
function M.worker_id() return role.id end

--- How many workers the app runs on (1 without workers).
function M.worker_count() return role.count end

return M
