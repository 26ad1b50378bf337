--- Files and file descriptors for specs: read and write whole files,
-- temporary files, and this process's open fds as /proc shows them.
-- Nothing here spawns a process: a child's pipe would show up among the
-- fds it counts (lua-filesystem reads the directories instead).
local lfs = require "lfs"

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
  for file in lfs.dir("lua/lepoll") do
    local base = file:match("^(.+)%.lua$")
    if base then
      mods[#mods + 1] = { base == "init" and "lepoll" or "lepoll." .. base, "lua/lepoll/" .. file }
    end
  end
  table.sort(mods, function(a, b) return a[2] < b[2] end)
  return mods
end

--- This process's pid (from /proc/self/stat, so no C module is needed).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

-- Valgrind's own fds (its gdbserver FIFO comes and goes): not the program's.
local function valgrinds(target)
  return target:find("vgdb-pipe", 1, true) or target:find("/valgrind_", 1, true)
end

--- This process's open fds as { [fd] = target } and their number. The
-- directory handle that reads /proc/self/fd is one of them while it reads:
-- it is left out, found by its target (this very directory), exactly once.
function M.fds()
  local dir = "/proc/" .. M.pid() .. "/fd"
  local t, n, own = {}, 0, 0
  for name in lfs.dir(dir) do
    local fd = math.tointeger(tonumber(name))
    if fd then  -- not "." or ".."
      local target = lfs.symlinkattributes(dir .. "/" .. name, "target")
      if target == dir then
        own = own + 1
      elseif target and not valgrinds(target) then
        t[fd] = target
        n = n + 1
      end
    end
  end
  assert(own == 1, ("the listing's own fd: seen %d times in %s"):format(own, dir))
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
