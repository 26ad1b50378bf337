/* epoll.c - lepoll.epoll: epoll(7) for Lua, one to one with rustix::event::epoll. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/***
 * Linux epoll(7), one to one with rustix::event::epoll.
 *
 * An `Epoll` owns its fd (closed once by `close`, `<close>` or `__gc`) and
 * is itself an fd: pass it to any lepoll function or nest it in another
 * epoll set. `wait` fills a reusable `Events` buffer; nothing is allocated
 * per wait or per event.
 * @module lepoll.epoll
 */


/* Largest events buffer: 12 MiB of struct epoll_event, far below the
 * kernel's own limit of INT_MAX / sizeof(struct epoll_event). */
#define EVS_MAXCAP (1 << 20)

/* Largest timeout in ms: what epoll_wait(2) takes as an int, so both wait
 * paths accept the same range. */
#define EP_MAXTIMEOUT INT_MAX

/* Every EventFlags bit we accept in add/modify. */
#define EP_ALLFLAGS                                                        \
  ((lua_Integer)(uint32_t)(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLERR |      \
                           EPOLLHUP | EPOLLRDNORM | EPOLLRDBAND |          \
                           EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG |          \
                           EPOLLRDHUP | EPOLLET | EPOLLONESHOT |           \
                           EPOLLWAKEUP | EPOLLEXCLUSIVE))

/* lepoll.Epoll: starts with the fd so fdobj.c can close and print it. */
typedef struct ep_Epoll {
  int fd;
  int nopwait2;  /* epoll_pwait2 is unavailable: round up to whole ms */
} ep_Epoll;

/* lepoll.Events: header plus the kernel's array (as LPeg's newtree). */
typedef struct evs_Events {
  int cap;    /* slots in ev[] */
  int count;  /* filled by the last wait; 0 before the first and on error */
  struct epoll_event ev[];
} evs_Events;

/* epoll_pwait2(2): glibc >= 2.35 wraps it; else the raw syscall if the
 * headers know its number; else report ENOSYS and use the fallback. */
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 35)
#define EP_HAVE_PWAIT2 1
#endif
#endif

static int ep_pwait2(int epfd, struct epoll_event *ev, int maxevents,
                     const struct timespec *ts) {
#if defined(EP_HAVE_PWAIT2)
  return epoll_pwait2(epfd, ev, maxevents, ts, NULL);
#elif defined(SYS_epoll_pwait2)
  return (int)syscall(SYS_epoll_pwait2, epfd, ev, maxevents, ts, NULL,
                      (size_t)0);
#else
  (void)epfd; (void)ev; (void)maxevents; (void)ts;
  errno = ENOSYS;
  return -1;
#endif
}

/* Every function of this module has two upvalues, the metatables of
 * lepoll.Epoll and lepoll.Events (set up in luaopen_lepoll_epoll), so a
 * type check is one pointer compare instead of luaL_checkudata's registry
 * lookup by name: wait and get run once per batch and once per event. */
#define EP_UPEPOLL  lua_upvalueindex(1)
#define EP_UPEVENTS lua_upvalueindex(2)

/* luaL_checkudata against the metatable at upvalue index up: the same
 * result and the same error. */
static void *ep_checkud(lua_State *L, int arg, int up, const char *tname) {
  void *p = lp_toudata(L, arg, up);
  if (p == NULL)
    luaL_typeerror(L, arg, tname);
  return p;
}

static ep_Epoll *ep_check(lua_State *L) {
  ep_Epoll *ep = (ep_Epoll *)ep_checkud(L, 1, EP_UPEPOLL, LEPOLL_EPOLL_T);
  if (ep->fd < 0)
    luaL_error(L, "attempt to use a closed %s", LEPOLL_EPOLL_T);
  return ep;
}

static evs_Events *evs_check(lua_State *L, int arg) {
  return (evs_Events *)ep_checkud(L, arg, EP_UPEVENTS, LEPOLL_EVENTS_T);
}

/* Any Lua integer (or float with an exact integer value) as the u64 the
 * kernel stores: two's complement, bit for bit. */
static uint64_t ep_checkdata(lua_State *L, int arg) {
  return (uint64_t)lp_checkrange(L, arg, LUA_MININTEGER, LUA_MAXINTEGER);
}

/* EventFlags are required (no silent default) and span the full u32:
 * EPOLLET is 1u << 31. */
static uint32_t ep_checkevents(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg))
    luaL_typeerror(L, arg, "integer");
  return (uint32_t)lp_checkflags(L, arg, EP_ALLFLAGS, 0);
}

/* Parse a timeout in ms. Returns 0 with *ms set (-1 forever, or whole ms),
 * or 1 with *ts set for a fractional value, rounded up to the nanosecond.
 * Only -1 means forever; other negatives, NaN, infinities and values above
 * EP_MAXTIMEOUT raise before any cast. */
static int ep_checktimeout(lua_State *L, int arg, int *ms,
                           struct timespec *ts) {
  lua_Number d;
  long long ns;
  if (lua_isnoneornil(L, arg)) {
    *ms = -1;
    return 0;
  }
  if (lua_type(L, arg) != LUA_TNUMBER)
    return luaL_typeerror(L, arg, "number");
  if (lua_isinteger(L, arg)) {
    lua_Integer v = lua_tointeger(L, arg);
    if (v != -1 && (v < 0 || v > EP_MAXTIMEOUT))
      goto range;
    *ms = (int)v;
    return 0;
  }
  d = lua_tonumber(L, arg);
  if (!(d == -1 || (d >= 0 && d <= EP_MAXTIMEOUT)))  /* NaN fails too */
    goto range;
  if (d == floor(d)) {
    *ms = (int)d;
    return 0;
  }
  ns = (long long)ceil(d * 1e6);  /* <= 2.2e15: exact in a double */
  ts->tv_sec = (time_t)(ns / 1000000000LL);
  ts->tv_nsec = (long)(ns % 1000000000LL);
  *ms = (int)ceil(d);  /* the epoll_wait fallback rounds up, never to 0 */
  return 1;
range:
  return luaL_argerror(L, arg, lua_pushfstring(L,
                       "timeout must be -1 or in [0, %d] ms", EP_MAXTIMEOUT));
}

/* epoll_ctl(2) for add and modify. */
static int ep_ctl(lua_State *L, int op) {
  ep_Epoll *ep = ep_check(L);
  int fd = lp_checkfd(L, 2);
  struct epoll_event ev;
  ev.data.u64 = ep_checkdata(L, 3);
  ev.events = ep_checkevents(L, 4);
  return lp_result(L, epoll_ctl(ep->fd, op, fd, &ev) == 0);
}

/***
 * Create an epoll instance.
 * @function create
 * @tparam[opt] integer flags `epoll.CLOEXEC` or 0; the fd is close-on-exec
 *   unless `flags` is given without `epoll.CLOEXEC`
 * @treturn[1] Epoll the new instance, owning its fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`EMFILE`, `ENFILE`, `ENOMEM`)
 * @see epoll_create1(2)
 */
static int ep_create(lua_State *L) {
  int flags = lp_checkflags(L, 1, EPOLL_CLOEXEC, EPOLL_CLOEXEC);
  /* closed with its metatable before the syscall: a memory error here
   * leaves no fd behind */
  ep_Epoll *ep = (ep_Epoll *)lua_newuserdatauv(L, sizeof *ep, 0);
  ep->fd = -1;
  ep->nopwait2 = 0;
  lua_pushvalue(L, EP_UPEPOLL);
  lua_setmetatable(L, -2);
  if ((ep->fd = epoll_create1(flags)) == -1)
    return lp_result(L, 0);
  return 1;
}

/***
 * Register an fd.
 * @function Epoll:add
 * @param fd an integer fd (an integral float such as LuaSocket's `3.0`
 *   too), an lepoll fd object, or any value with a `:getfd()` or
 *   `:fileno()` method
 * @tparam integer data any integer; `events:get` returns it bit for bit
 * @tparam integer flags EventFlags combined with `|` (`epoll.IN`, ...)
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`EEXIST` already registered, `EBADF`, `EPERM`
 *   fd does not support epoll, `EINVAL` fd is this epoll or bad flag
 *   combination, `ELOOP` nesting cycle or too deep, `ENOSPC`, `ENOMEM`)
 * @see epoll_ctl(2)
 */
static int ep_add(lua_State *L) {
  return ep_ctl(L, EPOLL_CTL_ADD);
}

/***
 * Change the data and flags of a registered fd (re-arms `ONESHOT`).
 * @function Epoll:modify
 * @param fd as in `add`
 * @tparam integer data any integer
 * @tparam integer flags EventFlags (`EXCLUSIVE` is refused with `EINVAL`)
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`ENOENT` not registered, `EBADF`, `EINVAL`)
 * @see epoll_ctl(2)
 */
static int ep_modify(lua_State *L) {
  return ep_ctl(L, EPOLL_CTL_MOD);
}

/***
 * Unregister an fd.
 * @function Epoll:delete
 * @param fd as in `add`
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`ENOENT` not registered, `EBADF`, `EINVAL`)
 * @see epoll_ctl(2)
 */
static int ep_delete(lua_State *L) {
  ep_Epoll *ep = ep_check(L);
  int fd = lp_checkfd(L, 2);
  struct epoll_event ev = {0};  /* ignored; pre-2.6.9 kernels wanted one */
  return lp_result(L, epoll_ctl(ep->fd, EPOLL_CTL_DEL, fd, &ev) == 0);
}

/***
 * Wait for events and fill `events` with at most its capacity of them.
 * Ready fds beyond the capacity are reported by later waits. A fractional
 * timeout is honoured (epoll_pwait2 with nanoseconds; on kernels without
 * it, rounded up to whole milliseconds), never truncated to 0.
 * Interrupted by a signal, it returns the failure with `errno.EINTR` and
 * does not retry. Allocates nothing.
 * @function Epoll:wait
 * @tparam Events events the buffer to fill (its count is set to the result,
 *   0 on failure)
 * @tparam[opt] number timeout_ms -1 or nil to wait forever, 0 to poll, or
 *   up to 2147483647 ms (fractions allowed); other negative values, NaN
 *   and infinities raise
 * @treturn[1] integer the number of events, 0 on timeout
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (`EINTR`, `EBADF`, `EINVAL`)
 * @see epoll_wait(2)
 */
static int ep_wait(lua_State *L) {
  ep_Epoll *ep = ep_check(L);
  evs_Events *evs = evs_check(L, 2);
  struct timespec ts;
  int ms = -1, n;  /* set by ep_checktimeout unless it raises */
  int frac = ep_checktimeout(L, 3, &ms, &ts);
  if (frac && !ep->nopwait2) {
    n = ep_pwait2(ep->fd, evs->ev, evs->cap, &ts);
    /* ENOSYS: kernel < 5.11 (or valgrind); EPERM: a seccomp filter that
     * refuses unknown syscalls, as older container runtimes do. Neither
     * is a documented epoll_pwait2 error, so both mean "not available". */
    if (n == -1 && (errno == ENOSYS || errno == EPERM)) {
      ep->nopwait2 = 1;  /* per object, no global state */
      n = epoll_wait(ep->fd, evs->ev, evs->cap, ms);
    }
  } else {
    n = epoll_wait(ep->fd, evs->ev, evs->cap, ms);
  }
  if (n == -1) {
    int en = errno;
    evs->count = 0;  /* never report the previous wait's events again */
    return lp_fail(L, en);  /* EINTR included: the caller decides */
  }
  evs->count = n;
  lua_pushinteger(L, n);
  return 1;
}

/***
 * Create a fixed-capacity events buffer, reused across waits (rustix's
 * `EventVec::with_capacity`).
 * @function events
 * @tparam integer n capacity, 1 to 1048576
 * @treturn Events
 * @see Epoll:wait, epoll_wait(2)
 */
static int evs_new(lua_State *L) {
  int n = (int)lp_checkrange(L, 1, 1, EVS_MAXCAP);
  size_t size = offsetof(evs_Events, ev) + (size_t)n * sizeof(struct epoll_event);
  evs_Events *evs = (evs_Events *)lua_newuserdatauv(L, size, 0);
  evs->cap = n;
  evs->count = 0;
  lua_pushvalue(L, EP_UPEVENTS);
  lua_setmetatable(L, -2);
  return 1;
}

/***
 * The data and flags of the i-th event of the last wait. Allocates nothing.
 * @function Events:get
 * @tparam integer i 1 to `events:count()`
 * @treturn integer data, as given to `add` or `modify`
 * @treturn integer flags, the EventFlags that are ready
 * @see Epoll:wait, epoll_wait(2)
 */
static int evs_get(lua_State *L) {
  evs_Events *evs = evs_check(L, 1);
  int isnum;
  lua_Integer i = lua_tointegerx(L, 2, &isnum);
  const struct epoll_event *e;
  if (!isnum || lua_type(L, 2) != LUA_TNUMBER)  /* strings too */
    lp_checkrange(L, 2, 1, LUA_MAXINTEGER);  /* raises the type error */
  if (i < 1 || i > evs->count)
    return luaL_argerror(L, 2, lua_pushfstring(L,
                         "index out of range [1, %d] (events of the last wait)",
                         evs->count));
  e = &evs->ev[i - 1];
  /* u64 -> lua_Integer: two's complement, as lua_Integer arithmetic */
  lua_pushinteger(L, (lua_Integer)e->data.u64);
  lua_pushinteger(L, (lua_Integer)e->events);
  return 2;
}

/***
 * The number of events the last wait returned (also `#events`).
 * @function Events:count
 * @treturn integer
 * @see Epoll:wait
 */
static int evs_count(lua_State *L) {
  lua_pushinteger(L, evs_check(L, 1)->count);
  return 1;
}

/***
 * The fixed capacity given to `epoll.events`.
 * @function Events:capacity
 * @treturn integer
 * @see events
 */
static int evs_capacity(lua_State *L) {
  lua_pushinteger(L, evs_check(L, 1)->cap);
  return 1;
}

/***
 * `lepoll.Events (count/capacity)`.
 * @function Events:__tostring
 * @treturn string
 * @see Events:count, Events:capacity
 */
static int evs_tostring(lua_State *L) {
  evs_Events *evs = evs_check(L, 1);
  lua_pushfstring(L, "%s (%d/%d)", LEPOLL_EVENTS_T, evs->count, evs->cap);
  return 1;
}

/***
 * The fd number; raises on a closed Epoll.
 * @function Epoll:fileno
 * @treturn integer
 * @see fileno(3)
 */

/***
 * The same as `fileno` (the LuaSocket spelling).
 * @function Epoll:getfd
 * @treturn integer
 * @see Epoll:fileno
 */

/***
 * Give up ownership: returns the fd number, which the caller now closes;
 * the Epoll behaves as closed from then on.
 * @function Epoll:release
 * @treturn integer
 */

/***
 * Close the epoll fd; later use raises `attempt to use a closed
 * lepoll.Epoll`. `<close>` and garbage collection close it too, once.
 * `tostring` gives `lepoll.Epoll (fd N)` or `lepoll.Epoll (closed)`.
 * @function Epoll:close
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see close(2)
 */

/* Epoll: methods here; fileno, getfd, close and the metamethods (__gc,
 * __close, __tostring) are the shared ones of fdobj.c. */
static const luaL_Reg ep_methods[] = {
  {"add",    ep_add},
  {"modify", ep_modify},
  {"delete", ep_delete},
  {"wait",   ep_wait},
  {NULL, NULL}
};

static const luaL_Reg evs_methods[] = {
  {"get",      evs_get},
  {"count",    evs_count},
  {"capacity", evs_capacity},
  {NULL, NULL}
};

static const luaL_Reg evs_meta[] = {
  {"__len",      evs_count},
  {"__tostring", evs_tostring},
  {NULL, NULL}
};

static const luaL_Reg epoll_funcs[] = {
  {"create", ep_create},
  {"events", evs_new},
  {NULL, NULL}
};

/***
 * EventFlags and CreateFlags, integers to combine with `|`.
 * @table constants
 * @field IN readable (`EPOLLIN`)
 * @field OUT writable (`EPOLLOUT`)
 * @field PRI urgent data / exceptional condition (`EPOLLPRI`)
 * @field ERR error; always reported (`EPOLLERR`)
 * @field HUP hang up; always reported (`EPOLLHUP`)
 * @field RDNORM normal data readable (`EPOLLRDNORM`)
 * @field RDBAND priority band readable (`EPOLLRDBAND`)
 * @field WRNORM normal data writable (`EPOLLWRNORM`)
 * @field WRBAND priority band writable (`EPOLLWRBAND`)
 * @field MSG unused by Linux (`EPOLLMSG`)
 * @field RDHUP the peer shut down its writing half (`EPOLLRDHUP`)
 * @field ET edge-triggered (`EPOLLET`, 1 << 31)
 * @field ONESHOT disarm after one event; `modify` re-arms (`EPOLLONESHOT`)
 * @field WAKEUP hold a wakeup source while ready (`EPOLLWAKEUP`)
 * @field EXCLUSIVE wake one of several epolls waiting on one fd; `add`
 *   only, not with `ONESHOT` (`EPOLLEXCLUSIVE`)
 * @field CLOEXEC for `create` (`EPOLL_CLOEXEC`)
 * @field errno table of errno names to numbers (`EEXIST`, `EINTR`, ...)
 * @field _VERSION `"lepoll 0.1.0"`
 */
#define C(name, value) {name, (lua_Integer)(uint32_t)(value)}
static const lp_Const epoll_consts[] = {
  C("IN",        EPOLLIN),
  C("OUT",       EPOLLOUT),
  C("PRI",       EPOLLPRI),
  C("ERR",       EPOLLERR),
  C("HUP",       EPOLLHUP),
  C("RDNORM",    EPOLLRDNORM),
  C("RDBAND",    EPOLLRDBAND),
  C("WRNORM",    EPOLLWRNORM),
  C("WRBAND",    EPOLLWRBAND),
  C("MSG",       EPOLLMSG),
  C("RDHUP",     EPOLLRDHUP),
  C("ET",        EPOLLET),
  C("ONESHOT",   EPOLLONESHOT),
  C("WAKEUP",    EPOLLWAKEUP),
  C("EXCLUSIVE", EPOLLEXCLUSIVE),
  C("CLOEXEC",   EPOLL_CLOEXEC),
  {NULL, 0}
};
#undef C

LEPOLL_API int luaopen_lepoll_epoll(lua_State *L);

LEPOLL_API int luaopen_lepoll_epoll(lua_State *L) {
  luaL_checkversion(L);
  lp_newfdtype(L, LEPOLL_EPOLL_T, NULL);
  luaL_newmetatable(L, LEPOLL_EVENTS_T);  /* or the existing one */
  luaL_getmetatable(L, LEPOLL_EPOLL_T);   /* mt: Events, Epoll */
  /* Epoll's own methods (beside fdobj.c's fileno, getfd, close) */
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, ep_methods, 2);
  lua_pop(L, 1);
  /* Events: methods and metamethods */
  if (lua_getfield(L, -2, "__index") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "__index");
  }
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, evs_methods, 2);
  lua_pop(L, 1);
  lua_pushvalue(L, -2);                   /* Events mt: __len, __tostring */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, evs_meta, 2);
  lua_pop(L, 1);
  lua_newtable(L);                        /* the module */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, epoll_funcs, 2);
  lua_replace(L, -3);
  lua_pop(L, 1);
  lp_setconsts(L, epoll_consts);
  lp_setmodinfo(L);
  return 1;
}
