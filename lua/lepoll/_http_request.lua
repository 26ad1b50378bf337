--- lepoll._http_request: the request object a lepoll.http handler gets
-- (req), and its body: Content-Length counted down or chunked decoded
-- (the chunk-size lines and trailers by lepoll.http1, in C), read from
-- the bytes the server read ahead, then from the connection (private;
-- the reference is docs/http.md).
--
-- The server lends the request its read buffer (_buf, from _pos on) for
-- the handler's call and takes it back after, so pipelined bytes behind
-- the body stay where the next request's parse finds them.
local http1 = require "lepoll.http1"
local connm = require "lepoll._conn"
local resm = require "lepoll._http_response"

local type, error, setmetatable, tostring = type, error, setmetatable, tostring
local sub, byte, lower, format = string.sub, string.byte, string.lower, string.format
local math_type, min = math.type, math.min
local concat = table.concat
local chunk_line, trailers = http1.chunk, http1.trailers
local set_read_deadline = connm.set_read_deadline
local FRESH, FINISHED = resm.FRESH, resm.FINISHED
local RSTATE, RCLOSE = resm.STATE, resm.CLOSE

local M = {}

-- Body phases
local DONE <const> = 0     -- nothing (more) to read
local LENGTH <const> = 1   -- _remain bytes of a Content-Length body left
local SIZE <const> = 2     -- a chunk-size line next
local DATA <const> = 3     -- _remain bytes of a chunk's data left
local CRLF <const> = 4     -- the CRLF after a chunk's data next
local TRAILER <const> = 5  -- the trailer section next
M.DONE, M.LENGTH, M.SIZE = DONE, LENGTH, SIZE

-- The longest chunk-size line (size, extensions) accepted.
local CHUNK_LINE <const> = 4096
M.CHUNK_LINE = CHUNK_LINE

local Req = {}
Req.__index = Req
M.Req = Req

-- The slots of a request: the fields the handler reads (method, target,
-- path, query, version, headers, trailers) are named, in an 8-node hash
-- part; the server's own state is in the array part.
local CONN <const> = 1      -- the connection
local SRV <const> = 2       -- the server's settings
local RES <const> = 3       -- the response to it
local BUF <const> = 4       -- the server's read buffer, lent for the handler
local POS <const> = 5       -- ... and where its unread bytes begin
local PHASE <const> = 6     -- the body's phase (above)
local REMAIN <const> = 7    -- bytes left in the body or the chunk
local SCAN <const> = 8      -- where the trailer parse resumes
local CONTINUE <const> = 9  -- "100 Continue" owed before the first read
local FAILED <const> = 10   -- why the body cannot be read any more, or false
local CLOSE <const> = 11    -- the connection closes after this request
M.SRV, M.RES, M.BUF, M.POS, M.PHASE, M.REMAIN, M.CONTINUE, M.FAILED, M.CLOSE =
  SRV, RES, BUF, POS, PHASE, REMAIN, CONTINUE, FAILED, CLOSE

--- A request on connection c for the server srv, its fields preset for
-- lepoll.http1.request to fill without a rehash.
function M.new(c, srv)
  return setmetatable({ c, srv, false, false, 0, DONE, 0, 0, false, false, false,
    method = false, target = false, path = false, query = false,
    version = false, headers = false, trailers = false }, Req)
end

--- The value of the header field name (any case), or nil.
function Req:header(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'header' (string expected, got " .. type(name) .. ")", 2)
  end
  return self.headers[lower(name)]
end

--- The connection the request came on (a lepoll connection: for
-- per-connection state, or its socket options; reading or writing it
-- directly bypasses the server).
function Req:connection()
  return self[CONN]
end

--- The client's address: host, port.
function Req:peer()
  return self[CONN]:peer()
end

-- The body cannot be read: answer code (if nothing was sent yet) and
-- close the connection after the handler. Returns nil, msg.
local function fail(req, code, msg)
  req[FAILED] = msg
  req[CLOSE] = true
  req[PHASE] = DONE
  local res = req[RES]
  if res[RSTATE] == FRESH then
    res[RSTATE] = FINISHED
    res[RCLOSE] = true
    resm.reply(req[CONN], req[SRV], code)
  end
  return nil, msg
end

-- Up to max bytes of the body from the connection, within the body
-- timeout (from this read): a string, or nil, message (the reply sent).
local function receive(req, max)
  local c, srv = req[CONN], req[SRV]
  while true do
    local ok, e = set_read_deadline(c, srv.loop.now + srv.body_timeout)
    if not ok then return fail(req, 400, e) end
    local s, err = c:read(max)
    if s then return s end
    if err == "timeout" then return fail(req, 408, "timeout") end
    -- a graceful shutdown lets a request in flight finish
    if err ~= "shutdown" then return fail(req, 400, err) end
  end
end

-- Read more of the connection into the buffer. true or nil, message.
local function more(req)
  local s, err = receive(req)
  if not s then return nil, err end
  local b, p = req[BUF], req[POS]
  req[BUF] = p > #b and s or sub(b, p) .. s
  req[POS] = 1
  -- the trailer parse's resume point moves with the bytes (it is at or
  -- after POS; outside the trailers it is not used)
  req[SCAN] = req[SCAN] - p + 1
  return true
end

-- Up to max bytes of the REMAIN left in this piece (Content-Length or
-- chunk), from the buffer, else straight from the connection.
local function piece(req, max)
  local b, p = req[BUF], req[POS]
  local n = min(req[REMAIN], max)
  local have = #b - p + 1
  local s
  if have > 0 then
    if have < n then n = have end
    s = sub(b, p, p + n - 1)
    req[POS] = p + n
  else
    local err
    s, err = receive(req, n)
    if not s then return nil, err end
    n = #s
  end
  req[REMAIN] = req[REMAIN] - n
  return s
end

local function check_max(max, fname)
  if max == nil then return nil end
  if math_type(max) ~= "integer" or max < 1 then
    error(format("bad argument #1 to '%s' (positive integer expected, got %s)", fname,
      math_type(max) and tostring(max) or type(max)), 3)
  end
  return max
end

-- Owed "100 Continue": sent before the first read of the body, unless
-- the handler answered first.
local function continue(req)
  req[CONTINUE] = false
  if req[RES][RSTATE] == FRESH then
    local ok, err = req[CONN]:write(resm.CONTINUE)
    if not ok then return fail(req, 400, err) end
  end
  return true
end

--- The next piece of the body, at most max bytes (default: the read_size
-- option): a string; nil at the end of the body; nil, message when it
-- cannot be read ("timeout": 408 was sent; "bad chunk": 400; the
-- connection's own errors).
function Req:read(max)
  max = check_max(max, "read") or self[SRV].read_size
  if self[FAILED] then return nil, self[FAILED] end
  if self[CONTINUE] then
    local ok, err = continue(self)
    if not ok then return nil, err end
  end
  while true do
    local ph = self[PHASE]
    if ph == LENGTH or ph == DATA then
      local s, err = piece(self, max)
      if not s then return nil, err end
      if self[REMAIN] == 0 then self[PHASE] = ph == LENGTH and DONE or CRLF end
      return s
    elseif ph == DONE then
      return nil
    end
    local b, p = self[BUF], self[POS]
    if ph == SIZE then
      local size, nxt = chunk_line(b, p, CHUNK_LINE)
      if size then
        self[POS] = nxt
        if size == 0 then
          self[PHASE], self[SCAN] = TRAILER, nxt
        else
          self[PHASE], self[REMAIN] = DATA, size
        end
      elseif size == nil then
        return fail(self, 400, nxt)
      else
        local ok, err = more(self)
        if not ok then return nil, err end
      end
    elseif ph == CRLF then
      if #b - p >= 1 then
        if byte(b, p) ~= 13 or byte(b, p + 1) ~= 10 then
          return fail(self, 400, "no CRLF after chunk data")
        end
        self[POS], self[PHASE] = p + 2, SIZE
      else
        local ok, err = more(self)
        if not ok then return nil, err end
      end
    else  -- TRAILER
      local srv = self[SRV]
      local t = self.trailers or {}
      self.trailers = t
      local nxt, scan, why = trailers(b, p, self[SCAN], t, srv.max_header_size, srv.max_headers)
      if nxt then
        self[POS], self[PHASE] = nxt, DONE
        return nil
      elseif nxt == nil then
        return fail(self, scan, why)
      else
        self[SCAN] = scan
        local ok, err = more(self)
        if not ok then return nil, err end
      end
    end
  end
end

--- The whole body (the rest of it, after reads) as one string, at most
-- max bytes (default: the max_body option); "" when there is none. Over
-- the limit: 413 is sent and nil, "body too large" returned, before
-- reading anything when Content-Length says so.
function Req:body(max)
  max = check_max(max, "body") or self[SRV].max_body
  if self[FAILED] then return nil, self[FAILED] end
  if self[PHASE] == LENGTH and self[REMAIN] > max then
    return fail(self, 413, "body too large")
  end
  local parts, n = {}, 0
  while true do
    local s, err = self:read()
    if not s then
      if err then return nil, err end
      break
    end
    n = n + #s
    if n > max then return fail(self, 413, "body too large") end
    parts[#parts + 1] = s
  end
  if #parts == 1 then return parts[1] end
  return concat(parts)
end

--- Whether the body was read to its end (or there was none).
function Req:body_done()
  return self[PHASE] == DONE and not self[FAILED]
end

return M
