--- lepoll._http_client: http.request, an HTTP/1.1 client on lepoll
-- connections: the request head built and checked, the body sent (a
-- string, or chunked from a function), the response head parsed in C
-- (lepoll.http1.response), its body read by Content-Length, chunked
-- (lepoll.http1.chunk and trailers, as the server reads a request body)
-- or until the close; keep-alive connections pooled (_http_pool.lua)
-- (private; the reference is docs/http.md).
--
-- One deadline bounds a request from its connect to its body's end:
-- reads wait with it as their phase deadline (lepoll._conn's
-- set_read_deadline: no timer, no closure), and a body large enough to
-- wait on the peer is sent under a timer that closes the connection when
-- it passes. A connection goes back to the pool only when its response
-- was read to the end, nothing came after it, and neither side said
-- close; every failure closes it.
--
--   connect (or pool) ──▶ head [+ body] ──▶ response head (1xx skipped;
--   Expect: 100-continue waits up to 1 s) ──▶ body: buffered (max_body)
--   or res:read() ──end──▶ pool │ failure, close, until-close ──▶ closed
local lepoll = require "lepoll"
local http1 = require "lepoll.http1"
local connm = require "lepoll._conn"
local poolm = require "lepoll._http_pool"
local optionsm = require "lepoll._options"

local type, error, setmetatable, pairs, next, tostring, tonumber = type, error,
  setmetatable, pairs, next, tostring, tonumber
local sub, byte, find, lower, format, match = string.sub, string.byte, string.find,
  string.lower, string.format, string.match
local concat = table.concat
local math_type, min, huge = math.type, math.min, math.huge
local parse_response, chunk_line, trailers, field = http1.response, http1.chunk,
  http1.trailers, http1.field
local set_read_deadline, current = connm.set_read_deadline, connm.current
local pool_take, pool_put, pool_opened = poolm.take, poolm.put, poolm.opened
local HCLOSE, HKEEPALIVE = http1.CLOSE, http1.KEEPALIVE

local M = {}

-- Limits of a response head (not options: a server's head past them is
-- refused as invalid).
local MAX_LINE <const> = 8192     -- status line
local MAX_HEAD <const> = 65536    -- the whole head
local MAX_FIELDS <const> = 256    -- field lines
local CHUNK_LINE <const> = 4096   -- a chunk-size line, extensions included
local READ <const> = 65536        -- a body read's default size
-- A string body up to this size goes out with the head in one write (it
-- cannot wait: below the connection's high-water mark).
local ONE_WRITE <const> = 32768
-- How long Expect: 100-continue waits for the 100 before sending the body.
local CONTINUE_WAIT <const> = 1

-- A body delimited by the close whose TLS stream ended without
-- close_notify.
local TRUNCATED = "truncated: the server closed without TLS close_notify"

local NOTCO = "http.request must be called from a coroutine (a connection"
  .. " handler or lepoll.spawn)"

-- Body phases (as the server's request body, _http_request.lua)
local DONE <const> = 0     -- nothing (more) to read
local LENGTH <const> = 1   -- REMAIN bytes of a Content-Length body left
local SIZE <const> = 2     -- a chunk-size line next
local DATA <const> = 3     -- REMAIN bytes of a chunk's data left
local CRLF <const> = 4     -- the CRLF after a chunk's data next
local TRAILER <const> = 5  -- the trailer section next
local EOF <const> = 6      -- until the server closes

-- The slots of a response: the fields the caller reads are named; the
-- client's state is in the array part.
local CONN <const> = 1     -- the connection, false once released or closed
local BUF <const> = 2      -- bytes read and not consumed yet
local POS <const> = 3      -- ... from here
local PHASE <const> = 4
local REMAIN <const> = 5
local SCAN <const> = 6     -- where a head or trailer parse resumes
local KEEP <const> = 7     -- the connection may be pooled after the body
local KEY <const> = 8      -- its pool key, false: no pooling
local LOOP <const> = 9
local FAILED <const> = 10  -- why the body cannot be read, or false

local Res = {}
Res.__index = Res
M.Response = Res

local function new_res(c, loop, key)
  return setmetatable({ c, "", 1, DONE, 0, 1, true, key, loop, false,
    status = false, reason = false, version = false, headers = false }, Res)
end

--- The value of the header field name (any case), or nil (set-cookie:
-- the array of its values).
function Res:header(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'header' (string expected, got " .. type(name) .. ")", 2)
  end
  return self.headers[lower(name)]
end

-- The connection is done with this response: back to the pool when it
-- may be, else closed.
local function release(res)
  local c = res[CONN]
  if not c then return end
  res[CONN] = false
  if res[KEEP] and res[KEY] and res[POS] > #res[BUF] and set_read_deadline(c, false) then
    res[BUF] = ""
    return pool_put(res[LOOP], res[KEY], c)
  end
  c:close(true)
end

-- The body cannot be read (err): close the connection. nil, err.
local function fail(res, err)
  res[FAILED] = err
  res[PHASE] = DONE
  res[KEEP] = false
  release(res)
  return nil, err
end

local function invalid(res, why)
  return fail(res, "invalid response: " .. why)
end

-- Read more into the buffer. true, or nil, err (nothing changed).
local function more(res)
  local s, err = res[CONN]:read(READ)
  if not s then return nil, err end
  local b, p = res[BUF], res[POS]
  res[BUF] = p > #b and s or sub(b, p) .. s
  res[SCAN] = res[SCAN] - p + 1
  res[POS] = 1
  return true
end

-- The end of the body: the connection goes back or closes.
local function done(res)
  res[PHASE] = DONE
  release(res)
end

-- The next piece of the body, at most max bytes: a string; nil at its end;
-- nil, err when it cannot be read (the connection is closed then).
local function read_body(res, max)
  while true do
    local ph = res[PHASE]
    local b, p = res[BUF], res[POS]
    if ph == LENGTH or ph == DATA then
      local n = min(res[REMAIN], max)
      local have = #b - p + 1
      local s
      if have > 0 then
        if have < n then n = have end
        s = (p == 1 and n == #b) and b or sub(b, p, p + n - 1)
        res[POS] = p + n
      else
        local err
        s, err = res[CONN]:read(n)
        if not s then return fail(res, err) end
        n = #s
      end
      local left = res[REMAIN] - n
      res[REMAIN] = left
      if left == 0 then
        if ph == LENGTH then done(res) else res[PHASE] = CRLF end
      end
      return s
    elseif ph == DONE then
      if res[FAILED] then return nil, res[FAILED] end
      return nil
    elseif ph == EOF then
      if p <= #b then
        local n = #b - p + 1
        if n > max then n = max end
        res[POS] = p + n
        return (p == 1 and n == #b) and b or sub(b, p, p + n - 1)
      end
      local s, err, why = res[CONN]:read(max)
      if s then return s end
      if err ~= "closed" then return fail(res, err) end
      -- over TLS only close_notify ends such a body: a bare end of stream
      -- may be an attacker's or a crash's cut
      if why == "truncated" then return fail(res, TRUNCATED) end
      done(res)  -- KEEP is false: closed
      return nil
    elseif ph == SIZE then
      local size, nxt, why = chunk_line(b, p, CHUNK_LINE)
      if size then
        res[POS] = nxt
        if size == 0 then
          res[PHASE], res[SCAN] = TRAILER, nxt
        else
          res[PHASE], res[REMAIN] = DATA, size
        end
      elseif size == nil then
        return invalid(res, why)
      else
        local ok, err = more(res)
        if not ok then return fail(res, err) end
      end
    elseif ph == CRLF then
      if #b - p >= 1 then
        if byte(b, p) ~= 13 or byte(b, p + 1) ~= 10 then
          return invalid(res, "no CRLF after chunk data")
        end
        res[POS], res[PHASE] = p + 2, SIZE
      else
        local ok, err = more(res)
        if not ok then return fail(res, err) end
      end
    else  -- TRAILER
      local t = res.trailers
      if not t then
        t = {}
        res.trailers = t
      end
      local nxt, scan, why = trailers(b, p, res[SCAN], t, MAX_HEAD, MAX_FIELDS)
      if nxt then
        if next(t) == nil then res.trailers = nil end
        res[POS] = nxt
        done(res)
        return nil
      elseif nxt == nil then
        return invalid(res, why)
      else
        res[SCAN] = scan
        local ok, err = more(res)
        if not ok then return fail(res, err) end
      end
    end
  end
end

local function check_max(max, level)
  if max == nil then return READ end
  if math_type(max) ~= "integer" or max < 1 then
    error(format("bad argument #1 to 'read' (positive integer expected, got %s)",
      math_type(max) and tostring(max) or type(max)), level)
  end
  return max
end

--- The next piece of a streamed body (stream = true), at most max bytes
-- (default 65536): a string; nil at its end; nil, message when it cannot
-- be read ("timeout", "closed", "invalid response: ..."; the connection
-- is closed then).
function Res:read(max)
  return read_body(self, check_max(max, 3))
end

--- Abandon the rest of a streamed body: the connection is closed (not
-- reused). true.
function Res:close()
  if self[CONN] then
    self[KEEP] = false
    self[PHASE] = DONE
    release(self)
  end
  return true
end

-- The whole body, at most max bytes: a string, or nil, err (the
-- connection closed).
local function read_all(res, max)
  local ph = res[PHASE]
  if ph == DONE then return "" end
  if ph == LENGTH and res[REMAIN] > max then
    return fail(res, "response body too large")
  end
  local parts, np, n = {}, 0, 0
  local want = ph == LENGTH and min(res[REMAIN], max) or READ
  while true do
    local s, err = read_body(res, want > READ and want or READ)
    if not s then
      if err then return nil, err end
      break
    end
    n = n + #s
    if n > max then return fail(res, "response body too large") end
    np = np + 1
    parts[np] = s
  end
  if np == 1 then return parts[1] end
  return concat(parts)
end

-- Read a response head into res: nxt, bodylen, flags; or nil, err (what
-- came stays in the buffer: a timeout may be waited out again).
local function read_head(res)
  while true do
    local b, p = res[BUF], res[POS]
    local nxt, blen, flags = parse_response(b, p, res[SCAN], res, MAX_LINE, MAX_HEAD,
      MAX_FIELDS)
    if nxt then
      res[POS], res[SCAN] = nxt, nxt
      return nxt, blen, flags
    end
    if nxt == nil then return nil, "invalid response: " .. flags end
    res[SCAN] = blen
    local ok, err = more(res)
    if not ok then return nil, err end
  end
end

-- URLs -----------------------------------------------------------------------

local DEFAULT_PORT = { http = 80, https = 443 }

-- scheme, connect host, port, target, Host field value of url; or nil,
-- why.
local function parse_url(url)
  local scheme, auth, rest = match(url, "^([%a][%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil, "not an absolute http(s) url" end
  scheme = lower(scheme)
  local dport = DEFAULT_PORT[scheme]
  if not dport then return nil, "scheme " .. scheme .. " not supported" end
  if find(auth, "@", 1, true) then return nil, "user info in url" end
  local host, port = match(auth, "^%[([%x:.]+)%](.*)$")
  local hostfield
  if host then
    hostfield = "[" .. host .. "]"
  else
    host, port = match(auth, "^([%w.%-_~]+)(.*)$")
    if not host then return nil, "invalid host" end
    hostfield = host
  end
  if port == "" then
    port = dport
  else
    local digits = match(port, "^:(%d%d?%d?%d?%d?)$")
    port = digits and tonumber(digits)
    if not port or port < 1 or port > 65535 then return nil, "invalid port" end
    if port ~= dport then hostfield = hostfield .. ":" .. digits end
  end
  local target = match(rest, "^[^#]*")
  if target == "" then
    target = "/"
  elseif byte(target) == 63 then  -- "?"
    target = "/" .. target
  end
  if find(target, "[%z\1-\32\127-\255]") then return nil, "invalid path" end
  return scheme, host, port, target, hostfield
end
M.parse_url = parse_url

-- The absolute URL a Location names, relative to the request's.
local function resolve(loc, scheme, hostfield, target)
  if match(loc, "^[%a][%w+.-]*://") then return loc end
  if sub(loc, 1, 2) == "//" then return scheme .. ":" .. loc end
  if byte(loc) == 47 then return scheme .. "://" .. hostfield .. loc end
  local dir = match(target, "^([^?]*/)") or "/"
  return scheme .. "://" .. hostfield .. dir .. loc
end

-- Options --------------------------------------------------------------------

local function positive(v)
  return type(v) == "number" and v == v and v > 0 and v ~= huge
end

local shown = optionsm.shown

-- TLS ------------------------------------------------------------------------

-- lepoll._tls, loaded by the first request that has a tls option or an
-- https URL (a program of plain http never loads OpenSSL)
local tlsm
local function tls_layer()
  if not tlsm then tlsm = require "lepoll._tls" end
  return tlsm
end

-- Whether v is a good tls option: lepoll.connect's own check (fields
-- and their types).
local function tls_good(v)
  return tls_layer().check_client(v) ~= nil
end

-- A context's number in pool keys: unlike its address, never another
-- context's after it was collected.
local ctx_ids = setmetatable({}, { __mode = "k" })
local nctx = 0
local function ctx_id(ctx)
  local id = ctx_ids[ctx]
  if not id then
    nctx = nctx + 1
    id = nctx
    ctx_ids[ctx] = id
  end
  return id
end

-- The fields of the tls option v (true, a context, a table, or nil)
-- that make a connection: ctx, server_name, verify, alpn, session. After a
-- redirect to another host (cross) the caller's server_name and session,
-- which named the first one, are left out.
local function tls_fields(v, cross)
  if v == nil or v == true then return nil end
  if type(v) ~= "table" then return v end
  local name, session = v.server_name, v.session
  if cross then name, session = nil, nil end
  local verify = v.verify
  if verify == true and not v.ctx then verify = nil end  -- the default's own
  return v.ctx, name, verify, v.alpn, session
end

-- What tells connections made with the tls option v apart in the pool
-- key: "" for the defaults. A session is a secret: the key says only that
-- one was given.
local function tls_key(v, cross)
  if v == nil or v == true then return "" end
  local ctx, name, verify, alpn, session = tls_fields(v, cross)
  local parts, n = {}, 0
  if ctx then
    n = n + 1
    parts[n] = " ctx=" .. ctx_id(ctx)
  end
  if verify ~= nil then
    n = n + 1
    parts[n] = " verify=" .. tostring(verify)
  end
  if name then
    n = n + 1
    parts[n] = format(" server_name=%q", name)
  end
  if alpn then
    n = n + 1
    parts[n] = " alpn="
    for i = 1, #alpn do
      n = n + 1
      parts[n] = format("%q", alpn[i])
    end
  end
  if session then
    n = n + 1
    parts[n] = " session"
  end
  return concat(parts)
end

-- HTTP/1.1 is what this client speaks: offered by ALPN unless the caller
-- offers something else.
local HTTP11 = { "http/1.1" }

-- lepoll.connect's tls option for the tls option v.
local function tls_connect(v, cross)
  local ctx, name, verify, alpn, session = tls_fields(v, cross)
  return { ctx = ctx, server_name = name, verify = verify, alpn = alpn or HTTP11,
    session = session }
end

-- name -> check(v): true when v is good; and what is expected.
local OPTIONS = {
  url = { function(v) return type(v) == "string" end, "a string" },
  method = { function(v)
    return type(v) == "string" and match(v, "^[%w!#$%%&'*+.^_`|~-]+$") ~= nil
  end, "a token string" },
  headers = { function(v) return type(v) == "table" end, "a table" },
  body = { function(v) return type(v) == "string" or type(v) == "function" end,
    "a string or a function" },
  timeout = { positive, "a positive number" },
  max_body = { function(v) return math_type(v) == "integer" and v > 0 end,
    "a positive integer" },
  stream = { function(v) return type(v) == "boolean" end, "a boolean" },
  redirects = { function(v) return math_type(v) == "integer" and v >= 0 end,
    "a non-negative integer" },
  expect_continue = { function(v) return type(v) == "boolean" end, "a boolean" },
  tls = { tls_good,
    "true, a TLS context or a table {ctx = context, server_name = string,"
    .. " verify = boolean, alpn = {string, ...}, session = string}" },
  loop = { function(v) return type(v) == "table" and type(v.connect) == "function" end,
    "a lepoll loop" },
  pool = { function(v) return type(v) == "boolean" end, "a boolean" },
}
M.OPTIONS = OPTIONS

local function bad(arg, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", arg, fname, msg), level + 1)
end

-- Check the option table o (as lepoll._options.check, without copying it).
local function check(o, fname, level)
  for k, v in pairs(o) do
    local s = OPTIONS[k]
    if not s then
      bad(1, fname, "unknown option " .. (type(k) == "string" and "'" .. k .. "'" or shown(k)),
        level + 1)
    end
    if not s[1](v) then
      bad(1, fname, format("option '%s' must be %s, got %s", k, s[2], shown(v)), level + 1)
    end
  end
end
M.check = check

-- The request ----------------------------------------------------------------

local USER_AGENT = "User-Agent: lepoll/" .. match(lepoll._VERSION, "[%d.]+$") .. "\r\n"
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true,
  TRACE = true }
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
-- dropped on a redirect to another host
local CREDENTIALS = { authorization = true, cookie = true, ["proxy-authorization"] = true }

-- The header lines of the table h (checked), the framing the caller gave
-- (content-length value or false), whether it asked to close, whether
-- it set Host and User-Agent. cross: drop credentials.
local function header_lines(h, cross)
  local parts, n = {}, 0
  local cl, close, host, ua = false, false, false, false
  for name, value in pairs(h) do
    if type(name) ~= "string" then
      bad(1, "request", "header name must be a string, got " .. shown(name), 4)
    end
    local lname = lower(name)
    if not (cross and CREDENTIALS[lname]) then
      local tv = type(value)
      local many = tv == "table"
      local count = many and #value or 1
      for i = 1, count do
        local v = many and value[i] or value
        if type(v) == "number" then v = tostring(v) end
        if type(v) ~= "string" then
          bad(1, "request", format("header '%s' must be a string, number or array of them, got %s",
            name, type(v)), 4)
        end
        local line, kind = field(name, v)
        if not line then
          bad(1, "request", format(kind == 1 and "invalid header name '%s'"
            or "invalid value for header '%s'", name), 4)
        end
        if kind == 1 then
          cl = v
        elseif kind == 2 then
          if find(lower(v), "close", 1, true) then close = true end
        elseif kind == 3 then
          bad(1, "request", "header 'transfer-encoding' is the client's", 4)
        end
        n = n + 1
        parts[n] = line
      end
      if lname == "host" then
        host = true
      elseif lname == "user-agent" then
        ua = true
      end
    end
  end
  return concat(parts), cl, close, host, ua
end

-- Open a connection for scheme://host:port within dl. c, or nil, err.
local function open(loop, scheme, host, port, o, dl)
  local left = dl - loop.now
  if left <= 0 then return nil, "timeout" end
  local c, err
  if scheme == "https" then
    -- the request's deadline bounds the handshake too: its timeout is ours
    c, err = loop:connect(host, port, { tls = tls_connect(o.tls, o.cross), timeout = left,
      handshake_timeout = left })
    if err == "tls: handshake timed out" then err = "timeout" end
  else
    c, err = loop:connect(host, port, left)
  end
  if c then pool_opened(loop) end
  return c, err
end

-- Send body (a function: chunked, or as is when clen is set) on c.
-- true, or nil, err.
local function send_stream(c, body, clen)
  local sent = 0
  while true do
    local piece = body()
    if piece == nil then break end
    if type(piece) ~= "string" then
      return nil, "body function returned " .. type(piece)
    end
    local n = #piece
    if n > 0 then
      local ok, err
      if clen then
        sent = sent + n
        if sent > clen then return nil, "body longer than content-length" end
        ok, err = c:write(piece)
      else
        ok, err = c:write(format("%x\r\n", n) .. piece .. "\r\n")
      end
      if not ok then return nil, err end
    end
  end
  if clen then
    if sent ~= clen then return nil, "body shorter than content-length" end
    return true
  end
  return c:write("0\r\n\r\n")
end

-- Send the body (not sent with the head) within dl: a timer closes c when
-- dl passes (a write may wait on the peer). true, or nil, err.
local function send_body(loop, c, body, clen, dl)
  local left = dl - loop.now
  if left <= 0 then return nil, "timeout" end
  local fired = false
  local guard = loop:after(left, function()
    fired = true
    c:close(true)
  end)
  local ok, err
  if type(body) == "string" then
    ok, err = c:write(body)
  else
    ok, err = send_stream(c, body, clen)
  end
  guard:cancel()
  if fired then return nil, "timeout" end
  return ok, err
end

-- One exchange on one connection: the response with its head read (the
-- body not yet), or nil, err, retry (retry: nothing came back on a
-- connection from the pool, and the request may be sent again).
local function exchange(loop, c, reused, key, head, body, clen, method, expect, dl)
  local res = new_res(c, loop, key)
  set_read_deadline(c, dl)
  local ok, err
  local pending = body
  if body == nil then
    ok, err = c:write(head)
  elseif type(body) == "string" and not expect and #body <= ONE_WRITE then
    ok, err = c:write(head .. body)
    pending = nil
  else
    ok, err = c:write(head)
  end
  if not ok then
    c:close(true)
    return nil, err, reused
  end
  local nxt, blen, flags
  if pending ~= nil and expect then
    -- wait for 100 (or a final answer) up to CONTINUE_WAIT
    set_read_deadline(c, min(loop.now + CONTINUE_WAIT, dl))
    while true do
      nxt, blen, flags = read_head(res)
      if not nxt or res.status == 100 or res.status >= 200 then break end
    end
    set_read_deadline(c, dl)
    if nxt then
      if res.status ~= 100 then
        -- a final answer: the body is not sent, and the server may still
        -- read the length we announced: not reused
        pending = nil
        res[KEEP] = false
      else
        nxt = false
      end
    elseif blen == "timeout" and loop.now < dl then
      nxt = false  -- no 100 in time: send the body all the same
    else
      c:close(true)
      return nil, blen
    end
  end
  if pending ~= nil then
    ok, err = send_body(loop, c, pending, clen, dl)
    if not ok then
      c:close(true)
      return nil, err
    end
  end
  if not nxt then
    while true do
      nxt, blen, flags = read_head(res)
      if not nxt then
        c:close(true)
        -- a pooled connection the server closed: nothing came back
        return nil, blen, reused and res[BUF] == "" and (blen == "closed" or
          (type(blen) == "string" and find(blen, "reset", 1, true) ~= nil))
      end
      local st = res.status
      if st >= 200 or st == 101 then break end
    end
  end
  if method == "HEAD" or res.status == 101 then blen = 0 end
  if res.status == 101 then res[KEEP] = false end
  if flags & HCLOSE ~= 0 or (res.version == 10 and flags & HKEEPALIVE == 0) then
    res[KEEP] = false
  end
  if blen > 0 then
    res[PHASE], res[REMAIN] = LENGTH, blen
  elseif blen == -1 then
    res[PHASE] = SIZE
  elseif blen == -2 then
    res[PHASE], res[KEEP] = EOF, false
  else
    done(res)
  end
  return res
end

-- One request (no redirects followed): res with its head read, or nil, err.
local function once(loop, o, scheme, host, port, target, hostfield, method, body, hdrs, dl)
  -- hostfield has the port unless it is the scheme's default
  local key = o.pool ~= false and (scheme .. "://" .. hostfield
    .. (scheme == "https" and tls_key(o.tls, o.cross) or "")) or false
  local clen = false
  local head
  do
    local lines, cl, close, has_host, has_ua = "", false, false, false, false
    if hdrs then lines, cl, close, has_host, has_ua = header_lines(hdrs, o.cross) end
    if close then key = false end
    local framing = ""
    if body ~= nil then
      if cl then
        clen = math.tointeger(tonumber(cl))
        if not clen or clen < 0 or (type(body) == "string" and clen ~= #body) then
          bad(1, "request", "header 'content-length' does not match the body", 3)
        end
      elseif type(body) == "string" then
        framing = "Content-Length: " .. #body .. "\r\n"
      else
        framing = "Transfer-Encoding: chunked\r\n"
      end
    elseif method == "POST" or method == "PUT" or method == "PATCH" then
      if not cl then framing = "Content-Length: 0\r\n" end
    end
    if o.expect_continue and body ~= nil then
      framing = framing .. "Expect: 100-continue\r\n"
    end
    head = method .. " " .. target .. " HTTP/1.1\r\n"
      .. (has_host and "" or "Host: " .. hostfield .. "\r\n")
      .. (has_ua and "" or USER_AGENT) .. lines .. framing .. "\r\n"
  end
  local retry_ok = IDEMPOTENT[method] and type(body) ~= "function"
  local expect = o.expect_continue and body ~= nil
  local c = key and pool_take(loop, key)
  local reused = c and true or false
  while true do
    if not c then
      local err
      c, err = open(loop, scheme, host, port, o, dl)
      if not c then return nil, err end
    end
    local res, err, retry = exchange(loop, c, reused, key, head, body, clen, method, expect, dl)
    if res then return res end
    if not (retry and retry_ok) then return nil, err end
    c, reused = nil, false  -- once, on a fresh connection
  end
end

--- http.request(url | opts): see docs/http.md.
function M.request(opts)
  local o
  if type(opts) == "string" then
    o = { url = opts }
  elseif type(opts) == "table" then
    check(opts, "request", 2)
    o = opts
    if o.url == nil then bad(1, "request", "option 'url' is required", 2) end
  else
    bad(1, "request", "string or table expected, got " .. type(opts), 2)
  end
  local scheme, host, port, target, hostfield = parse_url(o.url)
  if not scheme then bad(1, "request", format("invalid url '%s': %s", o.url, host), 2) end
  local loop = o.loop or lepoll.default_loop()
  current(loop, 2, NOTCO)
  local dl = loop.now + (o.timeout or 30)
  local body = o.body
  local method = o.method or (body ~= nil and "POST" or "GET")
  local hdrs = o.headers
  local redirects = o.redirects or 0
  local max_body = o.max_body or 8388608
  local cross = false
  local oo = o
  while true do
    local res, err = once(loop, oo, scheme, host, port, target, hostfield, method, body,
      hdrs, dl)
    if not res then return nil, err end
    local loc = res.headers.location
    if redirects > 0 and REDIRECT[res.status] and type(loc) == "string" then
      local st = res.status
      local nbody, nmethod = body, method
      if st == 303 and method ~= "HEAD" or (st == 301 or st == 302) and method == "POST" then
        nbody, nmethod = nil, "GET"
      end
      local s2, h2, p2, t2, f2 = parse_url(resolve(loc, scheme, hostfield, target))
      -- a body function cannot be replayed: the 3xx is the answer
      if s2 and type(nbody) ~= "function" then
        -- read and drop the redirect's body (a long one closes it)
        if res[PHASE] ~= DONE then
          local _, rerr = read_all(res, READ)
          if rerr then res:close() end
        end
        if s2 ~= scheme or h2 ~= host or p2 ~= port then
          cross = true
        end
        redirects = redirects - 1
        scheme, host, port, target, hostfield, body, method = s2, h2, p2, t2, f2, nbody, nmethod
        if cross and not oo.cross then
          oo = setmetatable({ cross = true }, { __index = o })
        end
        goto continue
      end
    end
    if o.stream then return res end
    do
      local b, berr = read_all(res, max_body)
      if not b then return nil, berr end
      res.body = b
      return res
    end
    ::continue::
  end
end

return M
