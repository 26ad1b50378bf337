--- Generated HTTP/1.1 requests for the differential spec of lepoll.http1
-- (spec/http1_diff_spec.lua): a corpus of valid requests, the request
-- smuggling shapes, and mutations of both. Deterministic: the same seed
-- gives the same cases on every run and machine (a PRNG of its own, so
-- math.random's state is left to the other specs).
local M = {}

--- xorshift64* over Lua integers (wrapping 64-bit arithmetic).
function M.rng(seed)
  local x = seed ~= 0 and seed or 0x9E3779B97F4A7C15
  local function next64()
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    return x * 0x2545F4914F6CDD1D
  end
  local r = {}
  --- an integer in [lo, hi]
  function r.int(lo, hi)
    return lo + (next64() >> 11) % (hi - lo + 1)
  end
  function r.pick(t) return t[r.int(1, #t)] end
  function r.chance(p) return (next64() >> 11) % 1000000 < p * 1000000 end
  return r
end

local CRLF = "\r\n"

local function head(line, fields)
  return line .. CRLF .. table.concat(fields, CRLF) .. (#fields > 0 and CRLF or "") .. CRLF
end
M.head = head

local METHODS = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE" }
local TARGETS = { "/", "/index.html", "/a/b/c?x=1&y=2", "/%41%42?q", "/a;p=1/b", "/~u/x.y-z_",
                  "/search?q=a+b&r=%2F", "/?", "/a?b?c", "/" .. ("seg/"):rep(40) }
local VALUES = { "text/html", "a, b, c", "x\tinside", "  padded  ", "", "\128\255obs-text",
                 "quoted \"s\" (c)", "q=0.5;x=\"y\"", "!#$%&'*+-.^_`|~", "v" }
local NAMES = { "Accept", "User-Agent", "X-Req-Id", "accept-language", "X_UNDERSCORE",
                "If-None-Match", "Cache-Control", "x!#$%&'*+-.^_`|~y", "Cookie", "X-Multi" }

--- The valid requests: every method, target form and version, repeated and
-- empty fields, Content-Length bodies, chunked bodies with extensions and
-- trailers, pipelined followers. Each is {name=..., s=...}.
function M.valid(r)
  local out = {}
  local function add(name, s) out[#out + 1] = { name = name, s = s } end
  for _, m in ipairs(METHODS) do
    for i, t in ipairs(TARGETS) do
      add(m .. " target " .. i, head(m .. " " .. t .. " HTTP/1.1", { "Host: example.com" }))
    end
  end
  add("OPTIONS *", head("OPTIONS * HTTP/1.1", { "Host: h" }))
  add("absolute-form", head("GET http://example.com/a?b HTTP/1.1", { "Host: example.com" }))
  add("absolute-form, empty path", head("GET http://example.com HTTP/1.1", { "Host: example.com" }))
  add("CONNECT authority-form", head("CONNECT example.com:443 HTTP/1.1",
    { "Host: example.com:443" }))
  add("HTTP/1.0 without Host", head("GET / HTTP/1.0", {}))
  add("HTTP/1.0 with Host", head("GET / HTTP/1.0", { "Host: a", "Connection: keep-alive" }))
  add("Host with port", head("GET / HTTP/1.1", { "Host: example.com:8080" }))
  add("Host IPv6", head("GET / HTTP/1.1", { "Host: [::1]:80" }))
  add("Host IPv4", head("GET / HTTP/1.1", { "Host: 127.0.0.1" }))
  add("empty Host", head("GET / HTTP/1.1", { "Host:" }))
  add("one leading CRLF", CRLF .. head("GET / HTTP/1.1", { "Host: a" }))
  add("Connection close", head("GET / HTTP/1.1", { "Host: a", "Connection: close" }))
  add("Connection list", head("GET / HTTP/1.1", { "Host: a", "Connection: keep-alive, Upgrade",
                                                  "Upgrade: websocket" }))
  add("Expect 100-continue", head("PUT /u HTTP/1.1", { "Host: a", "Expect: 100-continue",
                                                      "Content-Length: 3" }) .. "abc")
  add("cookies", head("GET / HTTP/1.1", { "Host: a", "Cookie: a=1", "Cookie: b=2" }))
  add("repeated field", head("GET / HTTP/1.1", { "Host: a", "X-Multi: 1", "x-multi: 2",
                                                "X-MULTI: 3" }))
  add("OWS around values", head("GET / HTTP/1.1", { "Host: a", "X-A:\t v \t", "X-B:v",
                                                   "X-C:  " }))
  add("Content-Length 0", head("POST / HTTP/1.1", { "Host: a", "Content-Length: 0" }))
  add("Content-Length body", head("POST /f HTTP/1.1", { "Host: a", "Content-Length: 11" })
    .. "hello world")
  add("Content-Length leading zeros", head("POST / HTTP/1.1", { "Host: a", "Content-Length: 005" })
    .. "12345")
  add("Content-Length body with CR LF NUL", head("POST / HTTP/1.1", { "Host: a",
    "Content-Length: 6" }) .. "\r\n\0\r\r\n")
  add("pipelined GETs", head("GET /1 HTTP/1.1", { "Host: a" }) .. head("GET /2 HTTP/1.1",
    { "Host: a" }))
  add("pipelined after body", head("POST / HTTP/1.1", { "Host: a", "Content-Length: 2" }) .. "ok"
    .. head("GET / HTTP/1.1", { "Host: a" }))
  local chunked = { "Host: a", "Transfer-Encoding: chunked" }
  add("chunked, one chunk", head("POST / HTTP/1.1", chunked) .. "5\r\nhello\r\n0\r\n\r\n")
  add("chunked, empty", head("POST / HTTP/1.1", chunked) .. "0\r\n\r\n")
  add("chunked, several", head("POST / HTTP/1.1", chunked)
    .. "1\r\na\r\nA\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n")
  add("chunked, upper and lower hex", head("POST / HTTP/1.1", chunked)
    .. "1a\r\n" .. ("x"):rep(26) .. "\r\n1B\r\n" .. ("y"):rep(27) .. "\r\n0\r\n\r\n")
  add("chunked, leading zeros", head("POST / HTTP/1.1", chunked) .. "0005\r\nhello\r\n000\r\n\r\n")
  add("chunked, extensions", head("POST / HTTP/1.1", chunked)
    .. "5;a=b\r\nhello\r\n3;name\r\nabc\r\n2;q=\"quoted; s\"\r\nxy\r\n0;last=1\r\n\r\n")
  add("chunked, ext with BWS", head("POST / HTTP/1.1", chunked)
    .. "5 ; a = b\r\nhello\r\n0\r\n\r\n")
  add("chunked, trailers", head("POST / HTTP/1.1", chunked)
    .. "5\r\nhello\r\n0\r\nX-Sum: 1234\r\nX-Other:  v \r\n\r\n")
  add("chunked, data with CRLF", head("POST / HTTP/1.1", chunked) .. "4\r\n\r\n\r\n\r\n0\r\n\r\n")
  add("chunked, TE case", head("POST / HTTP/1.1", { "Host: a", "Transfer-Encoding: Chunked" })
    .. "1\r\nx\r\n0\r\n\r\n")
  add("chunked then pipelined", head("POST / HTTP/1.1", chunked) .. "1\r\nx\r\n0\r\n\r\n"
    .. head("GET / HTTP/1.1", { "Host: a" }))
  -- random well-formed heads: methods, targets, fields, bodies
  for i = 1, 150 do
    local fields = { "Host: h" .. i .. ".example" }
    for _ = 1, r.int(0, 12) do
      fields[#fields + 1] = r.pick(NAMES) .. ":" .. (r.chance(0.8) and " " or "") .. r.pick(VALUES)
    end
    local body = ""
    if r.chance(0.3) then
      body = ("b"):rep(r.int(0, 40))
      table.insert(fields, r.int(1, #fields + 1), "Content-Length: " .. #body)
    elseif r.chance(0.3) then
      table.insert(fields, r.int(1, #fields + 1), "Transfer-Encoding: chunked")
      for _ = 1, r.int(0, 3) do
        local n = r.int(1, 20)
        body = body .. string.format(r.chance(0.5) and "%x" or "%X", n)
          .. (r.chance(0.3) and ";e=" .. r.int(0, 9) or "") .. CRLF .. ("d"):rep(n) .. CRLF
      end
      body = body .. "0" .. CRLF .. (r.chance(0.3) and "T: " .. i .. CRLF or "") .. CRLF
    end
    add("random valid " .. i, head(r.pick(METHODS) .. " " .. r.pick(TARGETS) .. " "
      .. (r.chance(0.9) and "HTTP/1.1" or "HTTP/1.0"), fields) .. body)
  end
  return out
end

--- The request-smuggling and malformed shapes, each with a follower request
-- where a lax parser would see one.
function M.shapes()
  local out = {}
  local function add(name, s) out[#out + 1] = { name = name, s = s } end
  local F = head("GET /smuggled HTTP/1.1", { "Host: a" })
  local function req(fields, body, line)
    local all = { "Host: a" }
    for _, f in ipairs(fields) do all[#all + 1] = f end
    return head(line or "POST / HTTP/1.1", all) .. (body or "")
  end
  local chunk0 = "0\r\n\r\n"
  add("CL + TE", req({ "Content-Length: 5", "Transfer-Encoding: chunked" }, chunk0 .. F))
  add("TE + CL", req({ "Transfer-Encoding: chunked", "Content-Length: 5" }, chunk0 .. F))
  add("two different CLs", req({ "Content-Length: 5", "Content-Length: 0" }, "hello" .. F))
  add("same CL twice", req({ "Content-Length: 5", "Content-Length: 5" }, "hello"))
  add("CL list same", req({ "Content-Length: 5, 5" }, "hello"))
  add("CL list different", req({ "Content-Length: 5, 0" }, "hello"))
  add("CL +3", req({ "Content-Length: +3" }, "abc"))
  add("CL -1", req({ "Content-Length: -1" }, "abc"))
  add("CL space inside", req({ "Content-Length: 1 2" }, ("x"):rep(12)))
  add("CL hex", req({ "Content-Length: 0x5" }, "hello"))
  add("CL overflow", req({ "Content-Length: 99999999999999999999" }, "x"))
  add("CL 2^63", req({ "Content-Length: 9223372036854775808" }, "x"))
  add("CL 2^63-1 (incomplete)", req({ "Content-Length: 9223372036854775807" }, "x"))
  add("CL empty", req({ "Content-Length:" }, ""))
  add("CL letters", req({ "Content-Length: five" }, "hello"))
  add("CL with OWS", req({ "Content-Length:  5  " }, "hello"))
  add("bare CR in value (CVE-2023-30589)",
    req({ "X: a\rTransfer-Encoding: chunked" }, chunk0 .. F, "POST / HTTP/1.1"))
  add("bare CR before CL", req({ "X: a\rContent-Length: 3", "Content-Length: 0" }, "abc"))
  add("bare CR ends a line", "GET / HTTP/1.1\rHost: a\r\n\r\n")
  add("bare CR ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\r" .. F)
  add("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n")
  add("bare LF in one field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n")
  add("bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n")
  add("LF CR ends", "GET / HTTP/1.1\n\rHost: a\r\n\r\n")
  add("space before colon TE", req({ "Transfer-Encoding : chunked" }, chunk0 .. F))
  add("tab before colon CL", req({ "Content-Length\t: 5" }, "hello"))
  add("space before colon", req({ "X-A : b" }, ""))
  add("obs-fold", req({ "X-A: a", " b" }, ""))
  add("obs-fold tab", req({ "X-A: a", "\tb" }, ""))
  add("obs-fold TE", req({ "Transfer-Encoding:", " chunked" }, chunk0 .. F))
  add("whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n")
  add("NUL in value", req({ "X: a\0b" }, ""))
  add("NUL in name", req({ "X\0: b" }, ""))
  add("NUL in target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n")
  add("SOH in value", req({ "X: a\1b" }, ""))
  add("ESC in value", req({ "X: a\27[31m" }, ""))
  add("DEL in value", req({ "X: a\127b" }, ""))
  add("DEL in target", "GET /a\127 HTTP/1.1\r\nHost: a\r\n\r\n")
  add("HTAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n")
  add("absolute-form without authority", "GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n")
  add("absolute-form, rootless path", "GET foo:bar HTTP/1.1\r\nHost: a\r\n\r\n")
  add("absolute-form, empty authority", "GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n")
  add("authority-form without CONNECT", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n")
  add("CONNECT with origin-form", "CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n")
  add("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n")
  add("fragment in target", "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n")
  add("obs-text in target", "GET /\200 HTTP/1.1\r\nHost: a\r\n\r\n")
  add("empty field name", req({ ": b" }, ""))
  add("non-token name", req({ "X(a): b" }, ""))
  add("TE chunked, gzip", req({ "Transfer-Encoding: chunked, gzip" }, chunk0 .. F))
  add("TE gzip, chunked", req({ "Transfer-Encoding: gzip, chunked" }, chunk0))
  add("TE gzip", req({ "Transfer-Encoding: gzip" }, "abc"))
  add("TE identity", req({ "Transfer-Encoding: identity" }, F))
  add("TE chunked twice", req({ "Transfer-Encoding: chunked, chunked" }, chunk0))
  add("TE two lines", req({ "Transfer-Encoding: chunked", "Transfer-Encoding: chunked" }, chunk0))
  add("TE then gzip line", req({ "Transfer-Encoding: chunked", "Transfer-Encoding: gzip" }, chunk0))
  add("TE chunkedx", req({ "Transfer-Encoding: chunkedx" }, chunk0 .. F))
  add("TE xchunked", req({ "Transfer-Encoding: xchunked" }, chunk0 .. F))
  add("TE with trailing comma", req({ "Transfer-Encoding: chunked," }, chunk0 .. F))
  add("TE empty", req({ "Transfer-Encoding:" }, F))
  add("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk0)
  add("missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n")
  add("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
  add("duplicate same Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
  add("Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n")
  add("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
  add("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")
  add("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n")
  add("Host bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n")
  add("huge chunk size", req({ "Transfer-Encoding: chunked" },
    "ffffffffffffffffff\r\nx\r\n0\r\n\r\n"))
  add("chunk size 2^62+", req({ "Transfer-Encoding: chunked" }, "4000000000000001\r\nx"))
  add("chunk size 2^64 wraps to 1", req({ "Transfer-Encoding: chunked" },
    "10000000000000001\r\nx\r\n0\r\n\r\n"))
  add("chunk size -1", req({ "Transfer-Encoding: chunked" }, "-1\r\nx\r\n0\r\n\r\n"))
  add("chunk size 0x", req({ "Transfer-Encoding: chunked" }, "0x5\r\nhello\r\n0\r\n\r\n"))
  add("chunk size leading space", req({ "Transfer-Encoding: chunked" }, " 5\r\nhello\r\n0\r\n\r\n"))
  add("chunk size empty", req({ "Transfer-Encoding: chunked" }, "\r\nhello\r\n0\r\n\r\n"))
  add("chunk size bare LF", req({ "Transfer-Encoding: chunked" }, "5\nhello\r\n0\r\n\r\n"))
  add("chunk ext bare CR", req({ "Transfer-Encoding: chunked" }, "5;a\rb\r\nhello\r\n0\r\n\r\n"))
  add("chunk ext NUL", req({ "Transfer-Encoding: chunked" }, "5;a=\0\r\nhello\r\n0\r\n\r\n"))
  add("chunk ext too long", req({ "Transfer-Encoding: chunked" },
    "5;" .. ("a"):rep(9000) .. "\r\nhello\r\n0\r\n\r\n"))
  add("chunk data without CRLF", req({ "Transfer-Encoding: chunked" }, "5\r\nhelloXX0\r\n\r\n"))
  add("chunk data too long", req({ "Transfer-Encoding: chunked" }, "3\r\nhello\r\n0\r\n\r\n"))
  add("trailer bare LF", req({ "Transfer-Encoding: chunked" }, "0\r\nT: v\n\r\n"))
  add("trailer obs-fold", req({ "Transfer-Encoding: chunked" }, "0\r\nT: v\r\n w\r\n\r\n"))
  add("trailer NUL", req({ "Transfer-Encoding: chunked" }, "0\r\nT: \0\r\n\r\n"))
  add("trailer space before colon", req({ "Transfer-Encoding: chunked" }, "0\r\nT : v\r\n\r\n"))
  add("last chunk bare LF end", req({ "Transfer-Encoding: chunked" }, "0\r\n\n" .. F))
  add("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n")
  add("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n")
  add("HTTP/1.9", "GET / HTTP/1.9\r\nHost: a\r\n\r\n")
  add("HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n")
  add("HTTP/10.0", "GET / HTTP/10.0\r\nHost: a\r\n\r\n")
  add("http/1.1 lower", "GET / http/1.1\r\nHost: a\r\n\r\n")
  add("HTTP/1.1 trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n")
  add("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n")
  add("no version", "GET /\r\nHost: a\r\n\r\n")
  add("lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("extension method", "PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("two leading CRLFs", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("leading LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("leading SP", " GET / HTTP/1.1\r\nHost: a\r\n\r\n")
  add("request line too long", "GET /" .. ("a"):rep(9000) .. " HTTP/1.1\r\nHost: a\r\n\r\n")
  add("head too big", head("GET / HTTP/1.1", { "Host: a", "X: " .. ("v"):rep(17000) }))
  local many = { "Host: a" }
  for i = 1, 120 do many[#many + 1] = "X-" .. i .. ": v" end
  add("too many fields", head("GET / HTTP/1.1", many))
  return out
end

local INSERTS = { "\r", "\n", "\0", " ", "\t", ":", "\r\n", "\127", "\128", ",", ";", "0", "a" }

--- One mutation of s: a byte flipped or replaced, a byte inserted (CR, LF,
-- NUL, SP, HTAB, ':' and friends), a byte deleted, a line deleted or
-- duplicated, or the end cut off.
function M.mutate(r, s)
  local n = #s
  local k = r.int(1, 9)
  if n == 0 then return r.pick(INSERTS) end
  local i = r.int(1, n)
  if k == 1 then     -- one bit flipped
    return s:sub(1, i - 1) .. string.char(s:byte(i) ~ (1 << r.int(0, 7))) .. s:sub(i + 1)
  elseif k == 2 then -- a byte replaced
    return s:sub(1, i - 1) .. string.char(r.int(0, 255)) .. s:sub(i + 1)
  elseif k <= 4 then -- an insertion
    return s:sub(1, i - 1) .. r.pick(INSERTS) .. s:sub(i)
  elseif k == 5 then -- a deletion
    return s:sub(1, i - 1) .. s:sub(i + 1)
  elseif k <= 7 then -- a line deleted or duplicated
    local lines = {}
    for line in s:gmatch("[^\n]*\n?") do if line ~= "" then lines[#lines + 1] = line end end
    if #lines < 2 then return s:sub(1, i - 1) .. s:sub(i + 1) end
    local j = r.int(1, #lines)
    if k == 6 then
      table.remove(lines, j)
    else
      table.insert(lines, j, lines[j])
    end
    return table.concat(lines)
  elseif k == 8 then -- a byte's case swapped (methods and names are case-sensitive or not)
    local c = s:sub(i, i)
    local sw = c:upper() ~= c and c:upper() or c:lower()
    return s:sub(1, i - 1) .. sw .. s:sub(i + 1)
  else               -- cut short
    return s:sub(1, i - 1)
  end
end

--- All the cases: valid, shapes, then `count` mutations (1 to 3 each) of
-- cases picked from the first two sets.
function M.all(seed, count)
  local r = M.rng(seed)
  local cases = M.valid(r)
  for _, c in ipairs(M.shapes()) do cases[#cases + 1] = c end
  local nbase = #cases
  for i = 1, count do
    local base = cases[r.int(1, nbase)]
    local s = base.s
    for _ = 1, r.int(1, 3) do s = M.mutate(r, s) end
    cases[#cases + 1] = { name = "mutation " .. i .. " of " .. base.name, s = s }
  end
  return cases
end

return M
