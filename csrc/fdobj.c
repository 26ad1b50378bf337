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
  return lp_result(L, lp_fdclose(f) == 0);
}

/* The userdata behind arg if it is one of our fd-owning types, and the
 * type's name. */
lp_Fd *lp_tofdobj(lua_State *L, int arg, const char **tname) {
  static const char *const types[] = {LEPOLL_FD_T, LEPOLL_EPOLL_T, NULL};
  int i;
  if (lua_type(L, arg) != LUA_TUSERDATA)
    return NULL;
  arg = lua_absindex(L, arg);
  for (i = 0; types[i] != NULL; i++) {
    lp_Fd *f;
    luaL_getmetatable(L, types[i]);
    f = (lp_Fd *)lp_toudata(L, arg, -1);
    lua_pop(L, 1);
    if (f != NULL) {
      *tname = types[i];
      return f;
    }
  }
  return NULL;
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

/* Whether the value at the top can be called: a function, or a value with
 * a __call metamethod. */
static int fd_callable(lua_State *L) {
  if (lua_type(L, -1) == LUA_TFUNCTION)
    return 1;
  if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
    return 0;
  lua_pop(L, 1);
  return 1;
}

/* The fd of an object with a getfd() (LuaSocket) or fileno() (luaposix
 * style) method, at the absolute index arg. A method that is absent, nil or
 * false is skipped, so { getfd = false, fileno = f } uses fileno. The
 * result may be a float with an integral value: LuaSocket's getfd()
 * returns 3.0 under Lua 5.4. Errors name the caller's argument. */
static int fd_frommethod(lua_State *L, int arg) {
  static const char *const methods[] = {"getfd", "fileno", NULL};
  int i;
  for (i = 0; methods[i] != NULL; i++) {
    int t = lua_getfield(L, arg, methods[i]);
    int isint;
    lua_Integer v;
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
      lua_pop(L, 1);
      continue;
    }
    if (!fd_callable(L))
      return luaL_argerror(L, arg, lua_pushfstring(L,
                           "%s is a %s, not a function", methods[i],
                           luaL_typename(L, -1)));
    lua_pushvalue(L, arg);
    lua_call(L, 1, 1);
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || lua_type(L, -1) != LUA_TNUMBER)
      return luaL_argerror(L, arg, lua_pushfstring(L,
                           "%s() did not return an integer", methods[i]));
    if (v < 0 || v > INT_MAX)
      return luaL_argerror(L, arg, lua_pushfstring(L,
                           "%s() returned an fd out of range", methods[i]));
    lua_pop(L, 1);
    return (int)v;
  }
  return luaL_typeerror(L, arg, "fd");
}

/* Anything but a number: an fd object of ours, or one with a method. Out
 * of line, so the number path of lp_checkfd stays a leaf. */
__attribute__((noinline))
static int fd_checkobj(lua_State *L, int arg) {
  const char *tname;
  lp_Fd *f;
  arg = lua_absindex(L, arg);
  if ((f = lp_tofdobj(L, arg, &tname)) != NULL) {
    if (f->fd < 0)
      luaL_error(L, "attempt to use a closed %s", tname);
    return f->fd;
  }
  if (fd_indexable(L, arg))
    return fd_frommethod(L, arg);
  return luaL_typeerror(L, arg, "fd");
}

int lp_checkfd(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    /* the hot path (send/recv on a plain fd number): one conversion, which
     * takes integral floats (3.0) as well */
    int isint;
    lua_Integer v = lua_tointegerx(L, arg, &isint);
    if (isint && v >= 0 && v <= INT_MAX)
      return (int)v;
    return (int)lp_checkrange(L, arg, 0, INT_MAX);  /* raises the usual error */
  }
  return fd_checkobj(L, arg);
}

static lp_Fd *fd_checkopen(lua_State *L) {
  const char *tname = LEPOLL_FD_T;
  lp_Fd *f = lp_tofdobj(L, 1, &tname);
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
  lp_Fd *f = lp_tofdobj(L, 1, &tname);
  if (f != NULL)
    (void)lp_fdclose(f);
  return 0;
}

static int fd_tostring(lua_State *L) {
  const char *tname;
  lp_Fd *f = lp_tofdobj(L, 1, &tname);
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
