-- The Lua sources, specs, examples and benchmark scripts are luacheck clean
-- (.luacheckrc: Lua 5.4, busted's globals in spec/ only).
describe("luacheck #lint", function()
  it("reports no warnings and no errors", function()
    local p = assert(io.popen("luacheck --formatter=plain --no-color lua spec examples bench 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert(ok, out)
    assert.equal("", out)
  end)
end)
