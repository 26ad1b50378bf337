rockspec_format = "3.0"
package = "lepoll"
version = "0.1.0-1"
-- The release archive, as `make dist` makes it from the tag v0.1.0 and the
-- release attaches it (github.com/lepoll/lepoll is a placeholder until the
-- project is published).
source = {
  url = "https://github.com/lepoll/lepoll/releases/download/v0.1.0/lepoll-0.1.0.tar.gz",
  dir = "lepoll-0.1.0",
}
description = {
  summary = "Linux epoll for Lua 5.4, and a small fast server framework on top",
  detailed = [[
lepoll.epoll mirrors epoll(7) one to one (after rustix::event::epoll),
lepoll.net and lepoll.io bind sockets and fds, and require "lepoll" is a
coroutine server framework: listeners, connections, timers, signals.]],
  homepage = "https://github.com/lepoll/lepoll",
  license = "MIT",
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "builtin",
  modules = {
    ["lepoll._conn"] = "lua/lepoll/_conn.lua",
    ["lepoll._connect"] = "lua/lepoll/_connect.lua",
    ["lepoll._heap"] = "lua/lepoll/_heap.lua",
    ["lepoll._http_client"] = "lua/lepoll/_http_client.lua",
    ["lepoll._http_pool"] = "lua/lepoll/_http_pool.lua",
    ["lepoll._http_request"] = "lua/lepoll/_http_request.lua",
    ["lepoll._http_response"] = "lua/lepoll/_http_response.lua",
    ["lepoll._http_server"] = "lua/lepoll/_http_server.lua",
    ["lepoll._listen"] = "lua/lepoll/_listen.lua",
    ["lepoll._log"] = "lua/lepoll/_log.lua",
    ["lepoll._loop"] = "lua/lepoll/_loop.lua",
    ["lepoll._options"] = "lua/lepoll/_options.lua",
    ["lepoll._proxy"] = "lua/lepoll/_proxy.lua",
    ["lepoll._resolve"] = "lua/lepoll/_resolve.lua",
    ["lepoll._signal"] = "lua/lepoll/_signal.lua",
    ["lepoll._timer"] = "lua/lepoll/_timer.lua",
    ["lepoll._tls"] = "lua/lepoll/_tls.lua",
    ["lepoll._watch"] = "lua/lepoll/_watch.lua",
    ["lepoll._activation"] = "lua/lepoll/_activation.lua",
    ["lepoll._role"] = "lua/lepoll/_role.lua",
    ["lepoll._workers"] = "lua/lepoll/_workers.lua",
    ["lepoll.http"] = "lua/lepoll/http.lua",
    ["lepoll"] = "lua/lepoll/init.lua",
    ["lepoll.epoll"] = {
      sources = { "csrc/epoll.c", "csrc/fdobj.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
    },
    ["lepoll.net"] = {
      sources = { "csrc/net.c", "csrc/fdobj.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
    },
    ["lepoll.io"] = {
      sources = { "csrc/io.c", "csrc/fdobj.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
    },
    ["lepoll.http1"] = {
      sources = { "csrc/http1.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
    },
    ["lepoll.resolver"] = {
      sources = { "csrc/resolver.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" }, libraries = { "pthread" },
    },
    ["lepoll.tls"] = {
      sources = { "csrc/tls.c", "csrc/fdobj.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
      libraries = { "ssl", "crypto" },
    },
    ["lepoll.process"] = {
      sources = { "csrc/process.c", "csrc/fdobj.c", "csrc/result.c" },
      defines = { "_GNU_SOURCE" }, incdirs = { "csrc" },
    },
  },
}
-- The specs against the modules `luarocks make` built here, without apt,
-- sudo or the Makefile's build (see test-rock in the Makefile); arguments
-- after `--` go to make, e.g. SPEC=spec/io_spec.lua.
test = {
  type = "command",
  command = "make test-rock",
}
