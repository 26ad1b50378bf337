/* result.c - the fail triple, argument ranges and constant tables; errno(3). */
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

int lp_failerrno(lua_State *L) {
  return lp_fail(L, errno);
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
