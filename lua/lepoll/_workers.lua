--- lepoll._workers: one loop per core under a master (private; the
-- public face is lepoll.workers, worker_id, init_worker and
-- lepoll --workers N).
--
-- The app script runs once, in the master: its listen() calls bind the
-- sockets (one per worker with SO_REUSEPORT, or one shared), its TLS
-- contexts and everything else it builds before run() are made once.
-- run() then forks the workers; each child leaves the master's loop,
-- rebuilds the app's loop for itself (a fresh epoll set and timerfd:
-- fork shares the master's), keeps its share of the sockets, runs the
-- init_worker hooks and returns into run(), which serves as in a single
-- process. The master holds no connection: it watches its workers
-- through pidfds, restarts one that dies, and turns signals into
-- drains (TERM/INT) and reloads (HUP: re-exec, sockets passed as
-- LISTEN_FDS; _activation.lua takes them in the new image).
local lio = require "lepoll.io"
local process = require "lepoll.process"
local loopm = require "lepoll._loop"
local logm = require "lepoll._log"
local role = require "lepoll._role"
local activation = require "lepoll._activation"
local optionsm = require "lepoll._options"

local log = logm.log
local SIGTERM, SIGKILL = lio.signals.TERM, lio.signals.KILL

local M = {}

-- A worker that dies this soon after it started is restarted after a
-- back-off that doubles (to MAX_BACKOFF) with each such death: a script
-- that fails at once must not become a fork storm.
local QUICK_DEATH <const> = 1
local FIRST_BACKOFF <const> = 0.25
local MAX_BACKOFF <const> = 16
-- After the drain a TERM asks for (the loop's shutdown_timeout), this
-- long more before the master kills what is left.
local KILL_GRACE <const> = 5

local function check_count(v)
  if v == "auto" then return process.cpu_count() end
  if math.type(v) == "integer" and v >= 1 and v <= 1024 then return v end
  return nil, "an integer 1..1024 or 'auto'"
end

local function check_mode(v)
  if v == "reuseport" or v == "shared" then return v end
  return nil, "'reuseport' or 'shared'"
end

local function check_fn(v)
  if type(v) == "function" then return v end
  return nil, "a function"
end

optionsm.kinds.workers = {
  count = { check_count, nil },           -- default: the CPUs this process may use
  mode = { check_mode, "reuseport" },
  init_worker = { check_fn, nil },
}

--- lepoll.workers(opts): run the app on several workers. Must come
-- before the first listen(); lepoll --workers N calls it before the
-- script, and its count wins over the script's.
function M.configure(loop, opts)
  local o = optionsm.check(opts, "workers", "workers", 1, 2)
  if role.role == "worker" then
    error("lepoll.workers: already in a worker (call it at the script's top level)", 2)
  end
  if loop and next(loop.servers) and role.role ~= "master" then
    error("lepoll.workers: must come before lepoll.listen (the master binds one socket"
      .. " per worker)", 2)
  end
  role.role, role.id, role.pid = "master", nil, lio.getpid()
  if not role.command_line then role.count = o.count or process.cpu_count() end
  role.mode = o.mode
  if o.init_worker then role.hooks[#role.hooks + 1] = o.init_worker end
  return true
end

--- lepoll --workers N (N: an integer or "auto"), from the host program.
function M.command_line(n)
  local count, expected = check_count(math.tointeger(n) or n)
  if not count then
    error("bad argument to '--workers' (" .. expected .. " expected, got " .. tostring(n) .. ")", 2)
  end
  role.role, role.id, role.count, role.pid = "master", nil, count, lio.getpid()
  role.command_line = true
  return true
end

-- The master --------------------------------------------------------------

local Master = {}
Master.__index = Master

local function describe_exit(how, code)
  if how == "exited" then return "exited with status " .. code end
  return (how == "dumped" and "dumped core on signal " or "was killed by signal ") .. code
end

-- The listeners in the order listen() made them (the order a re-exec
-- passes them in, and the new image's listen() calls claim them in).
local function servers_in_order(loop)
  local list = {}
  for s in pairs(loop.servers) do list[#list + 1] = s end
  table.sort(list, function(a, b) return a.serial < b.serial end)
  return list
end

function Master:live()
  local n = 0
  for _, w in pairs(self.slots) do if w.pid then n = n + 1 end end
  for _ in pairs(self.old) do n = n + 1 end
  return n
end

-- Every worker process (this image's and an earlier image's).
function Master:each_process(fn)
  for _, w in pairs(self.slots) do if w.pid then fn(w) end end
  for _, w in pairs(self.old) do fn(w) end
end

function Master:signal_all(signo, skip_draining)
  self:each_process(function(w)
    if skip_draining and w.draining then return end
    local ok, err = process.send_signal(w.pidfd, signo)
    if not ok then log(("signal %d to pid %d: %s"):format(signo, w.pid, err)) end
  end)
end

-- Reap w (its pidfd is readable); the slot's new worker is due now, or
-- after a back-off when it died young.
function Master:reaped(w)
  local how, code = process.waitid(w.pidfd)
  if how == false then return end
  w.watch:cancel()
  w.pidfd:close()
  w.watch, w.pidfd = false, false
  if w.ready_watch then
    w.ready_watch:cancel()
    w.ready_fd:close()
    w.ready_watch, w.ready_fd = false, false
  end
  local what = how and describe_exit(how, code) or ("is gone (" .. tostring(code) .. ")")
  if w.old then
    self.old[w.pid] = nil
    log(("old worker pid %d %s"):format(w.pid, what))
    return
  end
  local pid = w.pid
  w.pid, w.ready = false, false
  if self.stopping then
    log(("worker %d (pid %d) %s"):format(w.id, pid, what))
    return
  end
  local up = self.sup.now - w.started
  if up < QUICK_DEATH then
    w.backoff = w.backoff and math.min(w.backoff * 2, MAX_BACKOFF) or FIRST_BACKOFF
  else
    w.backoff = false
  end
  if w.backoff then
    log(("worker %d (pid %d) %s after %.2fs; restarting it in %gs"):format(w.id, pid, what,
      up, w.backoff))
    w.timer = self.sup:after(w.backoff, function()
      w.timer = false
      self.due[#self.due + 1] = w.id
    end)
  else
    log(("worker %d (pid %d) %s; restarting it"):format(w.id, pid, what))
    self.due[#self.due + 1] = w.id
  end
end

-- A new worker said it serves: once all of this image's do, an earlier
-- image's workers (a reload) are told to drain.
function Master:readied(w)
  local data = lio.read(w.ready_fd, 16)
  if data == nil then return end   -- EAGAIN: a spurious wake
  w.ready_watch:cancel()
  w.ready_fd:close()
  w.ready_watch, w.ready_fd = false, false
  if data == "" then return end    -- it died first: its pidfd says so
  w.ready = true
  if next(self.old) then
    for _, s in pairs(self.slots) do if not s.ready then return end end
    for _, o in pairs(self.old) do
      -- one an earlier reload told drains already: a second TERM would
      -- close its connections at once
      if not o.draining then
        o.draining = true
        log(("reload: telling old worker pid %d to drain"):format(o.pid))
        local ok, err = process.send_signal(o.pidfd, SIGTERM)
        if not ok then log(("signal old worker pid %d: %s"):format(o.pid, err)) end
      end
    end
  end
end

-- Watch process pid (a child of this process) through a pidfd: w gets
-- its pidfd and watch. true, or nil and why not.
function Master:watch_process(w)
  local pidfd, err = lio.pidfd_open(w.pid)
  if not pidfd then return nil, "pidfd_open: " .. tostring(err) end
  local watch
  watch, err = self.sup:watch(pidfd, "r", function() self:reaped(w) end)
  if not watch then
    pidfd:close()
    return nil, "watch: " .. tostring(err)
  end
  w.pidfd, w.watch = pidfd, watch
  return true
end

-- In a new child: this process is worker id now. Leave everything of the
-- master's behind without touching what the master still uses (the
-- epoll set and the fds are shared until closed here).
function Master:become_worker(id, ready_w)
  for _, w in pairs(self.slots) do
    if w.pidfd then w.pidfd:close() end
    if w.ready_fd then w.ready_fd:close() end
  end
  for _, w in pairs(self.old) do w.pidfd:close() end
  self.sup:_disown()
  role.role, role.id, role.pid = "worker", id, lio.getpid()
  -- the master's death ends its workers (they drain): no orphan keeps
  -- serving the port with nobody to restart or reload it
  process.parent_death_signal(SIGTERM)
  if process.getppid() ~= self.pid then os.exit(1, false) end
  -- the master blocked these for its signalfd; a worker drains on
  -- TERM/INT through its own loop (which blocks them again, so one that
  -- came meanwhile is not lost) and ignores HUP (the master's).
  local app = self.app
  if not app.signal_handlers[lio.signals.HUP] then
    lio.ignore_signal("HUP")
    lio.sigmask("unblock", { "HUP" })
  end
  app:_reinit()
  -- TERM and INT: the first, from anyone (the master, a terminal's
  -- process group, systemd's control group), starts the drain; only the
  -- master's second closes everything at once. So a Ctrl-C that reaches
  -- the whole group, passed on by the master, is still one drain.
  app.handle_signals = false
  local from_master, master = 0, self.pid
  local function on_term(_, sender)
    if sender == master then from_master = from_master + 1 end
    if not app.in_shutdown or from_master >= 2 then app:shutdown() end
  end
  for _, sig in ipairs({ "TERM", "INT" }) do
    if not app.signal_handlers[lio.signals[sig]] then assert(app:on_signal(sig, on_term)) end
  end
  for _, s in ipairs(servers_in_order(app)) do
    local ok, err = s:_assign(id, role.count)
    if not ok then
      log(("listen %s: %s"):format(s.name, err))
      os.exit(1, false)
    end
  end
  local ok, err = role.run_hooks(id)
  if not ok then
    log("init_worker failed: " .. tostring(err))
    os.exit(1, false)
  end
  lio.write(ready_w, "R")
  ready_w:close()
end

-- Fork worker id. true in the child (now a worker), false in the master.
function Master:spawn(id)
  local w = self.slots[id]
  local rfd, wfd = lio.pipe(lio.NONBLOCK)
  if not rfd then
    log("worker " .. id .. ": pipe: " .. tostring(wfd))
    w.timer = self.sup:after(1, function() self.due[#self.due + 1] = id end)
    return false
  end
  local pid, err = process.fork()
  if pid == 0 then
    -- an error must not unwind into the master's code, nor a collector
    -- close the master's loops (their epoll sets are still shared)
    local ok, cerr = xpcall(function()
      rfd:close()
      self:become_worker(id, wfd)
    end, logm.msgh)
    if not ok then
      log("worker " .. id .. " failed to start: " .. tostring(cerr))
      os.exit(1, false)
    end
    return true
  end
  wfd:close()
  if not pid then
    rfd:close()
    log(("worker %d: fork: %s; trying again in 1s"):format(id, err))
    w.timer = self.sup:after(1, function() self.due[#self.due + 1] = id end)
    return false
  end
  w.pid, w.started, w.ready = pid, self.sup.now, false
  local ok, perr = self:watch_process(w)
  if not ok then
    -- no pidfd or no watch (EMFILE, ENOMEM): nothing could reap or
    -- restart it; it goes (a zombie until the master exits), and the slot
    -- is tried again
    log(("worker %d (pid %d): %s; killing it, trying again in 1s"):format(id, pid, perr))
    process.kill(pid, SIGKILL)
    rfd:close()
    w.pid = false
    w.timer = self.sup:after(1, function() self.due[#self.due + 1] = id end)
    return false
  end
  w.ready_fd = rfd
  local werr
  w.ready_watch, werr = self.sup:watch(rfd, "r", function() self:readied(w) end)
  if not w.ready_watch then
    -- it serves, but cannot say so: a reload waiting for it would wait on
    log(("worker %d (pid %d): watch: %s; its readiness is taken for granted"):format(id, pid,
      tostring(werr)))
    rfd:close()
    w.ready_fd, w.ready_watch, w.ready = false, false, true
  end
  log(("worker %d started, pid %d"):format(id, pid))
  return false
end

-- TERM/INT: drain every worker; a second one: close every connection now.
function Master:stop()
  if not self.stopping then
    self.stopping = true
    log(("shutting down: draining %d worker%s"):format(self:live(),
      self:live() == 1 and "" or "s"))
    -- the master's copies go first: once the workers close theirs, no
    -- socket is left to queue connections nobody will accept
    for s in pairs(self.app.servers) do s:close() end
    for _, w in pairs(self.slots) do
      if w.timer then w.timer:cancel() w.timer = false end
    end
    self.due = {}
    -- old workers a reload told to drain do so already
    self:signal_all(SIGTERM, true)
    self.sup:after(self.app.shutdown_timeout + KILL_GRACE, function()
      if self:live() > 0 then
        log("workers still running after the drain; killing them")
        self:signal_all(SIGKILL)
      end
    end)
  else
    log("second signal: closing every connection now")
    self:signal_all(SIGTERM)
  end
end

-- The command line this process was started with, as execve wants it.
local function cmdline()
  local f = io.open("/proc/self/cmdline", "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  local argv = {}
  for part in data:gmatch("([^%z]*)%z") do argv[#argv + 1] = part end
  return #argv > 0 and argv or nil
end

-- The environment of a new image: this one's, less what concerns the
-- sockets, plus extra ("NAME=value" strings).
local function environment(extra)
  local env = {}
  for _, kv in ipairs(process.environ()) do
    local k = kv:match("^([^=]*)=")
    if k ~= "LISTEN_FDS" and k ~= "LISTEN_PID" and k ~= "LISTEN_FDNAMES"
      and k ~= "LEPOLL_OLD_WORKERS" and k ~= "LEPOLL_OWNED" and k ~= "LEPOLL_CHECK" then
      env[#env + 1] = kv
    end
  end
  for _, kv in ipairs(extra) do env[#env + 1] = kv end
  return env
end

-- How long a reload's trial may take to reach run().
local TRIAL_TIME <const> = 30

--- SIGHUP: re-execute this program with every listening socket passed
-- (LISTEN_FDS), and the workers' pids, which the new image lets drain
-- once its own workers serve. The new image is tried first: the same
-- command line and sockets in a child that stops at run() (LEPOLL_CHECK).
-- A script that no longer compiles, or fails while it loads (a module, a
-- file, a listener that cannot bind), is refused while this image serves.
function Master:reload()
  if self.stopping then return end
  if self.trial then
    log("reload: one is being tried already")
    return
  end
  local script = rawget(_G, "arg") and _G.arg[0]
  if type(script) == "string" and script ~= "-" then
    local chunk, err = loadfile(script)
    if not chunk then
      log("reload refused: " .. tostring(err))
      return
    end
  end
  local argv = cmdline()
  if not argv then
    log("reload refused: cannot read /proc/self/cmdline")
    return
  end
  local fds, names, owned = {}, {}, {}
  for _, s in ipairs(servers_in_order(self.app)) do
    for _, fd in ipairs(s.socks) do
      fds[#fds + 1] = fd
      names[#names + 1] = s.fdname or ("lepoll." .. s.serial)
      -- a unix path this process made: the new image removes it at the end
      if s.path then owned[#owned + 1] = tostring(#fds - 1) end
    end
  end
  -- what systemd gave and no listener took: still systemd's, passed on
  for _, u in ipairs(activation.unclaimed()) do
    fds[#fds + 1] = u.fd
    names[#names + 1] = u.name
  end
  local pids = {}
  self:each_process(function(w)
    pids[#pids + 1] = tostring(w.pid) .. (w.draining and ":draining" or "")
  end)
  local extra = {
    "LISTEN_FDS=" .. #fds,
    "LISTEN_FDNAMES=" .. table.concat(names, ":"),
    "LEPOLL_OLD_WORKERS=" .. table.concat(pids, ","),
    "LEPOLL_OWNED=" .. table.concat(owned, ","),
  }
  local trial_env = environment(extra)
  local pid, err = process.fork()
  if pid == 0 then
    -- the trial: its own pid in LISTEN_PID, exec at once (no Lua of the
    -- master's runs here)
    trial_env[#trial_env + 1] = "LISTEN_PID=" .. lio.getpid()
    trial_env[#trial_env + 1] = "LEPOLL_CHECK=1"
    process.execve("/proc/self/exe", argv, trial_env, fds)
    os.exit(127, false)
  end
  if not pid then
    log("reload refused: fork: " .. tostring(err))
    return
  end
  local t = { pid = pid }
  local ok, perr = self:watch_trial(t, function(how, code)
    self.trial = false
    if how ~= "exited" or code ~= 0 then
      log(("reload refused: the new image %s before it could serve (this one serves on)")
        :format(how and describe_exit(how, code) or "timed out"))
      return
    end
    if self.stopping then return end
    local env = environment(extra)
    env[#env + 1] = "LISTEN_PID=" .. self.pid
    log(("reload: re-executing with %d listening socket%s; %d worker%s drain once the new"
      .. " ones serve"):format(#fds, #fds == 1 and "" or "s", #pids, #pids == 1 and "" or "s"))
    local _, xerr = process.execve("/proc/self/exe", argv, env, fds)
    log("reload failed: execve: " .. tostring(xerr))
  end)
  if not ok then
    log("reload refused: " .. tostring(perr))
    process.kill(pid, SIGKILL)
    return
  end
  self.trial = t
end

-- Wait for the trial t (t.pid, a child) through a pidfd, at most
-- TRIAL_TIME: done(how, code) when it ended, done(nil) when it was killed
-- for taking too long. true, or nil and why not.
function Master:watch_trial(t, done)
  local pidfd, err = lio.pidfd_open(t.pid)
  if not pidfd then return nil, "pidfd_open: " .. tostring(err) end
  local timer
  local watch
  watch, err = self.sup:watch(pidfd, "r", function()
    local how, code = process.waitid(pidfd)
    if how == false then return end
    watch:cancel()
    pidfd:close()
    if timer.expired then how = nil end
    timer:cancel()
    done(how, code)
  end)
  if not watch then
    pidfd:close()
    return nil, "watch: " .. tostring(err)
  end
  timer = self.sup:after(TRIAL_TIME, function()
    timer.expired = true
    process.send_signal(pidfd, SIGKILL)
  end)
  return true
end

--- Loop:run() in a master: supervise the workers until a drain ends.
-- Returns true in the master when every worker is gone, false in a
-- worker (forked here), whose loop the caller then runs.
function M.supervise(app)
  for _, o in pairs(app.objects) do
    if o and o._isconn then
      error("lepoll.run: connections made before the workers start would be shared by"
        .. " all of them; make them in init_worker or in handlers", 3)
    end
  end
  role.pid = lio.getpid()
  for _, s in ipairs(activation.unclaimed()) do
    local where = s.path or ("%s:%s"):format(s.host, s.port)
    if activation.reexec then
      -- this image listens elsewhere now: a socket nobody accepts on would
      -- hold its connections forever; closed, they are refused (once the
      -- old workers, which still accept on it, have drained)
      log(("reload: no listener takes %s (%s) any more; closing it"):format(where, s.name))
      s.fd:close()
      s.claimed = true
    else
      log(("LISTEN_FDS: socket %s (%s) matched no listen(); left open, unused"):format(
        where, s.name))
    end
  end
  local sup = loopm.new({ signals = false })
  local m = setmetatable({ app = app, sup = sup, pid = role.pid, slots = {}, old = {},
    due = {}, stopping = false }, Master)
  for id = 0, role.count - 1 do
    m.slots[id] = { id = id, pid = false, pidfd = false, watch = false, ready = false,
      ready_fd = false, ready_watch = false, started = 0, backoff = false, timer = false }
    m.due[#m.due + 1] = id
  end
  for _, o in ipairs(activation.old_workers) do
    local pid = o.pid
    local w = { pid = pid, old = true, draining = o.draining }
    -- only our own children: waitid tells (ECHILD for anyone else's)
    if m:watch_process(w) and process.waitid(w.pidfd) == false then
      m.old[pid] = w
    elseif w.watch then
      w.watch:cancel()
      w.pidfd:close()
    end
  end
  activation.old_workers = {}
  sup:on_signal("TERM", function() m:stop() end)
  sup:on_signal("INT", function() m:stop() end)
  sup:on_signal("HUP", function() m:reload() end)
  log(("master pid %d: starting %d worker%s"):format(m.pid, role.count,
    role.count == 1 and "" or "s"))
  while true do
    -- forks happen here, outside every callback: a child returns from
    -- this function straight into run()
    while #m.due > 0 do
      local id = table.remove(m.due, 1)
      if not m.stopping and m:spawn(id) then return false end
    end
    if m.stopping and m:live() == 0 then break end
    sup:step()
  end
  sup:close()
  log("master: every worker is gone; exiting")
  return true
end

return M
