/* internal.h - private declarations shared by the lepoll C modules; errno(3). */
#ifndef LEPOLL_INTERNAL_H
#define LEPOLL_INTERNAL_H

#include <string.h>
#include <sys/types.h>

#include <lua.h>
#include <lauxlib.h>

#include "lepoll.h"

#if LUA_VERSION_NUM != 504
#error "lepoll targets Lua 5.4"
#endif

/* Only luaopen_* and lepoll_openlibs leave a module; see lepoll.h. */
#define LEPOLL_API __attribute__((visibility("default")))

/* Each module's _VERSION. */
#define LP_MODVERSION "lepoll " LEPOLL_VERSION

/* Metatable names: also what argument errors print. */
#define LEPOLL_FD_T     "lepoll.Fd"
#define LEPOLL_EPOLL_T  "lepoll.Epoll"
#define LEPOLL_EVENTS_T "lepoll.Events"

/* Every fd-owning userdata starts with this, so lp_checkfd can read any of
 * them without knowing the type. fd < 0 means closed. */
typedef struct lp_Fd {
  int fd;
} lp_Fd;

/* A name -> integer pair for constant and errno tables. */
typedef struct lp_Const {
  const char *name;
  lua_Integer value;
} lp_Const;

/* Whether the Lua string s (len bytes) is exactly name: the one comparison
 * of arguments with fixed names, so "w\0junk" never passes for "w". */
static inline int lp_streq(const char *s, size_t len, const char *name) {
  return strlen(name) == len && memcmp(s, name, len) == 0;
}

/* The userdata at arg if its metatable is the table at index mt (an
 * upvalue, or one fetched from the registry), else NULL: the one test that
 * a value is one of our userdata (lp_tofdobj and lepoll.epoll's type checks
 * build on it), luaL_testudata without the registry lookup. Inline and as
 * cheap as it was in lepoll.epoll, which makes it once per event. */
static inline void *lp_toudata(lua_State *L, int arg, int mt) {
  void *p = lua_touserdata(L, arg);
  const void *m;
  if (p == NULL || !lua_getmetatable(L, arg))
    return NULL;
  m = lua_topointer(L, -1);
  lua_pop(L, 1);  /* before mt is read: it may be a relative index */
  return m == lua_topointer(L, mt) ? p : NULL;
}

/* One read-like syscall into buf: the byte count, or -1 with errno set. */
typedef ssize_t (*lp_Reader)(int fd, void *buf, size_t len, void *ud);

/* The helpers below are private to lepoll's modules even where the
 * build cannot pass -fvisibility=hidden (LuaRocks' builtin build): only
 * luaopen_* and lepoll_openlibs are exported (LEPOLL_API). */
#pragma GCC visibility push(hidden)

/* result.c */
int  lp_fail(lua_State *L, int en);          /* nil, strerror(en), en: 3 */
int  lp_result(lua_State *L, int stat);      /* luaL_fileresult: true or the triple */
int  lp_readresult(lua_State *L, int fd, size_t max, lp_Reader rd,
                   void *ud);                /* the string read, or the triple */
void lp_setconsts(lua_State *L, const lp_Const *c);  /* into table at top */
void lp_pusherrnos(lua_State *L);            /* a fresh errno table */
void lp_setmodinfo(lua_State *L);            /* errno, _VERSION into the module */
lua_Integer lp_checkrange(lua_State *L, int arg, lua_Integer lo,
                          lua_Integer hi);   /* integer in [lo, hi] */
lua_Integer lp_optrange(lua_State *L, int arg, lua_Integer lo,
                        lua_Integer hi, lua_Integer def);
int lp_checkflags(lua_State *L, int arg, lua_Integer allowed, int def);
const char *lp_checkstr(lua_State *L, int arg, size_t *len);  /* no numbers */
const char *lp_checksub(lua_State *L, int arg, size_t *n);  /* s:sub(i, j) */
int lp_checkoption(lua_State *L, int arg, const char *def,
                   const char *const lst[]);  /* luaL_checkoption, NUL-safe */

/* fdobj.c */
void  lp_fdmeta(lua_State *L);        /* create lepoll.Fd's metatable once */
lp_Fd *lp_newfd(lua_State *L);        /* push a closed lepoll.Fd */
lp_Fd *lp_tofdobj(lua_State *L, int arg, const char **tname);  /* Fd, Epoll */
int   lp_checkfd(lua_State *L, int arg);  /* any fd-like value -> int fd */
int   lp_fdclose(lp_Fd *f);           /* close once; 0 or -1 with errno */
int   lp_closeresult(lua_State *L, lp_Fd *f);  /* true or the fail triple */
/* Register methods/metamethods for an fd-owning type (also lepoll.Epoll). */
void  lp_newfdtype(lua_State *L, const char *tname, const luaL_Reg *methods);

#pragma GCC visibility pop

#endif
