/* resolve_fork.c - fork(2), waitpid(2) and _exit(2) for spec/support/resolve_inner.lua (a spec helper, not a lepoll module). */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

static int rf_fork(lua_State *L) {
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
  lua_pushinteger(L, pid);
  return 1;
}

/* The child's exit code, or -signal. */
static int rf_wait(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return luaL_error(L, "waitpid: %s", strerror(errno));
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
  return 1;
}

static int rf_exit(lua_State *L) {
  _exit((int)luaL_checkinteger(L, 1));
}

int luaopen_resolve_fork(lua_State *L);
int luaopen_resolve_fork(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"fork", rf_fork}, {"wait", rf_wait}, {"exit", rf_exit}, {NULL, NULL}
  };
  luaL_newlib(L, fns);
  return 1;
}
