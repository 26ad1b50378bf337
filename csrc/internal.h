/* internal.h - private declarations shared by the lepoll C modules; errno(3). */
#ifndef LEPOLL_INTERNAL_H
#define LEPOLL_INTERNAL_H

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

/* result.c */
int  lp_fail(lua_State *L, int en);          /* nil, strerror(en), en: 3 */
int  lp_failerrno(lua_State *L);             /* lp_fail(L, errno) */
void lp_setconsts(lua_State *L, const lp_Const *c);  /* into table at top */
void lp_pusherrnos(lua_State *L);            /* a fresh errno table */
void lp_setmodinfo(lua_State *L);            /* errno, _VERSION into the module */
lua_Integer lp_checkrange(lua_State *L, int arg, lua_Integer lo,
                          lua_Integer hi);   /* integer in [lo, hi] */
lua_Integer lp_optrange(lua_State *L, int arg, lua_Integer lo,
                        lua_Integer hi, lua_Integer def);
int lp_checkflags(lua_State *L, int arg, lua_Integer allowed, int def);

/* fdobj.c */
void  lp_fdmeta(lua_State *L);        /* create lepoll.Fd's metatable once */
lp_Fd *lp_newfd(lua_State *L);        /* push a closed lepoll.Fd */
int   lp_checkfd(lua_State *L, int arg);  /* any fd-like value -> int fd */
int   lp_fdclose(lp_Fd *f);           /* close once; 0 or -1 with errno */
int   lp_closeresult(lua_State *L, lp_Fd *f);  /* true or the fail triple */
/* Register methods/metamethods for an fd-owning type (also lepoll.Epoll). */
void  lp_newfdtype(lua_State *L, const char *tname, const luaL_Reg *methods);

#endif
