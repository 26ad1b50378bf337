/* net.c - lepoll.net: sockets for Lua 5.4, after rustix::net; socket(7). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/***
 * Sockets: INET, INET6 and UNIX; stream and datagram. A thin binding after
 * rustix::net: each function makes one syscall and reports what happened;
 * C never blocks on its own account (no DNS: hosts are numeric literals).
 *
 * Sockets are `lepoll.Fd` objects (see lepoll.io): they own their fd, close
 * once by `:close()`, `<close>` or `__gc`, and have `:fileno()`. Every `fd`
 * argument is a non-negative integer (a float with an integral value, such
 * as LuaSocket's `3.0`, too), an open lepoll fd object, or any value with a
 * `:getfd()` or `:fileno()` method (one that is nil or false is skipped).
 *
 * Misuse (a wrong type, a closed object, an out-of-range number, an unknown
 * name, a malformed address literal) raises an error naming the argument.
 * A failed syscall returns `nil, message, errno`, EAGAIN, EINPROGRESS and
 * EINTR included (EINTR is reported, never retried: the caller decides).
 *
 * Addresses. An INET or INET6 address is two values, `host, port`: `host`
 * is a numeric literal of the socket's own family (`"127.0.0.1"`,
 * `"0.0.0.0"`, `"::1"`, `"::"`; IPv6 without brackets), or `"*"` for the
 * any-address and `"localhost"` for the loopback address of that family;
 * `port` an integer 0..65535. A UNIX address is one value, a path: a
 * filesystem path shorter than `sun_path` (108 bytes), a Linux abstract
 * name starting with `"\0"` (at most 108 bytes, the NUL included), or `""`
 * to let `bind` pick an abstract name (autobind). Addresses the kernel
 * reports come back the same way; a UNIX address has no port (the port
 * result is absent, i.e. nil), and an unnamed UNIX peer is `""`.
 * @module lepoll.net
 */

#define NET_RECVMAX  ((lua_Integer)1 << 30)

typedef struct net_Addr {
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    struct sockaddr_storage ss;
  } u;
  socklen_t len;
} net_Addr;

#define NET_UNOFF ((socklen_t)offsetof(struct sockaddr_un, sun_path))

/* Socket option kinds: the Lua shape of the value. */
enum { OPT_BOOL, OPT_INT, OPT_LINGER, OPT_RO_INT, OPT_RO_BOOL };

typedef struct net_Opt {
  const char *name;   /* what Lua passes */
  const char *cname;  /* the constant that holds name (net.SO_REUSEADDR) */
  int level, optname, kind;
} net_Opt;

static const net_Opt net_opts[] = {
  {"reuseaddr",  "SO_REUSEADDR",  SOL_SOCKET,   SO_REUSEADDR,  OPT_BOOL},
  {"reuseport",  "SO_REUSEPORT",  SOL_SOCKET,   SO_REUSEPORT,  OPT_BOOL},
  {"keepalive",  "SO_KEEPALIVE",  SOL_SOCKET,   SO_KEEPALIVE,  OPT_BOOL},
  {"broadcast",  "SO_BROADCAST",  SOL_SOCKET,   SO_BROADCAST,  OPT_BOOL},
  {"linger",     "SO_LINGER",     SOL_SOCKET,   SO_LINGER,     OPT_LINGER},
  {"rcvbuf",     "SO_RCVBUF",     SOL_SOCKET,   SO_RCVBUF,     OPT_INT},
  {"sndbuf",     "SO_SNDBUF",     SOL_SOCKET,   SO_SNDBUF,     OPT_INT},
  {"error",      "SO_ERROR",      SOL_SOCKET,   SO_ERROR,      OPT_RO_INT},
  {"type",       "SO_TYPE",       SOL_SOCKET,   SO_TYPE,       OPT_RO_INT},
  {"domain",     "SO_DOMAIN",     SOL_SOCKET,   SO_DOMAIN,     OPT_RO_INT},
  {"acceptconn", "SO_ACCEPTCONN", SOL_SOCKET,   SO_ACCEPTCONN, OPT_RO_BOOL},
  {"nodelay",    "TCP_NODELAY",   IPPROTO_TCP,  TCP_NODELAY,   OPT_BOOL},
  {"keepidle",   "TCP_KEEPIDLE",  IPPROTO_TCP,  TCP_KEEPIDLE,  OPT_INT},
  {"keepintvl",  "TCP_KEEPINTVL", IPPROTO_TCP,  TCP_KEEPINTVL, OPT_INT},
  {"keepcnt",    "TCP_KEEPCNT",   IPPROTO_TCP,  TCP_KEEPCNT,   OPT_INT},
  {"v6only",     "IPV6_V6ONLY",   IPPROTO_IPV6, IPV6_V6ONLY,   OPT_BOOL},
  {NULL, NULL, 0, 0, 0}
};

/* ---- argument helpers ------------------------------------------------ */

static int net_checkfamily(lua_State *L, int arg, int def) {
  lua_Integer v;
  if (lua_isnoneornil(L, arg))
    return def;
  v = lp_checkrange(L, arg, 0, INT_MAX);
  if (v != AF_INET && v != AF_INET6 && v != AF_UNIX)
    luaL_argerror(L, arg, "unknown address family");
  return (int)v;
}

static int net_checktype(lua_State *L, int arg, int def) {
  lua_Integer v;
  if (lua_isnoneornil(L, arg))
    return def;
  v = lp_checkrange(L, arg, 0, INT_MAX);
  if (v != SOCK_STREAM && v != SOCK_DGRAM && v != SOCK_SEQPACKET)
    luaL_argerror(L, arg, "unknown socket type");
  return (int)v;
}

/* NONBLOCK is optional; CLOEXEC is always on. */
static int net_checksockflags(lua_State *L, int arg) {
  return lp_checkflags(L, arg, SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
         | SOCK_CLOEXEC;
}

static lua_Integer net_checkport(lua_State *L, int arg) {
  return lp_checkrange(L, arg, 0, 65535);
}

static const net_Opt *net_checkopt(lua_State *L, int arg) {
  size_t len;
  const char *name = lp_checkstr(L, arg, &len);
  const net_Opt *o;
  for (o = net_opts; o->name != NULL; o++)  /* "nodelay\0x" matches none */
    if (lp_streq(name, len, o->name))
      return o;
  luaL_argerror(L, arg, lua_pushfstring(L, "unknown socket option '%s'",
                                        name));
  __builtin_unreachable();  /* it raises; tells gcc -fanalyzer so */
}

/* The socket's address family, or -1 with errno set. */
static int net_family(int fd) {
  int v;
  socklen_t len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == -1)
    return -1;
  return v;
}

/* ---- addresses -------------------------------------------------------- */

static void net_unixaddr(lua_State *L, int arg, const char *path, size_t len,
                         net_Addr *a) {
  const size_t max = sizeof a->u.un.sun_path;
  a->u.un.sun_family = AF_UNIX;
  if (len > 0 && path[0] == '\0') {
    /* abstract namespace: the name is exactly len bytes, no terminator */
    if (len > max)
      luaL_argerror(L, arg, lua_pushfstring(L,
                    "abstract UNIX socket name too long (%d bytes, max %d)",
                    (int)(len > INT_MAX ? INT_MAX : len), (int)max));
    memcpy(a->u.un.sun_path, path, len);
    a->len = NET_UNOFF + (socklen_t)len;
    return;
  }
  if (strlen(path) != len)
    luaL_argerror(L, arg, "UNIX socket path contains a zero byte");
  if (len >= max)
    luaL_argerror(L, arg, lua_pushfstring(L,
                  "UNIX socket path too long (%d bytes, max %d)",
                  (int)(len > INT_MAX ? INT_MAX : len), (int)max - 1));
  memcpy(a->u.un.sun_path, path, len);
  /* "" is the bare family: bind(2) then autobinds an abstract name */
  a->len = len == 0 ? NET_UNOFF : NET_UNOFF + (socklen_t)len + 1;
}

/* An IPv6 address with an optional zone, "fe80::1%eth0" or "fe80::1%2"
 * (RFC 4007; what getaddrinfo gives for a link-local address): 0, or -1
 * when it is not one (an interface that does not exist included). */
static int net_in6scoped(const char *host, size_t len, net_Addr *a) {
  char addr[INET6_ADDRSTRLEN];
  const char *pct = memchr(host, '%', len);
  if (pct == NULL)
    return inet_pton(AF_INET6, host, &a->u.in6.sin6_addr) == 1 ? 0 : -1;
  size_t n = (size_t)(pct - host);
  const char *zone = pct + 1;
  size_t zlen = len - n - 1;
  if (n >= sizeof addr || zlen == 0 || zlen >= IF_NAMESIZE)
    return -1;
  memcpy(addr, host, n);
  addr[n] = '\0';
  if (inet_pton(AF_INET6, addr, &a->u.in6.sin6_addr) != 1)
    return -1;
  unsigned long id = 0;
  size_t i = 0;
  while (i < zlen && zone[i] >= '0' && zone[i] <= '9' && id <= UINT32_MAX / 10)
    id = id * 10 + (unsigned long)(zone[i++] - '0');
  if (i == zlen && id <= UINT32_MAX) {
    a->u.in6.sin6_scope_id = (uint32_t)id;
    return 0;
  }
  unsigned idx = if_nametoindex(zone);  /* zone ends the NUL-free string */
  if (idx == 0)
    return -1;
  a->u.in6.sin6_scope_id = idx;
  return 0;
}

static void net_inaddr(lua_State *L, int arg, int family, const char *host,
                       size_t len, lua_Integer port, net_Addr *a) {
  const char *fname = family == AF_INET ? "IPv4" : "IPv6";
  int any = lp_streq(host, len, "*");
  int loop = lp_streq(host, len, "localhost");
  if (strlen(host) != len)
    luaL_argerror(L, arg, "address contains a zero byte");
  if (family == AF_INET) {
    a->u.in4.sin_family = AF_INET;
    a->u.in4.sin_port = htons((uint16_t)port);
    a->len = sizeof a->u.in4;
    if (any)
      a->u.in4.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (loop)
      a->u.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->u.in4.sin_addr) != 1)
      goto bad;
    return;
  }
  a->u.in6.sin6_family = AF_INET6;
  a->u.in6.sin6_port = htons((uint16_t)port);
  a->len = sizeof a->u.in6;
  if (any)
    a->u.in6.sin6_addr = in6addr_any;
  else if (loop)
    a->u.in6.sin6_addr = in6addr_loopback;
  else if (net_in6scoped(host, len, a) != 0)
    goto bad;
  return;
bad:
  luaL_argerror(L, arg, lua_pushfstring(L,
                "'%s' is not a numeric %s address", host, fname));
}

/* Build the address from the arguments at arg (host or path) and arg+1
 * (port) for the socket fd, whose family decides how to read them. Raises
 * on misuse; returns 0, or an errno when the family cannot be read. */
static int net_checkaddr(lua_State *L, int fd, int arg, net_Addr *a) {
  size_t len;
  const char *host = lp_checkstr(L, arg, &len);
  int hasport = !lua_isnoneornil(L, arg + 1);
  lua_Integer port = hasport ? net_checkport(L, arg + 1) : 0;
  int family = net_family(fd);
  if (family == -1)
    return errno;
  memset(a, 0, sizeof *a);
  switch (family) {
  case AF_UNIX:
    if (hasport)
      luaL_argerror(L, arg + 1, "a UNIX socket address has no port");
    net_unixaddr(L, arg, host, len, a);
    return 0;
  case AF_INET:
  case AF_INET6:
    if (!hasport)
      net_checkport(L, arg + 1);  /* raises: integer expected */
    net_inaddr(L, arg, family, host, len, port, a);
    return 0;
  default:
    return EAFNOSUPPORT;
  }
}

/* Push an address the kernel reported: host and port (2), a UNIX path (1),
 * or nothing (0) for a family we do not describe. */
static int net_pushaddr(lua_State *L, const net_Addr *a) {
  char buf[INET6_ADDRSTRLEN];
  if (a->len < (socklen_t)sizeof(sa_family_t))
    return 0;
  switch (a->u.sa.sa_family) {
  case AF_INET:
    if (inet_ntop(AF_INET, &a->u.in4.sin_addr, buf, sizeof buf) == NULL)
      return 0;
    lua_pushstring(L, buf);
    lua_pushinteger(L, ntohs(a->u.in4.sin_port));
    return 2;
  case AF_INET6:
    if (inet_ntop(AF_INET6, &a->u.in6.sin6_addr, buf, sizeof buf) == NULL)
      return 0;
    if (a->u.in6.sin6_scope_id != 0) {  /* the zone, as net_in6scoped reads it */
      char name[IF_NAMESIZE];
      if (if_indextoname(a->u.in6.sin6_scope_id, name) != NULL)
        lua_pushfstring(L, "%s%%%s", buf, name);
      else
        lua_pushfstring(L, "%s%%%I", buf, (lua_Integer)a->u.in6.sin6_scope_id);
    } else {
      lua_pushstring(L, buf);
    }
    lua_pushinteger(L, ntohs(a->u.in6.sin6_port));
    return 2;
  case AF_UNIX: {
    size_t n = a->len > NET_UNOFF ? (size_t)(a->len - NET_UNOFF) : 0;
    const char *p = a->u.un.sun_path;
    if (n > sizeof a->u.un.sun_path)
      n = sizeof a->u.un.sun_path;
    if (n > 0 && p[0] != '\0')
      n = strnlen(p, n);  /* a pathname: up to its terminator */
    lua_pushlstring(L, p, n);  /* abstract names keep their leading NUL */
    return 1;
  }
  default:
    return 0;
  }
}

/* ---- module functions ------------------------------------------------- */

/***
 * Create a socket.
 * @function socket
 * @tparam integer family `net.INET`, `net.INET6` or `net.UNIX`
 * @tparam integer type `net.STREAM`, `net.DGRAM` or `net.SEQPACKET`
 * @tparam[opt] integer flags `net.NONBLOCK` and/or `net.CLOEXEC`;
 *   CLOEXEC is always set, so sockets never leak into exec'd children
 * @treturn[1] lepoll.Fd the socket
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see socket(2)
 */
static int net_socket(lua_State *L) {
  int family, type, flags, fd;
  lp_Fd *f;
  if (lua_isnoneornil(L, 1))  /* both required: no defaults here */
    luaL_typeerror(L, 1, "integer");
  if (lua_isnoneornil(L, 2))
    luaL_typeerror(L, 2, "integer");
  family = net_checkfamily(L, 1, AF_UNIX);
  type = net_checktype(L, 2, SOCK_STREAM);
  flags = net_checksockflags(L, 3);
  f = lp_newfd(L);  /* closed until the syscall succeeds */
  fd = socket(family, type | flags, 0);
  if (fd == -1)
    return lp_result(L, 0);
  f->fd = fd;
  return 1;
}

/***
 * Create a pair of connected sockets.
 * @function socketpair
 * @tparam[opt=net.UNIX] integer family only `net.UNIX` works on Linux
 *   (others fail with EOPNOTSUPP)
 * @tparam[opt=net.STREAM] integer type `net.STREAM`, `net.DGRAM` or
 *   `net.SEQPACKET`
 * @tparam[opt] integer flags `net.NONBLOCK` and/or `net.CLOEXEC` (always set)
 * @treturn[1] lepoll.Fd one end
 * @treturn[1] lepoll.Fd the other end
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see socketpair(2)
 */
static int net_socketpair(lua_State *L) {
  int family = net_checkfamily(L, 1, AF_UNIX);
  int type = net_checktype(L, 2, SOCK_STREAM);
  int flags = net_checksockflags(L, 3);
  int sv[2];
  lp_Fd *a = lp_newfd(L);
  lp_Fd *b = lp_newfd(L);
  if (socketpair(family, type | flags, 0, sv) == -1)
    return lp_result(L, 0);
  a->fd = sv[0];
  b->fd = sv[1];
  return 2;
}

/***
 * Bind a socket to a local address.
 * `net.bind(fd, host, port)` for INET and INET6 sockets (host a numeric
 * literal of the socket's family, `"*"` or `"localhost"`; port 0 picks a
 * free one, see `getsockname`), `net.bind(fd, path)` for UNIX sockets
 * (`"\0name"` for the abstract namespace, `""` to autobind).
 * @function bind
 * @param fd the socket
 * @tparam string host the address literal, or the UNIX path
 * @tparam[opt] integer port 0..65535 (INET and INET6 only)
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (e.g. `net.errno.EADDRINUSE`)
 * @see bind(2)
 */
static int net_bind(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  net_Addr a;
  int en = net_checkaddr(L, fd, 2, &a);
  if (en != 0)
    return lp_fail(L, en);
  return lp_result(L, bind(fd, &a.u.sa, a.len) == 0);
}

/***
 * Listen for connections.
 * @function listen
 * @param fd the socket
 * @tparam[opt=net.SOMAXCONN] integer backlog 0..2^31-1 (the kernel caps it
 *   at net.core.somaxconn)
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see listen(2)
 */
static int net_listen(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  int backlog = (int)lp_optrange(L, 2, 0, INT_MAX, SOMAXCONN);
  return lp_result(L, listen(fd, backlog) == 0);
}

/***
 * Accept a connection (accept4(2), CLOEXEC always).
 * On a non-blocking listener with nothing pending this returns the fail
 * triple with `net.errno.EAGAIN`.
 * @function accept
 * @param fd the listening socket
 * @tparam[opt] integer flags `net.NONBLOCK` for a non-blocking connection,
 *   `net.CLOEXEC` (always set)
 * @treturn[1] lepoll.Fd the connection
 * @treturn[1] string the peer's host (INET, INET6) or path (UNIX: `""`
 *   for an unnamed peer, the usual case)
 * @treturn[1] integer the peer's port; absent (nil) for UNIX
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see accept4(2)
 */
static int net_accept(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  int flags = net_checksockflags(L, 2);
  net_Addr a;
  lp_Fd *f = lp_newfd(L);  /* exists before the fd does: nothing can leak */
  int nfd;
  a.len = sizeof a.u;
  nfd = accept4(fd, &a.u.sa, &a.len, flags);
  if (nfd == -1)
    return lp_result(L, 0);
  f->fd = nfd;
  return 1 + net_pushaddr(L, &a);
}

/***
 * Connect a socket to a remote address.
 * Same address arguments as `bind`. On a non-blocking socket a connection
 * that cannot complete at once returns `nil, message,
 * net.errno.EINPROGRESS`: wait until the socket is writable, then read
 * `net.getsockopt(fd, "error")` (0 means connected). EINTR is returned as
 * well; the connection then continues in the background, as with
 * EINPROGRESS. A datagram socket just sets its default destination.
 * @function connect
 * @param fd the socket
 * @tparam string host the address literal, or the UNIX path
 * @tparam[opt] integer port 0..65535 (INET and INET6 only)
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (e.g. `net.errno.ECONNREFUSED`)
 * @see connect(2)
 */
static int net_connect(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  net_Addr a;
  int en = net_checkaddr(L, fd, 2, &a);
  if (en != 0)
    return lp_fail(L, en);
  return lp_result(L, connect(fd, &a.u.sa, a.len) == 0);
}

static int net_nameresult(lua_State *L, int peer) {
  int fd = lp_checkfd(L, 1);
  net_Addr a;
  int r, n;
  a.len = sizeof a.u;
  r = peer ? getpeername(fd, &a.u.sa, &a.len)
           : getsockname(fd, &a.u.sa, &a.len);
  if (r == -1)
    return lp_result(L, 0);
  n = net_pushaddr(L, &a);
  return n > 0 ? n : lp_fail(L, EAFNOSUPPORT);
}

/***
 * The socket's local address.
 * @function getsockname
 * @param fd the socket
 * @treturn[1] string host (IPv6 without brackets), or the UNIX path
 *   (`""` if unbound; abstract names start with `"\0"`)
 * @treturn[1] integer port; absent (nil) for UNIX
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see getsockname(2)
 */
static int net_getsockname(lua_State *L) {
  return net_nameresult(L, 0);
}

/***
 * The connected peer's address.
 * @function getpeername
 * @param fd the socket
 * @treturn[1] string host (IPv6 without brackets), or the UNIX path
 *   (`""` for an unnamed peer)
 * @treturn[1] integer port; absent (nil) for UNIX
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`net.errno.ENOTCONN` when not connected)
 * @see getpeername(2)
 */
static int net_getpeername(lua_State *L) {
  return net_nameresult(L, 1);
}

/***
 * Shut down one or both directions of a connection.
 * After `"w"` the peer reads `""` (end of file).
 * @function shutdown
 * @param fd the socket
 * @tparam string how `"r"`, `"w"` or `"rw"`
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see shutdown(2)
 */
static int net_shutdown(lua_State *L) {
  static const char *const names[] = {"r", "w", "rw", NULL};
  static const int hows[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
  int fd = lp_checkfd(L, 1);
  int how = hows[lp_checkoption(L, 2, NULL, names)];
  return lp_result(L, shutdown(fd, how) == 0);
}

/***
 * Set a socket option.
 * Option names (also as constants, e.g. `net.SO_REUSEADDR == "reuseaddr"`)
 * and their values:
 *
 * - `"reuseaddr"`, `"reuseport"`, `"keepalive"`, `"broadcast"` (SOL_SOCKET),
 *   `"nodelay"` (TCP_NODELAY), `"v6only"` (IPV6_V6ONLY): a boolean.
 * - `"rcvbuf"`, `"sndbuf"`: an integer of bytes (the kernel doubles it;
 *   `getsockopt` reports the doubled value);
 *   `"keepidle"`, `"keepintvl"` (seconds), `"keepcnt"`: a non-negative
 *   integer (the kernel rejects 0 with EINVAL).
 * - `"linger"`: `false` to turn lingering off, or an integer of seconds
 *   (0 included: close then resets the connection) to turn it on.
 * - `"error"`, `"type"`, `"domain"`, `"acceptconn"` are read-only: setting
 *   them raises.
 *
 * An option the socket does not support fails with the kernel's errno
 * (e.g. `"nodelay"` on a UNIX socket: EOPNOTSUPP).
 * @function setsockopt
 * @param fd the socket
 * @tparam string name the option
 * @tparam boolean|integer value the value
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see setsockopt(2), socket(7), tcp(7), ipv6(7)
 */
static int net_setsockopt(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  const net_Opt *o = net_checkopt(L, 2);
  int v = 0;
  struct linger lg;
  const void *val = &v;
  socklen_t len = sizeof v;
  switch (o->kind) {
  case OPT_BOOL:
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    v = lua_toboolean(L, 3);
    break;
  case OPT_INT:
    v = (int)lp_checkrange(L, 3, 0, INT_MAX);
    break;
  case OPT_LINGER:
    memset(&lg, 0, sizeof lg);
    if (lua_type(L, 3) == LUA_TBOOLEAN && !lua_toboolean(L, 3)) {
      lg.l_onoff = 0;
    } else if (lua_type(L, 3) == LUA_TNUMBER) {
      lg.l_onoff = 1;
      lg.l_linger = (int)lp_checkrange(L, 3, 0, INT_MAX);
    } else {
      return luaL_typeerror(L, 3, "integer or false");
    }
    val = &lg;
    len = sizeof lg;
    break;
  default:
    return luaL_argerror(L, 2, lua_pushfstring(L,
                         "socket option '%s' is read-only", o->name));
  }
  return lp_result(L, setsockopt(fd, o->level, o->optname, val, len) == 0);
}

/***
 * Read a socket option.
 * Names and value shapes as for `setsockopt`, plus the read-only ones:
 * `"error"` (SO_ERROR: the pending error as an errno integer, 0 if none,
 * cleared by reading; after a non-blocking connect, 0 once writable means
 * connected), `"type"` (`net.STREAM`, ...), `"domain"` (`net.INET`, ...)
 * and `"acceptconn"` (a boolean: is it listening). `"linger"` reads as
 * `false` or the seconds.
 * @function getsockopt
 * @param fd the socket
 * @tparam string name the option
 * @treturn[1] boolean|integer the value
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see getsockopt(2), socket(7), tcp(7), ipv6(7)
 */
static int net_getsockopt(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  const net_Opt *o = net_checkopt(L, 2);
  int v = 0;
  struct linger lg;
  socklen_t len;
  memset(&lg, 0, sizeof lg);
  if (o->kind == OPT_LINGER) {
    len = sizeof lg;
    if (getsockopt(fd, o->level, o->optname, &lg, &len) == -1)
      return lp_result(L, 0);
    if (lg.l_onoff)
      lua_pushinteger(L, lg.l_linger);
    else
      lua_pushboolean(L, 0);
    return 1;
  }
  len = sizeof v;
  if (getsockopt(fd, o->level, o->optname, &v, &len) == -1)
    return lp_result(L, 0);
  if (o->kind == OPT_BOOL || o->kind == OPT_RO_BOOL)
    lua_pushboolean(L, v != 0);
  else
    lua_pushinteger(L, v);
  return 1;
}

/***
 * Send bytes on a connected socket (always MSG_NOSIGNAL: a closed peer
 * gives `net.errno.EPIPE`, never SIGPIPE).
 * @function send
 * @param fd the socket
 * @tparam string s the data (a string: a number raises)
 * @tparam[opt=1] integer i first byte, as in `string.sub` (an integer: a
 *   numeric string raises)
 * @tparam[opt=-1] integer j last byte, as in `string.sub`
 * @treturn[1] integer bytes sent (possibly fewer than asked on a stream)
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`net.errno.EAGAIN` when it would block)
 * @see send(2)
 */
static int net_send(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t n;
  const char *p = lp_checksub(L, 2, &n);
  ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
  if (r == -1)
    return lp_result(L, 0);
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/***
 * Send a datagram to an address: `net.sendto(fd, s, host, port)`, or
 * `net.sendto(fd, s, path)` on a UNIX socket (address as for `bind`).
 * Always MSG_NOSIGNAL.
 * @function sendto
 * @param fd the socket
 * @tparam string s the data
 * @tparam string host the address literal, or the UNIX path
 * @tparam[opt] integer port 0..65535 (INET and INET6 only)
 * @treturn[1] integer bytes sent
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see sendto(2)
 */
static int net_sendto(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t n;
  const char *p = lp_checkstr(L, 2, &n);
  net_Addr a;
  ssize_t r;
  int en = net_checkaddr(L, fd, 3, &a);
  if (en != 0)
    return lp_fail(L, en);
  r = sendto(fd, p, n, MSG_NOSIGNAL, &a.u.sa, a.len);
  if (r == -1)
    return lp_result(L, 0);
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* One recvfrom(2) for lp_readresult; ud is the net_Addr for the sender's
 * address, or NULL. */
static ssize_t net_rd(int fd, void *buf, size_t len, void *ud) {
  net_Addr *from = (net_Addr *)ud;
  if (from == NULL)
    return recvfrom(fd, buf, len, 0, NULL, NULL);
  from->len = sizeof from->u;
  return recvfrom(fd, buf, len, 0, &from->u.sa, &from->len);
}

/* One recv(2) with flags (MSG_PEEK) for lp_readresult; ud points to them. */
static ssize_t net_rdflags(int fd, void *buf, size_t len, void *ud) {
  return recv(fd, buf, len, *(const int *)ud);
}

/***
 * Receive bytes: one recv(2) of at most max bytes.
 * @function recv
 * @param fd the socket
 * @tparam integer max 1..2^30
 * @tparam[opt] integer flags `net.PEEK` (MSG_PEEK: the bytes stay queued,
 *   the next recv returns them again), or 0
 * @treturn[1] string 1..max bytes, or `""` at end of stream (the peer shut
 *   down or closed; on a datagram socket `""` is an empty datagram)
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`net.errno.EAGAIN` when nothing is there)
 * @see recv(2)
 */
static int net_recv(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t max = (size_t)lp_checkrange(L, 2, 1, NET_RECVMAX);
  int flags = lp_checkflags(L, 3, MSG_PEEK, 0);
  if (flags == 0)
    return lp_readresult(L, fd, max, net_rd, NULL);
  return lp_readresult(L, fd, max, net_rdflags, &flags);
}

/***
 * Receive a datagram and its sender's address.
 * @function recvfrom
 * @param fd the socket
 * @tparam integer max 1..2^30 (a longer datagram is truncated)
 * @treturn[1] string the data
 * @treturn[1] string the sender's host, or its UNIX path; absent when the
 *   kernel reports no address (an unbound UNIX sender, a connected stream)
 * @treturn[1] integer the sender's port; absent for UNIX
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`net.errno.EAGAIN` when nothing is there)
 * @see recvfrom(2)
 */
static int net_recvfrom(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t max = (size_t)lp_checkrange(L, 2, 1, NET_RECVMAX);
  net_Addr a;
  int n = lp_readresult(L, fd, max, net_rd, &a);
  return n == 1 ? 1 + net_pushaddr(L, &a) : n;
}

/***
 * The byte length of data as `send` takes it, checked for a Lua function
 * that sends its own argument: a string's length, or the length of a
 * number's string form. Anything else raises `bad argument #arg to 'f'
 * (string expected, got T)`, where f is the Lua function that called
 * `datalen` (or fname) and the error points at the line that called f
 * (as a C function's own argument errors do): the framework's
 * `conn:write` checks its argument with it, once per call, at the cost
 * of `string.len`.
 * @function datalen
 * @param s the data
 * @tparam[opt=1] integer arg the argument number the error names
 * @tparam[opt] string fname the function name the error names (default:
 *   the name the calling function was called by)
 * @treturn integer bytes
 */
static int net_datalen(lua_State *L) {
  size_t len;
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    (void)lua_tolstring(L, 1, &len);  /* a number turns into its string here only */
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
  }
  {
    lua_Integer arg = lp_optrange(L, 2, 1, 255, 1);
    const char *fname = luaL_optstring(L, 3, NULL);
    lua_Debug ar;
    if (fname == NULL) {
      fname = "?";
      if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "n", &ar) && ar.name != NULL)
        fname = ar.name;
    }
    luaL_where(L, 2);  /* the caller of the function that called us */
    lua_pushfstring(L, "bad argument #%d to '%s' (string expected, got %s)",
                    (int)arg, fname, luaL_typename(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
  }
}

/* ---- the module ------------------------------------------------------- */

/* lepoll.net has no type of its own (sockets are lepoll.Fd, whose methods
 * and metamethods live in fdobj.c): one luaL_Reg array, module functions,
 * in the order of the docs. */
static const luaL_Reg net_funcs[] = {
  {"socket",      net_socket},
  {"socketpair",  net_socketpair},
  {"bind",        net_bind},
  {"listen",      net_listen},
  {"accept",      net_accept},
  {"connect",     net_connect},
  {"getsockname", net_getsockname},
  {"getpeername", net_getpeername},
  {"shutdown",    net_shutdown},
  {"setsockopt",  net_setsockopt},
  {"getsockopt",  net_getsockopt},
  {"send",        net_send},
  {"recv",        net_recv},
  {"sendto",      net_sendto},
  {"recvfrom",    net_recvfrom},
  {"datalen",     net_datalen},
  {NULL, NULL}
};

/***
 * Address families.
 * @table families
 * @field INET IPv4 (AF_INET)
 * @field INET6 IPv6 (AF_INET6)
 * @field UNIX local sockets (AF_UNIX)
 */

/***
 * Socket types.
 * @table types
 * @field STREAM SOCK_STREAM
 * @field DGRAM SOCK_DGRAM
 * @field SEQPACKET SOCK_SEQPACKET
 */

/***
 * Flags for `socket`, `socketpair` and `accept`, combined with `|`.
 * @table flags
 * @field NONBLOCK SOCK_NONBLOCK
 * @field CLOEXEC SOCK_CLOEXEC (always set whether given or not)
 * @field SOMAXCONN the default `listen` backlog (an integer, not a flag)
 */

/***
 * Flags for `recv`.
 * @table recv_flags
 * @field PEEK MSG_PEEK: look at the queued bytes without taking them
 */
static const lp_Const net_consts[] = {
  {"INET",      AF_INET},
  {"INET6",     AF_INET6},
  {"UNIX",      AF_UNIX},
  {"STREAM",    SOCK_STREAM},
  {"DGRAM",     SOCK_DGRAM},
  {"SEQPACKET", SOCK_SEQPACKET},
  {"NONBLOCK",  SOCK_NONBLOCK},
  {"CLOEXEC",   SOCK_CLOEXEC},
  {"SOMAXCONN", SOMAXCONN},
  {"PEEK",      MSG_PEEK},
  {NULL, 0}
};

/***
 * Socket option names for `setsockopt` / `getsockopt`: each constant holds
 * the option's string name, so a misspelt constant is an error (nil), not
 * a silently different option.
 * @table options
 * @field SO_REUSEADDR `"reuseaddr"`
 * @field SO_REUSEPORT `"reuseport"`
 * @field SO_KEEPALIVE `"keepalive"`
 * @field SO_BROADCAST `"broadcast"`
 * @field SO_LINGER `"linger"`
 * @field SO_RCVBUF `"rcvbuf"`
 * @field SO_SNDBUF `"sndbuf"`
 * @field SO_ERROR `"error"` (read-only)
 * @field SO_TYPE `"type"` (read-only)
 * @field SO_DOMAIN `"domain"` (read-only)
 * @field SO_ACCEPTCONN `"acceptconn"` (read-only)
 * @field TCP_NODELAY `"nodelay"`
 * @field TCP_KEEPIDLE `"keepidle"`
 * @field TCP_KEEPINTVL `"keepintvl"`
 * @field TCP_KEEPCNT `"keepcnt"`
 * @field IPV6_V6ONLY `"v6only"`
 */

/***
 * Error numbers: name -> integer (`net.errno.EAGAIN`, `net.errno.EPIPE`,
 * `net.errno.EINPROGRESS`, `net.errno.ECONNREFUSED`, ...), to compare with
 * the third value of a failure.
 * @table errno
 */

/***
 * The library version, `"lepoll 0.1.0"`.
 * @field _VERSION
 */
LEPOLL_API int luaopen_lepoll_net(lua_State *L);

LEPOLL_API int luaopen_lepoll_net(lua_State *L) {
  const net_Opt *o;
  luaL_checkversion(L);
  lp_fdmeta(L);
  luaL_newlib(L, net_funcs);
  lp_setconsts(L, net_consts);
  for (o = net_opts; o->name != NULL; o++) {
    lua_pushstring(L, o->name);
    lua_setfield(L, -2, o->cname);
  }
  lp_setmodinfo(L);
  return 1;
}
