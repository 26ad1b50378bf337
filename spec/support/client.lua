--- TCP clients for specs that drive a server on 127.0.0.1 (or ::1): start
-- a connection, or fetch all a server sends. Every wait is bounded.
local epoll = require "lepoll.epoll"
local lio = require "lepoll.io"
local net = require "lepoll.net"
local cleanup = require "support.cleanup"

local M = {}

--- A bound in ms for one wait on a server: longer under valgrind.
M.WAIT_MS = os.getenv("LEPOLL_SANITIZED") == "valgrind" and 60000 or 10000

local function family(host)
  return host:find(":", 1, true) and net.INET6 or net.INET
end

--- A non-blocking TCP socket whose connect to host (default 127.0.0.1)
-- port is done or under way (EINPROGRESS). Raises on any other failure,
-- leaving nothing open. The caller closes the socket.
function M.connect(port, host)
  host = host or "127.0.0.1"
  local s = assert(net.socket(family(host), net.STREAM, net.NONBLOCK))
  local ok, err, code = net.connect(s, host, port)
  if not ok and code ~= net.errno.EINPROGRESS then
    s:close()
    error("connect to " .. host .. ":" .. tostring(port) .. ": " .. tostring(err), 2)
  end
  return s
end

--- A connect like M.connect that keeps every socket it makes, for closeall()
-- to close (after each test): returns connect, closeall and track (which
-- keeps other fds the same way; see support.cleanup).
function M.connector()
  local track, closeall = cleanup.tracker()
  return function(port, host) return track(M.connect(port, host)) end, closeall, track
end

--- Send all of s on the blocking socket sock, in as many send(2) calls
-- as the kernel (or a slow network) needs; raises on a failure.
function M.send_all(sock, s)
  local at = 1
  while at <= #s do at = at + assert(net.send(sock, s, at)) end
end

--- Read from the blocking socket sock until n bytes came, or end of
-- stream, or an error: returns what came (maybe fewer than n bytes), and
-- the error message, if any.
function M.recv_upto(sock, n)
  local parts, got = {}, 0
  while got < n do
    local d, err = net.recv(sock, n - got)
    if not d then return table.concat(parts), err end
    if d == "" then break end
    parts[#parts + 1] = d
    got = got + #d
  end
  return table.concat(parts)
end

--- Everything the server at host (default 127.0.0.1) port sends until it
-- closes; raises if it sends nothing for ms (default WAIT_MS) at a time.
function M.fetch(port, host, ms)
  host = host or "127.0.0.1"
  local c = assert(net.socket(family(host), net.STREAM))
  local ep, eperr = epoll.create()
  local ok, res = pcall(function()
    assert(ep, eperr)
    local evs = epoll.events(1)
    assert(net.connect(c, host, port))
    assert(ep:add(c, 1, epoll.IN))
    local got = {}
    while true do
      assert(assert(ep:wait(evs, ms or M.WAIT_MS)) == 1, "no reply in time")
      local s = assert(lio.read(c, 4096))
      if s == "" then break end
      got[#got + 1] = s
    end
    return table.concat(got)
  end)
  if ep then ep:close() end
  c:close()
  assert(ok, res)
  return res
end

return M
