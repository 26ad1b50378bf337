/* io.c - lepoll.io: fds, pipes, eventfd, timerfd, signalfd, pidfd (rustix::io); read(2). */

/***
 * File descriptors, one syscall per call (mirrors rustix::io).
 *
 * Every `fd` argument is a non-negative integer (a float with an integral
 * value, such as LuaSocket's `3.0`, too), an open lepoll.Fd or
 * lepoll.Epoll, or any value with a `:getfd()` or `:fileno()` method (one
 * that is nil or false is skipped).
 * A failed syscall returns `nil, message, errno` (EAGAIN and EINTR
 * included: C never blocks on its own and never retries, the caller
 * decides); misuse (wrong type, closed object, out-of-range number,
 * unknown flag bits or names) raises an error naming the argument.
 * Every fd this module creates has close-on-exec set.
 * @module lepoll.io
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"


/* One flag constant serves pipe2, eventfd, timerfd, signalfd and pidfd. */
_Static_assert(EFD_NONBLOCK == O_NONBLOCK && TFD_NONBLOCK == O_NONBLOCK &&
               SFD_NONBLOCK == O_NONBLOCK, "NONBLOCK differs");
_Static_assert(EFD_CLOEXEC == O_CLOEXEC && TFD_CLOEXEC == O_CLOEXEC &&
               SFD_CLOEXEC == O_CLOEXEC, "CLOEXEC differs");

#define IO_READMAX   ((lua_Integer)1 << 30)  /* largest io.read request */
#define IO_MAXSIG    (NSIG - 1)
/* Seconds above this are a programming error, not a long timer; below it
 * every double converts to time_t exactly. */
#define IO_MAXSEC    4611686018427387904.0   /* 2^62 */

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

/* Standard signals, by name without the SIG prefix. */
#define S(name) {#name, SIG##name}
static const lp_Const io_signames[] = {
  S(HUP), S(INT), S(QUIT), S(ILL), S(TRAP), S(ABRT), S(BUS), S(FPE),
  S(KILL), S(USR1), S(SEGV), S(USR2), S(PIPE), S(ALRM), S(TERM),
  S(STKFLT), S(CHLD), S(CONT), S(STOP), S(TSTP), S(TTIN), S(TTOU),
  S(URG), S(XCPU), S(XFSZ), S(VTALRM), S(PROF), S(WINCH), S(IO), S(PWR),
  S(SYS),
  {NULL, 0}
};
#undef S

/* ---- argument helpers ---------------------------------------------- */

/* A signal: a number in 1..NSIG-1 or a name ("INT" or "SIGINT") at the
 * stack index idx; arg and pos only shape the error message (pos 0: the
 * argument itself, else the position inside a table argument). */
static int io_tosig(lua_State *L, int idx, int arg, lua_Integer pos) {
  const char *what = pos ? lua_pushfstring(L, "signal at index %I",
                                           (LUAI_UACINT)pos)
                         : lua_pushliteral(L, "signal");
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    int isint;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (isint && v >= 1 && v <= IO_MAXSIG) {
      lua_pop(L, 1);
      return (int)v;
    }
    return luaL_argerror(L, arg, lua_pushfstring(L,
                         "%s is not a signal number in [1, %d]", what,
                         IO_MAXSIG));
  }
  if (t == LUA_TSTRING) {
    size_t len;
    const char *name = lua_tolstring(L, idx, &len);
    const lp_Const *c;
    if (len > 3 && memcmp(name, "SIG", 3) == 0) {
      name += 3;
      len -= 3;
    }
    for (c = io_signames; c->name != NULL; c++)  /* "INT\0junk" is none */
      if (lp_streq(name, len, c->name)) {
        lua_pop(L, 1);
        return (int)c->value;
      }
    return luaL_argerror(L, arg, lua_pushfstring(L,
                         "%s: unknown signal name '%s'", what,
                         lua_tostring(L, idx)));
  }
  return luaL_argerror(L, arg, lua_pushfstring(L,
                       "%s: number or name expected, got %s", what,
                       luaL_typename(L, idx)));
}

/* An array of signals (numbers or names) into *set. */
static void io_checksigset(lua_State *L, int arg, sigset_t *set) {
  lua_Integer i, n;
  luaL_checktype(L, arg, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, arg);
  sigemptyset(set);
  for (i = 1; i <= n; i++) {
    int sig;
    lua_rawgeti(L, arg, i);
    sig = io_tosig(L, lua_gettop(L), arg, i);
    lua_pop(L, 1);
    /* glibc refuses its own two (32, 33: thread cancel and setxid) with
     * EINVAL; they would otherwise drop out of the set without a word */
    if (sigaddset(set, sig) == -1)
      luaL_argerror(L, arg, lua_pushfstring(L,
                    "signal at index %I (%d) is reserved by the C library",
                    (LUAI_UACINT)i, sig));
  }
}

static clockid_t io_checkclock(lua_State *L, int arg) {
  lua_Integer c = lp_optrange(L, arg, INT_MIN, INT_MAX, CLOCK_MONOTONIC);
  if (c != CLOCK_MONOTONIC && c != CLOCK_REALTIME && c != CLOCK_BOOTTIME)
    luaL_argerror(L, arg, "unknown clock (io.MONOTONIC, io.REALTIME or "
                          "io.BOOTTIME expected)");
  return (clockid_t)c;
}

/* Non-negative seconds (integer or float) into a timespec. NaN, infinite,
 * negative and absurdly large values raise; a positive value too small
 * for a nanosecond becomes 1 ns, so it never turns into "disarm". */
static void io_checkseconds(lua_State *L, int arg, struct timespec *ts) {
  lua_Number s, whole;
  long long ns;
  if (lua_isinteger(L, arg)) {
    lua_Integer v = lua_tointeger(L, arg);
    if (v < 0)
      luaL_argerror(L, arg, "seconds must not be negative");
    ts->tv_sec = (time_t)v;
    ts->tv_nsec = 0;
    return;
  }
  if (lua_type(L, arg) != LUA_TNUMBER)
    luaL_typeerror(L, arg, "number");
  s = lua_tonumber(L, arg);
  if (isnan(s))
    luaL_argerror(L, arg, "seconds must not be NaN");
  if (s < 0)
    luaL_argerror(L, arg, "seconds must not be negative");
  if (!(s < IO_MAXSEC))
    luaL_argerror(L, arg, "seconds out of range");
  whole = floor(s);
  ns = llround((s - whole) * 1e9);
  ts->tv_sec = (time_t)whole;
  if (ns >= 1000000000LL) {  /* 0.9999999999 rounds up to the next second */
    ts->tv_sec += 1;
    ns -= 1000000000LL;
  }
  if (ts->tv_sec == 0 && ns == 0 && s > 0)
    ns = 1;
  ts->tv_nsec = (long)ns;
}

static void io_pushseconds(lua_State *L, const struct timespec *ts) {
  lua_pushnumber(L, (lua_Number)ts->tv_sec + (lua_Number)ts->tv_nsec / 1e9);
}

/* Read one fixed-size record (eventfd and timerfd counters). */
static int io_readu64(lua_State *L, int fd) {
  uint64_t v;
  ssize_t n = read(fd, &v, sizeof v);
  if (n == -1)
    return lp_result(L, 0);
  if (n != (ssize_t)sizeof v)
    return lp_fail(L, EIO);  /* not an eventfd/timerfd after all */
  lua_pushinteger(L, (lua_Integer)v);  /* two's complement above 2^63-1 */
  return 1;
}

/* ---- module functions ---------------------------------------------- */

/* read(2) for lp_readresult. */
static ssize_t io_rd(int fd, void *buf, size_t len, void *ud) {
  (void)ud;
  return read(fd, buf, len);
}

/***
 * Read at most `max` bytes with one read(2).
 * Only the result string is allocated (requests above 16 KiB go through a
 * temporary buffer of `max` bytes).
 * @function read
 * @tparam integer|Fd fd
 * @tparam integer max bytes to read, 1 to 2^30
 * @treturn[1] string 1 to `max` bytes, or `""` at end of file
 * @return[2] nil
 * @treturn[2] string message (EAGAIN on an empty non-blocking fd)
 * @treturn[2] integer errno
 * @see read(2)
 */
static int io_read(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t max = (size_t)lp_checkrange(L, 2, 1, IO_READMAX);
  return lp_readresult(L, fd, max, io_rd, NULL);
}

/***
 * Write `s:sub(i, j)` with one write(2).
 * `i` and `j` follow `string.sub` exactly (negative counts from the end,
 * out-of-range values clamp). An empty range writes nothing: it returns 0
 * without a syscall (so it reports no error even on a bad fd number).
 * As in `net.send`, `s` must be a string (a number raises) and `i`, `j`
 * integers (a numeric string raises).
 * @function write
 * @tparam integer|Fd fd
 * @tparam string s
 * @tparam[opt=1] integer i
 * @tparam[opt=-1] integer j
 * @treturn[1] integer bytes written (may be fewer than asked)
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN, EPIPE, ...)
 * @see write(2)
 */
static int io_write(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  size_t len;
  const char *p = lp_checksub(L, 2, &len);
  ssize_t n;
  if (len == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if ((n = write(fd, p, len)) == -1)
    return lp_result(L, 0);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* writev's body, on arguments already resolved: its IOV_MAX entries (16
 * KiB) are never live while a getfd() runs (noinline: see lp_readresult). */
__attribute__((noinline))
static int io_writevbody(lua_State *L, int fd, lua_Integer first,
                         lua_Integer last) {
  struct iovec iov[IOV_MAX];
  lua_Integer k;
  int cnt = 0;
  ssize_t n;
  /* k never steps past last: last may be math.maxinteger */
  for (k = first; k <= last && cnt < IOV_MAX; k++) {
    size_t len;
    /* the table keeps each string alive for the duration of the call */
    if (lua_rawgeti(L, 2, k) != LUA_TSTRING)
      return luaL_argerror(L, 2, lua_pushfstring(L,
                           "string expected at index %I, got %s",
                           (LUAI_UACINT)k, luaL_typename(L, -1)));
    iov[cnt].iov_base = (void *)lua_tolstring(L, -1, &len);
    iov[cnt].iov_len = len;
    cnt++;
    lua_pop(L, 1);
    if (k == last)
      break;
  }
  if (cnt == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if ((n = writev(fd, iov, cnt)) == -1)
    return lp_result(L, 0);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/***
 * Write the strings `t[first]` to `t[last]` with one writev(2).
 * At most IOV_MAX (1024) elements go out per call; as with any write the
 * count may be short, and the caller continues from where it stopped.
 * A range with no elements returns 0 without a syscall. Every element in
 * the range must be a string (an error names its index).
 * @function writev
 * @tparam integer|Fd fd
 * @tparam {string,...} t
 * @tparam[opt=1] integer first
 * @tparam[opt=#t] integer last
 * @treturn[1] integer bytes written
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see writev(2)
 */
static int io_writev(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  lua_Integer first, last;
  luaL_checktype(L, 2, LUA_TTABLE);
  first = lp_optrange(L, 3, 1, LUA_MAXINTEGER, 1);
  last = lp_optrange(L, 4, 0, LUA_MAXINTEGER, (lua_Integer)lua_rawlen(L, 2));
  return io_writevbody(L, fd, first, last);
}

/***
 * Close an fd.
 * An lepoll.Fd (or lepoll.Epoll) is marked closed, exactly as `fd:close()`.
 * A plain integer is closed as is: it must be the caller's own fd. Objects
 * of other libraries (LuaSocket, luaposix) are refused: they would close
 * the fd again later, so close them through their own `:close()`.
 * EINTR counts as success (Linux has released the fd anyway).
 * @function close
 * @tparam integer|Fd fd
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EBADF)
 * @see close(2)
 */
static int io_close(lua_State *L) {
  const char *tname;
  lp_Fd *f = lp_tofdobj(L, 1, &tname);
  lp_Fd tmp;
  if (f != NULL) {
    if (f->fd < 0)
      return luaL_error(L, "attempt to use a closed %s", tname);
    return lp_closeresult(L, f);
  }
  if (lua_type(L, 1) != LUA_TNUMBER)
    return luaL_typeerror(L, 1, "integer or lepoll.Fd");
  tmp.fd = lp_checkfd(L, 1);
  return lp_closeresult(L, &tmp);
}

/***
 * Switch O_NONBLOCK on or off with ioctl(FIONBIO) (rustix's ioctl_fionbio).
 * @function set_nonblocking
 * @tparam integer|Fd fd
 * @tparam boolean on
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see ioctl(2)
 */
static int io_set_nonblocking(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  int on;
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  on = lua_toboolean(L, 2);
  return lp_result(L, ioctl(fd, FIONBIO, &on) != -1);
}

/***
 * Create a pipe with pipe2(2).
 * @function pipe
 * @tparam[opt=io.CLOEXEC] integer flags `io.NONBLOCK`, `io.CLOEXEC`
 *   (CLOEXEC is always set)
 * @treturn[1] Fd the read end
 * @treturn[1] Fd the write end
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EMFILE, ENFILE)
 * @see pipe(2)
 */
static int io_pipe(lua_State *L) {
  int flags = lp_checkflags(L, 1, O_NONBLOCK | O_CLOEXEC, 0);
  lp_Fd *r = lp_newfd(L);
  lp_Fd *w = lp_newfd(L);
  int p[2];
  if (pipe2(p, flags | O_CLOEXEC) == -1)
    return lp_result(L, 0);
  r->fd = p[0];
  w->fd = p[1];
  return 2;
}

/***
 * Duplicate an fd (fcntl F_DUPFD_CLOEXEC): a new number for the same
 * open file, sharing its offset and status flags.
 * @function dup
 * @tparam integer|Fd fd
 * @tparam[opt=io.CLOEXEC] integer flags only `io.CLOEXEC` (always set)
 * @treturn[1] Fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EBADF, EMFILE)
 * @see fcntl(2)
 */
static int io_dup(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  lp_Fd *f;
  (void)lp_checkflags(L, 2, O_CLOEXEC, 0);
  f = lp_newfd(L);
  if ((f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
    return lp_result(L, 0);
  return 1;
}

/***
 * Create an eventfd: a 64-bit counter, readable while it is not zero.
 * @function eventfd
 * @tparam[opt=0] integer initval 0 to 2^32-1
 * @tparam[opt=io.CLOEXEC] integer flags `io.NONBLOCK`, `io.CLOEXEC`,
 *   `io.SEMAPHORE`
 * @treturn[1] Fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see eventfd(2)
 */
static int io_eventfd(lua_State *L) {
  unsigned int init = (unsigned int)lp_optrange(L, 1, 0, UINT_MAX, 0);
  int flags = lp_checkflags(L, 2, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE,
                            0);
  lp_Fd *f = lp_newfd(L);
  if ((f->fd = eventfd(init, flags | EFD_CLOEXEC)) == -1)
    return lp_result(L, 0);
  return 1;
}

/***
 * Read an eventfd's counter and reset it (with `io.SEMAPHORE`: return 1
 * and decrement it).
 * A counter above `math.maxinteger` comes back as a negative integer,
 * bit for bit (compare with `math.ult`).
 * @function eventfd_read
 * @tparam integer|Fd fd
 * @treturn[1] integer the counter
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN when zero and non-blocking; EIO when
 *   the fd gave a short record, i.e. it is not an eventfd)
 * @see eventfd(2)
 */
static int io_eventfd_read(lua_State *L) {
  return io_readu64(L, lp_checkfd(L, 1));
}

/***
 * Add `n` to an eventfd's counter.
 * The kernel takes 1 to 2^64-2; Lua integers being signed, this takes
 * 1 to `math.maxinteger` per call.
 * @function eventfd_write
 * @tparam integer|Fd fd
 * @tparam[opt=1] integer n
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN when the counter would overflow)
 * @see eventfd(2)
 */
static int io_eventfd_write(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  uint64_t v = (uint64_t)lp_optrange(L, 2, 1, LUA_MAXINTEGER, 1);
  ssize_t n = write(fd, &v, sizeof v);
  if (n == -1)
    return lp_result(L, 0);
  if (n != (ssize_t)sizeof v)
    return lp_fail(L, EIO);
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Create a timerfd; arm it with `timerfd_settime`.
 * @function timerfd
 * @tparam[opt=io.MONOTONIC] integer clock `io.MONOTONIC`, `io.REALTIME`,
 *   `io.BOOTTIME`
 * @tparam[opt=io.CLOEXEC] integer flags `io.NONBLOCK`, `io.CLOEXEC`
 * @treturn[1] Fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see timerfd_create(2)
 */
static int io_timerfd(lua_State *L) {
  clockid_t clock = io_checkclock(L, 1);
  int flags = lp_checkflags(L, 2, TFD_NONBLOCK | TFD_CLOEXEC, 0);
  lp_Fd *f = lp_newfd(L);
  if ((f->fd = timerfd_create(clock, flags | TFD_CLOEXEC)) == -1)
    return lp_result(L, 0);
  return 1;
}

/***
 * Arm (or disarm) a timerfd.
 * Seconds are integers or floats, rounded to the nearest nanosecond (a
 * positive value never rounds to 0). NaN, infinite and negative values
 * raise. An `initial` of 0 disarms the timer.
 * @function timerfd_settime
 * @tparam integer|Fd fd
 * @tparam number initial seconds to the first expiration (with
 *   `io.ABSTIME`: the clock's time of it)
 * @tparam[opt=0] number interval seconds between later expirations,
 *   0 for a one-shot timer
 * @tparam[opt=0] integer flags `io.ABSTIME`, `io.CANCEL_ON_SET`
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see timerfd_settime(2)
 */
static int io_timerfd_settime(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  struct itimerspec its;
  int flags;
  io_checkseconds(L, 2, &its.it_value);
  if (lua_isnoneornil(L, 3)) {
    its.it_interval.tv_sec = 0;
    its.it_interval.tv_nsec = 0;
  } else {
    io_checkseconds(L, 3, &its.it_interval);
  }
  flags = lp_checkflags(L, 4, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, 0);
  return lp_result(L, timerfd_settime(fd, flags, &its, NULL) == 0);
}

/***
 * A timerfd's setting: seconds to the next expiration (0 when disarmed)
 * and the interval.
 * @function timerfd_gettime
 * @tparam integer|Fd fd
 * @treturn[1] number remaining seconds
 * @treturn[1] number interval seconds
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see timerfd_gettime(2)
 */
static int io_timerfd_gettime(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  struct itimerspec its;
  if (timerfd_gettime(fd, &its) == -1)
    return lp_result(L, 0);
  io_pushseconds(L, &its.it_value);
  io_pushseconds(L, &its.it_interval);
  return 2;
}

/***
 * Read a timerfd: the number of expirations since the last read
 * (blocks on a blocking fd until the first one).
 * @function timerfd_read
 * @tparam integer|Fd fd
 * @treturn[1] integer expirations, at least 1
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN when none and non-blocking; ECANCELED
 *   with `io.CANCEL_ON_SET` after a clock change; EIO on a short record)
 * @see timerfd_create(2)
 */
static int io_timerfd_read(lua_State *L) {
  return io_readu64(L, lp_checkfd(L, 1));
}

/***
 * The time of a clock, in seconds (a float).
 * @function clock_gettime
 * @tparam[opt=io.MONOTONIC] integer clock `io.MONOTONIC`, `io.REALTIME`,
 *   `io.BOOTTIME`
 * @treturn number seconds
 * @see clock_gettime(2)
 */
static int io_clock_gettime(lua_State *L) {
  clockid_t clock = io_checkclock(L, 1);
  struct timespec ts;
  if (clock_gettime(clock, &ts) == -1)
    return lp_result(L, 0);
  io_pushseconds(L, &ts);
  return 1;
}

/***
 * Block the given signals and create a signalfd that receives them.
 * The signals stay blocked after the fd is closed (unblock them with
 * `io.sigmask("unblock", ...)` once nothing is pending), and a blocked
 * mask is inherited by child processes, across exec. Blocking applies to
 * the calling thread (pthread_sigmask); SIGKILL and SIGSTOP cannot be
 * blocked and are silently left out, as the kernel does. Signals 32 and 33
 * belong to the C library and raise.
 * @function signalfd
 * @tparam {integer|string,...} signals numbers or names (`"INT"`,
 *   `"SIGTERM"`)
 * @tparam[opt=io.CLOEXEC] integer flags `io.NONBLOCK`, `io.CLOEXEC`
 * @treturn[1] Fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (the mask is restored)
 * @see signalfd(2)
 */
static int io_signalfd(lua_State *L) {
  sigset_t set, old;
  int flags, en;
  lp_Fd *f;
  io_checksigset(L, 1, &set);
  flags = lp_checkflags(L, 2, SFD_NONBLOCK | SFD_CLOEXEC, 0);
  f = lp_newfd(L);
  if ((en = pthread_sigmask(SIG_BLOCK, &set, &old)) != 0)
    return lp_fail(L, en);
  if ((f->fd = signalfd(-1, &set, flags | SFD_CLOEXEC)) == -1) {
    en = errno;
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    return lp_fail(L, en);
  }
  return 1;
}

/***
 * Read one signal from a signalfd.
 * @function signalfd_read
 * @tparam integer|Fd fd
 * @treturn[1] integer signal number
 * @treturn[1] integer pid of the sender (0 from the kernel)
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN when none and non-blocking; EIO on a
 *   short record, i.e. not a signalfd)
 * @see signalfd(2)
 */
static int io_signalfd_read(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  struct signalfd_siginfo si;
  ssize_t n = read(fd, &si, sizeof si);
  if (n == -1)
    return lp_result(L, 0);
  if (n != (ssize_t)sizeof si)
    return lp_fail(L, EIO);
  lua_pushinteger(L, (lua_Integer)si.ssi_signo);
  lua_pushinteger(L, (lua_Integer)si.ssi_pid);
  return 2;
}

/***
 * Change the calling thread's signal mask (signals 32 and 33 belong to the
 * C library and raise).
 * @function sigmask
 * @tparam string how `"block"`, `"unblock"` or `"setmask"`
 * @tparam {integer|string,...} signals numbers or names
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see pthread_sigmask(3)
 */
static int io_sigmask(lua_State *L) {
  static const char *const hows[] = {"block", "unblock", "setmask", NULL};
  static const int howv[] = {SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK};
  int how = howv[lp_checkoption(L, 1, NULL, hows)];
  sigset_t set;
  int en;
  io_checksigset(L, 2, &set);
  if ((en = pthread_sigmask(how, &set, NULL)) != 0)
    return lp_fail(L, en);
  lua_pushboolean(L, 1);
  return 1;
}

static int io_setdisposition(lua_State *L, void (*handler)(int)) {
  int sig = io_tosig(L, 1, 1, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  return lp_result(L, sigaction(sig, &sa, NULL) == 0);
}

/***
 * Ignore a signal (SIG_IGN), e.g. `io.ignore_signal(io.SIGPIPE)` so that
 * writing to a closed pipe or socket returns EPIPE instead of killing the
 * process. The disposition is process-wide and survives exec.
 * @function ignore_signal
 * @tparam integer|string sig number or name
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EINVAL for SIGKILL, SIGSTOP)
 * @see sigaction(2)
 */
static int io_ignore_signal(lua_State *L) {
  return io_setdisposition(L, SIG_IGN);
}

/***
 * Restore a signal's default action (SIG_DFL).
 * @function default_signal
 * @tparam integer|string sig number or name
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EINVAL for SIGKILL, SIGSTOP)
 * @see sigaction(2)
 */
static int io_default_signal(lua_State *L) {
  return io_setdisposition(L, SIG_DFL);
}

/***
 * An fd for a process, readable once it has exited (pidfd_open(2);
 * ENOSYS on kernels before 5.3). Always close-on-exec.
 * @function pidfd_open
 * @tparam integer pid
 * @tparam[opt=0] integer flags `io.NONBLOCK`, `io.CLOEXEC` (always set)
 * @treturn[1] Fd
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (ESRCH, ENOSYS)
 * @see pidfd_open(2)
 */
static int io_pidfd_open(lua_State *L) {
  pid_t pid = (pid_t)lp_checkrange(L, 1, 1, INT_MAX);
  /* io.CLOEXEC is accepted as everywhere else; a pidfd always has it */
  int flags = lp_checkflags(L, 2, PIDFD_NONBLOCK | O_CLOEXEC, 0) & ~O_CLOEXEC;
  lp_Fd *f = lp_newfd(L);
#ifdef SYS_pidfd_open
  long r = syscall(SYS_pidfd_open, pid, (unsigned int)flags);
  if (r == -1)
    return lp_result(L, 0);
  f->fd = (int)r;
  return 1;
#else
  (void)f; (void)pid; (void)flags;
  return lp_fail(L, ENOSYS);
#endif
}

/***
 * The calling process's pid.
 * @function getpid
 * @treturn integer
 * @see getpid(2)
 */
static int io_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg io_funcs[] = {
  {"read",            io_read},
  {"write",           io_write},
  {"writev",          io_writev},
  {"close",           io_close},
  {"set_nonblocking", io_set_nonblocking},
  {"pipe",            io_pipe},
  {"dup",             io_dup},
  {"eventfd",         io_eventfd},
  {"eventfd_read",    io_eventfd_read},
  {"eventfd_write",   io_eventfd_write},
  {"timerfd",         io_timerfd},
  {"timerfd_settime", io_timerfd_settime},
  {"timerfd_gettime", io_timerfd_gettime},
  {"timerfd_read",    io_timerfd_read},
  {"clock_gettime",   io_clock_gettime},
  {"signalfd",        io_signalfd},
  {"signalfd_read",   io_signalfd_read},
  {"sigmask",         io_sigmask},
  {"ignore_signal",   io_ignore_signal},
  {"default_signal",  io_default_signal},
  {"pidfd_open",      io_pidfd_open},
  {"getpid",          io_getpid},
  {NULL, NULL}
};

/***
 * Flags for `pipe`, `dup`, `eventfd`, `timerfd`, `signalfd`, `pidfd_open`.
 * @field NONBLOCK O_NONBLOCK
 * @field CLOEXEC O_CLOEXEC (always set on fds this module creates)
 * @field SEMAPHORE EFD_SEMAPHORE (`eventfd` only)
 * @table flags
 */
/***
 * Clocks for `timerfd` and `clock_gettime`, and `timerfd_settime` flags.
 * @field MONOTONIC CLOCK_MONOTONIC
 * @field REALTIME CLOCK_REALTIME
 * @field BOOTTIME CLOCK_BOOTTIME
 * @field ABSTIME TFD_TIMER_ABSTIME: `initial` is a time of the clock
 * @field CANCEL_ON_SET TFD_TIMER_CANCEL_ON_SET (REALTIME with ABSTIME)
 * @table clocks
 */
static const lp_Const io_consts[] = {
  {"NONBLOCK",      O_NONBLOCK},
  {"CLOEXEC",       O_CLOEXEC},
  {"SEMAPHORE",     EFD_SEMAPHORE},
  {"MONOTONIC",     CLOCK_MONOTONIC},
  {"REALTIME",      CLOCK_REALTIME},
  {"BOOTTIME",      CLOCK_BOOTTIME},
  {"ABSTIME",       TFD_TIMER_ABSTIME},
  {"CANCEL_ON_SET", TFD_TIMER_CANCEL_ON_SET},
  {NULL, 0}
};

/***
 * Signal numbers: `io.SIGINT`, `io.SIGTERM`, `io.SIGHUP`, `io.SIGUSR1`,
 * `io.SIGUSR2`, `io.SIGCHLD`, `io.SIGPIPE`, `io.SIGQUIT`, `io.SIGALRM`,
 * `io.SIGWINCH` and every other standard signal (SIGABRT ... SIGSYS);
 * `io.signals` maps the names without the prefix (`"INT"`) to numbers.
 * Wherever a signal is taken, `"INT"` and `"SIGINT"` work too.
 * @table signals
 */
/***
 * Error numbers by name (`io.errno.EAGAIN`).
 * @table errno
 */
LEPOLL_API int luaopen_lepoll_io(lua_State *L);

LEPOLL_API int luaopen_lepoll_io(lua_State *L) {
  const lp_Const *c;
  luaL_checkversion(L);
  lp_fdmeta(L);
  luaL_newlib(L, io_funcs);
  lp_setconsts(L, io_consts);
  for (c = io_signames; c->name != NULL; c++) {
    lua_pushfstring(L, "SIG%s", c->name);
    lua_pushinteger(L, c->value);
    lua_rawset(L, -3);
  }
  lua_createtable(L, 0, (int)(sizeof io_signames / sizeof io_signames[0]));
  lp_setconsts(L, io_signames);
  lua_setfield(L, -2, "signals");
  lp_setmodinfo(L);
  return 1;
}

/***
 * Fd objects (lepoll.Fd, implemented in fdobj.c): what `pipe`, `dup`,
 * `eventfd`, `timerfd`, `signalfd` and `pidfd_open` return. An Fd owns its
 * fd: `close`, `<close>` and `__gc` close it exactly once; using a closed
 * Fd raises `attempt to use a closed lepoll.Fd`; `tostring` gives
 * `lepoll.Fd (fd 7)` or `lepoll.Fd (closed)`.
 * @type Fd
 */

/***
 * The fd number.
 * @function Fd:fileno
 * @treturn integer
 * @see fileno(3)
 */

/***
 * The fd number (LuaSocket's name for `fileno`).
 * @function Fd:getfd
 * @treturn integer
 * @see Fd:fileno
 */

/***
 * Give up ownership (rustix's `into_raw_fd`): returns the fd number, which
 * the caller now closes (`io.close(n)`). The object behaves as closed from
 * then on: `close`, `<close>` and `__gc` no longer touch the fd.
 * @function Fd:release
 * @treturn integer
 */

/***
 * Close the fd (once; the object is marked closed first).
 * @function Fd:close
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see close(2)
 */
