--- lepoll._role: what this process is when an app runs on several
-- workers (private; the public face is lepoll.workers, worker_id and
-- init_worker in init.lua, the master in _workers.lua).
--
-- "single": no workers were asked for; the one process is worker 0.
-- "master": lepoll.workers{} (or lepoll --workers N) was called: the
--   listeners bind their sockets here, run() supervises (_workers.lua).
-- "worker": a child the master forked; id is 0..count-1.
local M = {
  role = "single",
  id = 0,            -- nil in the master
  count = 1,
  -- the master's settings (lepoll.workers{}): count, mode, init_worker
  -- hooks; kept in every process so a worker can see them
  mode = "reuseport", -- or "shared": one socket per listener, EPOLLEXCLUSIVE
  hooks = {},         -- init_worker(id) functions, in the order given
  command_line = false, -- the count came from lepoll --workers (it wins)
}

--- Run the init_worker hooks for worker id; false and the error (with
-- its traceback) when one raised.
function M.run_hooks(id)
  for _, fn in ipairs(M.hooks) do
    local ok, err = xpcall(fn, debug.traceback, id)
    if not ok then return false, err end
  end
  return true
end

return M
