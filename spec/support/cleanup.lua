--- What a spec opens, closed after each test: tracker() returns track(...),
-- which registers every userdata (fds, sockets, epolls) and function (a
-- cleanup to call) among its arguments and returns them all unchanged, and
-- closeall(), which closes and calls them, last first, and forgets them.
local M = {}

-- Close o once: __close is idempotent and never raises on lepoll objects.
local function close(o)
  if type(o) == "function" then return o() end
  local mt = getmetatable(o)
  if type(mt) == "table" and mt.__close then return mt.__close(o) end
  if not tostring(o):find("(closed)", 1, true) then o:close() end
end

function M.tracker()
  local opened = {}
  local function track(...)
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      local t = type(v)
      if t == "userdata" or t == "function" then opened[#opened + 1] = v end
    end
    return ...
  end
  local function closeall()
    for i = #opened, 1, -1 do
      local o = opened[i]
      opened[i] = nil
      close(o)
    end
  end
  return track, closeall
end

return M
