--- lepoll._http_response: the response object a lepoll.http handler
-- writes to (res), and the replies the server sends on its own (private;
-- the reference is docs/http.md).
--
-- A response goes through three states: nothing sent (status and headers
-- may change), head sent (the body streams: Content-Length counted down,
-- chunked, or delimited by the close), finished. The head is built in
-- one string with the body when finish() comes first, so a small reply
-- is one send(2). Date and Server are formatted once a second per
-- server, not per response.
local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local find, lower, format, sub = string.find, string.lower, string.format, string.sub
local math_type = math.type
local concat = table.concat
local os_time, os_date = os.time, os.date
local field = require("lepoll.http1").field

local M = {}

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [421] = "Misdirected Request",
  [422] = "Unprocessable Content", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.REASONS = REASONS

-- "HTTP/1.1 200 OK\r\n" for each code, made once.
local STATUS_LINE = setmetatable({}, { __index = function(t, code)
  local line = format("HTTP/1.1 %d %s\r\n", code, REASONS[code] or "Unknown")
  t[code] = line
  return line
end })

-- Response states
local FRESH <const> = 0
local STREAMING <const> = 1
local FINISHED <const> = 2
M.FRESH, M.STREAMING, M.FINISHED = FRESH, STREAMING, FINISHED

-- The Date and Server lines of srv (the server's settings), made again
-- when the second changes.
local function common(srv)
  local t = os_time()
  if t ~= srv.date_time then
    srv.date_time = t
    srv.date_line = "Date: " .. os_date("!%a, %d %b %Y %H:%M:%S GMT", t) .. "\r\n"
    srv.common = srv.server_line .. srv.date_line
  end
  return srv.common
end
M.common = common

local Res = {}
Res.__index = Res
M.Res = Res

-- The slots of a response (a table with only an array part: 13 slots,
-- no hash part to rehash or to walk).
local CONN <const> = 1      -- the connection
local SRV <const> = 2       -- the server's settings
local REQ <const> = 3       -- the request it answers
local STATUS <const> = 4    -- the status code
local HDRS <const> = 5      -- "Name: value\r\n", a list of such lines, or false
local STATE <const> = 6     -- FRESH, STREAMING, FINISHED
local LENGTH <const> = 7    -- a Content-Length the handler set, or false
local LEFT <const> = 8      -- bytes of the body still to write, or false
local CHUNKED <const> = 9   -- the body goes chunked
local CLOSE <const> = 10    -- the connection closes after this response
local HEAD_ONLY <const> = 11  -- HEAD: the head GET would send, no body
local OWN <const> = 12      -- the handler set Date or Server itself
local TRUNCATED <const> = 13  -- finished short of its Content-Length
M.STATE, M.CLOSE, M.TRUNCATED = STATE, CLOSE, TRUNCATED

--- A response to req on connection c, for the server srv.
function M.new(c, srv, req, head_only)
  return setmetatable({ c, srv, req, 200, false, FRESH, false, false, false, false,
    head_only, false, false }, Res)
end

local function bad(fname, arg, msg, level)
  error(format("bad argument #%d to '%s' (%s)", arg, fname, msg), level or 3)
end

local function check_open(res, fname)
  if res[STATE] ~= FRESH then
    error(fname .. ": the response head was already sent", 3)
  end
end

--- Set the status code (200 until set).
function Res:status(code)
  if math_type(code) ~= "integer" or code < 200 or code > 599 then
    bad("status", 1, "an integer 200..599 expected, got " .. tostring(code))
  end
  check_open(self, "status")
  self[STATUS] = code
  return self
end

-- Header lines are made and checked in C (lepoll.http1.field): the name
-- a token, the value without CR, LF, NUL or another control byte but HTAB
-- (a header must not smuggle another). field() also says which of the
-- fields the server treats apart the name is:
local F_CONTENT_LENGTH <const> = 1
local F_CONNECTION <const> = 2
local F_TRANSFER_ENCODING <const> = 3
local F_DATE <const> = 4
local F_SERVER <const> = 5

local function shown(v)
  return type(v) == "string" and format("%q", v) or type(v)
end

-- The line for name: value (a string or number; i: its index in a table
-- of values), and what the name is; raises naming the bad argument.
local function line_of(name, value, i)
  local tv = type(value)
  if tv == "number" then
    value = math_type(value) == "integer" and tostring(value) or format("%.14g", value)
  elseif tv ~= "string" then
    bad("header", 2, "string, number or table of strings expected, got " .. tv, 4)
  end
  local line, kind = field(name, value)
  if not line then
    if kind == 1 then bad("header", 1, "a field name (token) expected, got " .. shown(name), 4) end
    bad("header", 2, (i and ("value #" .. i) or "value")
      .. " contains a control character (CR, LF, NUL, ...)", 4)
  end
  return line, kind, value
end

-- Drop every line of the field name (any case) from res's headers (a
-- line, or a list of them): the lines are kept as sent, so a line is the
-- field's when its name, lower-cased, and the colon lead it.
local function remove(res, name)
  local h = res[HDRS]
  if not h then return end
  local n = #name + 1
  local key = lower(name) .. ":"
  if type(h) == "string" then
    if lower(sub(h, 1, n)) == key then res[HDRS] = false end
    return
  end
  local j = 1
  for i = 1, #h do
    local line = h[i]
    if lower(sub(line, 1, n)) ~= key then
      h[j] = line
      j = j + 1
    end
  end
  for i = #h, j, -1 do h[i] = nil end
end

-- Add a line to res's headers: the first is kept as a string, more in a
-- list.
local function add(res, line)
  local h = res[HDRS]
  if not h then
    res[HDRS] = line
  elseif type(h) == "string" then
    res[HDRS] = { h, line }
  else
    h[#h + 1] = line
  end
end

--- Set the header name to value (a string or number; a table of them
-- gives one line each; nil or false removes it). Replaces earlier lines
-- of the same name (case-insensitive).
function Res:header(name, value)
  if type(name) ~= "string" then
    bad("header", 1, "a field name (token) expected, got " .. type(name))
  end
  check_open(self, "header")
  if type(value) == "string" and not self[HDRS] then
    -- the common case: a first header, a string value
    local line, kind = field(name, value)
    if line and kind == 0 then
      self[HDRS] = line
      return self
    end
  end
  -- every value checked before anything changes: a raise leaves the
  -- headers as they were
  local lines_, kind, v, _
  if type(value) == "table" then
    lines_ = {}
    for i = 1, #value do lines_[i], kind = line_of(name, value[i], i) end
    if #value == 0 then _, kind = line_of(name, "") end
  elseif value == nil or value == false then
    _, kind = line_of(name, "")
  else
    local line
    line, kind, v = line_of(name, value)
    lines_ = { line }
  end
  if kind == F_TRANSFER_ENCODING then
    error("header: transfer-encoding is set by the server", 2)
  elseif kind == F_CONTENT_LENGTH then
    if not lines_ then
      self[LENGTH] = false
      return self
    end
    if not v or not find(v, "^%d+$") or #v > 18 then
      bad("header", 2, "content-length must be a decimal integer, got " .. shown(v or value))
    end
    self[LENGTH] = math.tointeger(tonumber(v))
    return self
  elseif kind == F_CONNECTION then
    -- the connection is the server's: "close" is honoured, the rest ignored
    if v and find(lower(v), "close", 1, true) then self[CLOSE] = true end
    return self
  elseif kind == F_DATE or kind == F_SERVER then
    self[OWN] = true
  end
  remove(self, name)
  if lines_ then
    for i = 1, #lines_ do add(self, lines_[i]) end
  end
  return self
end

--- Whether the head was sent.
function Res:sent()
  return self[STATE] ~= FRESH
end

-- The Date and Server lines and the handler's header lines, when the
-- handler set its own Date or Server (which replace the server's).
local function own_lines(res)
  local h = res[HDRS]
  if type(h) == "string" then h = { h } end
  local has_date, has_server
  for i = 1, #h do
    local l = lower(sub(h[i], 1, 7))
    has_date = has_date or sub(l, 1, 5) == "date:"
    has_server = has_server or l == "server:"
  end
  local srv = res[SRV]
  common(srv)
  return (has_server and "" or srv.server_line) .. (has_date and "" or srv.date_line),
    concat(h)
end

-- "Content-Length: n\r\n" for the lengths most responses have, made once.
local CL_CACHED <const> = 4096
local CL_LINE = setmetatable({}, { __index = function(t, n)
  local line = "Content-Length: " .. n .. "\r\n"
  if n <= CL_CACHED then t[n] = line end
  return line
end })

-- Every write of the response: one that fails (a write timeout, a reset)
-- leaves the body cut short, so the connection must end after it, or the
-- next response would be read as the rest of this body.
local function put(res, s)
  local ok, err, en = res[CONN]:write(s)
  if not ok then res[TRUNCATED], res[CLOSE] = true, true end
  return ok, err, en
end

-- Statuses whose responses never have a body (RFC 9110 6.4.1; status()
-- takes no 1xx).
local function bodiless(code)
  return code == 204 or code == 304
end

-- Send the head; with body (finish) in the same write. length: the
-- Content-Length to announce, or false to stream.
local function send_head(res, length, body)
  local code = res[STATUS]
  local framing
  if code == 204 or code == 304 then  -- bodiless(), inline
    framing = ""
    body = nil
    res[LEFT] = 0
  elseif length then
    framing = CL_LINE[length]
    res[LEFT] = length
  elseif res[REQ].version == 11 then
    framing = "Transfer-Encoding: chunked\r\n"
    res[CHUNKED] = true
  else  -- HTTP/1.0 without a length: the close delimits the body
    framing = ""
    res[CLOSE] = true
  end
  res[STATE] = STREAMING
  -- inline, the per-response path: the Date and Server lines (made again
  -- when the second changes), the handler's lines, the connection line
  local srv = res[SRV]
  if os_time() ~= srv.date_time then common(srv) end
  local pre, h = srv.common, res[HDRS]
  if res[OWN] then
    pre, h = own_lines(res)
  elseif not h then
    h = ""
  elseif type(h) ~= "string" then
    h = concat(h)
  end
  -- whether the connection closes after this response: what the request
  -- asked, the request count, a shutdown, a body left unread (the
  -- server's must_close)
  local req = res[REQ]
  local conn = ""
  if res[CLOSE] or srv.must_close(req) then
    res[CLOSE] = true
    conn = "Connection: close\r\n"
  elseif req.version == 10 then
    conn = "Connection: keep-alive\r\n"
  end
  if body and not res[HEAD_ONLY] then
    res[LEFT] = res[LEFT] - #body
    -- one concatenation: the head and the body in one string, one send
    return put(res, STATUS_LINE[code] .. pre .. h .. conn .. framing .. "\r\n" .. body)
  end
  return put(res, STATUS_LINE[code] .. pre .. h .. conn .. framing .. "\r\n")
end

--- Write a piece of the body (sending the head first): chunked when no
-- Content-Length was set (HTTP/1.1), delimited by the close on HTTP/1.0.
-- true, or nil, message.
function Res:write(data)
  if type(data) ~= "string" then bad("write", 1, "string expected, got " .. type(data)) end
  local st = self[STATE]
  if st == FINISHED then return nil, "response finished" end
  if st == FRESH then
    local ok, err, en = send_head(self, self[LENGTH], nil)
    if not ok then return nil, err, en end
  end
  local n = #data
  if n == 0 or self[HEAD_ONLY] or bodiless(self[STATUS]) then return true end
  local left = self[LEFT]
  if left then
    if n > left then
      error(format("write: %d bytes more than the Content-Length (%d) allows",
        n - left, self[LENGTH]), 2)
    end
    self[LEFT] = left - n
    return put(self, data)
  end
  if self[CHUNKED] then
    if n < 65536 then
      return put(self, format("%x\r\n", n) .. data .. "\r\n")
    end
    local ok, err, en = put(self, format("%x\r\n", n))
    if ok then ok, err, en = put(self, data) end
    if ok then ok, err, en = put(self, "\r\n") end
    return ok, err, en
  end
  return put(self, data)
end

--- End the response, with body as its last piece. Before anything was
-- sent, the head gets a Content-Length (unless the handler set one: then
-- body must match it). true, or nil, message.
function Res:finish(body)
  if body ~= nil and type(body) ~= "string" then
    bad("finish", 1, "string or nil expected, got " .. type(body))
  end
  local st = self[STATE]
  if st == FINISHED then return nil, "response finished" end
  if st == FRESH then
    local n = body and #body or 0
    local length = self[LENGTH]
    if length and length ~= n and not self[HEAD_ONLY] then
      error(format("finish: a body of %d bytes, but Content-Length is %d", n, length), 2)
    end
    self[STATE] = FINISHED
    if self[HEAD_ONLY] then
      return send_head(self, length or n, nil)
    end
    return send_head(self, length or n, body)
  end
  local ok, err, en = true, nil, nil
  if body and body ~= "" then ok, err, en = self:write(body) end
  self[STATE] = FINISHED
  if not ok then return nil, err, en end
  if self[CHUNKED] and not self[HEAD_ONLY] then
    return put(self, "0\r\n\r\n")
  end
  if self[LEFT] and self[LEFT] > 0 and not self[HEAD_ONLY] and not bodiless(self[STATUS]) then
    -- fewer bytes than announced: the client must see a truncation
    self[CLOSE] = true
    self[TRUNCATED] = true
    return nil, format("finish: %d bytes short of the Content-Length", self[LEFT])
  end
  return true
end

--- Wait until what was written is sent.
function Res:flush()
  return self[CONN]:flush()
end

--- A reply of the server's own (an error status: the connection closes
-- after it): the body is the reason phrase.
function M.reply(c, srv, code)
  local body = (REASONS[code] or "Error") .. "\n"
  return c:write(STATUS_LINE[code] .. common(srv) .. "Connection: close\r\n"
    .. "Content-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
end

--- "HTTP/1.1 100 Continue\r\n\r\n"
M.CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

return M
