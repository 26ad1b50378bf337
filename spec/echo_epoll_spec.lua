-- examples/echo_epoll.lua, the echo server on the C layer, run as a separate
-- process and driven by real TCP clients on 127.0.0.1.
local process = require "support.process"
local client = require "support.client"
local partial = require "support.partial"
local epoll = require "lepoll.epoll"
local net = require "lepoll.net"

local EAGAIN, EINPROGRESS = net.errno.EAGAIN, net.errno.EINPROGRESS
-- A bound for each whole test's waiting, and for the server's life (see
-- "reads late": under the partial-I/O injector it moves megabytes a byte
-- per syscall).
local WAIT_S = partial.ON and 60 or 10
local LIMIT_S = partial.ON and 180 or 60

-- connect(port): a non-blocking client socket whose connect is under way.
-- Every socket (and server) a test opens is kept in track(); after_each
-- closes what is still open.
local connect, closeall, track = client.connector()

local function start()
  local p = process.spawn(process.lua_command() .. " examples/echo_epoll.lua 0",
    { limit = LIMIT_S })
  local _, port = p:listening("127.0.0.1")
  track(function() p:close() end)     -- after the test's sockets
  return p, port
end

-- Drive clients[i] = {sock =, out = string to send, shut = shutdown(w) once
-- all is sent} in one epoll: write while reading, so neither side blocks.
-- Each client's reply collects in .got; .eof is set at end of stream. Stops
-- when every client has .want bytes (or EOF), or at the deadline.
local function drive(ep, evs, clients)
  local left = 0
  for i, c in ipairs(clients) do
    c.sent, c.got, c.parts = 0, "", {}
    assert(ep:add(c.sock, i, epoll.IN | epoll.OUT))
    left = left + 1
  end
  local deadline = os.time() + WAIT_S
  while left > 0 and os.time() <= deadline do
    local n = assert(ep:wait(evs, 200))
    for k = 1, n do
      local i, flags = evs:get(k)
      local c = clients[i]
      if not c.done then
        if flags & epoll.OUT ~= 0 and c.sent < #c.out then
          local m, err, code = net.send(c.sock, c.out, c.sent + 1)
          if m then
            c.sent = c.sent + m
          elseif code ~= EAGAIN then
            error("send: " .. err)
          end
        end
        if c.sent == #c.out then
          if c.shut and not c.shutdown then
            assert(net.shutdown(c.sock, "w"))
            c.shutdown = true
          end
          assert(ep:modify(c.sock, i, epoll.IN))   -- nothing more to send
        end
        if flags & (epoll.IN | epoll.HUP | epoll.ERR) ~= 0 then
          local data, err, code = net.recv(c.sock, 65536)
          if data == "" then
            c.eof = true
          elseif data then
            c.parts[#c.parts + 1] = data
            c.nrecv = (c.nrecv or 0) + #data
          elseif code ~= EAGAIN then
            error("recv: " .. err)
          end
        end
        if c.eof or (c.nrecv or 0) >= c.want then
          c.done = true
          left = left - 1
          ep:delete(c.sock)
        end
      end
    end
  end
  for _, c in ipairs(clients) do
    c.got = table.concat(c.parts)
    c.nrecv = 0
  end
end

-- Waits for EOF on sock (the server closing after ours).
local function wait_eof(ep, evs, sock)
  assert(ep:add(sock, 0, epoll.IN))
  local deadline = os.time() + WAIT_S
  while os.time() <= deadline do
    local data, _, code = net.recv(sock, 4096)
    if data ~= nil or code ~= EAGAIN then
      ep:delete(sock)
      return data
    end
    ep:wait(evs, 200)
  end
  ep:delete(sock)
end

-- The bytes the server has not read yet on its end of the connection
-- whose client end is sock (its rx_queue in /proc/net/tcp), or nil if that
-- socket is not listed.
local function server_unread(port, sock)
  local _, cport = net.getsockname(sock)
  for line in io.lines("/proc/net/tcp") do
    local lp, rp, rx = line:match("^%s*%d+: %x+:(%x+) %x+:(%x+) %x+ %x+:(%x+)")
    if lp and tonumber(lp, 16) == port and tonumber(rp, 16) == cport then
      return tonumber(rx, 16)
    end
  end
end

-- A deterministic payload of n bytes: 256-byte blocks, each different
-- (so lost, repeated or reordered bytes show).
local FILL = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):rep(5)
local function payload(n, seed)
  local parts = {}
  for i = 1, n // 256 + 1 do
    parts[i] = string.format("%08x%08x", seed, i) .. FILL:sub(i % 64 + 1, i % 64 + 240)
  end
  return table.concat(parts):sub(1, n)
end

describe("examples/echo_epoll.lua", function()
  local ep, evs = nil, epoll.events(256)  -- evs holds no fd: one for all
  before_each(function() ep = track(assert(epoll.create())) end)
  after_each(closeall)                    -- most sockets are closed already

  it("echoes small messages on one connection, then closes after EOF", function()
    local p, port = start()
    local s = connect(port)
    for _, msg in ipairs({ "ping\n", "x", "\0binary\0\255\n", ("abc"):rep(500) }) do
      local c = { sock = s, out = msg, want = #msg }
      drive(ep, evs, { c })
      assert.equal(msg, c.got)
    end
    assert.is_true(net.shutdown(s, "w"))
    assert.equal("", wait_eof(ep, evs, s))
    assert.equal("", p:stderr())
  end)

  it("echoes a 1 MiB payload (64 KiB under the injector) written and read at the same time",
    function()
    local _, port = start()
    local data = payload(partial.bulk(1024 * 1024, 64 * 1024), 1)
    local c = { sock = connect(port), out = data, want = math.huge, shut = true }
    drive(ep, evs, { c })
    assert.is_true(c.eof)                  -- the server closed after echoing
    assert.equal(#data, #c.got)
    assert.is_true(data == c.got, "payload differs")
  end)

  it("finishes partial writes to a client that reads late", function()
    local p, port = start()
    local s = track(assert(net.socket(net.INET, net.STREAM, net.NONBLOCK)))
    -- fill up early: small buffers on this side, set before the
    -- handshake (the window scale is fixed then); a send buffer under
    -- 16 KiB makes each 64 KiB loopback segment wait for a delayed ACK
    assert.is_true(net.setsockopt(s, "rcvbuf", 4096))
    assert.is_true(net.setsockopt(s, "sndbuf", 16384))
    local ok, err, code = net.connect(s, "127.0.0.1", port)
    assert(ok or code == EINPROGRESS, err)
    assert(ep:add(s, 0, epoll.OUT))
    assert.equal(1, ep:wait(evs, 5000))    -- connected
    -- Send without reading until the server stops reading: no room on
    -- this socket for a while, and for a while more, in which the server
    -- read nothing of the input it holds. It stops only while it waits
    -- for OUT to send the rest of a partial write: once its send buffer is
    -- full (~3 MB: on loopback the kernel sizes it for ten 64 KiB
    -- segments). Under the partial-I/O injector a live server reads a byte
    -- per syscall (a while is 500 ms there, not 150), and its echo comes
    -- in segments of a byte, which overrun this side's small receive
    -- buffer and can stall the connection until it reads: when the
    -- server holds no input, it takes the echo so far, and sends on.
    local while_ms = partial.ON and 500 or 150
    local got = {}                         -- the echo, in order
    local function take_echo()             -- what came back so far
      while true do
        local data, rerr, rcode = net.recv(s, 65536)
        if not data then
          assert.equal(EAGAIN, rcode, rerr)
          return
        end
        assert(data ~= "", "the server closed")
        got[#got + 1] = data
      end
    end
    local total, blocked, until_t = 0, false, os.time() + WAIT_S
    local chunk, at, seed = "", 1, 0       -- a send may take a part of it
    while total < 64 * 1024 * 1024 and not blocked do
      assert(os.time() <= until_t, "the server never stopped reading")
      if at > #chunk then
        seed = seed + 1
        chunk, at = payload(65536, seed), 1
      end
      local n, serr, scode = net.send(s, chunk, at)
      if n then
        total = total + n
        at = at + n
      else
        assert.equal(EAGAIN, scode, serr)
        if ep:wait(evs, while_ms) == 0 then   -- still no room
          local before = assert(server_unread(port, s), "the server's socket is not listed")
          if ep:wait(evs, while_ms) == 0 then
            local after = assert(server_unread(port, s), "the server's socket is not listed")
            blocked = before > 0 and after >= before
            if after == 0 then take_echo() end   -- a stall of the connection
          end
        end
      end
    end
    assert.is_true(blocked, "the server never stopped reading")
    assert.is_true(net.shutdown(s, "w"))
    local sent = {}                        -- the whole chunks, then a part
    for i = 1, seed - 1 do sent[i] = payload(65536, i) end
    sent[seed] = chunk:sub(1, at - 1)
    -- Now read it all back: the server must finish what it held.
    local want = table.concat(sent)
    assert(ep:modify(s, 0, epoll.IN))
    local deadline = os.time() + WAIT_S
    while os.time() <= deadline do
      local data, rerr, rcode = net.recv(s, 65536)
      if data == "" then break end
      if data then
        got[#got + 1] = data
      else
        assert.equal(EAGAIN, rcode, rerr)
        ep:wait(evs, 200)
      end
    end
    got = table.concat(got)
    assert.equal(#want, #got)
    assert.is_true(want == got, "the echo differs")
    assert.equal("", p:stderr())
  end)

  it("serves 50 concurrent clients, twice each on the same connection", function()
    local _, port = start()
    local clients = {}
    for i = 1, 50 do
      clients[i] = { sock = connect(port) }
    end
    for round = 1, 2 do
      for i, c in ipairs(clients) do
        c.out = payload(1000 + i, round * 100 + i)
        c.want, c.done, c.eof = #c.out, nil, nil
      end
      drive(ep, evs, clients)
      for i, c in ipairs(clients) do
        assert.is_nil(c.eof)
        assert.equal(#c.out, #c.got, "client " .. i)
        assert.is_true(c.out == c.got, "client " .. i .. " got another reply")
      end
    end
    for _, c in ipairs(clients) do c.sock:close() end
    -- still serving after 50 closes
    local s = connect(port)
    local c = { sock = s, out = "again", want = 5 }
    drive(ep, evs, { c })
    assert.equal("again", c.got)
  end)

  it("survives a client that resets with data unread", function()
    local p, port = start()
    local s = connect(port)
    local c = { sock = s, out = payload(65536, 7), want = 1 }
    drive(ep, evs, { c })                  -- the echo has started coming back
    assert.is_true(net.setsockopt(s, "linger", 0))
    s:close()                              -- RST while the server is sending
    local s2 = connect(port)
    local c2 = { sock = s2, out = "still here", want = 10 }
    drive(ep, evs, { c2 })
    assert.equal("still here", c2.got)
    assert.equal("", p:stderr())
  end)
end)
