-- lepoll framework: outbound connections (lepoll.connect) over IPv4,
-- IPv6 and unix sockets.
local net = require "lepoll.net"
local h = require "support.framework"

describe("lepoll.connect", function()
  it("fails with the errno of a refused connection", function()
    h.with_task(function(loop)
      -- bound but never listening: refused, and the port stays ours (no
      -- other socket or self-connect from an ephemeral port can answer)
      local s <close> = assert(net.socket(net.INET, net.STREAM))
      assert(net.bind(s, "127.0.0.1", 0))
      local _, port = net.getsockname(s)
      local c, msg, en = loop:connect("127.0.0.1", port)
      assert.is_nil(c)
      assert.is_string(msg)
      assert.equal(net.errno.ECONNREFUSED, en)
    end)
  end)

  it("connects over IPv6 and unix sockets", function()
    h.with_task(function(loop)
      local s6 = assert(loop:listen({ host = "::1", port = 0 }, h.echo))
      local _, p6 = s6:address()
      local c = assert(loop:connect("::1", p6, 1))
      c:write("six")
      assert.equal("six", c:readn(3))
      c:close()
      s6:close()
      local path = os.tmpname()
      os.remove(path)
      local su = assert(loop:listen({ path = path }, h.echo))
      assert.equal(path, su:address())
      local cu = assert(loop:connect(path))
      cu:write("unix")
      assert.equal("unix", cu:readn(4))
      cu:close()
      su:close()
      assert.is_nil(io.open(path, "r"))  -- close removed the socket file
    end)
  end)

  it("raises on bad arguments", function()
    h.with_task(function(loop)
      for _, case in ipairs({
        { { 1, 2 }, "bad argument #1 to 'connect' %(string expected, got number%)" },
        { { "127.0.0.1", 70000 }, "bad argument #2 to 'connect' %(port 0..65535" },
        { { "127.0.0.1", 1.5 }, "bad argument #2 to 'connect' %(port 0..65535" },
        { { "127.0.0.1", 80, -1 },
          "bad argument #3 to 'connect' %(option 'timeout' must be a positive number, got %-1%)" },
        { { "127.0.0.1", 80, "x" }, "bad argument #3 to 'connect' %(number or table" },
      }) do
        assert.error_matches(function() loop:connect(table.unpack(case[1])) end, case[2])
      end
    end)
  end)
end)
