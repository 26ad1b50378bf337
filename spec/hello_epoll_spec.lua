-- examples/hello_epoll.lua, the seed's example on the C layer, run as a
-- separate process and driven by real TCP clients on 127.0.0.1.
local process = require "support.process"
local client = require "support.client"
local epoll = require "lepoll.epoll"
local net = require "lepoll.net"

local EAGAIN = net.errno.EAGAIN
local WAIT_S = 10            -- a bound for each whole test's waiting

-- connect(port): a non-blocking client socket whose connect is under way.
-- Every socket (and server) a test opens is kept in track(); after_each
-- closes what is still open.
local connect, closeall, track = client.connector()

-- Start the server; `nofile` lowers its RLIMIT_NOFILE (ulimit -n).
local function start(nofile)
  local p
  if nofile then
    local sh = ("ulimit -n %d && exec %s examples/hello_epoll.lua 0")
      :format(nofile, process.lua_command())
    p = process.spawn("sh -c " .. process.shquote(sh))
  else
    p = process.script("examples/hello_epoll.lua", "0")
  end
  local _, port = p:listening("127.0.0.1")
  track(function() p:close() end)     -- after the test's sockets
  return p, port
end

-- Everything sock sends until EOF (or "", err on an error / the deadline).
local function read_all(ep, evs, sock)
  local got, deadline = {}, os.time() + WAIT_S
  assert(ep:add(sock, 0, epoll.IN))
  while os.time() <= deadline do
    local s, err, code = net.recv(sock, 4096)
    if s == "" then break end
    if s then
      got[#got + 1] = s
    elseif code == EAGAIN then
      ep:wait(evs, 200)
    else
      ep:delete(sock)
      return table.concat(got), err
    end
  end
  ep:delete(sock)
  return table.concat(got)
end

describe("examples/hello_epoll.lua", function()
  local ep, evs = nil, epoll.events(256)  -- evs holds no fd: one for all
  before_each(function() ep = track(assert(epoll.create())) end)
  after_each(closeall)                    -- most sockets are closed already

  it("prints its port and greets 200 sequential clients", function()
    local _, port = start()
    assert.is_true(port > 0 and port < 65536)
    local good = 0
    for _ = 1, 200 do
      local s = connect(port)
      local got = read_all(ep, evs, s)
      s:close()
      if got == "hello\n" then good = good + 1 else assert.equal("hello\n", got) end
    end
    assert.equal(200, good)
  end)

  local function concurrent(port, count)
    local socks, got, done = {}, {}, 0
    for i = 1, count do
      socks[i] = connect(port)
      got[i] = ""
      assert(ep:add(socks[i], i, epoll.IN | epoll.RDHUP))
    end
    local deadline = os.time() + WAIT_S
    while done < count and os.time() <= deadline do
      local n = assert(ep:wait(evs, 200))
      for k = 1, n do
        local i = evs:get(k)
        local s = socks[i]
        while s do
          local data, err, code = net.recv(s, 4096)
          if data and data ~= "" then
            got[i] = got[i] .. data
          else
            if code == EAGAIN then break end
            if not data then got[i] = got[i] .. "<" .. err .. ">" end
            ep:delete(s)
            s:close()
            socks[i], s = nil, nil
            done = done + 1
          end
        end
      end
    end
    return done, got
  end

  it("greets 200 concurrent clients, each with exactly hello and EOF", function()
    local _, port = start()
    local done, got = concurrent(port, 200)
    assert.equal(200, done)
    for i = 1, 200 do assert.equal("hello\n", got[i]) end
  end)

  it("pauses accepting when out of fds (EMFILE) and serves everyone", function()
    local p, port = start(12)   -- 0-2, listener, epoll, lua: a few to spare
    local done, got = concurrent(port, 100)
    assert.equal(100, done)
    for i = 1, 100 do assert.equal("hello\n", got[i]) end
    assert.equal("", p:stderr())
  end)

  it("survives clients that reset at once, and keeps serving", function()
    local p, port = start()
    local deadline = os.time() + WAIT_S
    for _ = 1, 50 do
      local s = connect(port)
      -- wait until connected, then close with SO_LINGER 0: an RST
      assert(ep:add(s, 0, epoll.OUT))
      while ep:wait(evs, 200) == 0 and os.time() <= deadline do end
      ep:delete(s)
      assert.is_true(net.setsockopt(s, "linger", 0))
      s:close()
    end
    for _ = 1, 20 do
      local s = connect(port)
      local got = read_all(ep, evs, s)
      s:close()
      assert.equal("hello\n", got)
    end
    assert.equal("", p:stderr())             -- nothing went wrong inside
  end)

  it("stops on SIGTERM", function()
    local p = start()
    assert.is_true(p:kill("TERM"))
    local rest, how, code = p:wait()
    assert.equal("", rest)
    assert.is_true(how == "signal" or code ~= 0)
    assert.equal("", p:stderr())
  end)
end)
