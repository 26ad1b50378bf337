-- lepoll.http1 against two other parsers (spec/support/oracle_http1.c):
-- picohttpparser (Debian's libh2o-evloop0.13) and llhttp (node-llhttp's C
-- sources). The same generated and mutated requests (support.http1_cases)
-- go to all three; each disagreement must be one that is explained below
-- with ours the stricter side. Ours the laxer side fails the spec, as does
-- any unexplained difference or a field parsed differently.
local http1 = require "lepoll.http1"
local cases = require "support.http1_cases"
local process = require "support.process"

-- The server's default limits (issue 10): request line, head, fields.
local MAX_LINE, MAX_HEAD, MAX_FIELDS = 8192, 16384, 100
local SEED, MUTATIONS = 20240610, 3000
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local ORACLE = BUILD .. "/oracle_http1"
-- LEPOLL_HTTP1_DIFF_SHOW=id prints the cases an explanation covers.
local SHOW = os.getenv("LEPOLL_HTTP1_DIFF_SHOW")

local CR, LF = 13, 10

local function escape(s)
  return (s:gsub("[^\32-\126]", function(c)
    local b = c:byte()
    return b == CR and "\\r" or b == LF and "\\n\n    " or ("\\x%02X"):format(b)
  end))
end

local function is_token(s)
  return s ~= "" and not s:find("[^!#$%%&'*+%-.^_`|~%w]")
end

local function trim(v) return (v:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")) end

--------------------------------------------------------------------------
-- Ours: the head, then the body as lepoll.http will frame it (a chunked
-- body through chunk() and trailers(), the CRLF after each chunk's data
-- checked here as the contract leaves it to the caller).
--------------------------------------------------------------------------
local function new_req()
  return { method = false, target = false, path = false, query = false, version = false,
           headers = false }
end

local function ours_head(s, init, scan)
  local req = new_req()
  local nxt, a, b = http1.request(s, init or 1, scan or init or 1, req, MAX_LINE, MAX_HEAD,
    MAX_FIELDS)
  return req, nxt, a, b
end

local function run_ours(s)
  local req, nxt, bodylen, flags = ours_head(s)
  if nxt == nil then
    return { v = "R", stage = "head", status = bodylen, reason = flags, at = 1 }
  elseif nxt == false then
    return { v = "I", stage = "head", scan = bodylen }
  end
  local o = { head = nxt - 1, req = req, bodylen = bodylen, flags = flags }
  if bodylen >= 0 then
    if bodylen > #s - nxt + 1 then -- not nxt + bodylen: that may pass 2^63
      o.v, o.stage = "I", "body"
    else
      o.v, o.consumed, o.body = "A", nxt - 1 + bodylen, s:sub(nxt, nxt + bodylen - 1)
    end
    return o
  end
  local pos, data = nxt, {}
  while true do
    local size, dpos, reason = http1.chunk(s, pos, MAX_LINE)
    if size == nil then
      o.v, o.stage, o.status, o.reason, o.at = "R", "chunk", dpos, reason, pos
      return o
    elseif size == false then
      o.v, o.stage, o.at = "I", "chunk", pos
      return o
    elseif size == 0 then
      local t = {}
      local e, st, rs = http1.trailers(s, dpos, dpos, t, MAX_HEAD, MAX_FIELDS)
      if e == nil then
        o.v, o.stage, o.status, o.reason, o.at = "R", "trailers", st, rs, dpos
      elseif e == false then
        o.v, o.stage, o.at = "I", "trailers", dpos
      else
        o.v, o.consumed, o.body, o.trailers = "A", e - 1, table.concat(data), t
      end
      return o
    end
    local crlf = s:sub(dpos + size, dpos + size + 1)
    if dpos + size - 1 > #s or crlf == "" or crlf == "\r" then
      o.v, o.stage, o.at = "I", "data", dpos
      return o
    elseif crlf ~= "\r\n" then
      o.v, o.stage, o.status, o.reason, o.at = "R", "data", 400, "no CRLF after chunk data",
        dpos + size
      return o
    end
    data[#data + 1] = s:sub(dpos, dpos + size - 1)
    pos = dpos + size + 2
  end
end

-- The head fed in two parts must end as the whole does (the resumable
-- contract: scan from the first call, bytes before it unchanged).
local function split_check(s, k)
  local _, n1, a1, b1 = ours_head(s)
  local _, p1, p2 = ours_head(s:sub(1, k))
  if p1 == false then
    local _, n2, a2, b2 = ours_head(s, 1, p2)
    if n2 ~= n1 or a2 ~= a1 or b2 ~= b1 then
      return ("whole: %s %s %s; after %d bytes and scan %d: %s %s %s")
        :format(tostring(n1), tostring(a1), tostring(b1), k, p2, tostring(n2), tostring(a2),
          tostring(b2))
    end
  elseif p1 == nil then
    if n1 ~= nil or a1 ~= p2 then
      return ("first %d bytes: nil %s; whole: %s %s"):format(k, tostring(p2), tostring(n1),
        tostring(a1))
    end
  elseif p1 ~= n1 or p2 ~= a1 then
    return ("first %d bytes: %s %s; whole: %s %s"):format(k, tostring(p1), tostring(p2),
      tostring(n1), tostring(a1))
  end
end

--------------------------------------------------------------------------
-- The oracles: one run of the program over all cases.
--------------------------------------------------------------------------
local function decode(tok)
  if tok == "!" then return nil end
  assert(tok:sub(1, 1) == "=", "oracle output: " .. tok)
  return (tok:sub(2):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function run_oracles(list)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  for _, c in ipairs(list) do assert(f:write(#c.s, "\n", c.s)) end
  assert(f:close())
  local p = process.spawn(process.program(ORACLE, { path }), { limit = 600 })
  local out, how, code = p:wait()
  local err = p:stderr()
  p:close()
  os.remove(path)
  assert(how == "exit" and code == 0, ("%s exited %s %s: %s"):format(ORACLE, how, code, err))
  local res, cur = {}, nil
  for line in out:gmatch("[^\n]+") do
    local w = {}
    for tok in line:gmatch("%S+") do w[#w + 1] = tok end
    local k = w[1]
    if k == "case" then
      cur = { pico = {}, llhttp = {}, pico_h = {}, ll_h = {}, ll_t = {} }
      res[tonumber(w[2])] = cur
    elseif k == "pico" then
      cur.pico = { ret = tonumber(w[2]), method = decode(w[3]), target = decode(w[4]),
                   minor = tonumber(w[5]) }
    elseif k == "pico-h" then
      cur.pico_h[#cur.pico_h + 1] = { decode(w[2]) or false, decode(w[3]) }
    elseif k == "pico-chunked" then
      cur.pico.chunked = { ret = tonumber(w[2]), data = decode(w[3]) }
    elseif k == "llhttp" then
      cur.llhttp = { errno = tonumber(w[2]), name = decode(w[3]), reason = decode(w[4]),
                     head = w[5] == "1", done = w[6] == "1", consumed = tonumber(w[7]),
                     method = decode(w[8]), url = decode(w[9]), major = tonumber(w[10]),
                     minor = tonumber(w[11]), body = decode(w[12]) }
    elseif k == "llhttp-h" then
      cur.ll_h[#cur.ll_h + 1] = { decode(w[2]), decode(w[3]) }
    elseif k == "llhttp-t" then
      cur.ll_t[#cur.ll_t + 1] = { decode(w[2]), decode(w[3]) }
    elseif k == "llhttp-overflow" then
      cur.llhttp.overflow = true
    else
      assert(k == "end", "oracle output: " .. line)
    end
  end
  assert(#res == #list, ("oracle answered %d of %d cases"):format(#res, #list))
  return res
end

--------------------------------------------------------------------------
-- A lenient reading of the input, for the explanations: what the bytes
-- hold, independent of any of the three parsers.
--------------------------------------------------------------------------
local function features(s)
  local f = { leading = 0, fields = {}, by = {}, lines = {} }
  local pos = 1
  while true do
    if s:sub(pos, pos + 1) == "\r\n" then pos = pos + 2
    elseif s:sub(pos, pos) == "\n" then pos = pos + 1
    else break end
    f.leading = f.leading + 1
  end
  f.leading_lf = s:sub(1, pos - 1):find("^\n") ~= nil or s:sub(1, pos - 1):find("[^\r]\n") ~= nil
  local _, e = s:find("\n\r?\n", pos)
  local head = s:sub(1, e or #s)
  f.head = head
  f.body = s:sub(#head + 1)
  f.bare_lf = head:find("^\n") ~= nil or head:find("[^\r]\n") ~= nil
  f.bare_cr = head:find("\r[^\n]") ~= nil
  for line in head:sub(pos):gmatch("([^\n]*)\n") do
    f.lines[#f.lines + 1] = (line:gsub("\r$", ""))
  end
  local rl = f.lines[1] or head:sub(pos)
  f.method, f.target, f.version = rl:match("^([^ ]*) ([^ ]*) (.*)$")
  f.rl_ok = f.method ~= nil and is_token(f.method) and f.version:find("^HTTP/%d%.%d$") ~= nil
    and f.target ~= "" and not f.target:find("[^\33-\126]") and not f.target:find("#")
  f.http10 = f.version == "HTTP/1.0"
  local t = f.target or ""
  if f.method == "CONNECT" then
    f.form_ok = t ~= "" and not t:find("[/?*]", 1)
  else
    -- absolute-form: scheme "://" host [":" port], then the path
    local auth = t:match("^%a[%w+%-.]*://([^/?]*)")
    f.form_ok = t:find("^/") ~= nil or (t == "*" and f.method == "OPTIONS")
      or (auth ~= nil and (auth:find("^[%w%-._~%%!$&'()*+,;=]+:?%d*$") ~= nil
        or auth:find("^%[[%x:.]+%]:?%d*$") ~= nil))
  end
  f.major_not_1 = f.version ~= nil and f.version:find("^HTTP/1%.") == nil
  for i = 2, #f.lines do
    local line = f.lines[i]
    if line == "" then break end
    if line:find("^[ \t]") then f.obs_fold = true end
    local name, value = line:match("^([^:]*):(.*)$")
    if not name then
      f.no_colon = true
    else
      if name:find("[ \t]$") then f.ws_colon = true end
      if not is_token(name) then f.bad_name = true end
      if value:find("[%z\1-\8\10-\31\127]") then f.ctl_value = true end
      local lname = name:lower()
      f.fields[#f.fields + 1] = { lname, trim(value) }
      f.by[lname] = f.by[lname] or {}
      table.insert(f.by[lname], trim(value))
    end
  end
  local cl, te, host = f.by["content-length"], f.by["transfer-encoding"], f.by["host"]
  f.cl_te = cl ~= nil and te ~= nil
  if cl then
    local seen
    for _, v in ipairs(cl) do
      for item in (v .. ","):gmatch("([^,]*),") do
        item = trim(item)
        if not item:find("^%d+$") or #item > 18 and item > "9223372036854775807" then
          f.cl_invalid = true
        elseif seen and tonumber(item) ~= seen then
          f.cl_conflict = true
        end
        seen = seen or tonumber(item)
      end
      if v:find(",") then f.cl_list = true end
    end
    if #cl > 1 then f.cl_repeated = true end
  end
  if te then
    local codings = {}
    for _, v in ipairs(te) do
      for item in (v .. ","):gmatch("([^,]*),") do codings[#codings + 1] = trim(item):lower() end
    end
    f.te_codings = codings
    local last = codings[#codings]
    local chunked = 0
    for _, c in ipairs(codings) do if c == "chunked" then chunked = chunked + 1 end end
    f.te_bad = last ~= "chunked" or chunked > 1 or #codings > 1 or f.http10
    f.te_not_final = last ~= "chunked"
  end
  local hostre = "^[%w%-%._~!$&'()*+,;=%%]*$"
  -- RFC 9112 3.2: more than one Host is 400 on any version, none on 1.1
  f.host_bad = (host == nil and not f.http10) or (host ~= nil and #host ~= 1)
  for _, h in ipairs(host or {}) do
    -- a comma is a reg-name sub-delim, but "a, b" is also two Host lines joined
    if h:find(",") then f.host_bad = true end
    local name, port = h:match("^(.-):(%d*)$")
    name = name or h
    if not (name:find(hostre) or name:find("^%[[%x:.]+%]$")) or (port and port:find("%D")) then
      f.host_bad = true
    end
  end
  return f
end

--------------------------------------------------------------------------
-- The explained differences. Each says why ours may refuse (or, kind
-- "contract", accept) what the oracle does not, and checks that the input
-- holds what it says: an explanation never applies to a case by its class
-- alone. `e` holds s, f (features), o (ours), x (the oracle's verdict).
--------------------------------------------------------------------------
local function line_at(s, at) return s:sub(at, (s:find("\n", at, true) or #s)) end
local function head_stage(e) return e.o.stage == "head" end

local EXPLAINED = {
  -- ours stricter than both
  { id = "bare-lf", oracle = "both",
    text = "ours rejects a bare LF as a line end (RFC 9112 2.2 allows rejecting); the oracle"
      .. " takes LF",
    when = function(e) return head_stage(e) and e.f.bare_lf end },
  { id = "bare-cr", oracle = "both",
    text = "ours rejects a bare CR anywhere in the head (RFC 9112 2.2, CVE-2023-30589)",
    when = function(e) return head_stage(e) and e.f.bare_cr end },
  { id = "obs-fold", oracle = "both",
    text = "ours rejects obs-fold and whitespace before the first field (RFC 9112 5.2 allows"
      .. " rejecting); the oracle joins or ignores the line",
    when = function(e) return head_stage(e) and e.f.obs_fold end },
  { id = "ws-before-colon", oracle = "both",
    text = "ours rejects whitespace between a field name and the colon (RFC 9112 5.1: MUST reject)",
    when = function(e) return head_stage(e) and e.f.ws_colon end },
  { id = "host", oracle = "both",
    text = "ours rejects an HTTP/1.1 request without exactly one valid Host (RFC 9112 3.2: MUST"
      .. " 400); the oracle does not look at Host",
    when = function(e) return head_stage(e) and e.o.status == 400 and e.f.host_bad end },
  { id = "request-line", oracle = "both",
    text = "ours holds the request-line to token SP target SP HTTP/d.d with a printable-ASCII"
      .. " target without '#' (RFC 9112 3); the oracle takes more (fragments, obs-text, odd"
      .. " method bytes)",
    when = function(e) return head_stage(e) and not e.f.rl_ok end },
  { id = "target-form", oracle = "both",
    text = "ours holds the request-target to RFC 9112 3.2's forms with their methods"
      .. " (authority-form for CONNECT only, '*' for OPTIONS only, absolute-form with //host as"
      .. " RFC 9110 4.2.1 requires); the oracle takes others",
    when = function(e) return head_stage(e) and not e.f.form_ok end },
  { id = "field-syntax", oracle = "both",
    text = "ours rejects a field line that is not token \":\" value with VCHAR/obs-text/SP/HTAB"
      .. " (RFC 9110 5.5, 5.6.2)",
    when = function(e)
      return head_stage(e) and (e.f.bad_name or e.f.ctl_value or e.f.no_colon)
    end },
  { id = "limits", oracle = "both",
    text = "ours has the server's limits (request line 8 KiB → 414, head 16 KiB or 100 fields"
      .. " → 431,"
      .. " chunk line 8 KiB); the oracle has none or others",
    when = function(e)
      return e.o.status == 414 or e.o.status == 431
        or (e.o.stage == "chunk" and #line_at(e.s, e.o.at) > MAX_LINE)
    end },
  { id = "version", oracle = "both",
    text = "ours answers 505 to an HTTP major version other than 1 (RFC 9110 6.2); llhttp (not"
      .. " in strict mode) takes HTTP/0.9 and HTTP/2.0 request lines",
    when = function(e) return e.o.status == 505 and e.f.major_not_1 end },
  -- framing: pico reads no semantics at all, llhttp some
  { id = "cl-te", oracle = "pico",
    text = "ours rejects Content-Length with Transfer-Encoding (RFC 9112 6.1 allows; a smuggling"
      .. " vector); pico reads neither",
    when = function(e) return head_stage(e) and e.f.cl_te end },
  { id = "content-length", oracle = "both",
    text = "ours rejects a Content-Length that is not 1*DIGIT within 2^63-1, or conflicting ones"
      .. " (RFC 9110 8.6); pico reads no Content-Length, llhttp takes up to 2^64-1",
    when = function(e) return head_stage(e) and (e.f.cl_invalid or e.f.cl_conflict) end },
  { id = "transfer-encoding", oracle = "both",
    text = "ours rejects (400, 501) a Transfer-Encoding other than one final chunked, and any on"
      .. " HTTP/1.0 (RFC 9112 6.1, 6.3); pico frames nothing",
    when = function(e)
      return head_stage(e) and (e.o.status == 400 or e.o.status == 501) and e.f.te_bad
    end },
  -- bodies
  { id = "chunk-line", oracle = "both",
    text = "ours holds a chunk line to 1*HEXDIG [chunk-ext] CRLF with ext = *(BWS \";\" BWS token"
      .. " [BWS \"=\" BWS (token / quoted-string)]) and size ≤ 2^62 (RFC 9112 7.1.1); pico skips"
      .. " anything up to LF after the size, llhttp takes bare LF and more ext bytes",
    when = function(e)
      if e.o.stage ~= "chunk" then return false end
      local line = line_at(e.s, e.o.at)
      local size, ext = line:match("^(%x+)(.-)\r\n$")
      if not size then return true end
      size = size:gsub("^0+", "")
      if #size > 16 or #size == 16 and size > "4000000000000000" then return true end
      -- ext must be ;name[=value] with token names and token/quoted values
      local rest = ext
      while rest ~= "" do
        local n, r = rest:match("^[ \t]*;[ \t]*([!#$%%&'*+%-.^_`|~%w]+)(.*)$")
        if not n then return true end
        rest = r
        local v, r2 = rest:match("^[ \t]*=[ \t]*([!#$%%&'*+%-.^_`|~%w]+)(.*)$")
        if not v then
          v, r2 = rest:match("^[ \t]*=[ \t]*(\"[\t \33\35-\91\93-\126\128-\255]*\")(.*)$")
        end
        if v then rest = r2 elseif rest:find("^[ \t]*=") then return true end
        if rest:find("^[ \t]*$") then rest = "" end
      end
      return false
    end },
  { id = "chunk-data-crlf", oracle = "both",
    text = "ours (lepoll.http's framing) wants CRLF right after a chunk's data (RFC 9112 7.1);"
      .. " pico skips any bytes up to the next LF, llhttp (not in strict mode) other bytes too",
    when = function(e) return e.o.stage == "data" end },
  { id = "trailers", oracle = "both",
    text = "ours parses the trailer section with the head's field rules; pico skips lines up to"
      .. " an empty one, llhttp takes what it takes in heads",
    when = function(e)
      if e.o.stage ~= "trailers" then return false end
      local t = e.s:sub(e.o.at)
      local ft = features("GET / HTTP/1.1\r\nHost: a\r\n" .. t)
      return ft.bare_lf or ft.bare_cr or ft.obs_fold or ft.ws_colon or ft.bad_name
        or ft.ctl_value or ft.no_colon or e.o.status == 431
    end },
  -- llhttp only
  { id = "llhttp-te-codings", oracle = "llhttp",
    text = "llhttp takes codings before chunked (gzip, chunked) and repeated chunked; ours"
      .. " answers 501 / 400 (nothing here decodes gzip)",
    when = function(e) return head_stage(e) and e.f.te_bad end },
  -- ours laxer, as the contract says and the RFC allows: listed apart in
  -- the summary, each a question for the contract, not a parser bug
  { id = "leading-empty-lines", oracle = "pico", kind = "contract",
    text = "ours skips up to 8 empty lines (CRLF) before the request-line (http-api.md; RFC 9112"
      .. " 2.2: SHOULD ignore at least one); pico skips one",
    when = function(e) return e.f.leading >= 2 and e.f.leading <= 8 and not e.f.leading_lf end },
  { id = "cl-same-repeated", oracle = "llhttp", kind = "contract",
    text = "ours takes a Content-Length repeated with the same value, as lines or a list"
      .. " (http-api.md; RFC 9110 8.6 allows it); llhttp rejects any repeat",
    when = function(e)
      return (e.f.cl_repeated or e.f.cl_list) and not e.f.cl_conflict and not e.f.cl_invalid
    end },
  { id = "minor-version", oracle = "llhttp", kind = "contract",
    text = "ours takes HTTP/1.x, x > 1, as HTTP/1.1 (http-api.md; RFC 9110 6.2: a recipient"
      .. " uses the highest minor version it knows); llhttp rejects it",
    when = function(e)
      return e.x.name == "HPE_INVALID_VERSION" and e.f.version ~= nil
        and e.f.version:find("^HTTP/1%.[2-9]$") ~= nil
    end },
  { id = "chunk-ext-bws", oracle = "llhttp", kind = "contract",
    text = "ours takes BWS around ';' and '=' in chunk extensions (http-api.md; the RFC 9112"
      .. " 7.1.1 grammar); llhttp rejects a space after the size",
    when = function(e)
      return e.x.name == "HPE_INVALID_CHUNK_SIZE" and e.f.body:find("%x[ \t]+;") ~= nil
    end },
  { id = "method-not-in-llhttp", oracle = "llhttp", kind = "contract",
    text = "ours takes any token as a method (RFC 9110 9.1: methods are extensible, the server"
      .. " answers 501); llhttp knows a fixed list",
    when = function(e)
      return e.x.name == "HPE_INVALID_METHOD" and e.f.method ~= nil and is_token(e.f.method)
    end },
}

local function explain(oracle, kind, e)
  for _, x in ipairs(EXPLAINED) do
    if (x.oracle == "both" or x.oracle == oracle) and (x.kind or "stricter") == kind
        and x.when(e) then
      return x
    end
  end
end

--------------------------------------------------------------------------
-- Verdicts: A accept (with the bytes the message takes), I incomplete,
-- R reject. pico frames no Content-Length body: against it ours counts a
-- Content-Length message as its head.
--------------------------------------------------------------------------
local function pico_verdict(r, s)
  local p = r.pico
  if p.ret == -1 then return { v = "R" } end
  if p.ret == -2 then return { v = "I" } end
  if not p.chunked then return { v = "A", consumed = p.ret } end
  local c = p.chunked
  if c.ret == -1 then return { v = "R", head = p.ret } end
  if c.ret == -2 then return { v = "I", head = p.ret } end
  return { v = "A", head = p.ret, consumed = #s - c.ret, data = c.data }
end

local function ours_for_pico(o)
  if o.head and o.bodylen >= 0 then return { v = "A", consumed = o.head, stage = "head" } end
  return o
end

local function llhttp_verdict(r)
  local l = r.llhttp
  if l.done then return { v = "A", consumed = l.consumed, name = l.name } end
  if l.errno ~= 0 then return { v = "R", name = l.name, reason = l.reason, head = l.head } end
  return { v = "I", head = l.head }
end

local function join(list)
  local t = {}
  for _, nv in ipairs(list) do
    local name, value = nv[1]:lower(), trim(nv[2])
    if t[name] then
      t[name] = t[name] .. (name == "cookie" and "; " or ", ") .. value
    else
      t[name] = value
    end
  end
  return t
end

local function same_fields(want, got)
  for k, v in pairs(want) do
    if got[k] ~= v then return ("field %q: oracle %q, ours %q"):format(k, v, tostring(got[k])) end
  end
  for k, v in pairs(got) do
    if want[k] == nil then return ("field %q: ours %q, not in the oracle's"):format(k, v) end
  end
end

local function version_of_minor(minor) return minor == 0 and 10 or 11 end

-- Where both accept: the same fields? Returns a difference or nil.
local function compare_fields(oracle, o, r)
  local req = o.req
  if oracle == "pico" then
    local p = r.pico
    if o.head ~= p.ret then return ("head length: pico %d, ours %d"):format(p.ret, o.head) end
    if req.method ~= p.method then
      return ("method: pico %q, ours %q"):format(p.method, req.method)
    end
    if req.target ~= p.target then
      return ("target: pico %q, ours %q"):format(p.target, req.target)
    end
    if req.version ~= version_of_minor(p.minor) then
      return ("version: pico 1.%d, ours %d"):format(p.minor, req.version)
    end
    for _, nv in ipairs(r.pico_h) do
      if not nv[1] then return "pico saw a continuation line" end
    end
    local d = same_fields(join(r.pico_h), req.headers)
    if d then return d end
    if p.chunked and o.body ~= p.chunked.data then
      return ("chunked data: pico %q, ours %q"):format(p.chunked.data, o.body)
    end
  else
    local l = r.llhttp
    if req.method ~= l.method then
      return ("method: llhttp %q, ours %q"):format(l.method, req.method)
    end
    if req.target ~= l.url then return ("target: llhttp %q, ours %q"):format(l.url, req.target) end
    if l.major ~= 1 or req.version ~= version_of_minor(l.minor) then
      return ("version: llhttp %d.%d, ours %d"):format(l.major, l.minor, req.version)
    end
    local d = same_fields(join(r.ll_h), req.headers)
    if d then return d end
    if o.trailers then
      d = same_fields(join(r.ll_t), o.trailers)
      if d then return "trailer " .. d end
    end
    if l.body and o.body ~= l.body then
      return ("body: llhttp %q, ours %q"):format(l.body, o.body)
    end
  end
end

-- The class of one case against one oracle, and a note: the explanation's
-- id, or what differs. Class "again" asks for the case with "\r\n\r\n"
-- appended (ours waits for a line's end where the oracle refused a byte).
local function classify(oracle, c, o, r)
  local ov = oracle == "pico" and ours_for_pico(o) or o
  local x = oracle == "pico" and pico_verdict(r, c.s) or llhttp_verdict(r)
  local e = { s = c.s, f = c.f, o = ov, x = x }
  if ov.v == x.v then
    if ov.v == "R" then return "agree-reject" end
    if ov.v == "I" then return "agree-incomplete" end
    if ov.consumed ~= x.consumed then
      return "unexplained", ("message length: %s %d, ours %d"):format(oracle, x.consumed,
        ov.consumed)
    end
    local d = compare_fields(oracle, o, r)
    if d then
      local why = explain(oracle, "fields", e)
      if why then return "agree-accept", why.id end
      return "unexplained", d
    end
    return "agree-accept"
  end
  if ov.v == "R" or (ov.v == "I" and x.v == "A") then
    local why = explain(oracle, "stricter", e)
    if why then return "ours-stricter", why.id end
    return "unexplained", ("ours %s %s %q, %s %s"):format(ov.v, tostring(ov.status),
      ov.reason or "", oracle, x.v .. (x.name and " " .. x.name or ""))
  end
  if ov.v == "I" and x.v == "R" and not c.again then return "again" end
  -- ours accepts (or still waits, the line completed) what the oracle refuses
  local why = explain(oracle, "contract", e)
  if why then return "ours-laxer-by-contract", why.id end
  return "ours-laxer", ("ours %s (%s), %s %s %s"):format(ov.v, ov.stage or "message", oracle, x.v,
    x.name or "")
end

--------------------------------------------------------------------------
local ORACLES = { "pico", "llhttp" }
local CLASSES = { "agree-accept", "agree-reject", "agree-incomplete", "ours-stricter",
                  "ours-later", "ours-laxer-by-contract", "ours-laxer", "unexplained" }

local results -- computed once, by the first test that needs it

local function evaluate()
  if results then return results end
  local list = cases.all(SEED, MUTATIONS)
  local t0 = os.clock()
  local oracle = run_oracles(list)
  local t_oracle = os.clock() - t0
  local res = { n = #list, counts = {}, bad = {}, explained = {}, split = {} }
  for _, name in ipairs(ORACLES) do
    res.counts[name] = {}
    for _, k in ipairs(CLASSES) do res.counts[name][k] = 0 end
    res.explained[name] = {}
  end
  local again, rng = {}, cases.rng(SEED + 1)
  local function record(name, c, class, note)
    res.counts[name][class] = res.counts[name][class] + 1
    if class == "ours-laxer" or class == "unexplained" then
      res.bad[#res.bad + 1] = ("%s, %s: %s\n  %s\n  request: %s"):format(name, class, c.name, note,
        escape(c.s))
    elseif note then
      res.explained[name][note] = (res.explained[name][note] or 0) + 1
      if SHOW and note:find(SHOW, 1, true) then
        print(("\n%s, %s, %s: %s\n  %s"):format(name, class, note, c.name, escape(c.s)))
      end
    end
  end
  for i, c in ipairs(list) do
    c.f = features(c.s)
    local o = run_ours(c.s)
    if #c.s > 1 then
      local d = split_check(c.s, rng.int(1, #c.s - 1))
      if d then
        res.split[#res.split + 1] = c.name .. ": " .. d .. "\n  request: " .. escape(c.s)
      end
    end
    for _, name in ipairs(ORACLES) do
      local class, note = classify(name, c, o, oracle[i])
      if class == "again" then
        again[#again + 1] = { name = c.name, s = c.s .. "\r\n\r\n", again = name, orig = c }
      else
        record(name, c, class, note)
      end
    end
  end
  if #again > 0 then
    local more = run_oracles(again)
    for i, c in ipairs(again) do
      c.f = features(c.s)
      local class, note = classify(c.again, c, run_ours(c.s), more[i])
      if class == "agree-reject" or class == "ours-stricter" then
        record(c.again, c.orig, "ours-later", "at the line end: " .. (note or class))
      else
        record(c.again, c, class, "with CRLF CRLF appended: " .. (note or class))
      end
    end
  end
  res.t_oracle, res.t_all = t_oracle, os.clock() - t0
  for _, name in ipairs(ORACLES) do
    local parts = {}
    for _, k in ipairs(CLASSES) do parts[#parts + 1] = k .. " " .. res.counts[name][k] end
    print(("\nhttp1 diff vs %s (%d cases, seed %d): %s"):format(name, res.n, SEED,
      table.concat(parts, ", ")))
  end
  results = res
  return res
end

describe("lepoll.http1 against picohttpparser and llhttp", function()
  it("has the oracle program (built from the Debian packages .ci/deps installs)", function()
    local f = io.open(ORACLE, "rb")
    if f then f:close() end
    assert(f, ORACLE .. " is missing: run .ci/deps (libh2o-evloop0.13 node-llhttp), then make")
    local r = run_oracles({ { s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n" } })[1]
    assert.equal(27, r.pico.ret)
    assert.is_true(r.llhttp.done)
  end)

  it("parses each valid request of the corpus as both oracles do", function()
    local res = evaluate()
    for _, name in ipairs(ORACLES) do
      assert.is_true(res.counts[name]["agree-accept"] > 200,
        name .. " agreed on too few: " .. res.counts[name]["agree-accept"])
    end
  end)

  it("is never laxer than an oracle, and each difference is explained", function()
    local res = evaluate()
    local used = {}
    for _, name in ipairs(ORACLES) do
      local ids = {}
      for note, n in pairs(res.explained[name]) do
        ids[#ids + 1] = note .. " " .. n
        used[note:match("[%w-]+$") or note] = true
      end
      table.sort(ids)
      print(("\nhttp1 diff vs %s, explained: %s"):format(name, table.concat(ids, ", ")))
    end
    for _, x in ipairs(EXPLAINED) do
      if used[x.id] then print(("  %s (%s%s): %s"):format(x.id, x.oracle,
        x.kind and ", ours laxer by contract" or "", x.text)) end
    end
    assert(#res.bad == 0, #res.bad .. " cases:\n" .. table.concat(res.bad, "\n", 1,
      math.min(#res.bad, 40)))
  end)

  it("gives the same verdict for a head fed in two parts as for the whole", function()
    local res = evaluate()
    assert(#res.split == 0, #res.split .. " cases:\n" .. table.concat(res.split, "\n", 1,
      math.min(#res.split, 20)))
  end)
end)
