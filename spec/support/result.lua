--- The failure triple a lepoll function returns when its syscall fails:
-- exactly three values, nil, a message string and the errno number.
local assert = require "luassert"  -- busted's assert, as in the specs

local M = {}

--- Assert that the values after errno are nil, a string, errno (and no more).
function M.assert_fail(errno, ...)
  local n = select("#", ...)
  local v, msg, en = ...
  assert.equal(3, n)
  assert.is_nil(v)
  assert.is_string(msg)
  assert.equal(errno, en)
end

return M
