--- lepoll._activation: listening sockets a process inherits, by
-- sd_listen_fds(3)'s protocol (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES):
-- from systemd or systemd-socket-activate, and from a workers master
-- that re-executes itself on SIGHUP (private; lepoll.listen claims them).
--
-- They are taken once, when lepoll is first required: the variables are
-- unset at once, so no child (a worker, a subprocess) sees them, and
-- every fd gets a CLOEXEC copy (the fds at 3.. are closed).
local lio = require "lepoll.io"
local net = require "lepoll.net"
local logm = require "lepoll._log"

local tonumber, tostring = tonumber, tostring

local M = {}

local FIRST_FD <const> = 3     -- SD_LISTEN_FDS_START
local MAX_FDS <const> = 4096

-- The inherited sockets: { fd = Fd, name = "...", host =, port = | path = }.
local inherited = {}
-- The workers of the image that re-executed into this one (SIGHUP):
-- {pid =, draining = told to drain already}; they serve until this
-- image's workers do (_workers.lua).
M.old_workers = {}

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep) do out[#out + 1] = part end
  return out
end

-- A stream socket that listens, with its address; or nil and why not.
local function describe(fd)
  local acc, err = net.getsockopt(fd, "acceptconn")
  if acc == nil then return nil, err end
  local typ = net.getsockopt(fd, "type")
  if typ ~= net.STREAM then return nil, "not a stream socket" end
  if not acc then return nil, "not listening" end
  local host, port = net.getsockname(fd)
  if not host then return nil, "getsockname: " .. tostring(port) end
  return host, port
end

local function take()
  local pid = tonumber(os.getenv("LISTEN_PID"))
  local n = tonumber(os.getenv("LISTEN_FDS"))
  -- another process's variables (a parent that did not clear them) are
  -- left alone, as sd_listen_fds does
  if not pid or pid ~= lio.getpid() then return end
  local names = os.getenv("LISTEN_FDNAMES")
  local old = os.getenv("LEPOLL_OLD_WORKERS")
  local owned = os.getenv("LEPOLL_OWNED")
  M.check = os.getenv("LEPOLL_CHECK") == "1"
  local process = require "lepoll.process"
  for _, var in ipairs({ "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LEPOLL_OLD_WORKERS",
    "LEPOLL_OWNED", "LEPOLL_CHECK" }) do
    process.setenv(var, nil)
  end
  local mine = {}
  for i in (owned or ""):gmatch("%d+") do mine[tonumber(i) + 1] = true end
  if old then
    -- a workers master re-executed itself (SIGHUP): its sockets carry
    -- the names of its listeners (_workers.lua)
    M.reexec = true
    -- "PID" or "PID:draining" (told to drain by an earlier image)
    for p, d in old:gmatch("(%d+)(:?%a*)") do
      M.old_workers[#M.old_workers + 1] = { pid = tonumber(p), draining = d == ":draining" }
    end
  end
  if not n or n < 1 or n > MAX_FDS or n ~= n // 1 then
    if n ~= 0 then logm.log("LISTEN_FDS: " .. tostring(os.getenv("LISTEN_FDS")) .. " ignored") end
    return
  end
  n = n // 1
  names = names and split(names, ":") or {}
  for i = 0, n - 1 do
    local raw = FIRST_FD + i
    local fd, err = lio.dup(raw)   -- a CLOEXEC copy, owned by an Fd
    if not fd then
      logm.log(("LISTEN_FDS: fd %d: %s"):format(raw, err))
    else
      lio.close(raw)
      local name = names[i + 1]
      if name == nil or name == "" then name = "unknown" end
      local host, port = describe(fd)
      if not host then
        logm.log(("LISTEN_FDS: fd %d (%s): %s; closed"):format(raw, name, port))
        fd:close()
      else
        -- owned: a unix path the image before this one made (a reload)
        local s = { fd = fd, name = name, claimed = false, owned = mine[i + 1] or false }
        if port then s.host, s.port = host, port else s.path = host end
        assert(lio.set_nonblocking(fd, true))
        inherited[#inherited + 1] = s
      end
    end
  end
end

local function same_address(s, host, port, path)
  if path then return s.path == path end
  return s.port ~= nil and port ~= 0 and s.port == port and s.host == host
end

--- The inherited sockets for a listen call (o: its options; host, port
-- or path: its address; serial: its place among the listen calls),
-- claimed: those named o.name; else those bound to the address; else the
-- first unclaimed one in order with its siblings (bound to its address).
-- After a reload only a socket of the same listener (by name: o.name or
-- "lepoll.SERIAL") still bound where the call asks is taken: a listener
-- whose address changed gets a new socket. nil when none is left.
function M.claim(o, host, port, path, serial)
  local out = {}
  local function grab(match)
    for _, s in ipairs(inherited) do
      if not s.claimed and match(s) then
        s.claimed = true
        out[#out + 1] = s
      end
    end
  end
  if M.reexec then
    local key = o.name or ("lepoll." .. serial)
    grab(function(s)
      if s.name ~= key then return false end
      if path then return s.path == path end
      return s.host == host and (port == 0 or s.port == port)
    end)
  elseif o.name then
    grab(function(s) return s.name == o.name end)
  else
    grab(function(s) return same_address(s, host, port, path) end)
    if #out == 0 then
      local first
      for _, s in ipairs(inherited) do
        if not s.claimed then first = s break end
      end
      if first then
        grab(function(s)
          return s == first or (s.host == first.host and s.port == first.port
            and s.path == first.path)
        end)
      end
    end
  end
  if #out == 0 then return nil end
  return out
end

--- Inherited sockets no listen() claimed (reported once run() starts).
function M.unclaimed()
  local out = {}
  for _, s in ipairs(inherited) do
    if not s.claimed then out[#out + 1] = s end
  end
  return out
end

take()

return M
