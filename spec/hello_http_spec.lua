-- examples/hello_http.lua, the seed's hello over HTTP/1.1, run as its own
-- process with lua5.4 and with the host program, asked by a plain socket.
local process = require "support.process"
local client = require "support.client"
local net = require "lepoll.net"
local epoll = require "lepoll.epoll"

local BUILD = os.getenv("LEPOLL_BUILD") or "build"

-- Two keep-alive GETs on one connection (/ and /nope), then the server's
-- answers, read until both are complete (bounded by the socket timeout).
local function ask(port)
  local s = assert(net.socket(net.INET, net.STREAM))
  local ep <close> = assert(epoll.create())
  local evs = epoll.events(1)
  local ok, got = pcall(function()
    assert(net.connect(s, "127.0.0.1", port))
    client.send_all(s, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
    assert(ep:add(s, 1, epoll.IN))
    local buf = ""
    while not buf:find("not found\n", 1, true) do
      assert(assert(ep:wait(evs, client.WAIT_MS)) == 1, "no answer in time: " .. buf)
      local d = assert(net.recv(s, 4096))
      assert(d ~= "", "closed early: " .. buf)
      buf = buf .. d
    end
    return buf
  end)
  s:close()
  assert(ok, got)
  return got
end

local function check(p)
  local _, port = p:listening("127.0.0.1")
  local got = ask(port)
  assert.matches("^HTTP/1%.1 200 OK\r\n", got)
  assert.matches("\r\nContent%-Length: 6\r\n", got)
  assert.matches("\r\n\r\nhello\nHTTP/1%.1 404 Not Found\r\n", got)
  assert.is_true(p:kill("TERM"))
  local _, how, code = p:wait()
  assert.same({ "exit", 0 }, { how, code })
end

describe("examples/hello_http.lua", function()
  it("answers GET / with hello under lua5.4, keep-alive", function()
    local p = process.script("examples/hello_http.lua", "0")
    finally(function() p:close() end)
    check(p)
  end)

  it("answers under the host program #build", function()
    local p = process.spawn(process.shquote(BUILD .. "/bin/lepoll") .. " examples/hello_http.lua 0")
    finally(function() p:close() end)
    check(p)
  end)
end)
