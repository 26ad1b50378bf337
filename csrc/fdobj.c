/* fdobj.c - the fd-owning userdata (lepoll.Fd) and fd argument parsing; close(2). */
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "internal.h"

/* Mark closed first: on Linux the fd is released even when close(2)
 * reports EINTR, so it is never retried. */
int lp_fdclose(lp_Fd *f) {
  int fd = f->fd;
  f->fd = -1;
  if (fd < 0)
    return 0;
  if (close(fd) == -1 && errno != EINTR)
    return -1;
  return 0;
}

int lp_closeresult(lua_State *L, lp_Fd *f) {
  if (lp_fdclose(f) == -1)
    return lp_failerrno(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* The userdata behind arg if it is one of ours (any fd-owning type). */
static lp_Fd *fd_toobj(lua_State *L, int arg, const char **tname) {
  static const char *const types[] = {LEPOLL_FD_T, LEPOLL_EPOLL_T, NULL};
  int i;
  if (lua_type(L, arg) != LUA_TUSERDATA || !lua_getmetatable(L, arg))
    return NULL;
  for (i = 0; types[i] != NULL; i++) {
    luaL_getmetatable(L, types[i]);
    if (lua_rawequal(L, -1, -2)) {
      lua_pop(L, 2);
      *tname = types[i];
      return (lp_Fd *)lua_touserdata(L, arg);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return NULL;
}

static int fd_checknum(lua_State *L, int arg) {
  return (int)lp_checkrange(L, arg, 0, INT_MAX);
}

/* Whether arg can carry methods. A userdata without __index would raise
 * "attempt to index a userdata value", naming no argument. */
static int fd_indexable(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TTABLE)
    return 1;
  if (lua_type(L, arg) != LUA_TUSERDATA ||
      luaL_getmetafield(L, arg, "__index") == LUA_TNIL)
    return 0;
  lua_pop(L, 1);
  return 1;
}

int lp_checkfd(lua_State *L, int arg) {
  const char *tname;
  lp_Fd *f;
  int fd;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    /* the hot path (send/recv on a plain fd number): one conversion */
    int isint;
    lua_Integer v = lua_tointegerx(L, arg, &isint);
    if (isint && v >= 0 && v <= INT_MAX)
      return (int)v;
    return fd_checknum(L, arg);  /* raises the usual error */
  }
  arg = lua_absindex(L, arg);
  if ((f = fd_toobj(L, arg, &tname)) != NULL) {
    if (f->fd < 0)
      luaL_error(L, "attempt to use a closed %s", tname);
    return f->fd;
  }
  /* LuaSocket has :getfd(), luaposix-style objects :fileno(). */
  if (fd_indexable(L, arg)) {
    static const char *const methods[] = {"getfd", "fileno", NULL};
    int i;
    for (i = 0; methods[i] != NULL; i++) {
      if (lua_getfield(L, arg, methods[i]) != LUA_TNIL) {
        lua_pushvalue(L, arg);
        lua_call(L, 1, 1);
        {
          int isint;
          lua_Integer v = lua_tointegerx(L, -1, &isint);
          /* range-check here so the error names the caller's argument */
          if (!isint || lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L,
                          "%s() did not return an integer", methods[i]));
          if (v < 0 || v > INT_MAX)
            luaL_argerror(L, arg, lua_pushfstring(L,
                          "%s() returned an fd out of range", methods[i]));
          fd = (int)v;
        }
        lua_pop(L, 1);
        return fd;
      }
      lua_pop(L, 1);
    }
  }
  return luaL_typeerror(L, arg, "fd");
}

static lp_Fd *fd_checkopen(lua_State *L) {
  const char *tname = LEPOLL_FD_T;
  lp_Fd *f = fd_toobj(L, 1, &tname);
  if (f == NULL) {
    luaL_typeerror(L, 1, LEPOLL_FD_T);
    __builtin_unreachable();  /* it raises; tells gcc -fanalyzer so */
  }
  if (f->fd < 0)
    luaL_error(L, "attempt to use a closed %s", tname);
  return f;
}

static int fd_fileno(lua_State *L) {
  lua_pushinteger(L, fd_checkopen(L)->fd);
  return 1;
}

static int fd_close(lua_State *L) {
  return lp_closeresult(L, fd_checkopen(L));
}

/* Ownership passes to the caller: the object is closed from here on, so
 * neither close nor __gc touches the fd again. */
static int fd_release(lua_State *L) {
  lp_Fd *f = fd_checkopen(L);
  lua_pushinteger(L, f->fd);
  f->fd = -1;
  return 1;
}

/* __gc and __close: idempotent, never raise. */
static int fd_gc(lua_State *L) {
  const char *tname;
  lp_Fd *f = fd_toobj(L, 1, &tname);
  if (f != NULL)
    (void)lp_fdclose(f);
  return 0;
}

static int fd_tostring(lua_State *L) {
  const char *tname;
  lp_Fd *f = fd_toobj(L, 1, &tname);
  if (f == NULL)
    return luaL_typeerror(L, 1, LEPOLL_FD_T);
  if (f->fd < 0)
    lua_pushfstring(L, "%s (closed)", tname);
  else
    lua_pushfstring(L, "%s (fd %d)", tname, f->fd);
  return 1;
}

static const luaL_Reg fd_meta[] = {
  {"__index",    NULL},  /* placeholder */
  {"__gc",       fd_gc},
  {"__close",    fd_gc},
  {"__tostring", fd_tostring},
  {NULL, NULL}
};

static const luaL_Reg fd_methods[] = {
  {"fileno",  fd_fileno},
  {"getfd",   fd_fileno},
  {"close",   fd_close},
  {"release", fd_release},
  {NULL, NULL}
};

void lp_newfdtype(lua_State *L, const char *tname, const luaL_Reg *methods) {
  if (luaL_newmetatable(L, tname)) {
    luaL_setfuncs(L, fd_meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, fd_methods, 0);
    if (methods != NULL)
      luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

void lp_fdmeta(lua_State *L) {
  lp_newfdtype(L, LEPOLL_FD_T, NULL);
}

lp_Fd *lp_newfd(lua_State *L) {
  lp_Fd *f = (lp_Fd *)lua_newuserdatauv(L, sizeof *f, 0);
  f->fd = -1;
  luaL_setmetatable(L, LEPOLL_FD_T);
  return f;
}
