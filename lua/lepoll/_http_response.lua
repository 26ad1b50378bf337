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
local HDRS <const> = 5      -- { "Name: value\r\n", ... } or false
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

-- Field names are tokens (RFC 9110 5.6.2); values have no CR, LF, NUL or
-- other control byte but HTAB (a header must not smuggle another).
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
local BADVALUE = "[%z\1-\8\10-\31\127]"

local function value_string(v, i)
  local tv = type(v)
  if tv == "number" then
    v = math_type(v) == "integer" and tostring(v) or format("%.14g", v)
  elseif tv ~= "string" then
    bad("header", 2, "string, number or table of strings expected, got " .. tv, 4)
  end
  if find(v, BADVALUE) then
    bad("header", 2, (i and ("value #" .. i) or "value")
      .. " contains a control character (CR, LF, NUL, ...)", 4)
  end
  return v
end

-- Drop every line of the field lname (lower case) from res's headers:
-- the lines are kept as sent, so a line is the field's when its name,
-- lower-cased, and the colon lead it.
local function remove(res, lname)
  local h = res[HDRS]
  if not h then return end
  local n = #lname + 1
  local key = lname .. ":"
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

--- Set the header name to value (a string or number; a table of them
-- gives one line each; nil or false removes it). Replaces earlier lines
-- of the same name (case-insensitive).
function Res:header(name, value)
  if type(name) ~= "string" or not find(name, TOKEN) then
    bad("header", 1, "a field name (token) expected, got "
      .. (type(name) == "string" and format("%q", name) or type(name)))
  end
  check_open(self, "header")
  local lname = lower(name)
  if lname == "transfer-encoding" then
    error("header: transfer-encoding is set by the server", 2)
  end
  if lname == "content-length" then
    if value == nil or value == false then
      self[LENGTH] = false
      return self
    end
    local v = value_string(value)
    if not find(v, "^%d+$") or #v > 18 then
      bad("header", 2, "content-length must be a decimal integer, got " .. format("%q", v))
    end
    self[LENGTH] = tonumber(v) // 1
    return self
  end
  if lname == "connection" then
    -- the connection is the server's: "close" is honoured, the rest ignored
    if value and find(lower(value_string(value)), "close", 1, true) then
      self[CLOSE] = true
    end
    return self
  end
  -- every value checked before anything changes: a raise leaves the
  -- headers as they were
  local first, more
  if type(value) == "table" then
    more = {}
    for i = 1, #value do more[i] = name .. ": " .. value_string(value[i], i) .. "\r\n" end
  elseif value ~= nil and value ~= false then
    first = name .. ": " .. value_string(value) .. "\r\n"
  end
  if lname == "date" or lname == "server" then self[OWN] = true end
  remove(self, lname)
  local h = self[HDRS]
  if not h then
    if not (first or more) then return self end
    h = {}
    self[HDRS] = h
  end
  if first then
    h[#h + 1] = first
  elseif more then
    for i = 1, #more do h[#h + 1] = more[i] end
  end
  return self
end

--- Whether the head was sent.
function Res:sent()
  return self[STATE] ~= FRESH
end

-- The Date and Server lines then the handler's header lines (its own
-- Date or Server, if it set either, in place of the server's).
local function lines(res)
  local h = res[HDRS]
  local srv = res[SRV]
  if not h then return common(srv) end
  if not res[OWN] then
    if #h == 1 then return common(srv) .. h[1] end
    return common(srv) .. concat(h)
  end
  local has_date, has_server
  for i = 1, #h do
    local l = lower(sub(h[i], 1, 7))
    has_date = has_date or sub(l, 1, 5) == "date:"
    has_server = has_server or l == "server:"
  end
  common(srv)
  return (has_server and "" or srv.server_line) .. (has_date and "" or srv.date_line)
    .. concat(h)
end

-- Every write of the response: one that fails (a write timeout, a reset)
-- leaves the body cut short, so the connection must end after it, or the
-- next response would be read as the rest of this body.
local function put(res, s)
  local ok, err, en = res[CONN]:write(s)
  if not ok then res[TRUNCATED], res[CLOSE] = true, true end
  return ok, err, en
end

-- Statuses whose responses never have a body (RFC 9110 6.4.1).
local function bodiless(code)
  return code == 204 or code == 304  -- status() takes no 1xx
end

-- The connection line, and whether the connection closes after this
-- response (decided by the server's hook: what the request asked, the
-- request count, a shutdown, body left unread).
local function connection(res)
  local req = res[REQ]
  if res[CLOSE] or res[SRV].must_close(req) then
    res[CLOSE] = true
    return "Connection: close\r\n"
  end
  if req.version == 10 then return "Connection: keep-alive\r\n" end
  return ""
end

-- Send the head; with body (finish) in the same write. length: the
-- Content-Length to announce, or false to stream.
local function send_head(res, length, body)
  local code = res[STATUS]
  local framing
  if bodiless(code) then
    framing = ""
    body = nil
    res[LEFT] = 0
  elseif length then
    framing = "Content-Length: " .. length .. "\r\n"
    res[LEFT] = length
  elseif res[REQ].version == 11 then
    framing = "Transfer-Encoding: chunked\r\n"
    res[CHUNKED] = true
  else  -- HTTP/1.0 without a length: the close delimits the body
    framing = ""
    res[CLOSE] = true
  end
  res[STATE] = STREAMING
  if body and not res[HEAD_ONLY] then
    res[LEFT] = res[LEFT] - #body
    -- one concatenation: the head and the body in one string, one send
    return put(res, STATUS_LINE[code] .. lines(res) .. connection(res) .. framing
      .. "\r\n" .. body)
  end
  return put(res, STATUS_LINE[code] .. lines(res) .. connection(res) .. framing .. "\r\n")
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
