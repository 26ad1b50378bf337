-- The lepoll program ($LEPOLL_BUILD/bin/lepoll): lua(1)'s command line,
-- exit status and errors, and event scripts run with nothing installed.
local process = require "support.process"
local files = require "support.files"
local client = require "support.client"

local sh = process.shquote
local BUILD = os.getenv("LEPOLL_BUILD") or "build"
local HOST = BUILD .. "/bin/lepoll"
local fetch, exists = client.fetch, files.exists

-- Scratch files and folders, removed after each test.
local scratch = {}
local function tmpfile(text)
  local name = files.tmpfile(text)
  scratch[#scratch + 1] = name
  return name
end
local function tmpdir()
  local name = os.tmpname()
  assert(os.remove(name))
  assert(os.execute("mkdir -m 700 " .. sh(name)))
  scratch[#scratch + 1] = name
  return name
end
after_each(function()
  for i = #scratch, 1, -1 do
    os.execute("rm -rf " .. sh(scratch[i]))
    scratch[i] = nil
  end
end)

-- The shell command running the host: opts.env, opts.stdin as for
-- process.program (LUA_INIT is unset unless a test sets it).
local function command(args, opts)
  return process.program(HOST, args, opts)
end

-- valgrind's own report ("==pid== ...", e.g. possibly lost blocks after
-- os.exit) is not the program's stderr; errors still show in the status.
local function program_stderr(s)
  return (s:gsub("==%d+==[^\n]*\n?", ""))
end

-- Run the host to completion: stdout, exit code, stderr, how it ended.
local function run(args, opts)
  local p = process.spawn(command(args, opts))
  local out, how, code = p:wait()
  local err = program_stderr(p:stderr())
  p:close()
  return out, code, err, how
end

-- Start the host in the background (a server); close it with :close().
-- p.pid, which :kill and :close signal, is the program's own: a shell
-- prints its pid, then execs the program. timeout(1), whose pid
-- process.spawn gives, exits 128+N without passing a signal on when one
-- arrives before its fork() has returned in the parent, and on a loaded
-- machine the child may have run and written its first line by then: it
-- runs on with its stdout open, and p:wait() with it. opts.limit: seconds
-- before timeout(1) ends it (default 60).
local function start(args, opts)
  local p = process.spawn("sh -c " .. sh("echo $$; exec " .. command(args, opts)),
    { limit = opts and opts.limit })
  p.pid = assert(tonumber(p:line()), "the host's shell printed no pid")
  return p
end

-- A folder with nothing in it, for LUA_PATH and LUA_CPATH.
local function nothing_installed()
  return process.no_modules(tmpdir())
end

describe("lepoll host #build", function()
  it("is built", function()
    assert.is_true(exists(HOST), HOST .. " missing: run make")
  end)

  describe("-v", function()
    it("prints lepoll's and Lua's versions and exits 0", function()
      local out, code, err = run({ "-v" })
      assert.matches("^lepoll 0%.1%.0  Lua 5%.4%.%d+  Copyright", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)
  end)

  describe("-e", function()
    it("runs each chunk in order, attached or separate", function()
      local out, code = run({ "-e", "x = 40", "-ex = x + 1", "-e", "print(x + 1)" })
      assert.equal("42\n", out)
      assert.equal(0, code)
    end)

    it("reports an error in a chunk with a traceback and exits 1", function()
      local out, code, err = run({ "-e", "error('boom')", "-e", "print('not reached')" })
      assert.equal("", out)
      assert.matches("%(command line%):1: boom", err)
      assert.matches("stack traceback:", err)
      assert.equal(1, code)
    end)

    it("reports a syntax error and exits 1", function()
      local _, code, err = run({ "-e", "x = = 1" })
      assert.matches("%(command line%):1:.*near '='", err)
      assert.equal(1, code)
    end)
  end)

  describe("-l", function()
    it("sets a global to require(mod)", function()
      local out, code = run({ "-l", "string", "-e", "print(string == require 'string')" })
      assert.equal("true\n", out)
      assert.equal(0, code)
    end)

    it("takes g=mod, with lepoll's modules built in", function()
      local out, code = run({ "-l", "ep=lepoll.epoll", "-lnet=lepoll.net",
        "-e", "print(type(ep.create), type(net.socket), rawget(_G, 'lepoll.epoll'))" },
        { env = nothing_installed() })
      assert.equal("function\tfunction\tnil\n", out)
      assert.equal(0, code)
    end)

    it("sets global 'mod.x' for mod.x, cut at a '-' as lua does", function()
      local out, code = run({ "-l", "lepoll.io", "-l", "m-v2",
        "-e", "print(type(_G['lepoll.io'].pipe), m, rawget(_G, 'm-v2'))" },
        { env = { "LUA_INIT=package.preload['m-v2'] = function() return 'M' end" } })
      assert.equal("function\tM\tnil\n", out)
      assert.equal(0, code)
    end)

    it("reports a missing module and exits 1", function()
      local _, code, err = run({ "-l", "no_such_module_x", "-e", "print(1)" })
      assert.matches("module 'no_such_module_x' not found", err)
      assert.equal(1, code)
    end)
  end)

  describe("bad options", function()
    local cases = {
      { { "-x" }, "unrecognized option '%-x'" },
      { { "-vx" }, "unrecognized option '%-vx'" },
      { { "--x" }, "unrecognized option '%-%-x'" },
      { { "-Ex" }, "unrecognized option '%-Ex'" },
      { { "-e" }, "'%-e' needs argument" },
      { { "-l" }, "'%-l' needs argument" },
      { { "-e", "-v" }, "'%-e' needs argument" },
    }
    for _, case in ipairs(cases) do
      it("rejects " .. table.concat(case[1], " ") .. " with usage and exit 1", function()
        local out, code, err = run(case[1])
        assert.equal("", out)
        assert.matches(case[2], err)
        assert.matches("usage: .*lepoll %[options%] %[script %[args%]%]", err)
        assert.equal(1, code)
      end)
    end
  end)

  describe("the arg table", function()
    local show = [[
      local t = {}
      for i = -3, #arg do t[#t + 1] = i .. "=" .. tostring(arg[i]) end
      print(table.concat(t, " "))
      print(select("#", ...), ...)
    ]]

    it("has the script at 0, its arguments after, options before", function()
      local script = tmpfile(show)
      local out, code = run({ "-e", "x=1", script, "a", "b c" })
      assert.equal(("-3=%s -2=-e -1=x=1 0=%s 1=a 2=b c\n2\ta\tb c\n"):format(HOST, script), out)
      assert.equal(0, code)
    end)

    it("starts at the program name without a script", function()
      local out, code = run({ "-e", "print(#arg, arg[0], arg[1], arg[2], arg[-1])" })
      assert.equal(("2\t%s\t-e\tprint(#arg, arg[0], arg[1], arg[2], arg[-1])\tnil\n")
        :format(HOST), out)
      assert.equal(0, code)
    end)

    it("passes '--' and what follows it", function()
      local script = tmpfile(show)
      local out, code = run({ "--", script, "-e", "--" })
      assert.equal(("-3=nil -2=%s -1=-- 0=%s 1=-e 2=--\n2\t-e\t--\n"):format(HOST, script), out)
      assert.equal(0, code)
    end)
  end)

  describe("exit status", function()
    local cases = {
      { "return 1", 0 },
      { "os.exit()", 0 },
      { "os.exit(true)", 0 },
      { "os.exit(false)", 1 },
      { "os.exit(3)", 3 },
      { "os.exit(7, true)", 7 },
      { "error('x')", 1 },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " exits " .. case[2], function()
        local _, code, _, how = run({ tmpfile(case[1]) })
        assert.equal("exit", how)
        assert.equal(case[2], code)
      end)
    end
  end)

  describe("a script error", function()
    it("prints the message and a traceback to stderr and exits 1", function()
      local script = tmpfile("local function f() error('deep trouble') end\nprint('before')\nf()\n")
      local out, code, err = run({ script })
      assert.equal("before\n", out)
      assert.matches("^" .. HOST:gsub("%p", "%%%0") .. ": .*:1: deep trouble\n", err)
      assert.matches("stack traceback:\n.*in %a+ 'f'.*in main chunk", err)
      assert.equal(1, code)
    end)

    it("names a non-string error object", function()
      local _, code, err = run({ "-e", "error({})" })
      assert.matches("%(error object is a table value%)", err)
      assert.equal(1, code)
    end)

    it("uses __tostring of an error object", function()
      local _, code, err = run({ "-e",
        "error(setmetatable({}, { __tostring = function() return 'custom' end }))" })
      assert.matches(": custom\n", err)
      assert.equal(1, code)
    end)

    it("reports a script that cannot be opened", function()
      local _, code, err = run({ "/nonexistent/x.lua" })
      assert.matches("cannot open /nonexistent/x%.lua", err)
      assert.equal(1, code)
    end)

    it("reports a syntax error in the script", function()
      local _, code, err = run({ tmpfile("x = = 1") })
      assert.matches(":1: unexpected symbol near '='", err)
      assert.equal(1, code)
    end)
  end)

  describe("standard input", function()
    it("runs '-' with its arguments", function()
      local input = tmpfile("print(arg[0], ...)")
      local out, code = run({ "-", "a", "b" }, { stdin = input })
      assert.equal("-\ta\tb\n", out)
      assert.equal(0, code)
    end)

    it("runs stdin when there is no script and it is not a terminal", function()
      local input = tmpfile("print(6 * 7)")
      local out, code = run({}, { stdin = input })
      assert.equal("42\n", out)
      assert.equal(0, code)
    end)

    it("does not read stdin after -e without -i", function()
      local input = tmpfile("print('from stdin')")
      local out, code = run({ "-e", "print('e')" }, { stdin = input })
      assert.equal("e\n", out)
      assert.equal(0, code)
    end)

    it("reports an error on stdin with its chunk name", function()
      local _, code, err = run({ "-" }, { stdin = tmpfile("error('in stdin')") })
      assert.matches("stdin:1: in stdin", err)
      assert.equal(1, code)
    end)
  end)

  describe("-i", function()
    it("evaluates expressions and statements, several lines too", function()
      local input = tmpfile("1 + 1\nx = 5\nx\nfor i = 1, 2 do\nprint('i' .. i)\nend\n")
      local out, code, err = run({ "-i" }, { stdin = input })
      assert.matches("^lepoll 0%.1%.0  Lua 5%.4", out)
      assert.matches("> 2\n> > 5\n> >> >> i1\ni2\n> \n$", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)

    it("reports errors without ending the session", function()
      local input = tmpfile("error('oops')\nprint('after')\n")
      local out, code, err = run({ "-i" }, { stdin = input })
      assert.matches("stdin:1: oops", err)
      assert.matches("after\n", out)
      assert.equal(0, code)
    end)

    it("uses _PROMPT and runs -e first", function()
      local out, code = run({ "-e", "_PROMPT = 'lp$ '", "-i" }, { stdin = tmpfile("3\n") })
      assert.matches("lp%$ 3\nlp%$ \n$", out)
      assert.equal(0, code)
    end)

    it("prints '=expr' as lua5.4 does, on a first line only", function()
      local input = tmpfile("=1 + 2\n= 'a' .. 'b'\nt = {\n=1}\nt\n")
      local out, code, err = run({ "-i" }, { stdin = input })
      assert.matches("> 3\n> ab\n> >> > nil\n> \n$", out)
      assert.matches("stdin:2: unexpected symbol near '='", err)
      assert.equal(0, code)
    end)

    it("reports a statement left unfinished at the end of input", function()
      local out, code, err = run({ "-i" }, { stdin = tmpfile("for i = 1, 2 do\nprint(i)\n") })
      assert.matches("> >> >> > \n$", out)
      assert.equal("stdin:2: 'end' expected (to close 'for' at line 1) near <eof>\n", err)
      assert.equal(0, code)
    end)

    -- On a terminal (script(1) gives a pty) with the keys "40 + 2", Enter,
    -- Up (history), " + 1" (at the end of the recalled line), Enter, ^D:
    -- 43 comes out only where lines are edited and remembered.
    local function on_terminal(program, env)
      local keys = tmpfile("40 + 2\r\27[A + 1\r\4")
      local cmd = process.program(program, {}, { stdin = "/dev/tty", env = env })
      local out, ok = process.sh("env TERM=xterm script -qec " .. sh(cmd) .. " /dev/null <"
        .. sh(keys), 60)
      assert(ok, out)
      return (out:gsub("\27%[[?%d;]*%a", ""):gsub("\r", ""))
    end

    it("edits lines and keeps history on a terminal, as lua5.4 does", function()
      assert.matches("\n43\n", on_terminal("lua5.4"))   -- the reference
      local out = on_terminal(HOST)
      assert.matches("\nlepoll 0%.1%.0  Lua 5%.4", out)
      assert.matches("\n> 40 %+ 2\n42\n> 40 %+ 2 %+ 1\n43\n", out)
    end)

    it("reads plain lines on a terminal with LEPOLL_NO_READLINE set", function()
      local out = on_terminal(HOST, { "LEPOLL_NO_READLINE=1" })
      assert.matches("\n> 42\n", out)
      assert.not_matches("\n43\n", out)
      assert.matches("stdin: bad binary format", out)
    end)
  end)

  describe("-W", function()
    it("turns warnings on", function()
      local _, code, err = run({ "-W", "-e", "warn('careful')" })
      assert.matches("Lua warning: careful", err)
      assert.equal(0, code)
    end)

    it("leaves them off by default", function()
      local _, code, err = run({ "-e", "warn('careful')" })
      assert.equal("", err)
      assert.equal(0, code)
    end)
  end)

  describe("LUA_INIT", function()
    it("runs LUA_INIT before the options", function()
      local out, code = run({ "-e", "print(x)" }, { env = { "LUA_INIT=x = 7" } })
      assert.equal("7\n", out)
      assert.equal(0, code)
    end)

    it("prefers LUA_INIT_5_4 and runs @file", function()
      local init = tmpfile("x = 'file'")
      local out, code = run({ "-e", "print(x)" },
        { env = { "LUA_INIT=x = 'plain'", "LUA_INIT_5_4=@" .. init } })
      assert.equal("file\n", out)
      assert.equal(0, code)
    end)

    it("is ignored with -E, as LUA_PATH is", function()
      local out, code = run({ "-E", "-e", "print(x, package.path:find('nowhere', 1, true))" },
        { env = { "LUA_INIT=x = 7", "LUA_PATH=/nowhere/?.lua" } })
      assert.equal("nil\tnil\n", out)
      assert.equal(0, code)
    end)

    it("stops with exit 1 when it fails", function()
      local out, code, err = run({ "-e", "print('no')" }, { env = { "LUA_INIT=error('init')" } })
      assert.equal("", out)
      assert.matches("LUA_INIT:1: init", err)
      assert.equal(1, code)
    end)
  end)

  describe("SIGINT", function()
    -- A script that prints "ready" once it spins where the test wants the
    -- interrupt; one SIGINT must end it with exit 1 and "interrupted!".
    local function interrupt(text)
      local p = start({ tmpfile(text) }, { limit = 30 })
      finally(function() p:close() end)
      assert.equal("ready", p:line())
      assert.is_true(p:kill("INT"))
      local rest, how, code = p:wait()
      return rest, program_stderr(p:stderr()), how, code
    end

    it("goes to the program itself, not to timeout(1)", function()
      local p = start({ "-e", "print(require('lepoll.io').getpid())" })
      finally(function() p:close() end)
      local rest, how, code = p:wait()
      assert.equal(p.pid .. "\n", rest)
      assert.equal("exit", how)
      assert.equal(0, code)
    end)

    it("interrupts a running script with a traceback, exit 1", function()
      local rest, err, how, code = interrupt("print('ready') io.stdout:flush() while true do end")
      assert.equal("", rest)
      assert.matches(": interrupted!\nstack traceback:\n.*in main chunk", err)
      assert.equal("exit", how)
      assert.equal(1, code)
    end)

    it("interrupts a coroutine that spins, then the chunk that called it", function()
      local rest, err, how, code = interrupt([[
        local spin = coroutine.wrap(function()
          print('ready') io.stdout:flush()
          while true do end
        end)
        spin()
        print('not reached')
      ]])
      assert.equal("", rest)
      assert.matches("interrupted!\nstack traceback:\n.*in main chunk", err)
      assert.equal("exit", how)
      assert.equal(1, code)
    end)

    it("interrupts each resumer up to the main chunk, nested", function()
      local rest, err, how, code = interrupt([[
        local inner = coroutine.create(function()
          print('ready') io.stdout:flush()
          while true do end
        end)
        local outer = coroutine.create(function()
          local ok, e = coroutine.resume(inner)
          print('outer goes on', ok, e)
          while true do end
        end)
        print('main goes on', coroutine.resume(outer))
        while true do end
      ]])
      assert.equal("", rest)
      assert.matches("interrupted!\nstack traceback:\n.*in main chunk", err)
      assert.equal("exit", how)
      assert.equal(1, code)
    end)

    it("interrupts the main chunk too when it catches the coroutine's error", function()
      -- no later than pcall's return: the main chunk never spins on
      local rest, err, how, code = interrupt([[
        local spin = coroutine.wrap(function()
          print('ready') io.stdout:flush()
          while true do end
        end)
        local ok, e = pcall(spin)
        io.stderr:write('caught: ', tostring(ok), ' ', tostring(e), '\n')
        while true do end
      ]])
      assert.equal("", rest)
      assert.matches("interrupted!\nstack traceback:\n.*in main chunk", err)
      assert.equal("exit", how)
      assert.equal(1, code)
    end)
  end)

  describe("coroutine.resume and coroutine.wrap", function()
    -- The host's own (they tell the SIGINT handler which coroutine runs):
    -- the same results, errors and positions as lua5.4's.
    local script = [[
      local function show(...) print(select("#", ...), ...) end
      show(pcall(coroutine.resume, 1))
      show(pcall(coroutine.resume))
      show(pcall(coroutine.wrap, 1))
      local co = coroutine.create(function(...)
        show("in", ...)
        local x = coroutine.yield(1, nil, 2)
        error("boom " .. tostring(x))
      end)
      show(coroutine.resume(co, "a", nil))
      show(coroutine.resume(co, "x"))
      show(coroutine.resume(co))
      show(coroutine.status(co))
      show(coroutine.resume(coroutine.running()))
      local nested = coroutine.create(function()
        return coroutine.resume(coroutine.running())
      end)
      show(coroutine.resume(nested))
      local w = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) error("werr " .. b) end)
      show(w(1))
      show(pcall(w, "z"))
      show(pcall(w))
      show(pcall(function() w() end))
      local w2 = coroutine.wrap(function() local x; return x.y end)
      show(pcall(function() return w2() end))
      local obj = setmetatable({}, { __tostring = function() return "obj" end })
      local w3 = coroutine.wrap(function() error(obj) end)
      show(tostring(select(2, pcall(w3))))
      local w4 = coroutine.wrap(function()
        local t <close> = setmetatable({}, { __close = function() print("closed") end })
        error("e4")
      end)
      show(pcall(w4))
      local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
      show(gen(), gen(), gen())
      show(coroutine.wrap(function()
        return coroutine.isyieldable(), coroutine.status(coroutine.running())
      end)())
      show(pcall(coroutine.resume, coroutine.create(function(...) return select("#", ...) end),
        table.unpack({}, 1, 200)))
      local tb = coroutine.create(function() coroutine.yield(debug.traceback("tb")) end)
      show(coroutine.resume(tb))
      w()
    ]]

    it("give lua5.4's results, messages and tracebacks", function()
      local file = tmpfile(script)
      local lua = process.spawn("lua5.4 " .. sh(file) .. " </dev/null")
      local want, how, code = lua:wait()
      local want_err = lua:stderr()
      lua:close()
      assert.equal("exit", how)
      assert.equal(1, code)
      assert.matches("closed\n", want)
      assert.matches("^lua5%.4: .*: cannot resume dead coroutine\nstack traceback:\n", want_err)
      local out, hcode, err = run({ file })
      assert.equal(want, out)
      assert.equal(want_err, (err:gsub("^" .. HOST:gsub("%p", "%%%0") .. ":", "lua5.4:")))
      assert.equal(1, hcode)
    end)
  end)

  describe("built-in modules", function()
    it("are preloaded, so nothing needs to be installed", function()
      local mods = { "lepoll.epoll", "lepoll.net", "lepoll.io", "lepoll.http1" }
      for _, m in ipairs(files.framework_modules()) do mods[#mods + 1] = m[1] end
      local script = tmpfile([[
        for _, name in ipairs({...}) do
          assert(package.preload[name], "no preload for " .. name)
          assert(package.searchpath(name, package.path .. ";" .. package.cpath) == nil)
          assert(require(name), name)
          print(name)
        end
      ]])
      local out, code, err = run({ script, table.unpack(mods) }, { env = nothing_installed() })
      assert.equal("", err)
      assert.equal(table.concat(mods, "\n") .. "\n", out)
      assert.equal(0, code)
    end)

    it("run an event script with epoll, net and io against real clients", function()
      local script = tmpfile([[
        local net = require "lepoll.net"
        local epoll = require "lepoll.epoll"
        local lio = require "lepoll.io"
        local s <close> = assert(net.socket(net.INET, net.STREAM))
        assert(net.bind(s, "127.0.0.1", 0))
        assert(net.listen(s))
        local ep <close> = assert(epoll.create())
        local evs = epoll.events(4)
        assert(ep:add(s, 1, epoll.IN))
        print(("listening on %s:%d"):format(net.getsockname(s)))
        io.stdout:flush()
        for i = 1, tonumber(arg[1]) do
          assert(assert(ep:wait(evs, -1)) == 1)
          local c <close> = assert(net.accept(s))
          local msg, at = "hello " .. i .. "\n", 1
          while at <= #msg do  -- a slow network takes a part at a time
            at = at + assert(lio.write(c, msg, at))
          end
        end
      ]])
      local p = start({ script, "3" }, { env = nothing_installed() })
      finally(function() p:close() end)
      local host, port = p:listening()
      assert.equal("127.0.0.1", host)
      for i = 1, 3 do assert.equal("hello " .. i .. "\n", fetch(port)) end
      local rest, how, code = p:wait()
      assert.equal("", rest)
      assert.equal("", program_stderr(p:stderr()))
      assert.equal("exit", how)
      assert.equal(0, code)
    end)
  end)

  describe("examples/hello.lua", function()
    it("serves hello to real clients with nothing installed, stops on SIGTERM", function()
      -- a copy away from the tree: hello.lua adds ../lua and ../build
      -- beside itself to the paths, which must not be what makes it work
      local hello = tmpdir() .. "/hello.lua"
      assert(os.execute("cp examples/hello.lua " .. sh(hello)))
      local p = start({ hello, "0", "127.0.0.1" }, { env = nothing_installed() })
      finally(function() p:close() end)
      local host, port = p:listening()
      assert.equal("127.0.0.1", host)
      assert.is_true(port > 0)
      for _ = 1, 5 do assert.equal("hello\n", fetch(port)) end
      assert.is_true(p:kill("TERM"))
      local _, how, code = p:wait()
      assert.equal("exit", how)
      assert.equal(0, code)
    end)
  end)
end)
