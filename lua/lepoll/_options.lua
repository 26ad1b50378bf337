--- lepoll._options: the option tables of lepoll.loop, lepoll.listen and
-- lepoll.connect, checked where they are given (private). Every option
-- has a kind and a default; a name no kind lists raises, naming it, so a
-- misspelt option never passes silently.
local type, error, tostring, pairs, getmetatable = type, error, tostring, pairs,
  getmetatable
local math_type, huge = math.type, math.huge

local M = {}

-- What a value is, for messages: the number itself, else its type.
local function shown(v)
  if math_type(v) then return tostring(v) end
  if type(v) == "string" then return "string '" .. v .. "'" end
  return type(v)
end
M.shown = shown

-- Kinds: a check returns the value, or nil and what was expected.
local function positive(v)
  if type(v) == "number" and v == v and v > 0 and v ~= huge then return v end
  return nil, "a positive number"
end

local function positive_or_false(v)
  if v == false then return false end
  if type(v) == "number" and v == v and v > 0 and v ~= huge then return v end
  return nil, "a positive number or false"
end

local function non_negative(v)
  if type(v) == "number" and v == v and v >= 0 and v ~= huge then return v end
  return nil, "a non-negative number"
end

local function positive_int(v)
  if math_type(v) == "integer" and v > 0 then return v end
  return nil, "a positive integer"
end

local function events(v)
  if math_type(v) == "integer" and v >= 1 and v <= 1048576 then return v end
  return nil, "an integer 1..1048576"
end

local function threads(v)
  if math_type(v) == "integer" and v >= 1 and v <= 64 then return v end
  return nil, "an integer 1..64"
end

local function queue(v)
  if math_type(v) == "integer" and v >= 1 and v <= 65536 then return v end
  return nil, "an integer 1..65536"
end

local function family(v)
  if v == "inet" or v == "inet6" then return v end
  return nil, "'inet' or 'inet6'"
end

local function port(v)
  if math_type(v) == "integer" and v >= 0 and v <= 65535 then return v end
  return nil, "an integer 0..65535"
end

local function boolean(v)
  if type(v) == "boolean" then return v end
  return nil, "a boolean"
end

local function string_(v)
  if type(v) == "string" then return v end
  return nil, "a string"
end

-- A socket's name in LISTEN_FDNAMES (sd_listen_fds_with_names(3)):
-- printable ASCII without ':', at most 255 bytes.
local function fdname(v)
  if type(v) == "string" and #v >= 1 and #v <= 255 and not v:find("[^\33-\126]")
    and not v:find(":", 1, true) then
    return v
  end
  return nil, "a name of 1..255 printable characters without ':' or spaces"
end

local function path(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil, "a non-empty string"
end

-- TLS settings (lepoll._tls checks a client table's fields when it is
-- used; the module is not loaded for connections that do not ask for it).
local function tls_context(v)
  local mt = debug.getregistry()["lepoll.tls.context"]
  if mt and type(v) == "userdata" and getmetatable(v) == mt then return v end
  return nil, "a TLS context (lepoll.tls.context)"
end

local function tls_client(v)
  if v == true or type(v) == "table" or tls_context(v) then return v end
  return nil, "true, a TLS context or a table"
end

-- PROXY protocol settings (lepoll._proxy checks a trusted list's
-- entries; it is loaded only for a listener that is given one).
local function proxy_mode(v)
  if v == "v1" or v == "v2" or v == "any" then return v end
  return nil, "'v1', 'v2' or 'any'"
end

local function trusted(v)
  return require("lepoll._proxy").check_trusted(v)
end

-- name -> { check, default }; a default of nil means "not given".
local CONN = {
  hwm = { positive_int, 65536 },          -- write buffer high-water mark, bytes
  max_line = { positive_int, 65536 },     -- longest line readline accepts
  read_size = { positive_int, 16384 },    -- bytes one read() asks for
  read_timeout = { positive_or_false, false },  -- seconds one read call may wait
  write_timeout = { positive_or_false, false }, -- seconds one write call may wait
  idle_timeout = { positive_or_false, false },  -- seconds without progress
  linger = { positive, 30 },              -- seconds close() keeps flushing
}

local function with_conn(t)
  for k, v in pairs(CONN) do t[k] = v end
  return t
end

M.kinds = {
  loop = {
    events = { events, 256 },
    signals = { boolean, false },
    shutdown_timeout = { non_negative, 10 },
    resolver_threads = { threads, 4 },       -- name lookups at once (_resolve.lua)
    resolver_queue = { queue, 256 },         -- lookups waiting for a thread
  },
  listen = with_conn({
    host = { string_, nil },
    port = { port, nil },
    path = { path, nil },
    unlink = { boolean, false },
    backlog = { positive_int, 1024 },
    reuseaddr = { boolean, true },
    reuseport = { boolean, false },
    v6only = { boolean, nil },
    nodelay = { boolean, false },
    accept_batch = { positive_int, 64 },
    accept_backoff = { positive, 0.1 },
    name = { fdname, nil },                 -- matches LISTEN_FDNAMES (_activation.lua)
    tls = { tls_context, nil },             -- serve TLS with this context
    handshake_timeout = { positive, 10 },   -- seconds for a TLS handshake
    proxy_protocol = { proxy_mode, nil },   -- read a PROXY header first (off: nil)
    proxy_timeout = { positive, 3 },        -- seconds for the header, from accept
    trusted = { trusted, nil },             -- who may send one (CIDRs); nil: anyone
  }),
  connect = with_conn({
    timeout = { positive, nil },
    nodelay = { boolean, false },
    tls = { tls_client, nil },              -- true, a context or {ctx, server_name, ...}
    handshake_timeout = { positive, 10 },   -- seconds for a TLS handshake
    family = { family, nil },                -- a name's addresses: "inet" | "inet6" | all
  }),
}

-- lepoll.http.listen: every listen option but the read and idle timeouts
-- (HTTP's own deadlines replace them), then HTTP's limits.
local function string_or_false(v)
  if v == false or (type(v) == "string" and not v:find("[%z\1-\31\127]")) then return v end
  return nil, "a string without control characters, or false"
end

local function loop_(v)
  if type(v) == "table" and type(v.listen) == "function" and v.ep then return v end
  return nil, "a lepoll loop"
end

do
  local http = {}
  for k, v in pairs(M.kinds.listen) do http[k] = v end
  http.read_timeout, http.idle_timeout = nil, nil
  http.write_timeout = { positive_or_false, 60 }   -- seconds one write may wait
  http.nodelay = { boolean, true }                 -- pipelined replies must not wait on Nagle
  http.loop = { loop_, nil }                       -- default: lepoll's default loop
  http.max_request_line = { positive_int, 8192 }   -- 414
  http.max_header_size = { positive_int, 16384 }   -- 431
  http.max_headers = { positive_int, 100 }         -- 431
  http.max_body = { positive_int, 1048576 }        -- req:body(): 413
  http.header_timeout = { positive, 30 }           -- a head, from its first byte: 408
  http.body_timeout = { positive, 60 }             -- between body reads: 408
  http.keepalive_timeout = { positive, 75 }        -- idle between requests: close
  http.max_requests = { positive_int, 1000 }       -- per connection
  http.server_header = { string_or_false, "lepoll" }
  http.log_errors = { boolean, false }             -- log each refused request
  M.kinds.http = http
end

--- Check the option table opts (nil: none) of kind ("loop", "listen",
-- "connect") given as argument arg of fname: returns a new table with
-- every option of the kind, defaults filled in. Raises at level (counted
-- from the caller of check) on a wrong type, a value out of range or an
-- unknown name.
function M.check(opts, kind, fname, arg, level)
  level = (level or 2) + 1
  local function bad(msg)
    error(("bad argument #%d to '%s' (%s)"):format(arg, fname, msg), level + 1)
  end
  if opts ~= nil and type(opts) ~= "table" then
    bad("table expected, got " .. type(opts))
  end
  local spec = M.kinds[kind]
  local out = {}
  if opts then
    for k, v in pairs(opts) do
      local s = spec[k]
      if not s then
        bad("unknown option " .. (type(k) == "string" and "'" .. k .. "'" or shown(k)))
      end
      local ok, expected = s[1](v)
      if ok == nil then
        bad(("option '%s' must be %s, got %s"):format(k, expected, shown(v)))
      end
      out[k] = ok
    end
  end
  for k, s in pairs(spec) do
    if out[k] == nil then out[k] = s[2] end
  end
  return out
end

return M
