--- lepoll._http_server: one HTTP/1.1 connection's life — read and parse
-- a head (lepoll.http1, in C), call the handler, finish its response,
-- read the next head — with the limits and deadlines of the listen
-- options (private; the reference is docs/http.md).
--
-- The connection's coroutine runs serve() from accept to close; between
-- requests it waits in Conn:read with the keep-alive deadline, holding
-- no request. A head must arrive whole within header_timeout of its
-- first byte (of the accept, for the first request): the deadline is set
-- once per head (lepoll._conn.set_read_deadline), not per read, so a
-- client that feeds it a byte at a time gains nothing. Bytes read past a
-- head (a body, pipelined requests) stay in the buffer and are parsed
-- from where the previous request ended: read-ahead is bounded by one
-- head (max_header_size) plus one read.
--
--   wait ──first byte──▶ head ──complete──▶ handler(req, res) ──▶ finish
--    ▲  (keepalive_timeout:  (header_timeout: 408;   (body_timeout per
--    │   silent close)        malformed: 400, ...)    read: 408)
--    └──────────── keep-alive (unread body drained or close) ◀──┘
local http1 = require "lepoll.http1"
local connm = require "lepoll._conn"
local logm = require "lepoll._log"
local reqm = require "lepoll._http_request"
local resm = require "lepoll._http_response"

local sub, format = string.sub, string.format
local xpcall, tostring = xpcall, tostring
local parse = http1.request
local set_read_deadline = connm.set_read_deadline
local new_req, new_res, reply = reqm.new, resm.new, resm.reply
local log, msgh = logm.log, logm.msgh
local FRESH, FINISHED = resm.FRESH, resm.FINISHED
local DONE, LENGTH, SIZE = reqm.DONE, reqm.LENGTH, reqm.SIZE
local CLOSE, KEEPALIVE, CONTINUE, EXPECT = http1.CLOSE, http1.KEEPALIVE,
  http1.CONTINUE, http1.EXPECT

local M = {}

-- A lingering close: after an error reply with input maybe unread, the
-- write side shuts and what still comes is read and dropped, for at most
-- LINGER_TIME in all and LINGER_IDLE between reads, so the client reads
-- the reply instead of a reset.
local LINGER_TIME <const> = 5
local LINGER_IDLE <const> = 2
-- An unread body up to this size is read and dropped to keep the
-- connection; a larger (or chunked) one closes it.
local DRAIN_MAX <const> = 65536

local function linger(c, loop)
  if c:shutdown("w") then
    local stop = loop.now + LINGER_TIME
    while true do
      local dl = loop.now + LINGER_IDLE
      if dl > stop then dl = stop end
      if dl <= loop.now or not set_read_deadline(c, dl) then break end
      local s, err = c:read()
      if not s and err ~= "shutdown" then break end
    end
  end
  c:close()
end

-- Answer a head the parser refused (or a timeout) and close.
local function refuse(c, srv, code, why)
  srv.stats[code] = (srv.stats[code] or 0) + 1
  if srv.log_refusals then
    local host, port = c:peer()
    log(format("http: %d %s (peer %s:%s)", code, why, tostring(host), tostring(port)))
  end
  reply(c, srv, code, false)
  return linger(c, srv.loop)
end

--- Whether the connection closes after the response to req (asked when
-- its head is built: lepoll._http_response).
function M.must_close(req)
  if req._close or req._srv.loop.in_shutdown then return true end
  local ph = req._phase
  if ph == DONE then return false end
  -- a body not read: read and drop it after the handler only when it is
  -- short and the client does not wait for a 100 Continue it never got
  return req._continue or ph ~= LENGTH or req._remain > DRAIN_MAX
end

-- After the handler: read and drop what is left of a short body. true
-- when the connection can take another request.
local function drain(req)
  while req._phase ~= DONE do
    local s = req:read()
    if not s then return not req._failed end
  end
  return true
end

--- Serve HTTP on the accepted connection c for the server srv (its
-- settings, limits and handler): the connection's whole life.
function M.serve(c, srv)
  local loop = srv.loop
  local handler = srv.handler
  local max_line, max_head, max_fields = srv.max_request_line, srv.max_header_size,
    srv.max_headers
  local buf, pos = "", 1
  local nreq = 0
  -- the first head's deadline runs from the accept
  local head_dl = loop.now + srv.header_timeout
  while true do
    local req = new_req(c, srv)
    local scan = pos
    local nxt, blen, flags
    while true do
      if pos <= #buf then
        nxt, blen, flags = parse(buf, pos, scan, req, max_line, max_head, max_fields)
        if nxt then break end
        if nxt == nil then return refuse(c, srv, blen, flags) end
        scan = blen
      end
      if not set_read_deadline(c, head_dl or loop.now + srv.keepalive_timeout) then
        return c:close()
      end
      local s, err = c:read()
      if s then
        if pos > #buf then
          buf, scan = s, 1
        else
          buf = sub(buf, pos) .. s
          scan = scan - pos + 1
        end
        pos = 1
        if not head_dl then head_dl = loop.now + srv.header_timeout end
      elseif err == "timeout" then
        -- a head begun and not finished in time; with nothing begun (idle
        -- keep-alive, or a connection that never sent), a silent close
        if pos <= #buf then return refuse(c, srv, 408, "header timeout") end
        return c:close()
      elseif err ~= "shutdown" or pos > #buf then
        -- the peer closed, an error, or a graceful shutdown with no
        -- request begun: idle keep-alive connections close at once
        return c:close()
      end
    end
    nreq = nreq + 1
    pos = nxt
    local version = req.version
    if nreq >= srv.max_requests or flags & CLOSE ~= 0
       or (version == 10 and flags & KEEPALIVE == 0) then
      req._close = true
    end
    if blen > 0 then
      req._phase, req._remain = LENGTH, blen
    elseif blen < 0 then
      req._phase = SIZE
    end
    if version == 11 and flags & EXPECT ~= 0 then
      return refuse(c, srv, 417, "expectation not supported")
    end
    req._continue = version == 11 and flags & CONTINUE ~= 0 and blen ~= 0
    req._buf, req._pos = buf, pos
    local res = new_res(c, srv, req, req.method == "HEAD")
    req._res = res
    local ok, err = xpcall(handler, msgh, req, res)
    if not ok then
      local host, port = c:peer()
      log(format("http: handler failed (%s %s, peer %s:%s): %s", tostring(req.method),
        tostring(req.target), tostring(host), tostring(port), tostring(err)))
      if res._state == FRESH then
        res._state = FINISHED
        reply(c, srv, 500, false)
        return linger(c, loop)
      end
      -- the head is out: abort, without the terminal chunk, so the
      -- client sees the response cut short
      return c:close()
    end
    if res._state ~= FINISHED then
      local fok = res:finish()
      if not fok and res._state ~= FINISHED then return c:close() end
    end
    if res._truncated then return c:close() end
    buf, pos = req._buf, req._pos
    if req._failed then return linger(c, loop) end
    if res._close then
      if req._phase ~= DONE or pos <= #buf then return linger(c, loop) end
      return c:close()  -- the close flushes what is queued
    end
    if req._phase ~= DONE then
      if not drain(req) then return linger(c, loop) end
      buf, pos = req._buf, req._pos
    end
    head_dl = pos <= #buf and loop.now + srv.header_timeout or false
  end
end

return M
