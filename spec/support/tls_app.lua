-- A lepoll TLS server in a child process, for specs that drive it with
-- clients no one here wrote (openssl s_client, curl, python3's ssl):
--   lua5.4 spec/support/tls_app.lua key=value ...
-- cert=, key= (required); sni_name=, sni_cert=, sni_key= (a second
-- certificate for one SNI name); alpn=a,b; tickets=false; sndbuf=N
-- (the listener's SO_SNDBUF, which accepted sockets inherit);
-- mode=echo (default: echo every read back, and end the connection after
-- a read that ends in "close\n"; "bye" after a close_notify,
-- "truncated" after an EOF without one, as a last line on stdout) or
-- mode=sink (read to the end, never write; then "N bytes, closed" or
-- "N bytes, closed truncated" or the error, as a line on stdout) or
-- mode=http (lepoll.http: "hello\n" for every request).
-- Prints "listening on 127.0.0.1:PORT" first.
local lepoll = require "lepoll"
local tls = require "lepoll.tls"

local o = {}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  assert(k, "key=value expected, got " .. a)
  o[k] = v
end

local function context(cert, key, extra)
  local t = { cert = cert, key = key }
  for k, v in pairs(extra or {}) do t[k] = v end
  return assert(tls.context(t))
end

local extra = {}
if o.alpn then
  extra.alpn = {}
  for p in o.alpn:gmatch("[^,]+") do extra.alpn[#extra.alpn + 1] = p end
end
if o.tickets == "false" then extra.tickets = false end
if o.sni_name then
  extra.sni = { [o.sni_name] = context(o.sni_cert, o.sni_key) }
end
local ctx = context(o.cert, o.key, extra)

local server
if o.mode == "sink" then
  server = assert(lepoll.listen({ host = "127.0.0.1", port = 0, tls = ctx }, function(c)
    local n = 0
    while true do
      local s, err, why = c:read()
      if not s then
        io.stdout:write(("%d bytes, %s%s\n"):format(n, err, why and " " .. why or ""))
        io.stdout:flush()
        return
      end
      n = n + #s
    end
  end))
elseif o.mode == "http" then
  local http = require "lepoll.http"
  server = assert(http.listen({ host = "127.0.0.1", port = 0, tls = ctx },
    function(_, res) res:finish("hello\n") end))
else
  server = assert(lepoll.listen({ host = "127.0.0.1", port = 0, tls = ctx }, function(c)
    while true do
      local s, err, why = c:read()
      if not s then
        if err == "closed" then
          io.stdout:write(why == "truncated" and "truncated\n" or "bye\n")
          io.stdout:flush()
        end
        return
      end
      if not c:write(s) then return end
      if s:find("close\n$") then return end  -- a client asked us to end it
    end
  end))
end
if o.sndbuf then
  assert(require("lepoll.net").setsockopt(server:fileno(), "sndbuf", tonumber(o.sndbuf)))
end
local host, port = server:address()
io.stdout:write(("listening on %s:%d\n"):format(host, port))
io.stdout:flush()
lepoll.run()
