/* lepoll.h - the C API for programs that host a Lua 5.4 VM with lepoll, epoll(7). */
#ifndef LEPOLL_H
#define LEPOLL_H

/*
 * Embedding lepoll
 * ================
 *
 * lepoll is Linux epoll for Lua 5.4: seven C modules (lepoll.epoll,
 * lepoll.net, lepoll.io, lepoll.http1, lepoll.resolver, lepoll.tls,
 * lepoll.process) and a framework written in Lua (require "lepoll").
 * liblepoll (static: liblepoll.a, shared: liblepoll.so) holds all of them,
 * the Lua sources compiled in, so a host needs nothing installed besides
 * the library itself:
 *
 *     #include <lua.h>
 *     #include <lauxlib.h>
 *     #include <lualib.h>
 *     #include <lepoll.h>
 *
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     lepoll_openlibs(L);     // package.preload["lepoll"], ["lepoll.epoll"], ...
 *     if (luaL_dofile(L, "app.lua") != LUA_OK) ...
 *
 * Build with pkg-config (the file lepoll.pc requires lua5.4, so the
 * flags for Lua itself come along):
 *
 *     cc -o host host.c $(pkg-config --cflags --libs lepoll)
 *
 * Nesting the loop.  A host with its own event loop never calls
 * lepoll.run().  It adds lepoll.fileno() (an epoll fd, readable whenever
 * lepoll has an fd ready or a timer due: the timers live behind a timerfd
 * inside that epoll set) to its own epoll/poll set, and calls
 * lepoll.step(0) whenever that fd is readable.  lepoll.timeout() gives the
 * seconds until lepoll wants to run again (0 when it has work now), for
 * hosts that prefer to bound their own wait with it: the cqueues
 * pollfd / timeout / step protocol.  examples/embed/ shows the whole thing.
 *
 * Every function here follows the lua_CFunction convention, so it can be
 * called directly or, to catch a memory error, through lua_pcall:
 *
 *     lua_pushcfunction(L, lepoll_openlibs);
 *     if (lua_pcall(L, 0, 0, 0) != LUA_OK) ...
 */

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEPOLL_VERSION_MAJOR 0
#define LEPOLL_VERSION_MINOR 1
#define LEPOLL_VERSION_PATCH 0
/* The library's version as a string, "MAJOR.MINOR.PATCH". */
#define LEPOLL_VERSION       "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define LEPOLL_VERSION_NUM   100

/*
 * lepoll_openlibs - make every lepoll module requirable.
 *
 * Stores a loader for each module in package.preload (the registry's
 * LUA_PRELOAD_TABLE, so it may be called before or after luaL_openlibs):
 * "lepoll.epoll", "lepoll.net", "lepoll.io", "lepoll.http1",
 * "lepoll.resolver", "lepoll.tls", "lepoll.process" (the C
 * modules), "lepoll" and every "lepoll.X" of the framework (the Lua
 * sources built into the library).  Nothing is loaded yet: require "lepoll" does that, and
 * package.preload comes first among the searchers, so the built-in copy
 * wins over any installed one.  Requires only the base library to be
 * usable; the framework itself needs the standard libraries
 * (luaL_openlibs).
 *
 * Pushes nothing and returns 0.  Raises a Lua error only on memory
 * exhaustion (call it through lua_pcall to catch that).
 */
int lepoll_openlibs(lua_State *L);

/*
 * The C modules one by one, for hosts that register only some of them,
 * e.g. luaL_requiref(L, "lepoll.epoll", luaopen_lepoll_epoll, 0).
 * Each pushes its module table and returns 1, as the standard luaopen_*.
 *
 * luaopen_lepoll_epoll - epoll(7): create, add, modify, delete, wait.
 * luaopen_lepoll_net   - sockets: socket, bind, listen, accept, connect, ...
 * luaopen_lepoll_io    - fds: read, write, close, pipe, eventfd, timerfd, ...
 * luaopen_lepoll_http1 - HTTP/1.1 message syntax: request and response heads, chunks, trailers
 * luaopen_lepoll_resolver - getaddrinfo(3) on a thread pool, answers through an eventfd
 * luaopen_lepoll_tls   - TLS (OpenSSL 3) sessions on a socket fd, and their contexts
 * luaopen_lepoll_process - processes: fork, reap through pidfds, signal, execve with fds at 3..
 */
int luaopen_lepoll_epoll(lua_State *L);
int luaopen_lepoll_net(lua_State *L);
int luaopen_lepoll_io(lua_State *L);
int luaopen_lepoll_http1(lua_State *L);
int luaopen_lepoll_resolver(lua_State *L);
int luaopen_lepoll_tls(lua_State *L);
int luaopen_lepoll_process(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
