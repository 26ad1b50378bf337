/* resolve_embed_close.c - spec/resolve_spec.lua's embedder: closes its Lua
 * state while a lepoll.resolver thread waits inside getaddrinfo (the
 * "block" name of resolve_gai_shim.c, preloaded) and another has just been
 * woken by the pool's close, then lets the lookup return and goes on.
 * lua_close unloads the module: its code must stay mapped for the threads.
 *   resolve_embed_close module CPATH     require "lepoll.resolver" by CPATH
 *   resolve_embed_close lib LIBLEPOLL    package.loadlib(LIBLEPOLL, ...)
 * Prints "survived" and exits 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char setup[] =
  "local mode, where = ...\n"
  "local resolver\n"
  "if mode == 'module' then\n"
  "  package.cpath = where\n"
  "  resolver = require 'lepoll.resolver'\n"
  "else\n"
  "  resolver = assert(package.loadlib(where, 'luaopen_lepoll_resolver'))()\n"
  "end\n"
  "P = assert(resolver.new(2, 4))\n"
  "assert(P:submit('block1'))\n";

/* A second thread answers and waits idle: the close wakes it to leave.
 * main() asks `answered` until it is true, sleeping between (a spin would
 * starve the pool's threads under valgrind, which runs one at a time). */
static const char submit_fast[] = "assert(P:submit('fast1'))\n";
static const char answered[] =
  "local st = P:stats()\n"
  "if st.idle < 1 or st.done < 1 then error('not yet') end\n"
  "assert(st.threads == 2)\n";

/* Whether code ran without error within seconds, asked every millisecond. */
static int wait_for(lua_State *L, const char *code, double seconds) {
  struct timespec ms = { 0, 1000000 };
  for (long i = 0; i < (long)(seconds * 1000); i++) {
    if (luaL_dostring(L, code) == LUA_OK) return 1;
    lua_pop(L, 1);
    nanosleep(&ms, NULL);  /* EINTR: one wait shorter, harmless */
  }
  return 0;
}

static int run(lua_State *L, const char *code, const char *a, const char *b) {
  int n = 0;
  if (luaL_loadstring(L, code) != LUA_OK) goto fail;
  if (a) {
    lua_pushstring(L, a);
    lua_pushstring(L, b);
    n = 2;
  }
  if (lua_pcall(L, n, 0, 0) == LUA_OK) return 0;
fail:
  fprintf(stderr, "%s\n", lua_tostring(L, -1));
  return -1;
}

int main(int argc, char **argv) {
  int (*wait_blocked)(int, double);
  int (*release_and_wait)(double);
  lua_State *L;
  if (argc != 3 || (strcmp(argv[1], "module") != 0 && strcmp(argv[1], "lib") != 0)) {
    fputs("usage: resolve_embed_close module CPATH | lib LIBLEPOLL\n", stderr);
    return 2;
  }
  *(void **)&wait_blocked = dlsym(RTLD_DEFAULT, "gai_shim_wait_blocked");
  *(void **)&release_and_wait = dlsym(RTLD_DEFAULT, "gai_shim_release_and_wait");
  if (!wait_blocked || !release_and_wait) {
    fputs("resolve_gai_shim.so is not preloaded\n", stderr);
    return 2;
  }
  L = luaL_newstate();
  if (!L) return 2;
  luaL_openlibs(L);
  if (run(L, setup, argv[1], argv[2]) != 0) return 1;
  /* generous bounds: valgrind runs this ten times slower */
  if (!wait_blocked(1, 60.0)) {
    fputs("the lookup never reached getaddrinfo\n", stderr);
    return 1;
  }
  if (run(L, submit_fast, NULL, NULL) != 0) return 1;
  if (!wait_for(L, answered, 60.0)) {
    fputs("no idle thread\n", stderr);
    return 1;
  }
  lua_close(L);
  puts("state closed");
  fflush(stdout);
  if (!release_and_wait(60.0)) {
    fputs("the pool's threads did not end\n", stderr);
    return 1;
  }
  puts("survived");
  return 0;
}
