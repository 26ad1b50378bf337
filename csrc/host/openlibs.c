/* openlibs.c - lepoll_openlibs: every built-in lepoll module into package.preload, lua(1) require. */
#include <lua.h>
#include <lauxlib.h>

#include "embedded.h"
#include "internal.h"
#include "lepoll.h"

/* The loader require calls for an embedded Lua module: compile its text
 * (text only: no bytecode can sneak in) and run it with the arguments
 * require gives a loader (the name and ":preload:"). Upvalue 1 is the
 * index of the module in lp_luasources. */
static int host_loadsource(lua_State *L) {
  const lp_LuaSource *s =
      &lp_luasources[lua_tointeger(L, lua_upvalueindex(1))];
  int nargs = lua_gettop(L);
  if (luaL_loadbufferx(L, (const char *)s->text, s->len, s->chunkname,
                       "t") != LUA_OK)
    return lua_error(L);
  lua_insert(L, 1);
  lua_call(L, nargs, 1);
  return 1;
}

LEPOLL_API int lepoll_openlibs(lua_State *L) {
  const lp_CModule *c;
  lua_Integer i;
  luaL_checkversion(L);
  /* the table package.preload is: exists before luaL_openlibs too */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (c = lp_cmodules; c->name != NULL; c++) {
    lua_pushcfunction(L, c->open);
    lua_setfield(L, -2, c->name);
  }
  for (i = 0; lp_luasources[i].name != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, host_loadsource, 1);
    lua_setfield(L, -2, lp_luasources[i].name);
  }
  lua_pop(L, 1);
  return 0;
}
