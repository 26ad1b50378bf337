/* embedded.h - what the build generates for liblepoll: the built-in modules, lua(1) package.preload. */
#ifndef LEPOLL_EMBEDDED_H
#define LEPOLL_EMBEDDED_H

#include <stddef.h>

#include <lua.h>

/* One Lua source of the framework, compiled into the library by
 * csrc/host/embed.lua (lua/lepoll/X.lua -> "lepoll.X", init.lua ->
 * "lepoll"). The table ends with a NULL name. */
typedef struct lp_LuaSource {
  const char *name;            /* module name for require */
  const char *chunkname;       /* "@lepoll/X.lua": what tracebacks show */
  const unsigned char *text;   /* the source, not NUL-terminated */
  size_t len;
} lp_LuaSource;

/* One C module linked into the library (csrc/X.c -> "lepoll.X"). */
typedef struct lp_CModule {
  const char *name;
  lua_CFunction open;
} lp_CModule;

extern const lp_LuaSource lp_luasources[];
extern const lp_CModule lp_cmodules[];

#endif
