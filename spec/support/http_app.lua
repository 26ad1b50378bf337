-- A lepoll.http test app for specs that drive it with clients not ours
-- (curl, python3, wrk, h2load, slowhttptest): a separate process.
--   lua5.4 spec/support/http_app.lua [option=value ...]
-- Each argument sets a listen option (numbers as numbers, "false" as
-- false), e.g. header_timeout=2 max_body=1024. It binds 127.0.0.1, a free
-- port, and prints "listening on HOST:PORT" first.
--
-- Every request but "/" and "/log" is recorded, in the order the handler
-- saw it, so a spec can prove what never reached the handler (the follower
-- of a smuggling attempt); "/" is the load route: only counted.
--   /               "hello\n"
--   /echo           the request body (req:body()); X-Request-TE: the request's
--                   Transfer-Encoding ("none" without one)
--   /upload-count   the body's length, read piece by piece (req:read)
--   /chunked?n=N    N pieces "piece I\n" by res:write (chunked on 1.1)
--   /big?n=N        N bytes of "x" (one finish with a Content-Length)
--   /slow?ms=MS     answers "slept" after MS milliseconds
--   /who            "conn PEERPORT request N": this is the connection's Nth request
--   /reject413      413 without reading the body
--   /auth           401 without reading the body
--   /log            the recorded targets, one a line, then "hello-count N"
--   anything else   the target, echoed
local lepoll = require "lepoll"
local http = require "lepoll.http"

local opts = { host = "127.0.0.1", port = 0 }
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  assert(k, "option=value expected, got " .. a)
  if v == "false" then opts[k] = false
  elseif v == "true" then opts[k] = true
  else opts[k] = math.tointeger(tonumber(v)) or tonumber(v) or v end
end

local seen, hellos = {}, 0
local per_conn = setmetatable({}, { __mode = "k" })

local function qnum(req, name, default)
  local v = req.query and req.query:match("%f[%w]" .. name .. "=(%d+)")
  return tonumber(v) or default
end

local routes = {}

routes["/"] = function(_, res)
  res:header("Content-Type", "text/plain")
  res:finish("hello\n")
end

routes["/echo"] = function(req, res)
  local body = req:body()
  if not body then return end  -- the server answered (413, 408, 400)
  res:header("X-Request-TE", req.headers["transfer-encoding"] or "none")
  res:finish(body)
end

routes["/upload-count"] = function(req, res)
  local n = 0
  while true do
    local s, err = req:read()
    if not s then
      if err then return end  -- the server answered (408, 400, ...)
      break
    end
    n = n + #s
  end
  res:finish(tostring(n))
end

routes["/chunked"] = function(req, res)
  for i = 1, qnum(req, "n", 3) do assert(res:write(("piece %d\n"):format(i))) end
  res:finish()
end

routes["/big"] = function(req, res)
  res:finish(("x"):rep(qnum(req, "n", 1024)))
end

routes["/slow"] = function(req, res)
  lepoll.sleep(qnum(req, "ms", 200) / 1000)
  res:finish("slept")
end

routes["/who"] = function(req, res)
  local _, port = req:peer()
  res:finish(("conn %d request %d"):format(port, per_conn[req:connection()]))
end

routes["/reject413"] = function(_, res)
  res:status(413)
  res:finish("too large\n")
end

routes["/auth"] = function(_, res)
  res:status(401)
  res:header("WWW-Authenticate", "Basic realm=\"t\"")
  res:finish("no\n")
end

routes["/log"] = function(_, res)
  res:finish(table.concat(seen, "\n") .. (#seen > 0 and "\n" or "")
    .. "hello-count " .. hellos .. "\n")
end

local server = assert(http.listen(opts, function(req, res)
  -- keyed by the connection object (weakly): a peer port can be reused
  local c = req:connection()
  per_conn[c] = (per_conn[c] or 0) + 1
  local path = req.path
  if path == "/" then
    hellos = hellos + 1
  elseif path ~= "/log" then
    seen[#seen + 1] = req.method .. " " .. req.target
  end
  local route = routes[path]
  if route then return route(req, res) end
  res:finish(req.target)
end))

local h, p = server:address()
io.stdout:write(("listening on %s:%d\n"):format(h, p))
io.stdout:flush()

lepoll.run()
