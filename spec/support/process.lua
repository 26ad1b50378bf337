--- Start a Lua script as a separate process for specs, read its output,
-- signal it by pid and collect its exit status. Bounded: every child runs
-- under timeout(1), so a hung child cannot hang the suite.
local M = {}

local function shquote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end
M.shquote = shquote

--- The interpreter command line for children: lua5.4 with the same
-- module paths as the specs (LEPOLL_CPATH picks sanitizer builds).
function M.lua_command()
  local cpath = os.getenv("LEPOLL_CPATH") or "./build/?.so"
  return "env LUA_PATH=" .. shquote("./lua/?.lua;./lua/?/init.lua;;")
    .. " LUA_CPATH=" .. shquote(cpath .. ";;") .. " lua5.4"
end

--- The shell command line that runs a program built here, `path args...`,
-- as the spec run asks: under valgrind (make check-valgrind), or with ASan's
-- leak check on (make check-asan) for that program only, since the
-- uninstrumented tools around it would report their own leaks. LUA_INIT is
-- unset; opts.env adds "NAME=value" strings; opts.stdin is a file for
-- standard input (default /dev/null, so that it never sees a terminal).
-- opts.native: never under valgrind (valgrind 3.19 has no pidfd_open,
-- which a workers master needs).
function M.program(path, args, opts)
  opts = opts or {}
  local sanitized = os.getenv("LEPOLL_SANITIZED")
  local parts = { "env -u LUA_INIT -u LUA_INIT_5_4" }
  for _, kv in ipairs(opts.env or {}) do parts[#parts + 1] = shquote(kv) end
  if sanitized == "asan" then
    parts[#parts + 1] = "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
  elseif sanitized == "valgrind" and not opts.native then
    parts[#parts + 1] = "valgrind -q --leak-check=full --errors-for-leak-kinds=definite"
      .. " --error-exitcode=99"
  end
  parts[#parts + 1] = shquote(path)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = shquote(a) end
  parts[#parts + 1] = "<" .. shquote(opts.stdin or "/dev/null")
  return table.concat(parts, " ")
end

--- Environment strings for M.program that make Lua find no module outside
-- it: every LUA_PATH and LUA_CPATH variable points into dir (an empty folder).
function M.no_modules(dir)
  return {
    "LUA_PATH=" .. dir .. "/?.lua", "LUA_CPATH=" .. dir .. "/?.so",
    "LUA_PATH_5_4=" .. dir .. "/?.lua", "LUA_CPATH_5_4=" .. dir .. "/?.so",
  }
end

local Proc = {}
Proc.__index = Proc

--- Spawn `cmd` (a shell command line; stderr goes to a temporary file).
-- opts.limit: seconds before timeout(1) kills it (default 60).
-- Returns a Proc whose stdout is read line by line with proc:line().
function M.spawn(cmd, opts)
  opts = opts or {}
  local errfile = os.tmpname()
  local limit = opts.limit or 60
  -- --foreground: timeout(1) then forwards a signal to the child once;
  -- without it the child gets it twice (directly and via the process
  -- group), which a server rightly reads as "a second SIGTERM: force it".
  local sh = string.format("echo $$; exec timeout --foreground -k 5 %d %s 2>%s",
    limit, cmd, shquote(errfile))
  local f = assert(io.popen(sh, "r"))
  local pid = tonumber(f:read("l"))
  assert(pid, "could not start: " .. cmd)
  return setmetatable({ pid = pid, out = f, errfile = errfile }, Proc)
end

--- Spawn a Lua script with the spec's module paths: M.script(path, args...)
function M.script(path, ...)
  local parts = { M.lua_command(), shquote(path) }
  for i = 1, select("#", ...) do parts[#parts + 1] = shquote(select(i, ...)) end
  return M.spawn(table.concat(parts, " "))
end

--- Run a shell command line to the end, bounded like every child (limit
-- seconds, default 120): returns its stdout and stderr together, whether
-- it exited 0, and its exit code.
function M.sh(cmd, limit)
  local p = M.spawn("sh -c " .. shquote(cmd .. " 2>&1"), { limit = limit or 120 })
  local out, how, code = p:wait()
  p:close()
  return out, how == "exit" and code == 0, code
end

--- Run the Lua script at path with arg under a 256 KiB C stack (ulimit
-- -s 256: what stock Lua needs to reach its C-call limit): returns its
-- stdout, how it ended ("exit"/"signal"), its code and its stderr.
function M.small_stack(path, arg)
  local p = M.spawn("sh -c " .. shquote("ulimit -s 256 && exec " .. M.lua_command() .. " "
    .. shquote(path) .. " " .. shquote(arg)))
  local rest, how, code = p:wait()
  local err = p:stderr()
  p:close()
  return rest, how, code, err
end

--- Next line of the child's stdout (nil at end of file).
function Proc:line()
  return self.out:read("l")
end

--- Read the server's first line, "listening on HOST:PORT": returns host
-- and port (a number). Any other line, or another host than want (when
-- given), closes the child and raises with what it wrote to stderr.
function Proc:listening(want)
  local line = self:line()
  local host, port = (line or ""):match("^listening on (.+):(%d+)$")
  if not port or (want and host ~= want) then
    local err = self:stderr()
    self:close()
    error(("expected 'listening on %s:PORT', got %s\n%s")
      :format(want or "HOST", tostring(line), err), 2)
  end
  return host, tonumber(port)
end

-- The command timeout(1) runs (its child), or timeout itself before it has
-- forked. A signal sent to timeout in the moment after its fork() made the
-- command (which may have printed its first line already) and before fork
-- returned in timeout makes it exit 143 and leave the command running.
local function command_pid(pid)
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
  local s = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(s:match("%d+")) or pid
end

--- Send a signal by name ("TERM", "INT", "KILL") to this child only: the
-- command itself (timeout(1) exits as it does).
function Proc:kill(sig)
  if self.done then return false end
  return os.execute(string.format("kill -%s %d 2>/dev/null", sig or "TERM",
    command_pid(self.pid))) == true
end

--- Wait for exit: returns the rest of stdout, how ("exit"/"signal") and code.
function Proc:wait()
  if self.done then return self.rest, self.how, self.code end
  local rest = self.out:read("a")
  local _, how, code = self.out:close()
  self.done, self.rest, self.how, self.code = true, rest, how, code
  return rest, how, code
end

--- What the child wrote to stderr so far.
function Proc:stderr()
  local f = io.open(self.errfile, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

--- Stop (TERM, then wait) and remove the temporary file. Safe to repeat.
function Proc:close()
  if not self.done then
    self:kill("TERM")
    self:wait()
  end
  os.remove(self.errfile)
end

return M
