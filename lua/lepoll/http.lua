--- lepoll.http: an HTTP/1.1 server and client on the lepoll framework.
--
--     local lepoll = require "lepoll"
--     local http = require "lepoll.http"
--     http.listen({ host = "127.0.0.1", port = 8080 }, function(req, res)
--       res:header("content-type", "text/plain")
--       res:finish("hello\n")
--     end)
--     lepoll.run()
--
-- One handler call per request, in a pooled coroutine; keep-alive,
-- pipelining, limits and deadlines are the server's. The head is parsed in
-- C (lepoll.http1), strictly. The reference is docs/http.md; the pieces:
-- _http_server.lua (a connection's life), _http_request.lua (req and its
-- body), _http_response.lua (res and the server's own replies);
-- _http_client.lua (http.request) and _http_pool.lua (its keep-alive
-- connections).
local lepoll = require "lepoll"
local optionsm = require "lepoll._options"
local serverm = require "lepoll._http_server"
local reqm = require "lepoll._http_request"
local resm = require "lepoll._http_response"
local clientm = require "lepoll._http_client"
local poolm = require "lepoll._http_pool"

local type, error, pairs = type, error, pairs

local M = {
  _VERSION = lepoll._VERSION,
  REASONS = resm.REASONS,  -- status code -> reason phrase
  Request = reqm.Req,      -- req's methods (to add your own)
  Response = resm.Res,     -- res's methods
  ClientResponse = clientm.Response,  -- the methods of http.request's responses
}

local LISTEN = optionsm.kinds.listen

--- Serve HTTP: opts are lepoll.listen's (but read_timeout and
-- idle_timeout) plus loop (default: lepoll's default loop),
-- max_request_line (8192), max_header_size (16384), max_headers (100),
-- max_body (1 MiB), header_timeout (30), body_timeout (60),
-- keepalive_timeout (75), max_requests (1000), write_timeout (60),
-- server_header ("lepoll"; false: none) and log_errors (false).
-- handler(req, res) runs once per request. Returns the server (as
-- lepoll.listen's), or nil, message, errno.
function M.listen(opts, handler)
  local o = optionsm.check(opts, "http", "listen", 1)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'listen' (function expected, got " .. type(handler) .. ")", 2)
  end
  local lo = {}
  for k in pairs(LISTEN) do lo[k] = o[k] end
  -- no per-read timeouts: a head or body read sets its phase's deadline
  -- (set_read_deadline), and idle connections are timed by a sweep
  -- (_http_server.lua), so an idle connection carries no extras
  lo.read_timeout, lo.idle_timeout = false, false
  local srv = {
    loop = false, handler = handler,
    max_request_line = o.max_request_line, max_header_size = o.max_header_size,
    max_headers = o.max_headers, max_body = o.max_body,
    header_timeout = o.header_timeout, body_timeout = o.body_timeout,
    keepalive_timeout = o.keepalive_timeout, max_requests = o.max_requests,
    read_size = o.read_size, log_refusals = o.log_errors,
    server_line = o.server_header and "Server: " .. o.server_header .. "\r\n" or "",
    date_time = false, date_line = false, common = false,
    waiting = {},  -- idle connection -> when it is closed
    pool = {},     -- idle request workers (_http_server.lua)
    sweeper = false,  -- the timer that closes them, while there are any
    sweep_every = math.min(1, o.keepalive_timeout / 4, o.header_timeout / 4),
    must_close = serverm.must_close,
  }
  local serve = serverm.serve
  local function accepted(c) return serve(c, srv) end
  local loop = o.loop or lepoll.default_loop()
  local s, err, en = loop:listen(lo, accepted)
  if not s then return nil, err, en end
  srv.loop = loop
  return s
end

--- Send a request and read its response, from a coroutine: url (GET)
-- or opts {url, method, headers, body, timeout, max_body, stream,
-- redirects, expect_continue, tls, loop, pool}. Returns the response
-- (status, reason, version, headers, body; :header(name), :read([n]),
-- :close()), or nil, message. See docs/http.md.
M.request = clientm.request

local function pool_loop(loop, fname)
  if loop == nil then return lepoll.default_loop() end
  if not clientm.OPTIONS.loop[1](loop) then
    error("bad argument #1 to '" .. fname .. "' (lepoll loop expected, got "
      .. type(loop) .. ")", 3)
  end
  return loop
end

--- The client's connection pool of loop (default: the default loop):
-- {idle, made, reused, hosts = {key -> idle}, idle_timeout,
-- max_idle_per_host, max_idle}.
function M.pool_stats(loop)
  return poolm.stats(pool_loop(loop, "pool_stats"))
end

--- Close the idle connections of loop's client pool (default: the
-- default loop's): pooled connections keep loop:run() running until they
-- expire.
function M.close_idle(loop)
  poolm.close_idle(pool_loop(loop, "close_idle"))
end

local POOL_OPTIONS = {
  loop = clientm.OPTIONS.loop,
  idle_timeout = { function(v) return type(v) == "number" and v > 0 and v < math.huge end,
    "a positive number" },
  max_idle_per_host = { function(v) return math.type(v) == "integer" and v >= 0 end,
    "a non-negative integer" },
  max_idle = { function(v) return math.type(v) == "integer" and v >= 0 end,
    "a non-negative integer" },
}

--- Set the limits of a loop's client pool: opts {loop, idle_timeout (30 s),
-- max_idle_per_host (8), max_idle (64)}; options left out keep their
-- value. Returns the pool's stats.
function M.pool_config(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'pool_config' (table expected, got " .. type(opts) .. ")", 2)
  end
  for k, v in pairs(opts) do
    local s = POOL_OPTIONS[k]
    if not s then
      error("bad argument #1 to 'pool_config' (unknown option "
        .. (type(k) == "string" and "'" .. k .. "'" or optionsm.shown(k)) .. ")", 2)
    end
    if not s[1](v) then
      error(("bad argument #1 to 'pool_config' (option '%s' must be %s, got %s)")
        :format(k, s[2], optionsm.shown(v)), 2)
    end
  end
  local loop = opts.loop or lepoll.default_loop()
  poolm.configure(loop, opts)
  return poolm.stats(loop)
end

return M
