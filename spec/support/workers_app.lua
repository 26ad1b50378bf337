-- A lepoll.http app for spec/workers_spec.lua, run by the lepoll program
-- (build/bin/lepoll [--workers N] spec/support/workers_app.lua [opt=value ...]).
-- Options: port=N (0: a free one), path=/unix/socket, mode=reuseport|shared,
-- lua_workers=N (lepoll.workers{count = N} from the script instead of the
-- command line), fail_worker=ID (that worker's init_worker raises),
-- shutdown_timeout=S, name=NAME (the listener's LISTEN_FDNAMES name),
-- port_file=FILE (the port, read from FILE at each start), fail_file=FILE
-- (the script raises while it loads if FILE exists), cert=FILE key=FILE
-- (serve HTTPS with a context made before run()).
-- Prints "listening on HOST:PORT" (or "listening on PATH") from the master.
--   /          "worker ID pid PID inode INODE init ID\n": who answered, the
--              listening socket it accepts on, what its init_worker saw
--   /slow?ms=N "start\n" at once (chunked), then the same after N milliseconds
--   /spin?ms=N "start\n", then keeps its worker's loop busy for N ms, then who
--   /env       LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, LEPOLL_OLD_WORKERS as
--              this worker sees them ("-" when unset)
local lepoll = require "lepoll"
local http = require "lepoll.http"

local o = {}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  assert(k, "option=value expected, got " .. a)
  o[k] = math.tointeger(tonumber(v)) or v
end

local init_id = "none"
if o.lua_workers or o.mode or o.fail_worker then
  lepoll.workers({ count = o.lua_workers, mode = o.mode })
end
lepoll.init_worker(function(id)
  init_id = tostring(id)
  if o.fail_worker and id == o.fail_worker then error("init_worker " .. id .. " fails") end
  lepoll.log("init_worker " .. id)
end)

local server
local lio = require "lepoll.io"
local my_inode  -- the listening socket this worker accepts on (once: it forks readlink)
local function inode()
  if not my_inode then
    local p = io.popen(("readlink /proc/%d/fd/%d"):format(lio.getpid(), server:fileno()))
    my_inode = (p:read("l") or ""):match("socket:%[(%d+)%]") or "?"
    p:close()
  end
  return my_inode
end

local function who()
  return ("worker %s pid %d inode %s init %s\n"):format(tostring(lepoll.worker_id()),
    lio.getpid(), inode(), init_id)
end

if o.fail_file and io.open(o.fail_file) then  -- a reload that must be refused
  error("fail_file " .. o.fail_file .. " exists")
end
if o.port_file then  -- the port, read at each start: a reload may change it
  local f = assert(io.open(o.port_file))
  o.port = math.tointeger(tonumber(f:read("a")))
  f:close()
end
local listen = { port = o.port, path = o.path, name = o.name }
if o.path then listen.port = nil else listen.host = "127.0.0.1" end
if o.cert then  -- made once, in the master: every worker serves with it
  listen.tls = assert(require("lepoll.tls").context({ cert = o.cert, key = o.key }))
end
server = assert(http.listen(listen, function(req, res)
  if req.path == "/slow" then
    res:write("start\n")  -- the client knows the handler runs
    lepoll.sleep((tonumber(req.query and req.query:match("ms=(%d+)")) or 0) / 1000)
    return res:finish(who())
  elseif req.path == "/spin" then
    -- holds this worker's loop: what comes meanwhile goes to another
    res:write("start\n")
    local stop = lepoll.now() + (tonumber(req.query and req.query:match("ms=(%d+)")) or 0) / 1000
    while lepoll.now() < stop do end
    return res:finish(who())
  elseif req.path == "/env" then
    local parts = {}
    for _, v in ipairs({ "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LEPOLL_OLD_WORKERS" }) do
      parts[#parts + 1] = v .. "=" .. (os.getenv(v) or "-")
    end
    return res:finish(table.concat(parts, " ") .. "\n")
  end
  return res:finish(who())
end))

if o.path then
  io.stdout:write("listening on ", server:address(), "\n")
else
  local h, p = server:address()
  io.stdout:write(("listening on %s:%d\n"):format(h, p))
end
io.stdout:flush()
if o.shutdown_timeout then lepoll.default_loop().shutdown_timeout = o.shutdown_timeout end
lepoll.run()
