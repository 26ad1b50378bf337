--- Specs that drive spec/support/http_app.lua (a lepoll.http server in a
-- child process) with clients no one here wrote: curl, python3, wrk,
-- h2load, slowhttptest. A missing tool fails the spec, naming the Debian
-- package (.ci/deps installs them); it never skips.
local process = require "support.process"

local M = {}

local shquote = process.shquote
M.shquote = shquote

-- Debian package of each tool
local PACKAGE = {
  curl = "curl", wrk = "wrk", h2load = "nghttp2-client",
  slowhttptest = "slowhttptest", python3 = "python3",
}

--- Raise unless tool is on PATH, saying which package provides it.
function M.need(tool)
  local ok = os.execute("command -v " .. shquote(tool) .. " >/dev/null 2>&1")
  if not ok then
    error(("%s not found: install the Debian package %s (.ci/deps lists it)")
      :format(tool, PACKAGE[tool] or tool), 2)
  end
end

-- The tools are not ours: they run without the sanitizer runtime that
-- make check-asan preloads for the Lua interpreters (the app keeps it).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

--- A shell command line for a tool, outside the sanitizer environment.
function M.tool(cmdline)
  return CLEAN_ENV .. cmdline
end

--- Run a tool's command line to the end (bounded by limit seconds):
-- its output (stdout and stderr), whether it exited 0, its exit code.
function M.run(cmdline, limit)
  return process.sh(CLEAN_ENV .. cmdline, limit or 60)
end

--- Start the tool's command line in the background (its stdout read by
-- :wait(), stderr by :stderr()); limit seconds bound it.
function M.spawn(cmdline, limit)
  -- exec: the signal Proc:kill sends reaches the tool, not a shell
  return process.spawn("sh -c " .. shquote("exec " .. CLEAN_ENV .. cmdline .. " 2>&1"),
    { limit = limit or 60 })
end

-- The command line that runs python3 on a temporary file holding script
-- (with args), and that file's path.
local function python_line(script, args)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local parts = { "python3", shquote(path) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = shquote(tostring(a)) end
  return table.concat(parts, " "), path
end

--- Run python3 with the script's text and args: output, ok, code.
function M.python(script, args, limit)
  local line, path = python_line(script, args)
  local out, ok, code = M.run(line, limit)
  os.remove(path)
  return out, ok, code
end

--- Start python3 with the script's text and args in the background: a
-- Proc (process.lua) whose :wait() returns its output; :close() removes
-- the script too.
function M.python_spawn(script, args, limit)
  local line, path = python_line(script, args)
  local p = M.spawn(line, limit)
  local close = p.close
  function p.close(self)
    close(self)
    os.remove(path)
  end
  return p
end

local App = {}
App.__index = App

--- Start the test app with the listen options in opts (name -> value):
-- an App with .port and .url(path). nofile raises RLIMIT_NOFILE first.
function M.app(opts, nofile)
  local args = {}
  for k, v in pairs(opts or {}) do args[#args + 1] = k .. "=" .. tostring(v) end
  table.sort(args)
  local cmd = { process.lua_command(), "spec/support/http_app.lua" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = shquote(a) end
  -- exec: the signal Proc:kill sends must reach the app, not a shell
  local line = "exec " .. table.concat(cmd, " ")
  if nofile then line = ("ulimit -n %d && %s"):format(nofile, line) end
  local p = process.spawn("sh -c " .. shquote(line), { limit = 300 })
  local _, port = p:listening("127.0.0.1")
  return setmetatable({ proc = p, port = port }, App)
end

--- The app's pid (the command timeout(1) runs: the shell exec'd it).
function App:pid()
  local pid = self.proc.pid
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(pid, pid)))
  local s = f:read("a")
  f:close()
  return assert(tonumber(s:match("%d+")), "the app has no process")
end

function App:url(path)
  return ("http://127.0.0.1:%d%s"):format(self.port, path or "/")
end

--- The targets the app's handler saw ("METHOD target" lines) and how
-- many times it answered "/".
function App:log()
  local out, ok = M.run("curl -sS --max-time 10 " .. shquote(self:url("/log")), 20)
  assert(ok, "GET /log failed: " .. out)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local hellos = tonumber(table.remove(lines):match("^hello%-count (%d+)$"))
  return lines, hellos
end

--- Stop the app with SIGTERM (a graceful shutdown) and check that it
-- exited 0 with no sanitizer report or Lua error on stderr. Safe to repeat.
function App:stop()
  if self.stopped then return end
  self.stopped = true
  local p = self.proc
  p:kill("TERM")
  local _, how, code = p:wait()
  local err = p:stderr()
  p:close()
  assert(not err:find("AddressSanitizer") and not err:find("runtime error")
    and not err:find("lua5%.4:"), "the app's stderr: " .. err)
  assert(how == "exit" and code == 0,
    ("the app ended by %s %s; stderr: %s"):format(tostring(how), tostring(code), err))
end

return M
