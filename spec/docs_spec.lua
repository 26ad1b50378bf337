-- Keeps the docs honest: every function a C module registers is documented
-- in its LDoc blocks and in the README, and every EPOLL* flag in
-- <sys/epoll.h> is exported (after luv's docscov/bindcov checks).
local slurp = require("support.files").slurp

local readme = slurp("README.md")

-- Names a module exposes: module functions as "mod.name", methods of its
-- userdata types as "Type:name" (from the metatables it registered).
local function exposed(modname, short, types)
  local m = require(modname)
  local out = {}
  for k, v in pairs(m) do
    if type(v) == "function" then out[#out + 1] = { short .. "." .. k, k } end
  end
  for tname, var in pairs(types) do
    local mt = debug.getregistry()[tname]
    assert(mt, tname .. " metatable not registered by " .. modname)
    for k, v in pairs(mt.__index) do
      if type(v) == "function" then out[#out + 1] = { var .. ":" .. k, k } end
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

local modules = {
  { "lepoll.epoll", "epoll", "csrc/epoll.c",
    { ["lepoll.Epoll"] = "ep", ["lepoll.Events"] = "events" } },
  { "lepoll.net", "net", "csrc/net.c", {} },
  { "lepoll.io", "io", "csrc/io.c", { ["lepoll.Fd"] = "fd" } },
  { "lepoll.http1", "http1", "csrc/http1.c", {} },
  { "lepoll.resolver", "resolver", "csrc/resolver.c", { ["lepoll.Resolver"] = "r" } },
  { "lepoll.tls", "tls", "csrc/tls.c",
    { ["lepoll.tls.context"] = "ctx", ["lepoll.tls.session"] = "s" } },
  { "lepoll.process", "process", "csrc/process.c", {} },
}

describe("documentation coverage", function()
  for _, spec in ipairs(modules) do
    local modname, short, src, types = spec[1], spec[2], spec[3], spec[4]
    it("documents every function of " .. modname .. " in README and LDoc", function()
      local csrc = slurp(src) .. slurp("csrc/fdobj.c")
      local missing = {}
      for _, e in ipairs(exposed(modname, short, types)) do
        local qualified, name = e[1], e[2]
        local esc = qualified:gsub("%p", "%%%0")
        if not readme:find(esc .. "%f[^%w_]") then
          missing[#missing + 1] = qualified .. " (README)"
        end
        if not csrc:find("@function " .. name:gsub("%p", "%%%0") .. "%f[^%w_]")
          and not csrc:find("@function [%w_]+[.:]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]") then
          missing[#missing + 1] = qualified .. " (LDoc in " .. src .. ")"
        end
      end
      assert.same({}, missing)
    end)
  end

  it("exports every EPOLL* event flag of <sys/epoll.h>", function()
    local epoll = require "lepoll.epoll"
    -- the preprocessor's view, so bits/epoll.h and multiarch paths count
    local p = assert(io.popen("printf '#include <sys/epoll.h>\\n' | cc -E -dM - 2>/dev/null"))
    local macros = p:read("a")
    p:close()
    local missing, seen = {}, 0
    for name in macros:gmatch("#define EPOLL([%u%d_]+)") do
      local short = name == "_CLOEXEC" and "CLOEXEC" or name
      if not short:find("^_") then  -- EPOLL_CTL_* are operations, not flags
        seen = seen + 1
        if epoll[short] == nil then missing[#missing + 1] = "EPOLL" .. name end
      end
    end
    assert.is_true(seen >= 16, "parsed too few EPOLL names: " .. seen)
    assert.same({}, missing)
  end)
end)

-- make doc into a scratch build folder: the HTML LDoc writes, markdown
-- rendered (Debian's ldoc needs lua-markdown for that).
describe("make doc #doc", function()
  local process = require "support.process"
  local q = process.shquote
  local dir, pages

  lazy_setup(function()
    dir = os.tmpname()
    assert(os.remove(dir))
    local out, ok = process.sh("make -s doc BUILD=" .. q(dir), 300)
    assert(ok, out)
    pages = {}
    for _, m in ipairs({ "epoll", "net", "io", "http1" }) do
      pages[m] = slurp(dir .. "/doc/modules/lepoll." .. m .. ".html")
    end
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  -- A module's intro: from its title to the first section heading.
  local function intro(html)
    return assert(html:match('<h1>Module <code>[^<]+</code></h1>(.-)<h2>'))
  end

  for _, m in ipairs({ "epoll", "net", "io", "http1" }) do
    it("renders the intro of lepoll." .. m .. " as markdown", function()
      local text = intro(pages[m])
      assert.not_matches("`", text)
      assert.matches("<code>", text)
      local _, open = text:gsub("<p>", "")
      local _, close = text:gsub("</p>", "")
      assert.is_true(open >= 2)
      assert.equal(open, close)
    end)
  end

  it("renders lepoll.net's intro and functions without a raw backtick", function()
    local text = intro(pages.net)
    assert.matches("<p>Sockets: INET, INET6 and UNIX; stream and datagram%.</p>", text)
    assert.matches("<code>lepoll%.Fd</code>", text)
    assert.matches("<code>&quot;\\0&quot;</code>", text)
    assert.not_matches("`", (pages.net:gsub("<pre.-</pre>", "")))
  end)
end)
