--- lepoll._http_server: one HTTP/1.1 connection's life — read and parse
-- a head (lepoll.http1, in C), call the handler, finish its response,
-- read the next head — with the limits and deadlines of the listen
-- options (private; the reference is docs/http.md).
--
-- The connection's coroutine runs serve() from accept to close; between
-- requests it waits in Conn:read, holding no request, and each request
-- runs in a pooled worker coroutine (see worker, below). A head must
-- arrive whole within header_timeout of its first byte (of the accept,
-- for the first request): the deadline is set
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
local xpcall, tostring, pairs, setmetatable = xpcall, tostring, pairs, setmetatable
local co_create, co_resume, co_yield, co_running = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.running
local parse = http1.request
local set_read_deadline = connm.set_read_deadline
local new_req, new_res, reply = reqm.new, resm.new, resm.reply
local log, msgh = logm.log, logm.msgh
local FRESH, FINISHED = resm.FRESH, resm.FINISHED
local DONE, LENGTH, SIZE = reqm.DONE, reqm.LENGTH, reqm.SIZE
-- request and response slots (their modules name them)
local RES, BUF, POS, PHASE, REMAIN, CONTINUE_OWED, FAILED, RCLOSE = reqm.RES, reqm.BUF,
  reqm.POS, reqm.PHASE, reqm.REMAIN, reqm.CONTINUE, reqm.FAILED, reqm.CLOSE
local STATE, SCLOSE, TRUNCATED = resm.STATE, resm.CLOSE, resm.TRUNCATED
local SRV = reqm.SRV
local EXTRAS = connm.layout.EXTRAS
local CLOSE, KEEPALIVE, CONTINUE, EXPECT = http1.CLOSE, http1.KEEPALIVE,
  http1.CONTINUE, http1.EXPECT

local M = {}

-- A lingering close: after an error reply with input maybe unread, the
-- write side shuts and what still comes is read and dropped, for at most
-- LINGER_TIME in all and LINGER_IDLE between reads, so the client reads
-- the reply instead of a reset.
local LINGER_TIME <const> = 5
local LINGER_IDLE <const> = 2
-- How long a drain waits for the next request on a keep-alive
-- connection it finds idle (serve).
local DRAIN_IDLE <const> = 1
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
  if srv.log_refusals then
    local host, port = c:peer()
    log(format("http: %d %s (peer %s:%s)", code, why, tostring(host), tostring(port)))
  end
  reply(c, srv, code)
  return linger(c, srv.loop)
end

--- Whether the connection closes after the response to req (asked when
-- its head is built: lepoll._http_response).
function M.must_close(req)
  if req[RCLOSE] or req[SRV].loop.in_shutdown then return true end
  local ph = req[PHASE]
  if ph == DONE then return false end
  -- a body not read: read and drop it after the handler only when it is
  -- short and the client does not wait for a 100 Continue it never got
  return req[CONTINUE_OWED] or ph ~= LENGTH or req[REMAIN] > DRAIN_MAX
end

-- After the handler: read and drop what is left of a short body. true
-- when the connection can take another request.
local function drain(req)
  while req[PHASE] ~= DONE do
    local s = req:read()
    if not s then return not req[FAILED] end
  end
  return true
end

-- Idle connections wait with no deadline of their own (no extras, no
-- heap node): each sits in srv.waiting with the time it is to be closed,
-- and one timer per server sweeps them (every sweep_every seconds, so a
-- keep-alive timeout closes up to that much late). The timer stops when
-- a sweep finds no one waiting.
local function sweep(srv)
  local waiting = srv.waiting
  local now = srv.loop.now
  local any = false
  for c, dl in pairs(waiting) do
    if dl <= now then
      waiting[c] = nil
      c:close()  -- its wait() returns nil
    else
      any = true
    end
  end
  if not any then
    srv.sweeper:cancel()
    srv.sweeper = false
  end
end

local function start_sweeper(srv)
  srv.sweeper = srv.loop:every(srv.sweep_every, function() sweep(srv) end)
end

-- Close c, returning nothing (what request() returns for "no more").
local function close(c)
  c:close()  -- flushes what is queued, in the background
end

-- Read, parse and answer one request from buf (at pos, at least one
-- byte there; the head's deadline is dl): buf and pos after it when the
-- connection takes another request, else nothing (it is closed or
-- closing).
local function request(c, srv, buf, pos, dl, nreq)
  local loop = srv.loop
  local req = new_req(c, srv)
  local scan = pos
  local nxt, blen, flags
  while true do
    nxt, blen, flags = parse(buf, pos, scan, req, srv.max_request_line,
      srv.max_header_size, srv.max_headers)
    if nxt then break end
    if nxt == nil then return refuse(c, srv, blen, flags) end
    scan = blen
    if not set_read_deadline(c, dl) then return close(c) end
    local s, err = c:read()
    if s then
      buf = sub(buf, pos) .. s
      scan = scan - pos + 1
      pos = 1
    elseif err == "timeout" then
      return refuse(c, srv, 408, "header timeout")
    elseif err ~= "shutdown" then  -- a head begun is finished in a shutdown
      return close(c)
    end
  end
  pos = nxt
  local version = req.version
  if nreq >= srv.max_requests or flags & CLOSE ~= 0
     or (version == 10 and flags & KEEPALIVE == 0) then
    req[RCLOSE] = true
  end
  if blen > 0 then
    req[PHASE], req[REMAIN] = LENGTH, blen
  elseif blen < 0 then
    req[PHASE] = SIZE
  end
  if version == 11 then
    if flags & EXPECT ~= 0 then return refuse(c, srv, 417, "expectation not supported") end
    req[CONTINUE_OWED] = flags & CONTINUE ~= 0 and blen ~= 0
  end
  req[BUF], req[POS] = buf, pos
  local res = new_res(c, srv, req, req.method == "HEAD")
  req[RES] = res
  local ok, err = xpcall(srv.handler, msgh, req, res)
  if not ok then
    local host, port = c:peer()
    log(format("http: handler failed (%s %s, peer %s:%s): %s", tostring(req.method),
      tostring(req.target), tostring(host), tostring(port), tostring(err)))
    if res[STATE] == FRESH then
      res[STATE] = FINISHED
      reply(c, srv, 500)
      return linger(c, loop)
    end
    -- the head is out: abort, without the terminal chunk, so the client
    -- sees the response cut short
    return close(c)
  end
  if res[STATE] ~= FINISHED then
    local fok = res:finish()
    if not fok and res[STATE] ~= FINISHED then return close(c) end
  end
  if res[TRUNCATED] then return close(c) end
  if req[FAILED] then return linger(c, loop) end
  if res[SCLOSE] then
    if req[PHASE] ~= DONE or req[POS] <= #req[BUF] then return linger(c, loop) end
    return close(c)
  end
  if req[PHASE] ~= DONE and not drain(req) then return linger(c, loop) end
  return req[BUF], req[POS]
end

-- Requests run in pooled worker coroutines, not in the connection's own.
-- A handler's calls grow a coroutine's stack past the 40 slots it starts
-- with, and Lua never shrinks it back below twice what is in use: in the
-- connection's coroutine that would stay with every idle connection. So
-- the connection's coroutine only waits (serve below: its frame, Conn:read's
-- and the yield fit the first 40 slots) and hands each request to a
-- worker. While the worker runs, the connection's task is the worker
-- (its COROUTINE slot), so the loop resumes it directly when it waits; a
-- wait the worker yields to serve() is passed on to the loop as it is.
-- When the request is done, the worker gives the task back and yields
-- DONE: to serve() at once when nothing waited, else to the loop, which
-- runs the task (serve) again as after a yield of its own.
local COROUTINE = connm.layout.COROUTINE
local REQUEST_DONE = setmetatable({}, { __name = "lepoll.http request done" })
-- Idle workers kept per server; more are made while requests need them.
local POOL_MAX <const> = 64
-- The slots of a worker: its coroutine, then what serve() hands it and
-- what it hands back (W_BUF false: the connection is done).
local W_CO <const> = 1
local W_CONN <const> = 2
local W_BUF <const> = 3
local W_POS <const> = 4
local W_DL <const> = 5
local W_NREQ <const> = 6
local W_OWNER <const> = 7   -- the connection's own coroutine
local W_SRV <const> = 8

local function worker(w)
  while true do
    local c = w[W_CONN]
    local buf, pos = request(c, w[W_SRV], w[W_BUF], w[W_POS], w[W_DL], w[W_NREQ])
    w[W_CONN], w[W_BUF], w[W_POS] = false, buf or false, pos
    c[COROUTINE] = w[W_OWNER]
    co_yield(REQUEST_DONE)
  end
end

local function new_worker(srv)
  local w = { false, false, false, 0, 0, 0, false, srv }
  w[W_CO] = co_create(worker)
  return w
end

-- A connection's state between requests (in a table, not in locals: see
-- serve): the read buffer, where its unread bytes begin, the next head's
-- deadline (false: from its first byte) and the requests so far.
local S_BUF <const> = 1
local S_POS <const> = 2
local S_DL <const> = 3
local S_NREQ <const> = 4

--- Serve HTTP on the accepted connection c for the server srv (its
-- settings, limits and handler): the connection's whole life. Between
-- requests only its state stays: no request, no response, and a stack no
-- larger than the coroutine's first. This frame's locals are kept to
-- three (c, srv, st) where it reads: Conn:read, the C calls it makes and
-- their LUA_MINSTACK sit above them, and one more local would take the
-- coroutine past its first 40 slots (a doubling it keeps for good).
function M.serve(c, srv)
  -- the first head's deadline runs from the accept
  local st = { "", 1, srv.loop.now + srv.header_timeout, 0 }
  while true do
    if st[S_POS] > #st[S_BUF] then
      -- idle (see sweep): no deadline of its own; a phase's deadline left
      -- from this connection's last head or body goes
      srv.waiting[c] = st[S_DL] or srv.loop.now + srv.keepalive_timeout
      if not srv.sweeper then start_sweeper(srv) end
      st[S_BUF] = (not c[EXTRAS] or set_read_deadline(c, false)) and c:read()
      srv.waiting[c] = nil
      if not st[S_BUF] then
        -- a drain (shutdown) found it idle: its client may be sending the
        -- next request right now, and a close would cut that off. The
        -- request that comes within DRAIN_IDLE is answered (with
        -- "Connection: close": must_close); then, or without one, it closes.
        if not srv.loop.in_shutdown or st.drain then return c:close() end
        st.drain = true
        st[S_BUF] = set_read_deadline(c, srv.loop.now + DRAIN_IDLE) and c:read()
        if not st[S_BUF] then return c:close() end
      end
      st[S_POS] = 1
    end
    st[S_NREQ] = st[S_NREQ] + 1
    local pool = srv.pool
    local w = pool[#pool]
    if w then pool[#pool] = nil else w = new_worker(srv) end
    -- a head's deadline: from its first byte (from the accept, for the
    -- first request)
    w[W_CONN], w[W_BUF], w[W_POS], w[W_DL], w[W_NREQ], w[W_OWNER] = c, st[S_BUF],
      st[S_POS], st[S_DL] or srv.loop.now + srv.header_timeout, st[S_NREQ], co_running()
    c[COROUTINE] = w[W_CO]
    local ok, r, rc = co_resume(w[W_CO], w)
    if r ~= REQUEST_DONE then
      if not ok then  -- a fault of the server's own, not the handler's
        c[COROUTINE] = co_running()
        log("http: request failed: " .. tostring(r))
        return c:close()
      end
      co_yield(r, rc)  -- the worker waits: the loop resumes it, then this
    end
    st[S_BUF], st[S_POS], st[S_DL] = w[W_BUF], w[W_POS], false
    w[W_BUF], w[W_OWNER] = false, false
    if #pool < POOL_MAX then pool[#pool + 1] = w end
    if not st[S_BUF] then return end
  end
end

return M
