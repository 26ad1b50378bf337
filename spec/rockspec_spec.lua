-- Packaging: the rockspecs (scm and the release) list what the tree holds;
-- `luarocks make` and the release's source rock (make dist, luarocks pack,
-- luarocks install) give trees whose modules load and work from that tree
-- alone; the Makefile honours a packager's flags; the shared objects
-- export only their entry points.
local process = require "support.process"
local files = require "support.files"
local q = process.shquote
local sh = process.sh

local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local ROCKSPECS = { "rockspec/lepoll-scm-1.rockspec", "rockspec/lepoll-0.1.0-1.rockspec" }

-- A rockspec's fields, read as LuaRocks does: a Lua file of assignments.
local function load_rockspec(path)
  local env = {}
  assert(load(files.slurp(path), "@" .. path, "t", env))()
  return env
end

-- Run cmd; raise with its output unless it exits 0. Its output.
local function check(cmd, limit)
  local out, ok, code = sh(cmd, limit)
  assert(ok, cmd .. "\nexit " .. tostring(code) .. ":\n" .. out)
  return out
end

-- A fresh temporary folder; removed by the returned function.
local function tmpdir()
  local dir = os.tmpname()
  assert(os.remove(dir))
  assert(os.execute("mkdir -m 700 " .. q(dir)))
  return dir, function() os.execute("rm -rf " .. q(dir)) end
end

-- What a lua5.4 with only the tree's paths can do: load every module,
-- wait on epoll, talk over a socketpair, run the framework's loop.
local PROBE = [[
  local epoll, io, net = require "lepoll.epoll", require "lepoll.io", require "lepoll.net"
  local tree = os.getenv("LEPOLL_TREE")
  assert(package.searchpath("lepoll.epoll", package.cpath):find(tree, 1, true))
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
  assert(require("lepoll.tls").context())
  local lepoll = require "lepoll"
  assert(package.searchpath("lepoll", package.path):find(tree, 1, true))
  local fired = false
  lepoll.after(0.001, function() fired = true; lepoll.stop() end)
  lepoll.run()
  assert(fired)
  print("installed ok")
]]

local function probe_tree(tree)
  local lpath = tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"
  local cpath = tree .. "/lib/lua/5.4/?.so"
  return check("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u LUA_INIT_5_4"
    .. " LUA_PATH=" .. q(lpath) .. " LUA_CPATH=" .. q(cpath) .. " LEPOLL_TREE=" .. q(tree)
    .. " lua5.4 -e " .. q(PROBE))
end

describe("rockspecs", function()
  for _, path in ipairs(ROCKSPECS) do
    it(path .. " lists every Lua module of lua/lepoll, and no other", function()
      local build = load_rockspec(path).build
      local want, got = {}, {}
      for _, m in ipairs(files.framework_modules()) do want[m[1]] = m[2] end
      for name, src in pairs(build.modules) do
        if type(src) == "string" then got[name] = src end
      end
      assert.is_true(next(want) ~= nil)
      assert.same(want, got)
    end)
  end

  it("the release builds, depends and tests as the scm rockspec does", function()
    local scm, rel = load_rockspec(ROCKSPECS[1]), load_rockspec(ROCKSPECS[2])
    for _, field in ipairs({ "rockspec_format", "package", "description", "dependencies",
      "supported_platforms", "build", "test" }) do
      assert.same(scm[field], rel[field], field)
    end
  end)

  it("the release's source is the archive make dist makes, on the homepage's host", function()
    local rel = load_rockspec(ROCKSPECS[2])
    local version = rel.version:match("^(.*)%-%d+$")
    local header = files.slurp("csrc/lepoll.h")
    assert.equal(header:match('#define LEPOLL_VERSION%s+"([^"]+)"'), version)
    assert.equal(ROCKSPECS[2], "rockspec/" .. rel.package .. "-" .. rel.version .. ".rockspec")
    assert.equal("lepoll-" .. version, rel.source.dir)
    assert.matches("/v" .. version:gsub("%p", "%%%0") .. "/lepoll%-"
      .. version:gsub("%p", "%%%0") .. "%.tar%.gz$", rel.source.url)
    local host = rel.description.homepage:match("^https://([^/]+)/")
    assert.truthy(host)
    assert.equal(host, rel.source.url:match("^https://([^/]+)/"))
    assert.equal(rel.description.homepage, load_rockspec(ROCKSPECS[1]).description.homepage)
  end)

  it("tests without apt, sudo or the Makefile's build (make test-rock)", function()
    local rel = load_rockspec(ROCKSPECS[2])
    assert.same({ type = "command", command = "make test-rock" }, rel.test)
    local out = check("make -n test-rock")
    assert.not_matches("deps", out)
    assert.not_matches("sudo", out)
    assert.not_matches("apt", out)
    assert.matches("LEPOLL_CPATH='%./%?%.so' spec/run "
      .. "%-%-exclude%-tags=build,doc,install,lint", out)
  end)
end)

describe("packaging #install", function()
  local tmp, cleanup
  before_each(function() tmp, cleanup = tmpdir() end)
  after_each(function() cleanup() end)

  for _, path in ipairs(ROCKSPECS) do
    it("luarocks lint passes " .. path, function()
      check("luarocks --lua-version=5.4 lint " .. q(path))
    end)
  end

  it("installs with luarocks make and works from the installed tree", function()
    -- build a copy, so luarocks' objects never land in the work tree
    check("mkdir " .. q(tmp .. "/src") .. " && cp -r csrc lua rockspec " .. q(tmp .. "/src"))
    check("cd " .. q(tmp .. "/src") .. " && luarocks --lua-version=5.4 --tree "
      .. q(tmp .. "/tree") .. " make --deps-mode=none rockspec/lepoll-scm-1.rockspec", 600)
    assert.equal("installed ok\n", probe_tree(tmp .. "/tree"))
  end)

  -- The release as a user gets it, offline: the archive of HEAD (make
  -- dist: committed files only), the release rockspec pointing at it,
  -- luarocks pack, then luarocks install of the .src.rock into a new tree.
  it("packs the release into a .src.rock that installs and works", function()
    local out = check("make -s dist BUILD=" .. q(tmp .. "/build"))
    local archive = out:match("(%S+%.tar%.gz)")
    assert.equal(tmp .. "/build/dist/lepoll-0.1.0.tar.gz", archive)
    local listing = check("tar tzf " .. q(archive))
    assert.matches("^lepoll%-0%.1%.0/", listing)
    for _, f in ipairs({ "Makefile", "csrc/epoll.c", "lua/lepoll/init.lua",
      "rockspec/lepoll-0.1.0-1.rockspec" }) do
      assert.truthy(listing:find("\nlepoll-0.1.0/" .. f .. "\n", 1, true), f)
    end
    local text = files.slurp(ROCKSPECS[2])
    local url = load_rockspec(ROCKSPECS[2]).source.url
    local rockspec = tmp .. "/lepoll-0.1.0-1.rockspec"
    files.writefile(rockspec, (text:gsub(url:gsub("%p", "%%%0"), "file://" .. archive)))
    check("cd " .. q(tmp) .. " && luarocks --lua-version=5.4 pack " .. q(rockspec), 600)
    local rock = tmp .. "/lepoll-0.1.0-1.src.rock"
    assert.is_true(files.exists(rock))
    local members = check("unzip -Z1 " .. q(rock) .. " | sort")
    assert.equal("lepoll-0.1.0-1.rockspec\nlepoll-0.1.0.tar.gz\n", members)
    check("cd " .. q(tmp) .. " && luarocks --lua-version=5.4 install " .. q(rock)
      .. " --tree " .. q(tmp .. "/tree") .. " --deps-mode=none", 600)
    assert.equal("installed ok\n", probe_tree(tmp .. "/tree"))
  end)
end)

describe("the Makefile #install", function()
  -- make -n in a new build folder: every compile command, run nothing.
  local function dry(vars)
    local tmp, cleanup = tmpdir()
    local out = check("make -n all BUILD=" .. q(tmp .. "/b") .. " " .. vars)
    cleanup()
    local compiles = {}
    for line in out:gmatch("[^\n]+") do
      if line:find(" %-c ") then compiles[#compiles + 1] = line end
    end
    assert.is_true(#compiles >= 5, out)
    return compiles
  end

  it("honours CPPFLAGS and CFLAGS, and builds without -Werror by default", function()
    for _, line in ipairs(dry("CPPFLAGS=-DLP_PACKAGER_PROBE CFLAGS=-O1")) do
      assert.matches(" %-DLP_PACKAGER_PROBE ", line)
      assert.matches(" %-O1 ", line)
      assert.not_matches("%-Werror", line)
      assert.matches(" %-fvisibility=hidden ", line)
    end
  end)

  it("adds -Werror with WERROR=-Werror, as make test and check do", function()
    for _, line in ipairs(dry("WERROR=-Werror")) do
      assert.matches(" %-Werror ", line)
    end
    for _, target in ipairs({ "test", "check-asan", "check-valgrind" }) do
      assert.matches("WERROR=%-Werror", check("make -n " .. target), target)
    end
  end)
end)

describe("shared objects #build", function()
  local function exported(path)
    assert.is_true(files.exists(path), path .. " missing: run make")
    return check("nm -D --defined-only " .. q(path) .. " | awk '{ print $NF }' | sort")
  end

  it("each C module exports its luaopen_* alone", function()
    for _, m in ipairs({ "epoll", "http1", "io", "net", "process", "resolver", "tls" }) do
      assert.equal("luaopen_lepoll_" .. m .. "\n", exported(BUILD .. "/lepoll/" .. m .. ".so"))
    end
  end)

  it("liblepoll.so exports lepoll_openlibs and the luaopen_* alone", function()
    assert.equal("lepoll_openlibs\nluaopen_lepoll_epoll\nluaopen_lepoll_http1\n"
      .. "luaopen_lepoll_io\nluaopen_lepoll_net\nluaopen_lepoll_process\n"
      .. "luaopen_lepoll_resolver\nluaopen_lepoll_tls\n",
      exported(BUILD .. "/liblepoll.so"))
  end)
end)
