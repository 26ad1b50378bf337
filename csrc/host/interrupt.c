/* interrupt.c - SIGINT interrupts the running Lua code, coroutines included; signal(7), lua(1). */
#include <signal.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "interrupt.h"

#define INT_MASK (LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT)

/* What the SIGINT handler reaches: a signal handler has no other way to
 * find the Lua state. The program's only global state. */
static lua_State *volatile int_main = NULL;    /* the state host_docall runs */
static lua_State *volatile int_current = NULL; /* the coroutine running in it */
static volatile sig_atomic_t int_pending = 0;  /* not yet raised in int_main */

/* Hook set by the handler: raise at the next instruction, call or return. */
static void int_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (L == int_main)
    int_pending = 0; /* it reached the top: the resumers are done with it */
  luaL_error(L, "interrupted!");
}

static void int_onsigint(int sig) {
  lua_State *co = int_current;
  lua_State *L = int_main;
  (void)sig;
  int_pending = 1;
  /* lua_sethook is the one Lua call safe in a signal handler */
  if (co != NULL)
    lua_sethook(co, int_hook, INT_MASK, 1);
  if (L != NULL) /* it runs again when the coroutine returns or yields */
    lua_sethook(L, int_hook, INT_MASK, 1);
}

void host_catchint(lua_State *L, int on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  if (on) {
    int_current = NULL;
    int_pending = 0;
    int_main = L;
    sa.sa_handler = int_onsigint;
    sa.sa_flags = SA_RESETHAND;
  } else {
    sa.sa_handler = SIG_DFL;
  }
  (void)sigaction(SIGINT, &sa, NULL); /* cannot fail for SIGINT */
  if (!on) {
    /* the interrupt may have come up as a coroutine's error instead */
    if (lua_gethook(L) == int_hook)
      lua_sethook(L, NULL, 0, 0);
    int_main = NULL;
    int_current = NULL;
    int_pending = 0;
  }
}

/* Make co (NULL: the main thread) the running coroutine for the handler.
 * The table at index anchor keeps it in slot 1, so that int_current never
 * points at a collected thread, not even after a memory error unwound a
 * resume before it could restore the resumer. Slot 1 is in the table's
 * array part from the start: storing there allocates nothing. */
static void int_setcurrent(lua_State *L, lua_State *co, int coidx, int anchor) {
  if (co == NULL) {
    int_current = NULL;
    lua_pushnil(L);
  } else {
    lua_pushvalue(L, coidx);
    int_current = co;
  }
  lua_rawseti(L, anchor, 1);
}

/* Resume co with the narg values on top of L, as coroutine.resume does:
 * the results moved to L and their number, or -1 and the error on top.
 * coidx is where co sits in L (to anchor it), anchor the anchor table. */
static int int_auxresume(lua_State *L, lua_State *co, int coidx, int narg,
                         int anchor) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  int_setcurrent(L, co, coidx, anchor);
  status = lua_resume(co, L, narg, &nres);
  /* L runs again: the current coroutine, unless it is the main thread */
  int_setcurrent(L, lua_pushthread(L) ? NULL : L, -1, anchor);
  lua_pop(L, 1);
  if (int_pending) /* interrupted in co: now the resumer's turn */
    lua_sethook(L, int_hook, INT_MASK, 1);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1); /* the error object */
  return -1;
}

/* coroutine.resume(co, ...); upvalue 1 is the anchor table. */
static int int_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  luaL_argexpected(L, co != NULL, 1, "thread");
  r = int_auxresume(L, co, 1, lua_gettop(L) - 1, lua_upvalueindex(1));
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2; /* false, error */
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1; /* true, results */
}

/* Close a coroutine that died by an error (its to-be-closed variables);
 * leaves the error object on its stack and returns the status. */
static int int_closethread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/* The function coroutine.wrap returns: upvalue 1 the coroutine, 2 the
 * anchor table. An error in the coroutine closes it and is raised again
 * here, with the caller's position in front of a string message. */
static int int_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = int_auxresume(L, co, lua_upvalueindex(1), lua_gettop(L),
                        lua_upvalueindex(2));
  if (r >= 0)
    return r;
  {
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
      status = int_closethread(co, L);
      lua_xmove(co, L, 1);
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
  }
  return lua_error(L);
}

/* coroutine.wrap(f); upvalue 1 is the anchor table. */
static int int_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, int_wrapped, 2);
  return 1;
}

void host_trackcoroutines(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_createtable(L, 1, 0); /* the anchor: slot 1 in the array part */
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, int_resume, 1);
    lua_setfield(L, -3, "resume");
    lua_pushcclosure(L, int_wrap, 1);
    lua_setfield(L, -2, "wrap");
  }
  lua_pop(L, 2);
}
