-- lepoll framework: connections (read, readline, readn, write with a
-- bounded buffer, close, failing handlers, addresses, shutdown), with real
-- clients over loopback in the same process. Timeouts are in
-- lepoll_conn_timeout_spec.lua, outbound connect in lepoll_connect_spec.lua.
local net = require "lepoll.net"
local h = require "support.framework"
local partial = require "support.partial"

describe("conn:read", function()
  it("returns what arrived, up to n bytes, then nil, 'closed' at EOF", function()
    h.with_task(function(loop)
      local first, rest, eof
      local server, port = h.serve(loop, function(conn)
        first = conn:read(3)
        -- "def" at once; a byte at a time over a slow network
        local parts, n = {}, #first
        while n < 6 do
          parts[#parts + 1] = assert(conn:read(100))
          n = n + #parts[#parts]
        end
        rest = parts
        eof = { conn:read() }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert(c:write("abcdef"))
      h.wait_until(loop, function() return rest end, nil, "the reads")
      c:close()
      h.wait_until(loop, function() return eof end, nil, "the read at EOF")
      server:close()
      assert.is_true(#first >= 1 and #first <= 3, "read(3) gave " .. #first .. " bytes")
      assert.equal("abcdef", first .. table.concat(rest))
      if not partial.ON then  -- all six bytes arrived together
        assert.equal("abc", first)
        assert.same({ "def" }, rest)
      end
      assert.same({ nil, "closed" }, eof)
    end)
  end)

  it("raises on a bad count", function()
    h.with_task(function(loop)
      local errs = {}
      local server, port = h.serve(loop, function(conn)
        for _, v in ipairs({ 0, -1, 1.5, "x", true }) do
          local ok, e = pcall(conn.read, conn, v)
          errs[#errs + 1] = not ok and e:match("bad argument #1 to 'read'") ~= nil
        end
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert.same({ nil, "closed" }, { c:read() })
      c:close()
      server:close()
      assert.same({ true, true, true, true, true }, errs)
    end)
  end)

  it("returns nil, message, errno when the peer resets while it waits", function()
    h.with_task(function(loop)
      local r, reading
      local server, port = h.serve(loop, function(conn)
        reading = true   -- nothing else runs until the read below waits
        r = { conn:read() }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return reading end, nil, "the handler's read")
      assert(c:setoption("linger", 0))
      c:close(true)     -- a reset
      h.wait_until(loop, function() return r end, nil, "the read to fail")
      server:close()
      assert.is_nil(r[1])
      assert.equal(net.errno.ECONNRESET, r[3])
      assert.equal("string", type(r[2]))
    end)
  end)

  it("raises for a second reader and still serves the first", function()
    h.with_task(function(loop)
      local first, second
      local server, port = h.serve(loop, function(conn)
        loop:spawn(function()
          local s = conn:read()  -- waits for data
          while s and #s < 4 do  -- the rest, where it comes byte by byte
            local more = conn:read()
            s = more and s .. more
          end
          first = { s }
        end)
        second = { pcall(conn.read, conn) }
        conn:write("go")
        h.wait_until(loop, function() return first end, nil, "the first reader")
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert.equal("go", c:readn(2))
      c:write("data")
      h.wait_until(loop, function() return first end, nil, "the first reader")
      c:close()
      server:close()
      assert.is_false(second[1])
      assert.matches("another coroutine is already reading", second[2])
      assert.same({ "data" }, first)
    end)
  end)

  it("outside a coroutine raises, and the connection still works", function()
    h.with_loop(function(loop)
      local server = assert(loop:listen({ port = 0 }, function(conn)
        local l = conn:read()
        conn:write("got " .. l)
        conn:read()
      end))
      local _, port = server:address()
      local c
      loop:spawn(function() c = assert(loop:connect("127.0.0.1", port)) end)
      h.wait_until(loop, function() return c end, nil, "the connect")
      -- the server sends nothing before it hears from us: this read must wait
      assert.error_matches(function() c:read() end, "outside a coroutine")
      local got
      loop:spawn(function()
        c:write("x")
        got = c:readn(5)
      end)
      h.wait_until(loop, function() return got end, nil, "the reply")
      assert.equal("got x", got)
      c:close()
      server:close()
    end)
  end)

  it("in a coroutine of the script's own, inside a handler, does not wait on the loop", function()
    h.with_task(function(loop)
      local first, second, later
      local server, port = h.serve(loop, function(conn)
        local co = coroutine.create(function() return conn:read() end)
        first = { coroutine.resume(co) }   -- the read yields to this resume
        second = { coroutine.resume(co) }  -- and raises when resumed by the script
        later = conn:readn(4)              -- the handler itself still reads
        conn:write("got " .. later)
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      -- no data before the handler has tried
      h.wait_until(loop, function() return second end, nil, "the second resume")
      c:write("data")
      assert.equal("got data", c:readn(8))
      c:close()
      server:close()
      assert.is_true(first[1])
      assert.is_false(second[1])
      assert.matches("must be called from a coroutine", second[2])
    end)
  end)

  it("must be called from a coroutine", function()
    h.with_loop(function(loop)
      local server = assert(loop:listen({ port = 0 }, function() end))
      local _, port = server:address()
      local s = h.defer(assert(net.socket(net.INET, net.STREAM)))
      assert(net.connect(s, "127.0.0.1", port))
      assert.error_matches(function() loop:connect("127.0.0.1", port) end,
        "must be called from a coroutine")
    end)
  end)
end)

describe("conn:readline", function()
  it("splits lines, strips \\n and \\r\\n, keeps the rest for read", function()
    h.with_task(function(loop)
      local got = {}
      local server, port = h.serve(loop, function(conn)
        for _ = 1, 3 do got[#got + 1] = conn:readline() end
        local rest = conn:read()
        while rest and #rest < 4 do  -- the rest, where it comes byte by byte
          local more = conn:read()
          rest = more and rest .. more
        end
        got[#got + 1] = rest
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert(c:write("one\r\ntw"))
      -- "tw" has arrived with "one": the next line comes in two parts
      h.wait_until(loop, function() return #got == 1 end, nil, "the first line")
      assert(c:write("o\n\nrest"))
      h.wait_until(loop, function() return #got == 4 end, nil, "the rest")
      c:close()
      server:close()
      assert.same({ "one", "two", "", "rest" }, got)
    end)
  end)

  it("bounds the line: nil, 'line too long' past max", function()
    h.with_task(function(loop)
      local r
      local server, port = h.serve(loop, function(conn)
        r = { conn:readline(100) }
        local ok = conn:write("bye\n")
        assert(ok)
      end, { max_line = 1000 })
      local c = assert(loop:connect("127.0.0.1", port))
      -- one byte past max: the handler reads all of it, so its close after
      -- "bye" is an end of stream (a close with input unread would reset,
      -- failing the client's write if it were still sending)
      c:write(string.rep("x", 101))
      assert.equal("bye", c:readline())
      c:close()
      server:close()
      assert.same({ nil, "line too long" }, r)
    end)
  end)

  it("returns nil, 'closed' on a partial line at EOF", function()
    h.with_task(function(loop)
      local r
      local server, port = h.serve(loop, function(conn) r = { conn:readline() } end)
      local c = assert(loop:connect("127.0.0.1", port))
      c:write("partial")
      c:shutdown("w")
      assert.same({ nil, "closed" }, { c:read() })
      c:close()
      server:close()
      assert.same({ nil, "closed" }, r)
    end)
  end)
end)

describe("conn:readn", function()
  it("waits for exactly n bytes", function()
    h.with_task(function(loop)
      local r
      local n = partial.bulk(10000, 1000)  -- bytes in each of 10 writes
      local server, port = h.serve(loop, function(conn) r = conn:readn(10 * n) end)
      local c = assert(loop:connect("127.0.0.1", port))
      for _ = 1, 10 do
        assert(c:write(string.rep("y", n)))
        loop:sleep(0.001)
      end
      c:read()
      c:close()
      server:close()
      assert.equal(string.rep("y", 10 * n), r)
    end)
  end)
end)

describe("conn:write", function()
  it("echoes 16 MiB (128 KiB under the partial-I/O injector) intact", function()
    h.with_task(function(loop)
      local server, port = h.serve(loop, h.echo)
      local c = assert(loop:connect("127.0.0.1", port))
      local blocks = partial.bulk(256, 2)  -- of 64 KiB
      local N = blocks * 65536
      local payload = {}
      for i = 1, blocks do payload[i] = string.rep(string.char(i % 256), 65536) end
      payload = table.concat(payload)
      loop:spawn(function()
        assert(c:write(payload))
        assert(c:shutdown("w"))
      end)
      local parts, got = {}, 0
      while true do
        local s = c:read(65536)
        if not s then break end
        parts[#parts + 1] = s
        got = got + #s
      end
      assert.equal(N, got)
      assert.is_true(table.concat(parts) == payload)
      c:close()
      server:close()
      assert.is_true(server:stats().max_queued <= 65536)
    end, 20)
  end)

  it("never buffers past the high-water mark with a slow reader", function()
    h.with_task(function(loop)
      local hwm = 32768
      local wrote
      -- of 10,000 bytes: 4 MB, or 200 kB (more than the ~100 kB the kernel
      -- takes at once with this sndbuf, and hwm)
      local chunks = partial.bulk(400, 20)
      local server, port = h.serve(loop, function(conn)
        assert(conn:setoption("sndbuf", 8192))  -- the kernel holds little
        local chunk = string.rep("z", 10000)
        for _ = 1, chunks do
          assert(conn:write(chunk))
          assert.is_true(conn:pending() <= hwm)
        end
        wrote = true
      end, { hwm = hwm })
      local c = assert(loop:connect("127.0.0.1", port))
      local got, pause_at = 0, 65536
      while true do
        local s = c:read(4096)
        if not s then break end
        got = got + #s
        if got >= pause_at then  -- a slow reader
          pause_at = pause_at + 65536
          loop:sleep(0.001)
        end
      end
      assert.equal(chunks * 10000, got)
      assert.is_true(wrote)
      local st = server:stats()
      assert.is_true(st.max_queued > 0, "the buffer was used")
      assert.is_true(st.max_queued <= hwm)
      c:close()
      server:close()
    end, 20)
  end)

  it("returns an error when the peer resets mid-write", function()
    h.with_task(function(loop)
      local result
      local server, port = h.serve(loop, function(conn)
        local chunk = string.rep("r", 65536)
        for _ = 1, 1000 do
          local ok, err = conn:write(chunk)
          if not ok then
            result = err
            return
          end
        end
        result = "wrote everything"
      end)
      -- a raw client that reads a little, then resets (SO_LINGER 0)
      local c = assert(loop:connect("127.0.0.1", port))
      assert(c:read(1000))
      assert(c:setoption("linger", 0))
      c:close(true)
      h.wait_until(loop, function() return result end, nil, "the write to fail")
      assert.is_string(result)
      assert.not_equal("wrote everything", result)
      assert.equal(0, server:stats().active)
      server:close()
    end)
  end)

  it("raises for a second writer while the first waits above the high-water mark", function()
    h.with_task(function(loop)
      -- far more than hwm and what the kernel takes at once: ~4 MB by
      -- default, ~100 kB with sndbuf 8192 (set under the injector only:
      -- elsewhere 8 MiB through it takes 5 s, each 64 KiB loopback segment
      -- waiting for a delayed ACK)
      local big = partial.bulk(8 * 1024 * 1024, 256 * 1024)
      local second
      local server, port = h.serve(loop, function(conn)
        if partial.ON then assert(conn:setoption("sndbuf", 8192)) end
        local done = false
        loop:spawn(function()
          assert(conn:write(string.rep("a", big)))
          done = true
        end)
        second = { pcall(conn.write, conn, "MARK") }  -- the first one waits now
        -- the handler's return would close the connection
        h.wait_until(loop, function() return done end, nil, "the first write")
      end, { hwm = 65536 })
      local c = assert(loop:connect("127.0.0.1", port))
      local parts, n = {}, 0
      while true do
        local s = c:read(65536)
        if not s then break end
        parts[#parts + 1] = s
        n = n + #s
      end
      c:close()
      server:close()
      assert.is_false(second[1])
      assert.matches("another coroutine is already writing", second[2])
      local all = table.concat(parts)
      assert.equal(big, #all)
      assert.is_nil(all:find("[^a]"))
    end)
  end)

  it("makes no syscall for an empty write: a pending reset reaches the next read", function()
    h.with_task(function(loop)
      local wrote, reset, res = false, false, nil
      local server, port = h.serve(loop, function(conn)
        assert(conn:write("hello"))  -- the client never reads it
        -- all of it in the kernel (a slow network takes it a byte at a
        -- time): nothing queued for the empty write to flush
        assert(conn:flush())
        wrote = true
        h.wait_until(loop, function() return reset end, nil, "the client's reset")
        res = { w = { conn:write("") }, r = { conn:read() } }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return wrote end, nil, "the handler's write")
      c:close()  -- "hello" unread: the close sends a reset
      reset = true
      h.wait_until(loop, function() return res end, nil, "the handler's read")
      server:close()
      assert.same({ true }, res.w)
      assert.is_nil(res.r[1])
      assert.equal(net.errno.ECONNRESET, res.r[3])
    end)
  end)

  it("accepts numbers, raises on other types", function()
    h.with_task(function(loop)
      local errs
      local server, port = h.serve(loop, function(conn)
        assert(conn:write(42))
        errs = { pcall(conn.write, conn, {}) }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      assert.equal("42", c:readn(2))
      c:close()
      server:close()
      assert.is_false(errs[1])
      assert.matches("bad argument #1 to 'write'", errs[2])
    end)
  end)
end)

describe("conn:close and handler return", function()
  it("flushes queued output before the socket closes", function()
    h.with_task(function(loop)
      -- far more than the kernel takes at once (~100 kB with this sndbuf);
      -- an hwm that holds it all: the write queues the rest and returns
      local size = partial.bulk(1000000, 200000)
      local queued
      local server, port = h.serve(loop, function(conn)
        assert(conn:setoption("sndbuf", 8192))
        assert(conn:write(string.rep("q", size)))
        queued = conn:pending()
      end, { hwm = size })
      local c = assert(loop:connect("127.0.0.1", port))
      local got = 0
      while true do
        local s = c:read(65536)
        if not s then break end
        got = got + #s
      end
      assert.equal(size, got)
      assert.is_true(queued > 0, "output was queued at the close")
      c:close()
      server:close()
    end)
  end)

  it("wakes a coroutine waiting on the connection with nil, 'closed'", function()
    h.with_task(function(loop)
      local server, port = h.serve(loop, function(conn) conn:read() end)
      local c = assert(loop:connect("127.0.0.1", port))
      local r
      loop:spawn(function() r = { c:read() } end)
      c:close()
      h.wait_until(loop, function() return r end, nil, "the waiting read")
      assert.same({ nil, "closed" }, r)
      assert.same({ nil, "closed" }, { c:write("x") })
      assert.is_true(c:close())  -- idempotent
      server:close()
    end)
  end)

  it("logs a raising handler and closes only its connection", function()
    local messages
    h.with_task(function(loop)
      messages = h.expect_log("handler exploded")
      local server, port = h.serve(loop, function(conn)
        local line = conn:readline()
        if line == "boom" then error("handler exploded") end
        conn:write("ok " .. line .. "\n")
        conn:write((conn:readline() or "?") .. "\n")
      end)
      local good = assert(loop:connect("127.0.0.1", port))
      local bad = assert(loop:connect("127.0.0.1", port))
      good:write("a\n")
      assert.equal("ok a", good:readline())
      bad:write("boom\n")
      assert.same({ nil, "closed" }, { bad:read() })
      good:write("still here\n")
      assert.equal("still here", good:readline())
      good:close()
      bad:close()
      server:close()
    end)
    assert.equal(1, #messages)
    assert.matches("handler exploded", messages[1])
    assert.matches("traceback", messages[1])
  end)

  it("closes a raising handler's to-be-closed variables, then serves on", function()
    local messages
    local closed = 0
    h.with_task(function(loop)
      messages = h.expect_log("^handler failed %(peer 127%.0%.0%.1:%d+%): table: ")
      local server, port = h.serve(loop, function(conn)
        local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
        local line = conn:readline()
        if line == "boom" then error({ code = 7 }) end  -- not a string
        conn:write("ok\n")
        return guard
      end)
      for _, line in ipairs({ "boom", "fine", "boom", "fine" }) do
        local c = assert(loop:connect("127.0.0.1", port))
        c:write(line .. "\n")
        if line == "boom" then
          assert.same({ nil, "closed" }, { c:read() })
        else
          assert.equal("ok", c:readline())
          assert.same({ nil, "closed" }, { c:read() })
        end
        c:close()
      end
      assert.equal(0, server:stats().active)
      server:close()
    end)
    assert.equal(4, closed)
    assert.equal(2, #messages)
    assert.matches("handler failed %(peer 127%.0%.0%.1:%d+%): table: ", messages[1])
  end)
end)

describe("a raising handler's to-be-closed variables", function()
  it("cannot wait on the loop, and the loop serves on", function()
    h.with_task(function(loop)
      h.expect_log("handler exploded")
      local closeerr
      local server, port = h.serve(loop, function(conn)
        local guard <close> = setmetatable({}, { __close = function()
          local ok, e = pcall(loop.sleep, loop, 0.01)
          closeerr = ok and "waited" or tostring(e)
        end })
        local line = conn:readline()  -- waits: the loop resumes it with data
        if line == "boom" then error("handler exploded") end
        conn:write("ok\n")
        return guard
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      h.wait_until(loop, function() return server:stats().active == 1 end, nil,
        "the handler to wait in its read")
      c:write("boom\n")
      assert.same({ nil, "closed" }, { c:read() })
      c:close()
      -- a wait registered from the closed coroutine would stop the loop
      -- when it came due; the loop still serves
      loop:sleep(0.05)
      local d = assert(loop:connect("127.0.0.1", port))
      d:write("fine\n")
      assert.equal("ok", d:readline())
      d:close()
      server:close()
      assert.matches("must be called from a coroutine", closeerr)
    end)
  end)
end)

describe("conn:peer, sockname, shutdown", function()
  it("asks the kernel for an accepted peer: nil, message, errno once it has gone", function()
    h.with_task(function(loop)
      local before, after
      local server, port = h.serve(loop, function(conn)
        before = { conn:peer() }
        conn:read()  -- until the client has gone
        loop:sleep(0.05)
        after = { conn:peer() }
        conn:close()
        after.closed = { conn:peer() }
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      local _, cport = c:sockname()
      assert(c:setoption("linger", 0))  -- close sends a reset
      c:close(true)
      h.wait_until(loop, function() return after and after.closed end, nil, "the handler")
      server:close()
      assert.same({ "127.0.0.1", cport }, before)
      assert.is_nil(after[1])
      assert.equal(net.errno.ENOTCONN, after[3])
      assert.same({ nil, "closed" }, after.closed)
    end)
  end)

  it("report addresses and half-close", function()
    h.with_task(function(loop)
      local peer
      local server, port = h.serve(loop, function(conn)
        peer = { conn:peer() }
        local all = {}
        while true do
          local s = conn:read()
          if not s then break end
          all[#all + 1] = s
        end
        conn:write("got " .. table.concat(all))
      end)
      local c = assert(loop:connect("127.0.0.1", port))
      local host, p = c:sockname()
      assert.equal("127.0.0.1", host)
      c:write("data")
      assert(c:shutdown("w"))
      assert.equal("got data", c:readn(8))
      assert.same({ "127.0.0.1", p }, peer)
      assert.same({ "127.0.0.1", port }, { c:peer() })
      c:close()
      assert.equal(-1, c:fileno())
      server:close()
    end)
  end)
end)
