/* result.c - what the C functions return (the fail triple, a read's string),
 * argument checks shared by the modules, constant tables; errno(3). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "internal.h"

int lp_fail(lua_State *L, int en) {
  luaL_pushfail(L);
  lua_pushstring(L, strerror(en));
  lua_pushinteger(L, en);
  return 3;
}

/* luaL_fileresult's shape, the tail of every syscall wrapper: stat true is
 * success (true), false the fail triple of errno. */
int lp_result(lua_State *L, int stat) {
  if (!stat)
    return lp_fail(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* Reads of up to this many bytes go through the stack, larger ones straight
 * into a luaL_Buffer of max bytes: only the result string is kept. */
#define LP_READBUF 16384

/* The one buffered read body (io.read, net.recv, net.recvfrom). Its callers
 * resolve every argument first, and it calls none of their Lua code, so its
 * 16 KiB are never live while a getfd() runs: a getfd() that recurses into
 * io.read then costs a small frame per level, and stops at Lua's C-call
 * limit as stock Lua does. noinline keeps the buffer out of those frames
 * (link-time optimisation included). */
__attribute__((noinline))
int lp_readresult(lua_State *L, int fd, size_t max, lp_Reader rd, void *ud) {
  char stackbuf[LP_READBUF];
  luaL_Buffer b;
  char *p = max <= sizeof stackbuf ? stackbuf : luaL_buffinitsize(L, &b, max);
  ssize_t n = rd(fd, p, max, ud);
  if (n == -1)
    return lp_result(L, 0);
  if (p == stackbuf)
    lua_pushlstring(L, p, (size_t)n);
  else
    luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

void lp_setconsts(lua_State *L, const lp_Const *c) {
  for (; c->name != NULL; c++) {
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, c->name);
  }
}

#define E(name) {#name, name}
static const lp_Const errnos[] = {
  E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
  E(ENOEXEC), E(EBADF), E(ECHILD), E(EAGAIN), E(EWOULDBLOCK), E(ENOMEM),
  E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV),
  E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY),
  E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK), E(EPIPE), E(EDOM),
  E(ERANGE), E(ELOOP), E(ENAMETOOLONG), E(ENOSYS), E(ENOTSOCK),
  E(EDESTADDRREQ), E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT),
  E(EPROTONOSUPPORT), E(ESOCKTNOSUPPORT), E(EOPNOTSUPP), E(EPFNOSUPPORT),
  E(EAFNOSUPPORT), E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN),
  E(ENETUNREACH), E(ENETRESET), E(ECONNABORTED), E(ECONNRESET),
  E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ESHUTDOWN), E(ETIMEDOUT),
  E(ECONNREFUSED), E(EHOSTDOWN), E(EHOSTUNREACH), E(EALREADY),
  E(EINPROGRESS), E(ECANCELED), E(EOVERFLOW),
  /* accept(2) passes these pending network errors on: retry, as EAGAIN */
  E(EPROTO), E(ENONET), E(ENOSR),
  /* and others read, write, close and fcntl can report */
  E(ENOTSUP), E(ENOTBLK), E(ETXTBSY), E(EDEADLK), E(ENOLCK), E(ENOTEMPTY),
  E(EDQUOT), E(ESTALE), E(EILSEQ), E(ENODATA), E(ETIME), E(EBADMSG),
  E(ENOMSG), E(EIDRM), E(ENOLINK), E(EOWNERDEAD), E(ENOTRECOVERABLE),
  {NULL, 0}
};
#undef E

void lp_pusherrnos(lua_State *L) {
  lua_createtable(L, 0, (int)(sizeof errnos / sizeof errnos[0]));
  lp_setconsts(L, errnos);
}

/* What every module table has besides its own: errno and _VERSION. */
void lp_setmodinfo(lua_State *L) {
  lp_pusherrnos(L);
  lua_setfield(L, -2, "errno");
  lua_pushliteral(L, LP_MODVERSION);
  lua_setfield(L, -2, "_VERSION");
}

/* Accepts integers and integral floats; rejects everything else before any
 * cast, so 2^32+3 never turns into 3. */
lua_Integer lp_checkrange(lua_State *L, int arg, lua_Integer lo,
                          lua_Integer hi) {
  int isnum;
  lua_Integer v = lua_tointegerx(L, arg, &isnum);
  if (!isnum || lua_type(L, arg) != LUA_TNUMBER) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      luaL_argerror(L, arg, "number has no integer representation");
    luaL_typeerror(L, arg, "integer");
  }
  if (v < lo || v > hi)
    luaL_argerror(L, arg, lua_pushfstring(L, "out of range [%I, %I]",
                                          (LUAI_UACINT)lo, (LUAI_UACINT)hi));
  return v;
}

lua_Integer lp_optrange(lua_State *L, int arg, lua_Integer lo,
                        lua_Integer hi, lua_Integer def) {
  return lua_isnoneornil(L, arg) ? def : lp_checkrange(L, arg, lo, hi);
}

/* Flags are a bit set: unknown bits are a programming error, not EINVAL. */
int lp_checkflags(lua_State *L, int arg, lua_Integer allowed, int def) {
  lua_Integer v;
  if (lua_isnoneornil(L, arg))
    return def;
  v = lp_checkrange(L, arg, 0, 0xffffffffLL);
  if (v & ~allowed)
    luaL_argerror(L, arg, "unknown flag bits");
  return (int)(unsigned int)v;
}

/* A string argument, strictly: numbers are not silently converted. */
const char *lp_checkstr(lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING)
    luaL_typeerror(L, arg, "string");
  return lua_tolstring(L, arg, len);
}

/* The bytes s:sub(i, j) of the string at arg, i and j (integers) at arg+1
 * and arg+2: string.sub's clamping, done on integers before any cast. */
const char *lp_checksub(lua_State *L, int arg, size_t *n) {
  size_t len;
  const char *s = lp_checkstr(L, arg, &len);
  lua_Integer i = lp_optrange(L, arg + 1, LUA_MININTEGER, LUA_MAXINTEGER, 1);
  lua_Integer j = lp_optrange(L, arg + 2, LUA_MININTEGER, LUA_MAXINTEGER, -1);
  lua_Integer l = (lua_Integer)len;
  if (i < 0)
    i = i < -l ? 1 : l + i + 1;
  else if (i == 0)
    i = 1;
  if (j < 0)
    j = j < -l ? 0 : l + j + 1;
  else if (j > l)
    j = l;
  if (i > j) {
    *n = 0;
    return s;
  }
  *n = (size_t)(j - i + 1);
  return s + (i - 1);
}

/* luaL_checkoption without its blind spot: it compares with strcmp, so
 * "w\0junk" passes for "w". A string only (no numbers), matched whole. */
int lp_checkoption(lua_State *L, int arg, const char *def,
                   const char *const lst[]) {
  size_t len;
  const char *name;
  int i;
  if (def != NULL && lua_isnoneornil(L, arg)) {
    name = def;
    len = strlen(def);
  } else {
    name = lp_checkstr(L, arg, &len);
  }
  for (i = 0; lst[i] != NULL; i++)
    if (lp_streq(name, len, lst[i]))
      return i;
  if (strlen(name) != len)
    return luaL_argerror(L, arg, lua_pushfstring(L,
                         "invalid option '%s' (a zero byte follows)", name));
  return luaL_argerror(L, arg, lua_pushfstring(L, "invalid option '%s'", name));
}
