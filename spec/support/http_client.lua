--- An HTTP/1.1 client for specs, written apart from the server's parser
-- (plain Lua over a lepoll connection, inside a task): it reads responses
-- as a strict client would and says what it saw, so a spec can assert on
-- the bytes the server sent, not on what the server meant to send.
local M = {}

local function fail(msg, raw)
  error(msg .. " in response: " .. string.format("%q", raw or ""), 3)
end

--- Read one response from conn (a lepoll connection, in a task). head:
-- true when it answers a HEAD request (no body follows). Returns a table
-- {status, reason, version, headers (lower-case name -> value, repeats
-- joined by ", "), lines (the header lines as sent), body, chunked,
-- trailers, closed (the server closed after it)}, or nil, reason when the
-- connection ended first ("closed" with nothing read).
function M.read(conn, head)
  local line, err = conn:readline()
  if not line then return nil, err end
  local version, status, reason = line:match("^HTTP/(1%.[01]) (%d%d%d) (.*)$")
  if not version then fail("bad status line", line) end
  local r = { status = tonumber(status), reason = reason, version = version,
    headers = {}, lines = {}, body = "", chunked = false, closed = false }
  while true do
    local h = conn:readline()
    if not h then fail("head cut short", line) end
    if h == "" then break end
    local name, value = h:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if not name then fail("bad header line", h) end
    r.lines[#r.lines + 1] = h
    name = name:lower()
    r.headers[name] = r.headers[name] and (r.headers[name] .. ", " .. value) or value
  end
  if r.status == 100 then return r end
  local te, cl = r.headers["transfer-encoding"], r.headers["content-length"]
  if head or r.status == 204 or r.status == 304 then return r end
  if te then
    if te:lower() ~= "chunked" then fail("unknown transfer-encoding", te) end
    r.chunked = true
    local parts = {}
    while true do
      local size_line = conn:readline()
      if not size_line then r.body, r.truncated = table.concat(parts), true; return r end
      local size = tonumber(size_line:match("^(%x+)"), 16)
      if not size then fail("bad chunk size", size_line) end
      if size == 0 then break end
      local data = conn:readn(size)
      if not data then r.body, r.truncated = table.concat(parts), true; return r end
      parts[#parts + 1] = data
      if conn:readn(2) ~= "\r\n" then fail("no CRLF after chunk", data) end
    end
    r.body = table.concat(parts)
    r.trailers = {}
    while true do
      local t = conn:readline()
      if not t then fail("trailers cut short", r.body) end
      if t == "" then break end
      local n, v = t:match("^([^:]+):%s*(.-)%s*$")
      r.trailers[n:lower()] = v
    end
  elseif cl then
    local n = tonumber(cl)
    local data = n > 0 and conn:readn(n) or ""
    if not data then r.truncated = true; return r end
    r.body = data
  else  -- delimited by the close
    local parts = {}
    while true do
      local s = conn:read()
      if not s then break end
      parts[#parts + 1] = s
    end
    r.body, r.closed = table.concat(parts), true
  end
  return r
end

--- Whether the server closed conn (nothing more comes) within seconds.
function M.closed(conn)
  local s, err = conn:read()
  if s then return false, s end
  return err == "closed" or err:find("reset") ~= nil, err
end

--- A GET request's bytes: path (default "/"), extra header lines (a
-- string ending in CRLF, or nil).
function M.get(path, extra, method)
  return (method or "GET") .. " " .. (path or "/") .. " HTTP/1.1\r\nHost: test\r\n"
    .. (extra or "") .. "\r\n"
end

return M
