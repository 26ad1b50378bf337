/* process.c - lepoll.process: fork, reap through pidfds, signal, exec with fds at 3.. (rustix::process); fork(2). */

/***
 * Processes: their facts and their lifecycle (mirrors rustix::process).
 *
 * What a pre-forking master needs: `fork`, reaping through pidfds
 * (`waitid`), signals (`send_signal`, `kill`), a re-exec that hands fds
 * on at 3, 4, ... (`execve`, the `LISTEN_FDS` layout of sd_listen_fds(3)),
 * the CPU count, the parent-death signal and the environment.
 *
 * Every `fd` argument is taken as in lepoll.io: a non-negative integer, an
 * open lepoll.Fd, or any value with a `:getfd()` or `:fileno()` method.
 * Signals are integers from 1 to SIGRTMAX (`lepoll.io.signals` maps names).
 * A failed syscall returns `nil, message, errno`; misuse raises an error
 * naming the argument.
 * @module lepoll.process
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* The largest CPU set cpu_count asks for: 2^22 CPUs (512 KiB), far beyond
 * any kernel's NR_CPUS (8192 today). */
#define PROC_MAXCPUS (1 << 22)

/* The first fd execve hands on (sd_listen_fds' SD_LISTEN_FDS_START). */
#define PROC_FDSTART 3

/* fds handed to execve at most: their copies must fit above 3 + n. */
#define PROC_MAXFDS 65536

static int proc_checksig(lua_State *L, int arg, lua_Integer lo) {
  return (int)lp_checkrange(L, arg, lo, SIGRTMAX);
}

/* ---- process facts -------------------------------------------------- */

/***
 * Fork the process.
 * C stdio buffers are flushed first (fflush(NULL)), so that what was
 * buffered is not written twice. Nothing else happens in the child: it
 * shares the parent's epoll sets, timerfds and sockets, and must build its
 * own loop before it uses one.
 * @function fork
 * @treturn[1] integer the child's pid in the parent, 0 in the child
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (EAGAIN, ENOMEM)
 * @see fork(2)
 */
static int proc_fork(lua_State *L) {
  pid_t pid;
  (void)fflush(NULL);  /* a failed flush loses nothing more by forking */
  if ((pid = fork()) == -1)
    return lp_result(L, 0);
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/***
 * Reap a child through its pidfd, without waiting.
 * `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`; EINTR is retried. A child
 * that has ended is reaped: its pidfd stays open (close it) and reports
 * ECHILD from then on.
 * @function waitid
 * @tparam integer|Fd pidfd from `lepoll.io.pidfd_open`
 * @treturn[1] boolean false: the child is still running
 * @treturn[2] string `"exited"`
 * @treturn[2] integer its exit status (0 to 255)
 * @treturn[3] string `"killed"`, or `"dumped"` when it left a core
 * @treturn[3] integer the signal that ended it
 * @return[4] nil
 * @treturn[4] string message
 * @treturn[4] integer errno (ECHILD: not a child of ours, or reaped
 *   already; EBADF: not a pidfd)
 * @see waitid(2)
 */
static int proc_waitid(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  siginfo_t si;
  int r;
  memset(&si, 0, sizeof si);  /* si_pid stays 0 when nothing has ended */
  do
    r = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
  while (r == -1 && errno == EINTR);
  if (r == -1)
    return lp_result(L, 0);
  if (si.si_pid == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  switch (si.si_code) {
  case CLD_EXITED: lua_pushliteral(L, "exited"); break;
  case CLD_KILLED: lua_pushliteral(L, "killed"); break;
  case CLD_DUMPED: lua_pushliteral(L, "dumped"); break;
  default: return lp_fail(L, EPROTO);  /* WEXITED reports no other code */
  }
  lua_pushinteger(L, si.si_status);
  return 2;
}

/***
 * Send a signal through a pidfd: never to a recycled pid.
 * @function send_signal
 * @tparam integer|Fd pidfd
 * @tparam integer signo 1 to SIGRTMAX
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (ESRCH once the process has been reaped;
 *   EBADF: not a pidfd; ENOSYS before Linux 5.1)
 * @see pidfd_send_signal(2)
 */
static int proc_send_signal(lua_State *L) {
  int fd = lp_checkfd(L, 1);
  int sig = proc_checksig(L, 2, 1);
#ifdef SYS_pidfd_send_signal
  return lp_result(L, syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) == 0);
#else
  (void)fd;
  (void)sig;
  return lp_fail(L, ENOSYS);
#endif
}

/***
 * Send a signal to one process by pid.
 * Only a single process (pid above 0): process groups and "every process"
 * are not for a pid that may have been read from a file.
 * @function kill
 * @tparam integer pid 1 to 2^31-1
 * @tparam integer signo 1 to SIGRTMAX
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (ESRCH, EPERM)
 * @see kill(2)
 */
static int proc_kill(lua_State *L) {
  pid_t pid = (pid_t)lp_checkrange(L, 1, 1, INT_MAX);
  int sig = proc_checksig(L, 2, 1);
  return lp_result(L, kill(pid, sig) == 0);
}

/***
 * The parent's pid.
 * @function getppid
 * @treturn integer (1, or a subreaper's pid, once the parent has died)
 * @see getppid(2)
 */
static int proc_getppid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getppid());
  return 1;
}

/***
 * The CPUs this process may run on: those of its affinity mask (what
 * nproc(1) prints), or the CPUs online if the mask cannot be read.
 * @function cpu_count
 * @treturn integer 1 or more
 * @see sched_getaffinity(2)
 */
static int proc_cpu_count(lua_State *L) {
  int ncpu, count = 0;
  for (ncpu = 1024; ncpu <= PROC_MAXCPUS && count == 0; ncpu *= 2) {
    size_t size = CPU_ALLOC_SIZE(ncpu);
    cpu_set_t *set = CPU_ALLOC(ncpu);
    int r, en;
    if (set == NULL)
      break;
    r = sched_getaffinity(0, size, set);
    en = errno;
    if (r == 0)
      count = CPU_COUNT_S(size, set);
    CPU_FREE(set);
    if (r == -1 && en != EINVAL)  /* EINVAL: the kernel's mask is bigger */
      break;
  }
  if (count < 1) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    count = n >= 1 && n <= INT_MAX ? (int)n : 1;
  }
  lua_pushinteger(L, count);
  return 1;
}

/***
 * Ask for a signal when the parent dies (its thread, strictly: the one
 * that forked this process). Kept across execve(2) of an ordinary program;
 * cleared in a child of `fork`.
 * @function parent_death_signal
 * @tparam integer signo 1 to SIGRTMAX, or 0 for none
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see prctl(2)
 */
static int proc_parent_death_signal(lua_State *L) {
  int sig = proc_checksig(L, 1, 0);
  return lp_result(L, prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL,
                            0UL) == 0);
}

/* ---- the environment ------------------------------------------------ */

/* A string argument without a zero byte; what names it in the error. */
static const char *proc_checkcstr(lua_State *L, int arg, const char *what) {
  size_t len;
  const char *s = lp_checkstr(L, arg, &len);
  if (strlen(s) != len)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s contains a zero byte", what));
  return s;
}

/***
 * The current environment.
 * @function environ
 * @treturn {string,...} `"NAME=value"` strings, in environ(7)'s order
 * @see environ(7)
 */
static int proc_environ(lua_State *L) {
  char **e;
  lua_Integer i = 0;
  lua_newtable(L);
  for (e = environ; e != NULL && *e != NULL; e++) {
    lua_pushstring(L, *e);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/***
 * Set an environment variable, or remove it when `value` is nil.
 * @function setenv
 * @tparam string name not empty, without `=` or a zero byte
 * @tparam ?string value without a zero byte; nil removes the variable
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno (ENOMEM)
 * @see setenv(3)
 * @see unsetenv(3)
 */
static int proc_setenv(lua_State *L) {
  const char *name = proc_checkcstr(L, 1, "name");
  const char *value = NULL;
  if (*name == '\0')
    return luaL_argerror(L, 1, "name is empty");
  if (strchr(name, '=') != NULL)
    return luaL_argerror(L, 1, "name contains '='");
  if (!lua_isnoneornil(L, 2))
    value = proc_checkcstr(L, 2, "value");
  if (value == NULL)
    return lp_result(L, unsetenv(name) == 0);
  return lp_result(L, setenv(name, value, 1) == 0);
}

/* ---- execve --------------------------------------------------------- */

/* The fds execve hands on, and what it moved to get them into place. */
typedef struct proc_Fds {
  int n;
  int *src;    /* the fds given, in order */
  int *tmp;    /* their copies above the targets (-1: none yet) */
  int *saved;  /* what sat at target i before (-1: nothing) */
  int *flags;  /* that fd's FD_CLOEXEC */
} proc_Fds;

static int proc_dup2(int from, int to, int flags) {
  int r;
  do
    r = dup3(from, to, flags);
  while (r == -1 && errno == EINTR);
  return r;
}

/* Put back what sat at 3..3+n-1 (or close it again), close every copy:
 * the state before proc_placefds, errno kept. */
static void proc_restorefds(proc_Fds *f) {
  int en = errno, i;
  for (i = 0; i < f->n; i++) {
    int target = PROC_FDSTART + i;
    if (f->tmp[i] >= 0) {
      (void)close(f->tmp[i]);
      f->tmp[i] = -1;
    }
    if (f->saved[i] >= 0) {
      /* dup3 replaces target in one step; were it to fail, the copy is
       * kept open rather than the fd lost */
      if (proc_dup2(f->saved[i], target, f->flags[i] ? O_CLOEXEC : 0) != -1)
        (void)close(f->saved[i]);
      f->saved[i] = -1;
    } else if (f->saved[i] == -1) {
      (void)close(target);  /* EBADF when nothing was put there */
    }
  }
  errno = en;
}

/* Move the fds given to 3..3+n-1 without FD_CLOEXEC: first what sits at
 * the targets and every fd given are copied above 3+n (so no fd given is
 * lost when its number is a target, in whatever order), then the copies
 * go into place. -1 with errno, everything restored, on failure. */
static int proc_placefds(proc_Fds *f) {
  int above = PROC_FDSTART + f->n, i;
  for (i = 0; i < f->n; i++)
    f->tmp[i] = f->saved[i] = -2;  /* -2: not looked at yet */
  for (i = 0; i < f->n; i++) {
    int target = PROC_FDSTART + i;
    int fl = fcntl(target, F_GETFD);
    if (fl == -1) {
      if (errno != EBADF)
        goto fail;
      f->saved[i] = -1;  /* nothing there */
      f->flags[i] = 0;
    } else {
      f->flags[i] = fl & FD_CLOEXEC;
      if ((f->saved[i] = fcntl(target, F_DUPFD_CLOEXEC, above)) == -1) {
        f->saved[i] = -2;  /* keep what sits there */
        goto fail;
      }
    }
  }
  for (i = 0; i < f->n; i++)
    if ((f->tmp[i] = fcntl(f->src[i], F_DUPFD_CLOEXEC, above)) == -1)
      goto fail;
  for (i = 0; i < f->n; i++)
    if (proc_dup2(f->tmp[i], PROC_FDSTART + i, 0) == -1)
      goto fail;
  for (i = 0; i < f->n; i++) {
    (void)close(f->tmp[i]);  /* close-on-exec anyway; not kept on success */
    f->tmp[i] = -1;
  }
  return 0;
fail:
  for (i = 0; i < f->n; i++)
    if (f->saved[i] == -2)
      f->saved[i] = -3;  /* untouched: restore leaves it alone */
  proc_restorefds(f);
  return -1;
}

/* An array of strings without zero bytes (argv, env) into ptrs (n + 1
 * entries, NULL-terminated). No Lua code runs and nothing is allocated
 * between this and execve, so the strings stay where they are. */
static void proc_fillstrs(lua_State *L, int arg, const char *what,
                          const char **ptrs, lua_Integer n) {
  lua_Integer i;
  for (i = 1; i <= n; i++) {
    size_t len;
    if (lua_rawgeti(L, arg, i) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L,
                    "%s: string expected at index %I, got %s", what,
                    (LUAI_UACINT)i, luaL_typename(L, -1)));
    ptrs[i - 1] = lua_tolstring(L, -1, &len);
    if (strlen(ptrs[i - 1]) != len)
      luaL_argerror(L, arg, lua_pushfstring(L,
                    "%s: zero byte in the string at index %I", what,
                    (LUAI_UACINT)i));
    lua_pop(L, 1);  /* the table keeps it */
  }
  ptrs[n] = NULL;
}

/* Element i of the fds table at index t (execve's argument arg): an fd
 * as lp_checkfd takes it, with errors that name arg and the index. The
 * element is put in arg's stack slot, so lp_checkfd's own errors (a
 * closed Fd, a getfd() that fails) name arg too. */
static int proc_fdat(lua_State *L, int t, int arg, lua_Integer i) {
  int type = lua_rawgeti(L, t, i);
  if (type == LUA_TNUMBER) {
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0 || v > INT_MAX)
      luaL_argerror(L, arg, lua_pushfstring(L,
                    "fd at index %I is not an integer in [0, %d]",
                    (LUAI_UACINT)i, INT_MAX));
    lua_pop(L, 1);
    return (int)v;
  }
  if (type != LUA_TUSERDATA && type != LUA_TTABLE)
    luaL_argerror(L, arg, lua_pushfstring(L, "fd expected at index %I, got %s",
                                          (LUAI_UACINT)i,
                                          luaL_typename(L, -1)));
  lua_replace(L, arg);
  return lp_checkfd(L, arg);
}

static lua_Integer proc_checklen(lua_State *L, int arg, lua_Integer max) {
  lua_Integer n;
  luaL_checktype(L, arg, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, arg);
  if (n > max)
    luaL_argerror(L, arg, lua_pushfstring(L, "more than %I elements",
                                          (LUAI_UACINT)max));
  return n;
}

/***
 * Replace the program, handing fds on at 3, 4, ...
 * `fds[1]` becomes fd 3, `fds[2]` fd 4, and so on, without FD_CLOEXEC:
 * the layout of `LISTEN_FDS` (sd_listen_fds(3)). The fds given may sit
 * anywhere, at some of those numbers too and in any order; the same fd may
 * be given twice. Every other fd keeps its own FD_CLOEXEC state (and an
 * fd that sat at 3..3+n-1 gives way). On failure everything is as it was:
 * 3..3+n-1 hold what they held, with their old FD_CLOEXEC, and no fd is
 * left open.
 * @function execve
 * @tparam string path the program (no PATH search)
 * @tparam {string,...} argv `argv[1]` is the program's argv[0]; at least one
 * @tparam {string,...} env `"NAME=value"` strings (`environ()` for this one)
 * @tparam[opt] {integer|Fd,...} fds the fds to hand on, at most 65536
 * @return[1] nil (only when it fails: success does not return)
 * @treturn[1] string message
 * @treturn[1] integer errno (ENOENT, EACCES, E2BIG, ENOEXEC; EBADF for
 *   an fd given that is not open; EMFILE)
 * @see execve(2)
 * @see sd_listen_fds(3)
 */
static int proc_execve(lua_State *L) {
  const char *path = proc_checkcstr(L, 1, "path");
  lua_Integer nargv = proc_checklen(L, 2, INT_MAX / 2);
  lua_Integer nenv = proc_checklen(L, 3, INT_MAX / 2);
  lua_Integer nfds = 0, i;
  int *ints = NULL;
  const char **argv, **envp;
  proc_Fds f;
  if (nargv == 0)
    return luaL_argerror(L, 2, "argv is empty (argv[0] expected)");
  if (!lua_isnoneornil(L, 4))
    nfds = proc_checklen(L, 4, PROC_MAXFDS);
  /* the fds first: their getfd/fileno may run Lua code */
  if (nfds > 0) {
    ints = (int *)lua_newuserdatauv(L, 4 * (size_t)nfds * sizeof(int), 0);
    lua_pushvalue(L, 4);
    for (i = 1; i <= nfds; i++)
      ints[i - 1] = proc_fdat(L, lua_gettop(L), 4, i);
  }
  f.n = (int)nfds;
  f.src = ints;
  f.tmp = ints + nfds;
  f.saved = ints + 2 * nfds;
  f.flags = ints + 3 * nfds;
  /* the last allocation (a finalizer it runs may change the tables) */
  nargv = (lua_Integer)lua_rawlen(L, 2);
  nenv = (lua_Integer)lua_rawlen(L, 3);
  if (nargv == 0 || nargv > INT_MAX / 2 || nenv > INT_MAX / 2)
    return luaL_error(L, "argv or env changed while execve read them");
  argv = (const char **)lua_newuserdatauv(L,
      (size_t)(nargv + 1 + nenv + 1) * sizeof(char *), 0);
  envp = argv + nargv + 1;
  proc_fillstrs(L, 2, "argv", argv, nargv);
  proc_fillstrs(L, 3, "env", envp, nenv);
  if (f.n > 0 && proc_placefds(&f) == -1)
    return lp_result(L, 0);
  execve(path, (char *const *)argv, (char *const *)envp);
  if (f.n > 0)
    proc_restorefds(&f);  /* keeps errno */
  return lp_result(L, 0);
}

static const luaL_Reg proc_funcs[] = {
  {"fork",                proc_fork},
  {"waitid",              proc_waitid},
  {"send_signal",         proc_send_signal},
  {"kill",                proc_kill},
  {"getppid",             proc_getppid},
  {"cpu_count",           proc_cpu_count},
  {"parent_death_signal", proc_parent_death_signal},
  {"environ",             proc_environ},
  {"setenv",              proc_setenv},
  {"execve",              proc_execve},
  {NULL, NULL}
};

LEPOLL_API int luaopen_lepoll_process(lua_State *L);

LEPOLL_API int luaopen_lepoll_process(lua_State *L) {
  luaL_checkversion(L);
  luaL_newlib(L, proc_funcs);
  lp_setmodinfo(L);
  return 1;
}
