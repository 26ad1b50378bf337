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
local find, lower, format = string.find, string.lower, string.format
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

--- A response to req on connection c, for the server srv. Every field is
-- set here (filling the table later never rehashes it).
function M.new(c, srv, req, head_only)
  return setmetatable({
    _c = c, _srv = srv, _req = req,
    _status = 200,
    _hdrs = false,       -- { lname, "Name: value\r\n", ... } or false
    _state = FRESH,
    _length = false,     -- a Content-Length the handler set
    _left = false,       -- bytes of it still to write
    _chunked = false,
    _close = false,      -- the connection closes after this response
    _head_only = head_only,  -- HEAD: the head GET would send, no body
    _own = false,        -- the handler set Date or Server itself
    _truncated = false,  -- finished short of its Content-Length
  }, Res)
end

local function bad(fname, arg, msg, level)
  error(format("bad argument #%d to '%s' (%s)", arg, fname, msg), level or 3)
end

local function check_open(res, fname)
  if res._state ~= FRESH then
    error(fname .. ": the response head was already sent", 3)
  end
end

--- Set the status code (200 until set).
function Res:status(code)
  if math_type(code) ~= "integer" or code < 200 or code > 599 then
    bad("status", 1, "an integer 200..599 expected, got " .. tostring(code))
  end
  check_open(self, "status")
  self._status = code
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

-- Drop every line of lname from res's headers.
local function remove(res, lname)
  local h = res._hdrs
  if not h then return end
  local j = 1
  for i = 1, #h, 2 do
    if h[i] ~= lname then
      h[j], h[j + 1] = h[i], h[i + 1]
      j = j + 2
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
      self._length = false
      return self
    end
    local v = value_string(value)
    if not find(v, "^%d+$") or #v > 18 then
      bad("header", 2, "content-length must be a decimal integer, got " .. format("%q", v))
    end
    self._length = tonumber(v) // 1
    return self
  end
  if lname == "connection" then
    -- the connection is the server's: "close" is honoured, the rest ignored
    if value and find(lower(value_string(value)), "close", 1, true) then
      self._close = true
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
  if lname == "date" or lname == "server" then self._own = true end
  remove(self, lname)
  local h = self._hdrs
  if not h then
    if not (first or more) then return self end
    h = {}
    self._hdrs = h
  end
  if first then
    h[#h + 1] = lname
    h[#h + 1] = first
  elseif more then
    for i = 1, #more do
      h[#h + 1] = lname
      h[#h + 1] = more[i]
    end
  end
  return self
end

--- Whether the head was sent.
function Res:sent()
  return self._state ~= FRESH
end

-- The handler's header lines, and the Date and Server lines unless the
-- handler set either.
local function lines(res)
  local h = res._hdrs
  local srv = res._srv
  if not h then return common(srv) end
  local t = {}
  for i = 2, #h, 2 do t[#t + 1] = h[i] end
  if not res._own then return common(srv) .. concat(t) end
  local has_date, has_server
  for i = 1, #h, 2 do
    if h[i] == "date" then has_date = true elseif h[i] == "server" then has_server = true end
  end
  common(srv)
  return (has_server and "" or srv.server_line) .. (has_date and "" or srv.date_line)
    .. concat(t)
end

-- Statuses whose responses never have a body (RFC 9110 6.4.1).
local function bodiless(code)
  return code == 204 or code == 304 or code < 200
end

-- The connection line, and whether the connection closes after this
-- response (decided by the server's hook: what the request asked, the
-- request count, a shutdown, body left unread).
local function connection(res, closing)
  local req = res._req
  if closing or res._close or res._srv.must_close(req) then
    res._close = true
    return "Connection: close\r\n"
  end
  if req.version == 10 then return "Connection: keep-alive\r\n" end
  return ""
end

-- Send the head; with body (finish) in the same write. length: the
-- Content-Length to announce, or false to stream.
local function send_head(res, length, body)
  local code = res._status
  local framing
  if bodiless(code) then
    framing = ""
    body = nil
    res._left = 0
  elseif length then
    framing = "Content-Length: " .. length .. "\r\n"
    res._left = length
  elseif res._req.version == 11 then
    framing = "Transfer-Encoding: chunked\r\n"
    res._chunked = true
  else  -- HTTP/1.0 without a length: the close delimits the body
    framing = ""
    res._close = true
  end
  local head = STATUS_LINE[code] .. lines(res) .. connection(res, res._close) .. framing .. "\r\n"
  res._state = STREAMING
  if body and not res._head_only then
    res._left = res._left and res._left - #body
    return res._c:write(head .. body)
  end
  return res._c:write(head)
end

--- Write a piece of the body (sending the head first): chunked when no
-- Content-Length was set (HTTP/1.1), delimited by the close on HTTP/1.0.
-- true, or nil, message.
function Res:write(data)
  if type(data) ~= "string" then bad("write", 1, "string expected, got " .. type(data)) end
  local st = self._state
  if st == FINISHED then return nil, "response finished" end
  if st == FRESH then
    local ok, err, en = send_head(self, self._length, nil)
    if not ok then return nil, err, en end
  end
  local n = #data
  if n == 0 or self._head_only or bodiless(self._status) then return true end
  local left = self._left
  if left then
    if n > left then
      error(format("write: %d bytes more than the Content-Length (%d) allows",
        n - left, self._length), 2)
    end
    self._left = left - n
    return self._c:write(data)
  end
  if self._chunked then
    if n < 65536 then
      return self._c:write(format("%x\r\n", n) .. data .. "\r\n")
    end
    local c = self._c
    local ok, err, en = c:write(format("%x\r\n", n))
    if ok then ok, err, en = c:write(data) end
    if ok then ok, err, en = c:write("\r\n") end
    return ok, err, en
  end
  return self._c:write(data)
end

--- End the response, with body as its last piece. Before anything was
-- sent, the head gets a Content-Length (unless the handler set one: then
-- body must match it). true, or nil, message.
function Res:finish(body)
  if body ~= nil and type(body) ~= "string" then
    bad("finish", 1, "string or nil expected, got " .. type(body))
  end
  local st = self._state
  if st == FINISHED then return nil, "response finished" end
  if st == FRESH then
    local n = body and #body or 0
    local length = self._length
    if length and length ~= n and not self._head_only then
      error(format("finish: a body of %d bytes, but Content-Length is %d", n, length), 2)
    end
    self._state = FINISHED
    if self._head_only then
      return send_head(self, length or n, nil)
    end
    return send_head(self, length or n, body)
  end
  local ok, err, en = true, nil, nil
  if body and body ~= "" then ok, err, en = self:write(body) end
  self._state = FINISHED
  if not ok then return nil, err, en end
  if self._chunked and not self._head_only then
    return self._c:write("0\r\n\r\n")
  end
  if self._left and self._left > 0 and not self._head_only and not bodiless(self._status) then
    -- fewer bytes than announced: the client must see a truncation
    self._close = true
    self._truncated = true
    return nil, format("finish: %d bytes short of the Content-Length", self._left)
  end
  return true
end

--- Wait until what was written is sent.
function Res:flush()
  return self._c:flush()
end

--- A reply of the server's own (an error status), with
-- "Connection: close" unless keep: the body is the reason phrase.
function M.reply(c, srv, code, keep, extra)
  local body = (REASONS[code] or "Error") .. "\n"
  common(srv)
  return c:write(STATUS_LINE[code] .. srv.common
    .. (keep and "" or "Connection: close\r\n")
    .. (extra or "")
    .. "Content-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
end

--- "HTTP/1.1 100 Continue\r\n\r\n"
M.CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

return M
