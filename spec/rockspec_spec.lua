-- The rockspec installs offline with `luarocks make` into a private tree,
-- and the installed modules load and work from that tree alone.
local process = require "support.process"
local files = require "support.files"
local q = process.shquote
local sh = process.sh

describe("rockspec/lepoll-scm-1.rockspec #install", function()
  local tmp
  before_each(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. q(tmp .. "/src")))
  end)
  after_each(function()
    if tmp and tmp:match("^/tmp/") then os.execute("rm -rf " .. q(tmp)) end
  end)

  it("installs with luarocks make and works from the installed tree", function()
    -- build a copy, so luarocks' objects never land in the work tree
    local out, ok = sh("for d in csrc lua rockspec; do if [ -d $d ]; then cp -r $d " ..
      q(tmp .. "/src") .. " || exit 1; fi; done")
    assert(ok, out)
    out, ok = sh("cd " .. q(tmp .. "/src") ..
      " && luarocks --lua-version=5.4 --tree " .. q(tmp .. "/tree") ..
      " make --deps-mode=none rockspec/lepoll-scm-1.rockspec", 600)
    assert(ok, out)
    local probe = [[
      local epoll, io, net = require "lepoll.epoll", require "lepoll.io", require "lepoll.net"
      assert(package.searchpath("lepoll.epoll", package.cpath):find("/tree/", 1, true))
      local ep <close> = epoll.create()
      local r <close>, w = io.pipe()
      ep:add(r, 42, epoll.IN)
      io.write(w, "x")
      local evs = epoll.events(4)
      assert(ep:wait(evs, 1000) == 1)
      local data, flags = evs:get(1)
      assert(data == 42 and flags & epoll.IN ~= 0)
      local a <close>, b = net.socketpair()
      assert(net.send(a, "hi") == 2 and net.recv(b, 10) == "hi")
      local lepoll = require "lepoll"
      assert(package.searchpath("lepoll", package.path):find("/tree/", 1, true))
      local fired = false
      lepoll.after(0.001, function() fired = true; lepoll.stop() end)
      lepoll.run()
      assert(fired)
      print("installed ok")
    ]]
    local lpath = tmp .. "/tree/share/lua/5.4/?.lua;" .. tmp .. "/tree/share/lua/5.4/?/init.lua"
    local cpath = tmp .. "/tree/lib/lua/5.4/?.so"
    out, ok = sh("cd / && env LUA_PATH=" .. q(lpath) .. " LUA_CPATH=" .. q(cpath) ..
      " lua5.4 -e " .. q(probe))
    assert(ok, out)
    assert.equal("installed ok\n", out)
  end)

  it("lists every Lua module of lua/lepoll", function()
    local text = files.slurp("rockspec/lepoll-scm-1.rockspec")
    local mods = files.framework_modules()
    for _, m in ipairs(mods) do
      local name, path = m[1], m[2]
      assert.truthy(text:find('["' .. name .. '"] = "' .. path .. '"', 1, true), name)
    end
    assert.is_true(#mods > 0)
  end)
end)
