-- Embedding lepoll in C: make install into a temporary prefix, then C
-- programs built against the installed header and libraries through
-- pkg-config lepoll, and examples/embed (a C epoll loop nesting lepoll's).
local process = require "support.process"
local files = require "support.files"
local client = require "support.client"

local sh = process.shquote
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local SANITIZED = os.getenv("LEPOLL_SANITIZED")
-- What make check-asan builds with: the programs here link the same way.
local SANFLAGS = SANITIZED == "asan" and "-fsanitize=address,undefined -fno-sanitize-recover=all"
  or ""
local MAKEVARS = "BUILD=" .. sh(BUILD) .. (SANITIZED == "asan"
  and " OPT=" .. sh("-O1 -g -fno-omit-frame-pointer") .. " SANFLAGS=" .. sh(SANFLAGS) or "")

-- Builds run without the sanitizer preload (cc and make are not
-- instrumented) and outside the make that runs the specs.
local BUILD_ENV = "env -u LD_PRELOAD -u MAKEFLAGS -u MFLAGS -u MAKELEVEL"

local readfile, writefile, exists = files.slurp, files.writefile, files.exists

-- Run a shell command to the end; raise unless it exits 0. Its output.
local function check(cmd, limit)
  local out, ok, code = process.sh(cmd, limit)
  assert(ok, cmd .. "\nexit " .. tostring(code) .. ":\n" .. out)
  return out
end

local TEST_C = [[
/* Built by spec/embed_spec.lua against the installed lepoll. */
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <lepoll.h>

#if LEPOLL_VERSION_NUM != 100 || LEPOLL_VERSION_MAJOR != 0
#error "unexpected LEPOLL_VERSION_NUM"
#endif

static const char script[] =
  "local epoll, lio = require 'lepoll.epoll', require 'lepoll.io'\n"
  "local r, w = assert(lio.pipe())\n"
  "local rc <close> = r\n"
  "local wc <close> = w\n"
  "local ep <close> = assert(epoll.create())\n"
  "local evs = epoll.events(2)\n"
  "assert(ep:add(r, 42, epoll.IN))\n"
  "assert(lio.write(w, 'through a pipe') == 14)\n"
  "assert(ep:wait(evs, 1000) == 1)\n"
  "local data = evs:get(1)\n"
  "local names = {}\n"
  "for name in pairs(package.preload) do names[#names + 1] = name end\n"
  "table.sort(names)\n"
  "print(data, lio.read(r, 100), table.concat(names, ' '))\n";

int main(void) {
  int ok;
  lua_State *L = luaL_newstate();
  if (L == NULL)
    return 2;
  luaL_openlibs(L);
  lua_pushcfunction(L, lepoll_openlibs);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    return 3;
  luaL_requiref(L, "lepoll.net", luaopen_lepoll_net, 0);
  lua_pop(L, 1);
  printf("%s\n", LEPOLL_VERSION);
  ok = luaL_dostring(L, script) == LUA_OK;
  if (!ok)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  return ok ? 0 : 1;
}
]]

describe("embedding #build", function()
  local prefix, work, pcpath, rpath, nothing

  lazy_setup(function()
    local t = os.tmpname()
    assert(os.remove(t))
    prefix, work = t .. "/prefix", t .. "/work"
    assert(os.execute("mkdir -p " .. sh(prefix) .. " " .. sh(work) .. " " .. sh(t .. "/empty")))
    pcpath = "PKG_CONFIG_PATH=" .. sh(prefix .. "/lib/pkgconfig") .. "; export PKG_CONFIG_PATH;"
    rpath = "-Wl,-rpath," .. prefix .. "/lib"
    nothing = process.no_modules(t .. "/empty")
  end)

  lazy_teardown(function()
    if prefix then os.execute("rm -rf " .. sh(prefix:match("^(.*)/prefix$"))) end
  end)

  describe("make install", function()
    it("installs program, libraries, header, lepoll.pc and the modules", function()
      check(BUILD_ENV .. " make -s " .. MAKEVARS .. " install PREFIX=" .. sh(prefix), 600)
      for _, f in ipairs({ "bin/lepoll", "lib/liblepoll.a", "lib/liblepoll.so",
        "lib/liblepoll.so.0", "lib/liblepoll.so.0.1.0", "include/lepoll.h",
        "lib/pkgconfig/lepoll.pc", "lib/lua/5.4/lepoll/epoll.so",
        "lib/lua/5.4/lepoll/net.so", "lib/lua/5.4/lepoll/io.so",
        "lib/lua/5.4/lepoll/http1.so", "lib/lua/5.4/lepoll/tls.so",
        "lib/lua/5.4/lepoll/process.so" }) do
        assert.is_true(exists(prefix .. "/" .. f), f .. " not installed")
      end
      assert.equal(readfile("csrc/lepoll.h"), readfile(prefix .. "/include/lepoll.h"))
      assert.equal("0.1.0\n", check(pcpath .. " pkg-config --modversion lepoll"))
      local flags = check(pcpath .. " pkg-config --cflags --libs lepoll")
      assert.matches("%-I" .. prefix:gsub("%p", "%%%0") .. "/include", flags)
      assert.matches("%-llepoll", flags)
      assert.matches("%-llua5%.4", flags)
    end)

    it("exports only luaopen_* and lepoll_openlibs from the shared library", function()
      local syms = check("nm -D --defined-only " .. sh(prefix .. "/lib/liblepoll.so")
        .. " | awk '$2 == \"T\" { print $3 }' | sort")
      assert.equal("lepoll_openlibs\nluaopen_lepoll_epoll\nluaopen_lepoll_http1\n"
        .. "luaopen_lepoll_io\nluaopen_lepoll_net\nluaopen_lepoll_process\n"
        .. "luaopen_lepoll_resolver\nluaopen_lepoll_tls\n", syms)
    end)

    it("make uninstall removes all that make install put under DESTDIR", function()
      local stage = work .. "/stage"
      local vars = MAKEVARS .. " PREFIX=/usr/local DESTDIR=" .. sh(stage)
      check(BUILD_ENV .. " make -s " .. vars .. " install", 600)
      local listed = check("cd " .. sh(stage) .. " && find . ! -type d | sort")
      for _, f in ipairs({ "bin/lepoll", "lib/liblepoll.so.0", "include/lepoll.h",
        "lib/pkgconfig/lepoll.pc", "lib/lua/5.4/lepoll/epoll.so",
        "share/lua/5.4/lepoll/init.lua" }) do
        assert.truthy(listed:find("./usr/local/" .. f .. "\n", 1, true), f)
      end
      check(BUILD_ENV .. " make -s " .. vars .. " uninstall")
      assert.equal("", check("cd " .. sh(stage) .. " && find . ! -type d"))
      assert.equal("", check("cd " .. sh(stage) .. " && find . -name lepoll"))
    end)

    it("installs a program that runs with nothing else installed", function()
      local script = work .. "/loaded.lua"
      writefile(script, "print(require('lepoll.epoll') ~= nil, #arg, ...)")
      local out = check(process.program(prefix .. "/bin/lepoll", { script, "x" },
        { env = nothing }))
      assert.equal("true\t1\tx\n", out)
    end)
  end)

  describe("a C program built with pkg-config lepoll", function()
    local expect_preload = "lepoll.epoll lepoll.io lepoll.net"

    lazy_setup(function()
      local names = {}
      for _, m in ipairs(files.framework_modules()) do names[#names + 1] = m[1] end
      local cmods = { "lepoll.epoll", "lepoll.http1", "lepoll.io", "lepoll.net",
        "lepoll.process", "lepoll.resolver", "lepoll.tls" }
      for _, n in ipairs(cmods) do names[#names + 1] = n end
      table.sort(names)
      expect_preload = table.concat(names, " ")
      writefile(work .. "/test.c", TEST_C)
    end)

    it("links the shared library and opens every module", function()
      check(pcpath .. " " .. BUILD_ENV .. " cc -std=c11 -Wall -Wextra -Werror " .. SANFLAGS
        .. " -o " .. sh(work .. "/test-shared") .. " " .. sh(work .. "/test.c")
        .. " $(pkg-config --cflags --libs lepoll) " .. rpath)
      assert.matches("liblepoll%.so%.0 => " .. prefix:gsub("%p", "%%%0"),
        check(BUILD_ENV .. " ldd " .. sh(work .. "/test-shared")))
      local out = check(process.program(work .. "/test-shared", {}, { env = nothing }))
      assert.equal("0.1.0\n42\tthrough a pipe\t" .. expect_preload .. "\n", out)
    end)

    it("links the static library", function()
      check(pcpath .. " " .. BUILD_ENV .. " cc -std=c11 -Wall -Wextra -Werror " .. SANFLAGS
        .. " -o " .. sh(work .. "/test-static") .. " " .. sh(work .. "/test.c")
        .. " $(pkg-config --cflags lepoll) " .. sh(prefix .. "/lib/liblepoll.a")
        .. " $(pkg-config --libs lua5.4) -lm $(pkg-config --libs openssl)")
      assert.is_nil(check(BUILD_ENV .. " ldd " .. sh(work .. "/test-static")):find("liblepoll"))
      local out = check(process.program(work .. "/test-static", {}, { env = nothing }))
      assert.equal("0.1.0\n42\tthrough a pipe\t" .. expect_preload .. "\n", out)
    end)
  end)

  describe("examples/embed", function()
    local embed

    lazy_setup(function()
      embed = work .. "/embed"
      check(pcpath .. " " .. BUILD_ENV .. " make -s -C examples/embed EMBED=" .. sh(embed)
        .. " CFLAGS=" .. sh("-O1 -g -std=c11 -Wall -Wextra -Werror " .. SANFLAGS)
        .. " LDFLAGS=" .. sh(rpath))
    end)

    -- p.pid is the program's own (a shell prints it, then execs the
    -- program), not timeout(1)'s: timeout exits without passing a signal
    -- on when it comes before its fork() has returned in the parent, and
    -- leaves the program running (see host_spec.lua's start).
    local function start(args)
      local p = process.spawn("sh -c " .. sh("echo $$; exec " ..
        process.program(embed, args, { env = nothing })))
      p.pid = assert(tonumber(p:line()), "the program's shell printed no pid")
      return p
    end

    local function counters(rest)
      local t, m, s = rest:match("ticks=(%d+) timer=(%d+) served=(%d+)\n$")
      assert(t, "no counters in: " .. rest)
      return tonumber(t), tonumber(m), tonumber(s)
    end

    it("runs both loops: C ticks, Lua timers, hello clients; ends on SIGTERM", function()
      local p = start({ "-t", "120", "examples/embed/app.lua", "0", "127.0.0.1" })
      finally(function() p:close() end)
      local host, port = p:listening()
      assert.equal("127.0.0.1", host)
      -- the Lua timer reports the C tick count it sees: both loops advance
      local last = -1
      for i = 1, 3 do
        local n, ticks = (p:line() or ""):match("^timer (%d+) ticks (%d+)$")
        assert.equal(i, tonumber(n))
        assert.is_true(tonumber(ticks) > last)
        last = tonumber(ticks)
      end
      for _ = 1, 3 do assert.equal("hello\n", client.fetch(port)) end
      assert.is_true(p:kill("TERM"))
      local rest, how, code = p:wait()
      local ticks, timers, served = counters(rest)
      assert.is_true(ticks >= last)
      assert.is_true(timers >= 3)
      assert.equal(3, served)
      assert.equal("exit", how)
      assert.equal(0, code)
    end)

    it("ends by itself after -t seconds", function()
      local p = start({ "-t", "0.3", "examples/embed/app.lua", "0", "127.0.0.1" })
      finally(function() p:close() end)
      assert.matches("^listening on ", p:line() or "")
      local rest, how, code = p:wait()
      local ticks = counters(rest)
      assert.is_true(ticks >= 1)
      assert.equal("exit", how)
      assert.equal(0, code)
    end)

    it("reports a failing script and exits 1", function()
      local script = work .. "/bad.lua"
      writefile(script, "host.count('no such counter')")
      local p = start({ script })
      finally(function() p:close() end)
      local rest, how, code = p:wait()
      assert.equal("", rest)
      assert.matches("bad argument #1 to 'count' %(invalid option 'no such counter'%)", p:stderr())
      assert.equal("exit", how)
      assert.equal(1, code)
    end)
  end)
end)
