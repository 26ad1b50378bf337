--- lepoll._proxy: the PROXY protocol (haproxy's doc/proxy-protocol.txt,
-- v1 text and v2 binary) in front of a listener's connections, and the
-- address lists of its trusted option (private: users give listen
-- proxy_protocol, proxy_timeout and trusted, and call conn:peer() and
-- conn:proxied()).
--
-- The header is looked at with MSG_PEEK until it is whole, then taken
-- with one recv of exactly its length: no byte after it leaves the
-- socket, so the handler (or a TLS handshake) reads the stream from the
-- byte after the header. While it waits, the connection is in epoll
-- under a token of this module's (edge-triggered: a peek takes nothing,
-- so only new bytes make a new edge), never under its fd number: the
-- loop's inline recv for plain connections must not take the header.
-- The registration is dropped before the handler runs, so the
-- connection starts its life as lepoll._conn draws it, unregistered.
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"
local heap = require "lepoll._heap"
local connm = require "lepoll._conn"

local recv, getpeername = net.recv, net.getpeername
local PEEK = net.PEEK
local EAGAIN = net.errno.EAGAIN
local byte, sub, find, match, char, format = string.byte, string.sub, string.find,
  string.match, string.char, string.format
local concat = table.concat
local type, tonumber, setmetatable, ipairs = type, tonumber, setmetatable, ipairs
local co_yield = coroutine.yield
local resume, WAIT = connm.resume, connm.WAIT
local L = connm.layout
local CONFIG, FD, STATE, CLOSED = L.CONFIG, L.FD, L.STATE, L.CLOSED
local WAITFLAGS = epoll.IN | epoll.RDHUP | epoll.ET
local HUPMASK = epoll.RDHUP | epoll.HUP | epoll.ERR

local M = {}

-- Sizes. A v1 line is at most 107 bytes with its CRLF (the spec's worst
-- case, "PROXY UNKNOWN" with two full IPv6 addresses). A v2 header is 16
-- bytes and the length they announce; the cap on that length is 2048:
-- the largest address block (AF_UNIX, 216) and the TLVs senders put
-- there (haproxy's ALPN, authority, unique id of up to 128 bytes, SSL
-- facts with a client certificate's CN, AWS's VPC endpoint id) stay well
-- under 1 KiB, and a cap bounds what a peek copies while the header is
-- incomplete. The first peek asks for FIRST bytes: every v1 line and
-- every v2 header without large TLVs.
local V1_MAX <const> = 107
local V2_CAP <const> = 2048
local FIRST <const> = 256
M.V1_MAX, M.V2_CAP = V1_MAX, V2_CAP

local SIG <const> = "\r\n\r\n\0\r\nQUIT\n"
local V1_PREFIX <const> = "PROXY "

-- Addresses --------------------------------------------------------------------

-- A dotted-quad IPv4 address, strictly (no leading zeroes): its 4 bytes.
local function ip4(s)
  local a, b, c, d = match(s, "^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then return nil end
  local t = { a, b, c, d }
  for i = 1, 4 do
    local p = t[i]
    if #p > 1 and byte(p) == 48 then return nil end  -- "01": octal to some readers
    local v = tonumber(p)
    if v > 255 then return nil end
    t[i] = v
  end
  return char(t[1], t[2], t[3], t[4])
end

-- The 16-bit groups of part of an IPv6 address (before or after "::"),
-- appended to words; v4: whether its last group may be a dotted quad
-- (only where the address ends). false when a group is malformed.
local function groups6(part, words, v4)
  if part == "" then return true end
  local pieces = {}
  for piece in (part .. ":"):gmatch("([^:]*):") do pieces[#pieces + 1] = piece end
  for k, piece in ipairs(pieces) do
    if v4 and k == #pieces and find(piece, ".", 1, true) then
      local q = ip4(piece)
      if not q then return false end
      local b1, b2, b3, b4 = byte(q, 1, 4)
      words[#words + 1] = b1 * 256 + b2
      words[#words + 1] = b3 * 256 + b4
    elseif match(piece, "^%x%x?%x?%x?$") then
      words[#words + 1] = tonumber(piece, 16)
    else
      return false
    end
  end
  return true
end

-- A numeric IPv6 address (as inet_pton(3) takes it; a "%zone" is not
-- part of it): its 16 bytes.
local function ip6(s)
  if #s < 2 or #s > 45 or not match(s, "^[%x:.]+$") then return nil end
  local head, tail = s, nil
  local dc = find(s, "::", 1, true)
  if dc then
    if find(s, "::", dc + 1, true) then return nil end  -- two, or ":::"
    head, tail = sub(s, 1, dc - 1), sub(s, dc + 2)
  end
  local h, t = {}, {}
  if not groups6(head, h, not dc) then return nil end
  if dc and not groups6(tail, t, true) then return nil end
  local n = #h + #t
  if (dc and n > 7) or (not dc and n ~= 8) then return nil end
  local out = {}
  for i = 1, #h do out[#out + 1] = h[i] end
  for _ = 1, 8 - n do out[#out + 1] = 0 end
  for i = 1, #t do out[#out + 1] = t[i] end
  local bytes = {}
  for i = 1, 8 do
    bytes[2 * i - 1], bytes[2 * i] = out[i] >> 8, out[i] & 255
  end
  return char(table.unpack(bytes))
end
M.ip4, M.ip6 = ip4, ip6

local function show4(b, i)
  local b1, b2, b3, b4 = byte(b, i, i + 3)
  return format("%d.%d.%d.%d", b1, b2, b3, b4)
end

-- 16 bytes as inet_ntop(3) writes them (RFC 5952: lower case, the
-- longest run of two or more zero groups as "::", the leftmost of equal
-- runs; an IPv4-mapped or -compatible address ends in a dotted quad), so
-- that a header's address reads as getpeername's would.
local function show6(b, i)
  local w = {}
  for k = 0, 7 do
    local hi, lo = byte(b, i + 2 * k, i + 2 * k + 1)
    w[k + 1] = hi * 256 + lo
  end
  local best, blen, cur, clen = 0, 0, 0, 0
  for k = 1, 8 do
    if w[k] == 0 then
      if clen == 0 then cur = k end
      clen = clen + 1
      if clen > blen then best, blen = cur, clen end
    else
      clen = 0
    end
  end
  if blen < 2 then best, blen = 0, 0 end
  if best == 1 and (blen == 6 or (blen == 5 and w[6] == 0xffff)) then
    return (blen == 6 and "::" or "::ffff:") .. show4(b, i + 12)
  end
  local parts = {}
  local k = 1
  while k <= 8 do
    if k == best then
      parts[#parts + 1] = (k == 1) and ":" or ""
      k = k + blen
      if k > 8 then parts[#parts + 1] = "" end
    else
      parts[#parts + 1] = format("%x", w[k])
      k = k + 1
    end
  end
  return concat(parts, ":")
end
M.show6 = show6

-- Trusted sources --------------------------------------------------------------

-- One entry of a trusted list ("10.0.0.0/8", "::1", "fe80::/10"): its
-- address bytes and prefix length, or nil.
local function cidr(e)
  if type(e) ~= "string" then return nil end
  local a, bits = match(e, "^([^/]+)/(%d%d?%d?)$")
  if not a then a = e end
  local b = find(a, ":", 1, true) and ip6(a) or ip4(a)
  if not b then return nil end
  local max = #b * 8
  if bits then
    if #bits > 1 and byte(bits) == 48 then return nil end
    bits = tonumber(bits)
    if bits > max then return nil end
  else
    bits = max
  end
  -- host bits set ("10.1.2.3/8") are a typo more often than a wish
  local whole, rest = bits // 8, bits % 8
  for k = whole + 1, #b do
    local v = byte(b, k)
    local mask = (k == whole + 1 and rest > 0) and (0xff >> rest) or 0xff
    if v & mask ~= 0 then return nil end
  end
  return { b, bits }
end

--- Check listen's trusted option: a non-empty list of addresses and
-- CIDRs. Returns it, or nil and what was expected (naming the entry
-- that is not one).
function M.check_trusted(v)
  if type(v) ~= "table" or #v == 0 then
    return nil, "a non-empty list of addresses or CIDRs"
  end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return nil, "a list (an array) of addresses or CIDRs" end
  for i, e in ipairs(v) do
    if not cidr(e) then
      return nil, format("a list of addresses or CIDRs (entry %d, %s, is not one)", i,
        type(e) == "string" and "'" .. e .. "'" or type(e))
    end
  end
  return v
end

--- The matcher of a checked trusted list: {entries = {{bytes, bits}}}.
function M.trusted(list)
  local t = {}
  for i, e in ipairs(list) do t[i] = cidr(e) end
  return t
end

local function covers(e, b)
  local eb, bits = e[1], e[2]
  if #eb ~= #b then return false end
  local whole, rest = bits // 8, bits % 8
  if sub(eb, 1, whole) ~= sub(b, 1, whole) then return false end
  if rest == 0 then return true end
  local mask = (0xff << (8 - rest)) & 0xff
  return byte(eb, whole + 1) & mask == byte(b, whole + 1) & mask
end

--- Whether host (as getpeername gives it) is on trusted list t. An
-- IPv4-mapped IPv6 peer (a dual-stack listener) matches IPv4 entries too.
function M.is_trusted(t, host)
  local b
  if find(host, ":", 1, true) then
    b = ip6((match(host, "^([^%%]*)")))
  else
    b = ip4(host)
  end
  if not b then return false end
  local b4 = #b == 16 and sub(b, 1, 12) == "\0\0\0\0\0\0\0\0\0\0\255\255" and sub(b, 13)
  for i = 1, #t do
    local e = t[i]
    if covers(e, b) or (b4 and covers(e, b4)) then return true end
  end
  return false
end

-- CRC32C (Castagnoli, reflected 0x82F63B78), for a v2 header's
-- PP2_TYPE_CRC32C TLV. The table is made on first use.
local crc_table
local function crc32c(s)
  local T = crc_table
  if not T then
    T = {}
    for n = 0, 255 do
      local c = n
      for _ = 1, 8 do
        if c & 1 == 1 then c = (c >> 1) ~ 0x82F63B78 else c = c >> 1 end
      end
      T[n] = c
    end
    crc_table = T
  end
  local crc = 0xffffffff
  for k = 1, #s do
    crc = T[(crc ~ byte(s, k)) & 0xff] ~ (crc >> 8)
  end
  return crc ~ 0xffffffff
end
M.crc32c = crc32c

-- Parsing ----------------------------------------------------------------------

-- What parse returns when more bytes are needed.
local INCOMPLETE <const> = "incomplete"
M.INCOMPLETE = INCOMPLETE

local function port(p)
  if #p > 5 or (#p > 1 and byte(p) == 48) then return nil end
  local v = tonumber(p)
  if v > 65535 then return nil end
  return v
end

local function parse_v1(s)
  local n = #s
  local lim = n < V1_MAX and n or V1_MAX
  local e = find(s, "\r\n", 1, true)
  if not e or e + 1 > V1_MAX then
    -- strict from the first byte: a prefix that is not "PROXY ", a bare
    -- CR or LF, a byte no header holds, or no CRLF within 107 bytes
    local head = sub(s, 1, lim)
    if sub(V1_PREFIX, 1, #head) ~= sub(head, 1, #V1_PREFIX) then return nil, "malformed" end
    -- (a CR may end what came so far: its LF may follow)
    local bad = find(head, "[^\32-\126\r]")
    local cr = find(head, "\r", 1, true)
    if bad or (cr and cr < #head) or n >= V1_MAX then return nil, "malformed" end
    return nil, INCOMPLETE, V1_MAX
  end
  local line = sub(s, 1, e - 1)
  if find(line, "[^\32-\126]") then return nil, "malformed" end
  if line == "PROXY UNKNOWN" or sub(line, 1, 14) == "PROXY UNKNOWN " then
    return { version = 1, command = "UNKNOWN" }, e + 1
  end
  local proto, src, dst, sp, dp = match(line,
    "^PROXY (TCP[46]) ([%x:.]+) ([%x:.]+) (%d+) (%d+)$")
  if not proto then return nil, "malformed" end
  local parse = proto == "TCP4" and ip4 or ip6
  local sb, db = parse(src), parse(dst)
  local sport, dport = port(sp), port(dp)
  if not (sb and db and sport and dport) then return nil, "malformed" end
  local show = proto == "TCP4" and show4 or show6
  return { version = 1, command = "PROXY", family = proto == "TCP4" and "inet" or "inet6",
    src_host = show(sb, 1), src_port = sport, dst_host = show(db, 1), dst_port = dport,
    tlvs = {} }, e + 1
end

-- A unix path of a v2 address block: up to its first NUL.
local function upath(s, i)
  local p = sub(s, i, i + 107)
  local z = find(p, "\0", 1, true)
  return z and sub(p, 1, z - 1) or p
end

local ADDR_LEN = { [1] = 12, [2] = 36, [3] = 216 }
local FAMILY = { [1] = "inet", [2] = "inet6", [3] = "unix" }

local function parse_v2(s)
  local n = #s
  if n < 16 then
    if sub(s, 1, 12) ~= sub(SIG, 1, n) then return nil, "malformed" end
    if n >= 13 and byte(s, 13) >> 4 ~= 2 then return nil, "malformed" end
    return nil, INCOMPLETE, 16
  end
  if sub(s, 1, 12) ~= SIG then return nil, "malformed" end
  local vc, fam, l1, l2 = byte(s, 13, 16)
  if vc >> 4 ~= 2 then return nil, "malformed" end
  local cmd = vc & 15
  if cmd > 1 then return nil, "malformed" end
  local len = l1 * 256 + l2
  if len > V2_CAP then return nil, "oversized" end
  local total = 16 + len
  if n < total then return nil, INCOMPLETE, total end
  if cmd == 0 then
    -- LOCAL: the proxy's own connection (a health check); the block,
    -- family included, is ignored
    return { version = 2, command = "LOCAL" }, total
  end
  local af, tp = fam >> 4, fam & 15
  if af > 3 or tp > 2 then return nil, "malformed" end
  if af == 0 or tp ~= 1 then
    -- AF_UNSPEC, an unspecified transport, or datagrams: the spec's
    -- fallback for what a receiver does not implement is UNSPEC, the
    -- real endpoints (the block is skipped, not read)
    return { version = 2, command = "UNSPEC" }, total
  end
  local alen = ADDR_LEN[af]
  if len < alen then return nil, "malformed" end
  local info = { version = 2, command = "PROXY", family = FAMILY[af], tlvs = {} }
  if af == 1 then
    info.src_host, info.dst_host = show4(s, 17), show4(s, 21)
    local a, b, c, d = byte(s, 25, 28)
    info.src_port, info.dst_port = a * 256 + b, c * 256 + d
  elseif af == 2 then
    info.src_host, info.dst_host = show6(s, 17), show6(s, 33)
    local a, b, c, d = byte(s, 49, 52)
    info.src_port, info.dst_port = a * 256 + b, c * 256 + d
  else
    info.src_host, info.dst_host = upath(s, 17), upath(s, 125)
  end
  -- TLVs: type, 16-bit length, value; they must fill the rest exactly
  local tlvs = info.tlvs
  local i = 17 + alen
  local crc_at
  while i <= total do
    if i + 2 > total then return nil, "malformed" end
    local t, h, l = byte(s, i, i + 2)
    local vlen = h * 256 + l
    local j = i + 3 + vlen - 1
    if j > total then return nil, "malformed" end
    if tlvs[t] == nil then tlvs[t] = sub(s, i + 3, j) end  -- a repeat keeps the first
    if t == 0x03 then
      if vlen ~= 4 or crc_at then return nil, "malformed" end
      crc_at = i + 3
    end
    i = j + 1
  end
  if crc_at then
    local a, b, c, d = byte(s, crc_at, crc_at + 3)
    local want = ((a * 256 + b) * 256 + c) * 256 + d
    local zeroed = sub(s, 1, crc_at - 1) .. "\0\0\0\0" .. sub(s, crc_at + 4, total)
    if crc32c(zeroed) ~= want then return nil, "checksum" end
  end
  return info, total
end

--- Parse a header at the start of s, for mode "v1", "v2" or "any".
-- Returns the header's facts and its length in bytes; or nil,
-- "incomplete" and the byte count to peek for next; or nil and why it
-- is refused ("malformed", "oversized", "checksum"). Facts: {version,
-- command = "PROXY" | "LOCAL" | "UNKNOWN" | "UNSPEC", family = "inet" |
-- "inet6" | "unix", src_host, src_port, dst_host, dst_port, tlvs}
-- (addresses only for PROXY).
function M.parse(s, mode)
  local b = byte(s)
  if not b then return nil, INCOMPLETE, FIRST end
  if mode == "v1" or (mode == "any" and b == 80) then return parse_v1(s) end  -- "P"
  if mode == "v2" or (mode == "any" and b == 13) then return parse_v2(s) end  -- "\r"
  return nil, "malformed"
end

-- Waiting for the rest of a header ----------------------------------------------

-- The waiter of one connection: its token's object and its deadline's
-- heap node. task marks it a sleeper (the loop counts it in nactive
-- while it is in the heap, and a closing loop abandons the task, which
-- closes the waiter: see cleanup).
local Waiter = {}
Waiter.__index = Waiter

local function on_event(w, fl)
  if w.parked then
    w.parked = false
    resume(w.loop, w.task, fl & HUPMASK ~= 0 and "hup" or nil)
  end
end

function Waiter:_expire(loop)
  loop.nactive = loop.nactive - 1  -- out of the heap: no longer a sleeper
  if self.parked then
    self.parked = false
    resume(loop, self.task, "timeout")
  end
end

-- The end of a wait, however it ends (the header came, failed, timed
-- out; the loop closed and abandoned the task): leave the heap, the
-- epoll set (while the connection still owns its fd: a closed fd left
-- it, and its number may be another socket's now) and the token.
function Waiter:__close()
  local loop, c = self.loop, self.conn
  if self.heap_index then
    heap.remove(loop.heap, self)
    if not loop.closed then loop.nactive = loop.nactive - 1 end
  end
  local tk = self.token
  if tk then
    self.token = false
    if not loop.closed and c[STATE] ~= CLOSED then loop.ep:delete(c[FD]) end
    loop:_release(tk)
  end
  self.parked = false
end

-- Park c's task until a new edge ("hup" with a hangup), the deadline
-- ("timeout") or a failure to wait ("epoll").
local function wait(w)
  local loop, c = w.loop, w.conn
  if not w.token then
    local tk = loop:_token(w, on_event)
    local ok = loop.ep:add(c[FD], tk, WAITFLAGS)
    if not ok then
      loop:_release(tk)
      return "epoll"
    end
    w.token = tk
  end
  if not w.heap_index then
    if w.at <= loop.now then return "timeout" end
    heap.push(loop.heap, w)
    loop.nactive = loop.nactive + 1
    loop:_work_added()
  end
  w.parked = true
  return co_yield(WAIT)
end

-- Take the n header bytes a peek saw (they are queued: one recv takes
-- them, but a unix socket may stop at a message boundary).
local function consume(fd, n)
  while n > 0 do
    local s = recv(fd, n)
    if not s or s == "" then return false end
    n = n - #s
  end
  return true
end

-- One look at what fd holds, peeking up to want bytes: the header's
-- facts (its bytes taken, after waiter w, if any, is closed: the
-- connection leaves epoll first); nil and why it is refused; or nil,
-- INCOMPLETE and the byte count to peek for next time. hup: the peer
-- hung up, so what is there is all there will be.
local function attempt(fd, mode, want, hup, w)
  while true do
    local s, err, en = recv(fd, want, PEEK)
    if not s then
      if en ~= EAGAIN then return nil, err end
      return nil, INCOMPLETE, want
    end
    if s == "" then return nil, "closed" end
    local info, why, need = M.parse(s, mode)
    if info then
      if w then w:__close() end
      if not consume(fd, why) then return nil, "closed" end
      return info
    end
    if why ~= INCOMPLETE then return nil, why end
    if hup then return nil, "closed" end  -- the peer stopped short of a header
    -- a header longer than the peek, and more bytes queued: again, at once
    if need <= want or #s < want then return nil, INCOMPLETE, need > want and need or want end
    want = need
  end
end

-- The rest of c's header, by the absolute deadline dl: wait for edges.
local function read_slow(c, mode, dl, want)
  local loop = c[CONFIG].loop
  local w <close> = setmetatable({ loop = loop, conn = c, task = c, parked = false,
    token = false, at = dl, seq = 0, heap_index = false }, Waiter)
  local hup = false
  while true do
    -- no new header is awaited once the loop winds down
    if loop.in_shutdown then return nil, "shutdown" end
    local r = wait(w)
    if r == "hup" then
      hup = true
    elseif r then
      return nil, r
    end
    local info, why, need = attempt(c[FD], mode, want, hup, w)
    if info or why ~= INCOMPLETE then return info, why end
    if hup then return nil, "closed" end
    want = need
  end
end

-- Read c's header (mode) by the absolute deadline dl: its facts, or nil
-- and why not ("malformed", "oversized", "checksum", "timeout",
-- "closed", "shutdown" or a socket error). Most headers are there at
-- accept: no registration, no waiter.
local function read_header(c, mode, dl)
  local info, why, want = attempt(c[FD], mode, FIRST, false)
  if info or why ~= INCOMPLETE then return info, why end
  return read_slow(c, mode, dl, want)
end

--- The handler of a listener with proxy_protocol (checked options o):
-- refuse an untrusted peer, read and consume the header within
-- o.proxy_timeout seconds of the accept, then run handler(c) (the TLS
-- handshake first, when the listener has tls: handler is its wrapper).
-- A refusal closes the connection without a reply and is counted in the
-- listener's stats: proxy_untrusted, or proxy_failures (and
-- proxy_reasons[why]).
function M.handler(o, handler, unix)
  local mode, timeout = o.proxy_protocol, o.proxy_timeout
  local trusted = o.trusted and M.trusted(o.trusted)
  local is_trusted = M.is_trusted
  return function(c)
    local cfg = c[CONFIG]
    local stats = cfg.stats
    local real_host, real_port, why
    if not unix then
      real_host, real_port = getpeername(c[FD])
      if not real_host then
        why = "closed"  -- gone already (ENOTCONN)
      elseif trusted and not is_trusted(trusted, real_host) then
        stats.proxy_untrusted = stats.proxy_untrusted + 1
        return
      end
    end
    local info
    if not why then info, why = read_header(c, mode, cfg.loop.now + timeout) end
    if not info then
      stats.proxy_failures = stats.proxy_failures + 1
      local reasons = stats.proxy_reasons
      reasons[why] = (reasons[why] or 0) + 1
      return
    end
    if info.command == "PROXY" then
      if unix then real_host, real_port = getpeername(c[FD]) end
      c._proxy = { info.src_host, info.src_port, real_host or false, real_port or false,
        { version = info.version, command = info.command, family = info.family,
          dst_host = info.dst_host, dst_port = info.dst_port, tlvs = info.tlvs } }
    end
    return handler(c)
  end
end

return M
