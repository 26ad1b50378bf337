-- The PROXY protocol in front of a listener (lepoll._proxy): the parser
-- on its own, then lepoll servers with in-process clients that send
-- headers (good, bad, slow, split, followed by data, HTTP or TLS).
-- HAProxy and curl as the senders are in spec/proxy_haproxy_spec.lua.
local h = require "support.framework"
local lepoll = require "lepoll"
local certs = require "support.certs"
local proxy = require "lepoll._proxy"
local http = require "lepoll.http"
local tls = require "lepoll.tls"
local net = require "lepoll.net"

local pack, char = string.pack, string.char
local SIG = "\r\n\r\n\0\r\nQUIT\n"

-- A v2 header: command (0 LOCAL, 1 PROXY), family/transport byte, the
-- address block, then TLVs ({type, value} pairs), and the length they
-- make (or len, to lie about it).
local function v2(cmd, fam, block, tlvs, len)
  local t = {}
  for _, tv in ipairs(tlvs or {}) do t[#t + 1] = char(tv[1]) .. pack(">s2", tv[2]) end
  local body = (block or "") .. table.concat(t)
  return SIG .. char(0x20 | cmd, fam) .. pack(">I2", len or #body) .. body
end

local function inet(a, b, sp, dp)
  return char(table.unpack(a)) .. char(table.unpack(b)) .. pack(">I2I2", sp, dp)
end

local V6_SRC = "\32\1\13\184" .. ("\0"):rep(11) .. "\1"      -- 2001:db8::1
local V6_DST = ("\0"):rep(10) .. "\255\255\10\0\0\2"           -- ::ffff:10.0.0.2

local function unix_block(src, dst)
  return src .. ("\0"):rep(108 - #src) .. dst .. ("\0"):rep(108 - #dst)
end

-- v2 with a CRC32C TLV: the checksum of the whole header with the
-- field zeroed (flip: make it wrong).
local function with_crc(cmd, fam, block, tlvs, flip)
  tlvs = tlvs or {}
  tlvs[#tlvs + 1] = { 0x03, "\0\0\0\0" }
  local s = v2(cmd, fam, block, tlvs)
  local crc = proxy.crc32c(s)
  if flip then crc = crc ~ 1 end
  return s:sub(1, -5) .. pack(">I4", crc)
end

describe("lepoll._proxy.parse", function()
  local IPV4 = inet({ 192, 0, 2, 1 }, { 198, 51, 100, 7 }, 56324, 443)
  -- { name, bytes, mode, facts expected (a subset) | refusal | "incomplete" }
  local cases = {
    { "v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET", "v1",
      { version = 1, command = "PROXY", family = "inet", src_host = "192.0.2.1",
        src_port = 56324, dst_host = "198.51.100.7", dst_port = 443, len = 45 } },
    { "v1 TCP6, written long", "PROXY TCP6 2001:0db8:0:0:0:0:0:0001 ::ffff:10.0.0.2 0 65535\r\n",
      "v1", { family = "inet6", src_host = "2001:db8::1", dst_host = "::ffff:10.0.0.2",
        src_port = 0, dst_port = 65535 } },
    { "v1 UNKNOWN", "PROXY UNKNOWN\r\n", "v1", { version = 1, command = "UNKNOWN", len = 15 } },
    { "v1 UNKNOWN with addresses", "PROXY UNKNOWN ::1 ::1 1 2\r\nx", "v1",
      { command = "UNKNOWN", len = 27 } },
    { "v1 longest line", "PROXY UNKNOWN " .. ("f"):rep(91) .. "\r\n", "v1", { len = 107 } },
    { "v1 line past 107", "PROXY UNKNOWN " .. ("f"):rep(92) .. "\r\n", "v1", "malformed" },
    { "v1 no CRLF in 107", "PROXY UNKNOWN " .. ("f"):rep(100), "v1", "malformed" },
    { "v1 partial", "PROXY TCP4 192.0.2.1 19", "v1", "incomplete" },
    { "v1 one byte", "P", "v1", "incomplete" },
    { "v1 ends in CR", "PROXY UNKNOWN\r", "v1", "incomplete" },
    { "v1 bare LF", "PROXY UNKNOWN\n", "v1", "malformed" },
    { "v1 bare CR", "PROXY UNKNOWN\rx\r\n", "v1", "malformed" },
    { "v1 two spaces", "PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 tab", "PROXY TCP4\t192.0.2.1 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 port 65536", "PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n", "v1", "malformed" },
    { "v1 port 08", "PROXY TCP4 192.0.2.1 198.51.100.7 08 2\r\n", "v1", "malformed" },
    { "v1 octet 256", "PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 octet 010", "PROXY TCP4 192.0.2.010 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 v6 in TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n", "v1", "malformed" },
    { "v1 v4 in TCP6", "PROXY TCP6 192.0.2.1 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 two ::", "PROXY TCP6 1::2::3 ::1 1 2\r\n", "v1", "malformed" },
    { "v1 TCP5", "PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 lower case", "proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n", "v1", "malformed" },
    { "v1 missing port", "PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n", "v1", "malformed" },
    { "v1 HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "v1", "malformed" },
    { "v1 is not v2", v2(1, 0x11, IPV4), "v1", "malformed" },
    { "v2 TCP4", v2(1, 0x11, IPV4) .. "GET", "v2",
      { version = 2, command = "PROXY", family = "inet", src_host = "192.0.2.1",
        src_port = 56324, dst_host = "198.51.100.7", dst_port = 443, len = 28 } },
    { "v2 TCP6", v2(1, 0x21, V6_SRC .. V6_DST .. pack(">I2I2", 1, 2)), "v2",
      { family = "inet6", src_host = "2001:db8::1", dst_host = "::ffff:10.0.0.2",
        src_port = 1, dst_port = 2, len = 52 } },
    { "v2 UNIX", v2(1, 0x31, unix_block("/run/a.sock", "/run/b.sock")), "v2",
      { family = "unix", src_host = "/run/a.sock", dst_host = "/run/b.sock", len = 232 } },
    { "v2 LOCAL", v2(0, 0x00, ""), "v2", { version = 2, command = "LOCAL", len = 16 } },
    { "v2 LOCAL, family ignored", v2(0, 0xff, "xyz"), "v2", { command = "LOCAL", len = 19 } },
    { "v2 AF_UNSPEC", v2(1, 0x00, ""), "v2", { command = "UNSPEC", len = 16 } },
    { "v2 UDP falls back to UNSPEC", v2(1, 0x12, IPV4), "v2", { command = "UNSPEC" } },
    { "v2 TLVs", v2(1, 0x11, IPV4, { { 0x02, "example.org" }, { 0xe0, "" },
      { 0x02, "second" } }), "v2",
      { tlvs = { [0x02] = "example.org", [0xe0] = "" }, len = 16 + 12 + 14 + 3 + 9 } },
    { "v2 CRC32C", with_crc(1, 0x11, IPV4, { { 0x05, "id-1" } }), "v2",
      { src_host = "192.0.2.1" } },
    { "v2 CRC32C wrong", with_crc(1, 0x11, IPV4, nil, true), "v2", "checksum" },
    { "v2 CRC32C of 3 bytes", v2(1, 0x11, IPV4, { { 0x03, "abc" } }), "v2", "malformed" },
    { "v2 TLV past the end", v2(1, 0x11, IPV4 .. "\2\0\9abc"), "v2", "malformed" },
    { "v2 TLV cut in its head", v2(1, 0x11, IPV4 .. "\2\0"), "v2", "malformed" },
    { "v2 block too short", v2(1, 0x11, IPV4:sub(1, 11)), "v2", "malformed" },
    { "v2 version 1", SIG .. "\17\17\0\12" .. IPV4, "v2", "malformed" },
    { "v2 command 2", SIG .. "\34\17\0\12" .. IPV4, "v2", "malformed" },
    { "v2 family 4", v2(1, 0x41, IPV4), "v2", "malformed" },
    { "v2 transport 3", v2(1, 0x13, IPV4), "v2", "malformed" },
    { "v2 at the cap", v2(1, 0x11, IPV4 .. "\4" .. pack(">s2", ("n"):rep(2048 - 15))), "v2",
      { len = 16 + 2048 } },
    { "v2 over the cap", SIG .. "\33\17" .. pack(">I2", 2049), "v2", "oversized" },
    { "v2 partial signature", SIG:sub(1, 7), "v2", "incomplete" },
    { "v2 partial block", v2(1, 0x11, IPV4):sub(1, 20), "v2", "incomplete" },
    { "v2 wrong signature", "\r\n\r\n\0\r\nQUIX\n", "v2", "malformed" },
    { "v2 is not v1", "PROXY UNKNOWN\r\n", "v2", "malformed" },
    { "any: v1", "PROXY UNKNOWN\r\n", "any", { version = 1 } },
    { "any: v2", v2(0, 0, ""), "any", { version = 2 } },
    { "any: TLS hello", "\22\3\1\2\0\1\0\1\252\3\3", "any", "malformed" },
    { "any: HTTP", "GET / HTTP/1.1\r\n", "any", "malformed" },
    { "any: nothing yet", "", "any", "incomplete" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local info, why, n = proxy.parse(case[2], case[3])
      local want = case[4]
      if type(want) == "string" then
        assert.is_nil(info)
        assert.equal(want, why)
        if want == "incomplete" then assert.is_true(n > #case[2]) end
      else
        assert.is_table(info, tostring(why))
        for k, v in pairs(want) do
          if k == "len" then
            assert.equal(v, why)
          else
            assert.same(v, info[k], k)
          end
        end
      end
    end)
  end

  it("CRC32C is Castagnoli's (RFC 3720's check value)", function()
    assert.equal(0xE3069283, proxy.crc32c("123456789"))
    assert.equal(0x8A9136AA, proxy.crc32c(("\0"):rep(32)))
  end)
end)

describe("lepoll._proxy addresses", function()
  it("reads and writes IPv6 as inet_pton and inet_ntop do", function()
    local cases = {
      { "::", "::" }, { "::1", "::1" }, { "1::", "1::" },
      { "2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
      { "0:0:1:0:0:0:0:0", "0:0:1::" }, { "1:0:0:2:0:0:0:3", "1:0:0:2::3" },
      { "::ffff:1.2.3.4", "::ffff:1.2.3.4" }, { "::1.2.3.4", "::1.2.3.4" },
      { "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8" }, { "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304" },
      { "fe80::a:b", "fe80::a:b" },
    }
    for _, c in ipairs(cases) do
      local b = proxy.ip6(c[1])
      assert.equal(16, b and #b, c[1])
      assert.equal(c[2], proxy.show6(b, 1), c[1])
    end
    for _, bad in ipairs({ "", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::",
      "1:2:3:4:5:6:7", ":1:2:3:4:5:6:7", "1.2.3.4::", "::1.2.3", "::1.2.3.04", "g::",
      "::ffff:1.2.3.4:1", "[::1]", "::1%lo" }) do
      assert.is_nil(proxy.ip6(bad), bad)
    end
  end)

  it("matches trusted lists by prefix, IPv4-mapped peers against IPv4 entries", function()
    local t = proxy.trusted({ "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "0.0.0.0/0" })
    assert.is_true(proxy.is_trusted(t, "8.8.8.8"))  -- 0/0
    t = proxy.trusted({ "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "172.16.0.0/12" })
    for _, yes in ipairs({ "10.1.2.3", "192.0.2.7", "2001:db8:ffff::9", "::1",
      "::ffff:10.9.9.9", "172.31.255.255" }) do
      assert.is_true(proxy.is_trusted(t, yes), yes)
    end
    for _, no in ipairs({ "11.0.0.1", "192.0.2.8", "2001:db9::1", "::2", "::ffff:11.0.0.1",
      "172.32.0.0", "127.0.0.1", "not an address" }) do
      assert.is_false(proxy.is_trusted(t, no), no)
    end
    assert.is_true(proxy.is_trusted(proxy.trusted({ "fe80::/10" }), "fe80::1%lo"))
  end)

  it("checks trusted entries, naming the one that is not an address or CIDR", function()
    assert.same({ "127.0.0.1" }, proxy.check_trusted({ "127.0.0.1" }))
    for entry, shown in pairs({ ["10.0.0.0/33"] = "'10.0.0.0/33'", ["::/129"] = "'::/129'",
      ["10.1.0.0/8"] = "'10.1.0.0/8'", ["example.org"] = "'example.org'",
      ["10.0.0.0/08"] = "'10.0.0.0/08'", ["10.0.0.0/"] = "'10.0.0.0/'" }) do
      local ok, why = proxy.check_trusted({ "127.0.0.1", entry })
      assert.is_nil(ok)
      assert.equal("a list of addresses or CIDRs (entry 2, " .. shown .. ", is not one)", why)
    end
    assert.equal("a list of addresses or CIDRs (entry 1, number, is not one)",
      select(2, proxy.check_trusted({ 10 })))
    assert.equal("a non-empty list of addresses or CIDRs", select(2, proxy.check_trusted({})))
    assert.equal("a list (an array) of addresses or CIDRs",
      select(2, proxy.check_trusted({ "::1", x = "::1" })))
  end)
end)

-- Servers ---------------------------------------------------------------------

-- A handler that reports what the connection knows: its first line, then
-- "peer H P | proxy H P | v C F DH DP | line" (nil for what is absent).
local function reporter(c)
  local line, err = c:readline()
  local ph, pp, info = c:proxied()
  info = info or {}
  local ah, ap = c:peer()
  c:write(("peer %s %s | proxy %s %s | %s %s %s %s %s | %s\n"):format(tostring(ah),
    tostring(ap), tostring(ph), tostring(pp), tostring(info.version),
    tostring(info.command), tostring(info.family), tostring(info.dst_host),
    tostring(info.dst_port), tostring(line or err)))
end

-- Everything the server sends until it closes ("" when it closed at once;
-- a reset ends it as an end of stream does).
local function read_all(c)
  local t = {}
  while true do
    local s = c:read()
    if not s then break end
    t[#t + 1] = s
  end
  return table.concat(t)
end

-- Connect to port on host (default 127.0.0.1), send s, read to the end:
-- the reply and the client's local port.
local function exchange(loop, port, s, host)  -- the reply, the local port
  local c = assert(loop:connect(host or "127.0.0.1", port))
  local ok, err = c:write(s)
  if not ok then
    -- a refusal may close the connection while the client still writes
    -- (under the partial-write injector, a byte at a time)
    assert(err == "closed" or err:find("pipe") or err:find("reset"), err)
    c:close()
    return ""
  end
  local reply = read_all(c)
  local _, lport = c:sockname()
  c:close()
  return reply, lport
end

-- The reply alone (assert.matches takes a third argument).
local function reply_to(loop, port, s, host)
  return (exchange(loop, port, s, host))
end

local function serve(loop, opts, handler)
  opts.port = 0
  local srv = assert(loop:listen(opts, handler or reporter))
  local _, port = srv:address()
  return srv, port
end

describe("listen with proxy_protocol", function()
  it("v1: peer() is the client the header names, proxied() the proxy", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "v1" })
      local reply, lport = exchange(loop, port,
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nhello\n")
      assert.equal(("peer 192.0.2.1 56324 | proxy 127.0.0.1 %d | 1 PROXY inet 198.51.100.7 443"
        .. " | hello\n"):format(lport), reply)
      reply = exchange(loop, port, "PROXY TCP6 2001:db8:0::1 ::1 1 2\r\nsix\n")
      assert.matches("^peer 2001:db8::1 1 | proxy 127%.0%.0%.1 %d+ | 1 PROXY inet6 ::1 2 | six\n$",
        reply)
      reply, lport = exchange(loop, port, "PROXY UNKNOWN\r\nunknown\n")
      assert.equal(("peer 127.0.0.1 %d | proxy nil nil | nil nil nil nil nil | unknown\n")
        :format(lport), reply)
      local st = srv:stats()
      assert.same({ 3, 0, 0, {} }, { st.accepted, st.proxy_failures, st.proxy_untrusted,
        st.proxy_reasons })
      srv:close()
    end)
  end)

  it("v2: TCP4 with TLVs, TCP6, UNIX, LOCAL and AF_UNSPEC", function()
    h.with_task(function(loop)
      local tlvs
      local srv, port = serve(loop, { proxy_protocol = "v2" }, function(c)
        tlvs = select(3, c:proxied())
        tlvs = tlvs and tlvs.tlvs
        return reporter(c)
      end)
      local block = inet({ 203, 0, 113, 9 }, { 127, 0, 0, 1 }, 40000, 8443)
      local reply, lport = exchange(loop, port,
        with_crc(1, 0x11, block, { { 0x02, "example.org" }, { 0x05, "id\0x" } }) .. "four\n")
      assert.equal(("peer 203.0.113.9 40000 | proxy 127.0.0.1 %d | 2 PROXY inet 127.0.0.1 8443"
        .. " | four\n"):format(lport), reply)
      assert.equal("example.org", tlvs[0x02])
      assert.equal("id\0x", tlvs[0x05])
      assert.equal(4, #tlvs[0x03])
      reply = exchange(loop, port, v2(1, 0x21, V6_SRC .. V6_DST .. pack(">I2I2", 7, 8))
        .. "six\n")
      assert.matches("^peer 2001:db8::1 7 | proxy 127%.0%.0%.1 %d+ | 2 PROXY inet6"
        .. " ::ffff:10%.0%.0%.2 8 | six\n$", reply)
      reply = exchange(loop, port, v2(1, 0x31, unix_block("/run/client", "/run/lb"))
        .. "unix\n")
      assert.matches("^peer /run/client nil | proxy 127%.0%.0%.1 %d+ | 2 PROXY unix /run/lb nil"
        .. " | unix\n$", reply)
      reply, lport = exchange(loop, port, v2(0, 0x11, block) .. "local\n")
      assert.equal(("peer 127.0.0.1 %d | proxy nil nil | nil nil nil nil nil | local\n")
        :format(lport), reply)
      reply, lport = exchange(loop, port, v2(1, 0x00, "") .. "unspec\n")
      assert.equal(("peer 127.0.0.1 %d | proxy nil nil | nil nil nil nil nil | unspec\n")
        :format(lport), reply)
      assert.equal(0, srv:stats().proxy_failures)
      srv:close()
    end)
  end)

  it("any: v1 and v2 on one listener; anything else is closed unanswered", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "any" })
      assert.matches("^peer 192%.0%.2%.1 1 .* | one\n$",
        reply_to(loop, port, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\none\n"))
      assert.matches("^peer 192%.0%.2%.3 5 .* | two\n$",
        reply_to(loop, port, v2(1, 0x11, inet({ 192, 0, 2, 3 }, { 192, 0, 2, 4 }, 5, 6))
          .. "two\n"))
      assert.equal("", reply_to(loop, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal("", reply_to(loop, port, "\22\3\1\0\5hello"))
      local st = srv:stats()
      assert.equal(2, st.proxy_failures)
      assert.same({ malformed = 2 }, st.proxy_reasons)
      srv:close()
    end)
  end)

  it("refuses what is malformed, oversized, wrongly summed or missing", function()
    h.with_task(function(loop)
      local ran = 0
      local srv, port = serve(loop, { proxy_protocol = "v2" }, function(c)
        ran = ran + 1
        return reporter(c)
      end)
      local IPV4 = inet({ 192, 0, 2, 1 }, { 192, 0, 2, 2 }, 1, 2)
      local cases = {
        { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "malformed" },   -- no header at all
        { "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n", "malformed" },  -- v1 on a v2 listener
        { SIG .. "\33\17" .. pack(">I2", 2049), "oversized" },  -- refused before its body
        { SIG .. "\33\17" .. pack(">I2", 65535) .. ("x"):rep(4000), "oversized" },
        { with_crc(1, 0x11, IPV4, nil, true) .. "x\n", "checksum" },
        { v2(1, 0x11, IPV4 .. "\2\0\9abc") .. "x\n", "malformed" },
      }
      for i, case in ipairs(cases) do
        assert.equal("", reply_to(loop, port, case[1]), "case " .. i)
        h.wait_until(loop, function() return srv:stats().proxy_failures == i end, 5,
          "refusal " .. i)
      end
      assert.same({ malformed = 3, oversized = 2, checksum = 1 }, srv:stats().proxy_reasons)
      assert.equal(0, ran)
      srv:close()
    end)
  end)

  it("closes a header that never completes after proxy_timeout, one that stops short"
    .. " at once", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "v1", proxy_timeout = 0.2 })
      local reasons = srv:stats().proxy_reasons
      -- slow: a part, then nothing
      local t0 = lepoll.now()  -- before the accept, where proxy_timeout starts
      local c = assert(loop:connect("127.0.0.1", port))
      assert(c:write("PROXY TCP4 192.0.2.1 19"))
      assert.equal("", read_all(c))
      local took = lepoll.now() - t0
      c:close()
      h.wait_until(loop, function() return reasons.timeout == 1 end, 5, "the timeout")
      assert.is_true(took >= 0.19, "closed after " .. took .. " s")
      -- missing: connected, nothing sent
      c = assert(loop:connect("127.0.0.1", port))
      assert.equal("", read_all(c))
      c:close()
      h.wait_until(loop, function() return reasons.timeout == 2 end, 5, "the second timeout")
      -- short: a part, then the end of the stream (no timeout to wait for)
      srv:close()
      srv, port = serve(loop, { proxy_protocol = "v1", proxy_timeout = 60 })
      reasons = srv:stats().proxy_reasons
      c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return srv:stats().accepted == 1 end, 5, "the accept")
      assert(c:write("PROXY TCP4 192.0.2.1 19"))
      assert(c:shutdown("w"))
      assert.equal("", read_all(c))
      c:close()
      h.wait_until(loop, function() return reasons.closed == 1 end, 5, "the short header")
      assert.equal(1, srv:stats().proxy_failures)
      srv:close()
    end)
  end)

  it("waits for a header that comes in parts", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "any" })
      local full1 = "PROXY TCP4 192.0.2.1 192.0.2.2 10 20\r\none\n"
      local full2 = v2(1, 0x11, inet({ 192, 0, 2, 5 }, { 192, 0, 2, 6 }, 30, 40),
        { { 0xe0, ("t"):rep(600) } }) .. "two\n"  -- longer than the first peek
      for i, case in ipairs({ { full1, 12 }, { full1, 1 }, { full2, 5 }, { full2, 300 } }) do
        local c = assert(loop:connect("127.0.0.1", port))
        assert(c:write(case[1]:sub(1, case[2])))
        -- the server has accepted and looked: it waits for the rest now
        h.wait_until(loop, function() return srv:stats().accepted == i end, 5, "the accept")
        assert(c:write(case[1]:sub(case[2] + 1)))
        assert.matches(i <= 2 and "^peer 192%.0%.2%.1 10 .* | one\n$"
          or "^peer 192%.0%.2%.5 30 .* | two\n$", read_all(c))
        c:close()
      end
      assert.equal(0, srv:stats().proxy_failures)
      srv:close()
    end)
  end)

  it("refuses untrusted peers before reading a byte; unix peers are trusted", function()
    h.with_task(function(loop)
      local ran = 0
      local function count(c)
        ran = ran + 1
        return reporter(c)
      end
      local srv, port = serve(loop, { proxy_protocol = "v1", trusted = { "10.0.0.0/8",
        "::1" } }, count)
      assert.equal("", reply_to(loop, port, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n"))
      h.wait_until(loop, function() return srv:stats().proxy_untrusted == 1 end, 5,
        "the refusal")
      assert.equal(0, srv:stats().proxy_failures)
      srv:close()
      srv, port = serve(loop, { proxy_protocol = "v1", trusted = { "127.0.0.0/8" } }, count)
      assert.matches("^peer 192%.0%.2%.1 1 ",
        reply_to(loop, port, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n"))
      srv:close()
      srv, port = serve(loop, { host = "::1", proxy_protocol = "v1", trusted = { "::1" } },
        count)
      assert.matches("^peer 192%.0%.2%.1 1 | proxy ::1 ",
        reply_to(loop, port, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n", "::1"))
      srv:close()
      local path = os.tmpname()
      os.remove(path)
      srv = assert(loop:listen({ path = path, proxy_protocol = "v1",
        trusted = { "10.0.0.0/8" } }, count))
      local c = assert(loop:connect(path))
      assert(c:write("PROXY TCP4 192.0.2.9 192.0.2.2 1 2\r\nx\n"))
      assert.matches("^peer 192%.0%.2%.9 1 | proxy  nil | ", read_all(c))
      c:close()
      srv:close()
      assert.equal(3, ran)
    end)
  end)

  it("leaves every byte after the header to the handler", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "v2" }, h.echo)
      local data = {}
      for i = 1, 20000 do data[i] = ("%05d\n"):format(i) end
      data = table.concat(data)  -- 120 kB: more than one read
      local c = assert(loop:connect("127.0.0.1", port))
      loop:spawn(function()
        assert(c:write(v2(1, 0x11, inet({ 192, 0, 2, 1 }, { 192, 0, 2, 2 }, 1, 2)) .. data))
        c:shutdown("w")
      end)
      assert.equal(data, read_all(c))
      c:close()
      srv:close()
    end)
  end)

  it("serves pipelined HTTP after the header; req:peer() follows it", function()
    h.with_task(function(loop)
      local srv = assert(http.listen({ loop = loop, port = 0, proxy_protocol = "v1" },
        function(req, res)
          local host, port = req:peer()
          res:finish(("%s %s:%d\n"):format(req.path, host, port))
        end))
      local _, port = srv:address()
      local reply = exchange(loop, port, "PROXY TCP6 2001:db8::7 2001:db8::1 5555 80\r\n"
        .. "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        .. "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local bodies = {}
      for body in reply:gmatch("\r\n\r\n(/[^\n]*\n)") do bodies[#bodies + 1] = body end
      assert.same({ "/a 2001:db8::7:5555\n", "/b 2001:db8::7:5555\n" }, bodies)
      srv:close()
    end)
  end)

  it("reads the header before a TLS handshake", function()
    local P = certs.make()
    h.with_task(function(loop)
      local ctx = assert(tls.context({ cert = P.cert, key = P.key }))
      local srv, port = serve(loop, { proxy_protocol = "v2", tls = ctx }, function(c)
        local line = c:readline()
        local host, p = c:peer()
        c:write(("%s %s:%d %s\n"):format(line, host, p, tostring(c:tls() ~= nil)))
      end)
      -- the client: plain first (options give it settings of its own),
      -- then TLS on the same connection, as lepoll._connect makes it
      -- (its tls option would shake hands before the header could go)
      local tlsm = require "lepoll._tls"
      local c = assert(loop:connect("127.0.0.1", port, { timeout = 10 }))
      assert(c:write(v2(1, 0x11, inet({ 198, 51, 100, 1 }, { 192, 0, 2, 2 }, 4444, 443))))
      assert(c:flush())  -- all of it out as plain bytes before the TLS settings apply
      tlsm.config(c[require("lepoll._conn").layout.CONFIG])
      assert(tlsm.connect(c, "localhost", { ctx = assert(tls.context({ ca = P.ca })) },
        lepoll.now() + 10 * h.SLOW))
      assert(c:write("over tls\n"))
      assert.equal("over tls 198.51.100.1:4444 true", c:readline())
      c:close()
      assert.equal(0, srv:stats().proxy_failures)
      srv:close()
    end)
  end)

  it("gives up on headers when the loop shuts down or closes", function()
    h.with_loop(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "v1", proxy_timeout = 0.3 })
      local fd = h.defer(assert(net.socket(net.INET, net.STREAM)))
      assert(net.connect(fd, "127.0.0.1", port))
      h.wait_until(loop, function() return srv:stats().accepted == 1 end, 5, "the accept")
      -- the waiting header holds the shutdown up to proxy_timeout, no longer
      loop:shutdown(30)
      h.run(loop, 5)
      assert.same({ timeout = 1 }, srv:stats().proxy_reasons)
    end)
    h.with_loop(function(loop)
      local srv, port = serve(loop, { proxy_protocol = "v1" })
      local fd = h.defer(assert(net.socket(net.INET, net.STREAM)))
      assert(net.connect(fd, "127.0.0.1", port))
      assert(net.send(fd, "PROXY "))
      h.wait_until(loop, function() return srv:stats().accepted == 1 end, 5, "the accept")
      -- the loop closes (with_loop) with the header half read: nothing stays
    end)
  end)
end)

describe("listen's PROXY options", function()
  it("are checked, naming the option and the entry", function()
    h.with_loop(function(loop)
      local function h0() end
      local cases = {
        { { proxy_protocol = "v3" }, "option 'proxy_protocol' must be 'v1', 'v2' or 'any',"
          .. " got string 'v3'" },
        { { proxy_protocol = true }, "option 'proxy_protocol' must be 'v1', 'v2' or 'any',"
          .. " got boolean" },
        { { proxy_protocol = "v1", proxy_timeout = 0 }, "option 'proxy_timeout' must be a"
          .. " positive number, got 0" },
        { { proxy_protocol = "v1", trusted = { "10.0.0.0/8", "10.0.0.0/33" } }, "option"
          .. " 'trusted' must be a list of addresses or CIDRs (entry 2, '10.0.0.0/33', is"
          .. " not one), got table" },
        { { proxy_protocol = "v1", trusted = "10.0.0.0/8" }, "option 'trusted' must be a"
          .. " non-empty list of addresses or CIDRs, got string '10.0.0.0/8'" },
        { { trusted = { "10.0.0.0/8" } }, "option 'trusted' needs option 'proxy_protocol'" },
      }
      for _, case in ipairs(cases) do
        case[1].port = 0
        assert.has_error(function() loop:listen(case[1], h0) end,
          "bad argument #1 to 'listen' (" .. case[2] .. ")")
        assert.has_error(function()
          local o = { loop = loop }
          for k, v in pairs(case[1]) do o[k] = v end
          http.listen(o, h0)
        end, "bad argument #1 to 'listen' (" .. case[2] .. ")")
      end
    end)
  end)

  it("leave listeners without them as they were", function()
    h.with_task(function(loop)
      local srv, port = serve(loop, {})
      local reply, lport = exchange(loop, port, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n")
      assert.equal(("peer 127.0.0.1 %d | proxy nil nil | nil nil nil nil nil"
        .. " | PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"):format(lport), reply)
      assert.is_nil(srv:stats().proxy_failures)
      srv:close()
    end)
  end)
end)
