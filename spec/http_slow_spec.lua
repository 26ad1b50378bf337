-- lepoll.http in a child process (spec/support/http_app.lua) against slow
-- clients: slowhttptest's slow headers, slow body and slow read, with short
-- deadlines, while a python3 client keeps asking GET / on new connections;
-- and a client that stops reading in the middle of a response.
local tools = require "support.http_tools"
local lfs = require "lfs"

local q = tools.shquote

-- The parallel client and watcher: GET / on a new connection every 50 ms
-- until the file argv[3] exists (or argv[5] seconds pass), each within 3 s;
-- meanwhile it counts the app's open fds (pid argv[2]): "high" is when
-- they first reached argv[6] (the count before the attack) + argv[4] (the
-- slow connections are open), "low" when they next fell back to it + 2
-- (the server closed them). Prints one line.
local PROBER = [[
import os, socket, sys, time
port, pid, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
extra, limit = int(sys.argv[4]), float(sys.argv[5])
def fds():
    return len(os.listdir("/proc/%s/fd" % pid))
base = int(sys.argv[6])
start = time.monotonic()
ok = fail = 0
worst = 0.0
high = low = None
most = base
errs = []
while time.monotonic() - start < limit and not os.path.exists(stop):
    t = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.sendall(b"GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        s.close()
        if got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nhello\n"):
            ok += 1
        else:
            fail += 1
            errs.append(repr(got[:40]))
    except OSError as e:
        fail += 1
        errs.append(repr(e))
    worst = max(worst, time.monotonic() - t)
    n, now = fds(), time.monotonic() - start
    most = max(most, n)
    if high is None and n >= base + extra:
        high = now
    if high is not None and low is None and n <= base + 2:
        low = now
    time.sleep(0.05)  # the pace of the probes
print("ok %d fail %d worst %.3f high %s low %s fds %d..%d" % (ok, fail, worst, high, low,
      base, most), errs[:3])
]]

-- The process's open fds.
local function fd_count(pid)
  local n = 0
  for name in lfs.dir("/proc/" .. pid .. "/fd") do
    if name ~= "." and name ~= ".." then n = n + 1 end
  end
  return n
end

-- Run slowhttptest with args against the app's path while PROBER runs:
-- slowhttptest's report (colours stripped) and the prober's numbers.
local function attack(app, args, path, extra)
  tools.need("slowhttptest")
  tools.need("python3")
  local stop = os.tmpname()
  os.remove(stop)
  local pid = app:pid()
  local prober = tools.python_spawn(PROBER, { app.port, pid, stop, extra, 40, fd_count(pid) }, 60)
  local report = tools.run(("slowhttptest %s -u %s"):format(args, q(app:url(path))), 60)
  io.open(stop, "w"):close()
  local out = prober:wait()
  prober:close()
  os.remove(stop)
  local r = { report = report:gsub("\27%[[%d;]*m", ""), prober = out }
  local ok, fail, worst, high, low = out:match(
    "ok (%d+) fail (%d+) worst ([%d.]+) high (%S+) low (%S+)")
  assert(ok, out)
  r.ok, r.fail, r.worst = tonumber(ok), tonumber(fail), tonumber(worst)
  r.high, r.low = tonumber(high), tonumber(low)
  return r
end

-- The parallel client was served throughout, promptly, while the slow
-- connections were open.
local function served(r)
  local why = r.prober .. "\n" .. r.report
  assert.equal(0, r.fail, why)
  assert.is_true(r.ok >= 10, why)
  assert.is_true(r.worst < 1.5, why)
  assert(r.high, "the slow connections never all opened: " .. why)
  assert.is_nil(r.report:find("service available:%s*NO"), why)
  return why
end

-- slowhttptest saw the server close every slow connection before its
-- test length (seconds) was up.
local function all_closed(r, length)
  assert.matches("Exit status: No open connections left", r.report)
  local ended = tonumber(r.report:match("Test ended on (%d+)th second"))
  assert.is_true(ended and ended < length, r.report)
end

describe("lepoll.http against slowhttptest", function()
  local app
  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  it("slow headers (-H): 408 and close after header_timeout", function()
    app = tools.app({ header_timeout = 2 }, 4096)
    local r = attack(app, "-H -c 100 -r 200 -i 1 -x 10 -l 8 -p 2", "/", 50)
    served(r)
    all_closed(r, 8)
  end)

  it("slow body (-B): 408 and close after body_timeout without a byte", function()
    app = tools.app({ body_timeout = 2 }, 4096)
    -- a follow-up piece every 3 s: later than body_timeout
    local r = attack(app, "-B -c 100 -r 200 -i 3 -s 8192 -x 10 -l 8 -p 2", "/upload-count", 50)
    served(r)
    all_closed(r, 8)
  end)

  it("slow read (-X): the response's write gives up after write_timeout, the connection closes",
    function()
      app = tools.app({ write_timeout = 2 }, 4096)
      -- 4 MB answers (more than the kernel buffers) read 5 bytes a second
      -- through a window of at most 64 bytes. The server closes; the FIN is
      -- queued behind the unread bytes, so slowhttptest itself may not see
      -- it: the app's fds tell.
      local r = attack(app, "-X -c 20 -r 40 -w 1 -y 64 -n 1 -z 5 -k 1 -l 8 -p 2",
        "/big?n=4000000", 15)
      local why = served(r)
      assert(r.low, "the server never closed the slow connections: " .. why)
      assert.is_true(r.low - r.high < 4, why)
    end)
end)

describe("lepoll.http with a client that stops reading", function()
  local app
  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  -- The client reads nothing for longer than write_timeout, then asks again
  -- on the same connection and reads all it can get.
  local CLIENT = [[
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /big?n=4000000 HTTP/1.1\r\nHost: a\r\n\r\n")
time.sleep(float(sys.argv[2]))  # the stall under test, not a wait for an event
try:
    s.sendall(b"GET /who HTTP/1.1\r\nHost: a\r\n\r\n")
except OSError:
    pass
s.settimeout(3)
got, end = b"", "closed"
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += b
except socket.timeout:
    end = "open"
except ConnectionResetError:
    end = "reset"
head, _, body = got.partition(b"\r\n\r\n")
print("head", head.split(b"\r\n")[0].decode(), "body", len(body), "end", end,
      "second-response-at", body.find(b"HTTP/1.1 "))
]]

  it("ends the connection when a response's write times out (no response after a cut one)",
    function()
      tools.need("python3")
      app = tools.app({ write_timeout = 1 })
      local out, ok = tools.python(CLIENT, { app.port, 2.5 }, 30)
      assert(ok, out)
      local status, n, ending, second = out:match(
        "head HTTP/1%.1 (%d+) OK body (%d+) end (%S+) second%-response%-at (%-?%d+)")
      assert(status, out)
      assert.equal("200", status)
      assert.is_true(tonumber(n) < 4000000, out)  -- it was cut short
      -- the cut is the end: the server closed (or reset) the connection
      -- and did not answer GET /who behind the truncated body
      assert.equal("-1", second, out)
      assert.is_true(ending == "closed" or ending == "reset", out)
    end)
end)
