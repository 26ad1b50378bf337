--- Files and file descriptors for specs: read and write whole files,
-- temporary files, and this process's open fds as /proc shows them.
local M = {}

--- The whole content of the file at path (raises if it cannot be read).
function M.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Write text as the whole content of the file at path (raises on error).
function M.writefile(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

--- A new temporary file holding text; returns its path (the caller removes it).
function M.tmpfile(text)
  local path = os.tmpname()
  M.writefile(path, text or "")
  return path
end

--- Whether a file can be opened for reading.
function M.exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- The framework's modules by the files that hold them: a list of
-- { name, path } for lua/lepoll/*.lua ("lepoll" for init.lua), by path.
function M.framework_modules()
  local mods = {}
  local ls = assert(io.popen("ls lua/lepoll/*.lua 2>/dev/null"))
  for path in ls:lines() do
    local base = path:match("([^/]+)%.lua$")
    mods[#mods + 1] = { base == "init" and "lepoll" or "lepoll." .. base, path }
  end
  ls:close()
  return mods
end

--- This process's pid (from /proc/self/stat, so no C module is needed).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

--- This process's open fds as { [fd] = target } and their number. ls reads
-- /proc/PID/fd from outside, so its own fds are not listed; the pipe that
-- io.popen opens to it is, the same in every call.
function M.fds()
  local p = assert(io.popen("ls -l /proc/" .. M.pid() .. "/fd 2>/dev/null"))
  local t, n = {}, 0
  for line in p:lines() do
    local fd, target = line:match("%s(%d+) %-> (.*)$")
    if fd then t[tonumber(fd)] = target; n = n + 1 end
  end
  p:close()
  return t, n
end

--- The number of this process's open fds (see fds: compare two counts).
function M.count_fds()
  local _, n = M.fds()
  return n
end

--- The open file's status flags (octal "flags:" of /proc/self/fdinfo) of
-- fd: a number or anything with :fileno().
function M.fdflags(fd)
  if type(fd) ~= "number" then fd = fd:fileno() end
  local s = M.slurp("/proc/self/fdinfo/" .. fd)
  return tonumber(s:match("flags:%s*(%d+)"), 8)
end

return M
