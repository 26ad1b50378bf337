local process = require "support.process"

describe("support.process", function()
  it("runs a Lua child with the spec's paths and collects its output", function()
    local probe = [[print(package.path:match("lua/%?%.lua") ~= nil); io.stdout:flush(); os.exit(3)]]
    local p = process.spawn(process.lua_command() .. " -e " .. process.shquote(probe))
    finally(function() p:close() end)
    assert.equal("true", p:line())
    local rest, how, code = p:wait()
    assert.equal("", rest)
    assert.equal("exit", how)
    assert.equal(3, code)
  end)

  it("signals a child by pid", function()
    local p = process.spawn("sh -c 'echo up; exec sleep 30'")
    finally(function() p:close() end)
    assert.equal("up", p:line())
    assert.is_true(p:kill("TERM"))
    local _, how, code = p:wait()
    assert.is_true(how == "signal" or code ~= 0)
  end)
end)
