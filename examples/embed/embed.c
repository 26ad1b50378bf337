/* embed.c - a C program with its own epoll loop that hosts lepoll inside it, epoll(7).
 *
 *   embed [-t seconds] script.lua [args...]
 *
 * The program does its own work (here: counting the ticks of a timerfd
 * every 10 ms) in its own epoll loop, and runs a Lua VM with lepoll in the
 * same thread: the script sets up listeners and timers and returns, and
 * the C loop drives lepoll by watching lepoll.fileno() and calling
 * lepoll.step(0) whenever that fd is readable (lepoll.timeout() bounds the
 * wait, for work lepoll has without an fd to show for it). The script can
 * call back into C through host.count(what). The program ends after the
 * given seconds (default 10) or on SIGINT / SIGTERM, and prints its
 * counters: "ticks=N timer=N served=N".
 *
 * Build against an installed lepoll:
 *   cc -o embed embed.c $(pkg-config --cflags --libs lepoll)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <lepoll.h>

#define EMB_TICK_NS 10000000L /* the C side's own work: a tick every 10 ms */

/* What the epoll data says a ready fd is. */
enum { EMB_TICK = 1, EMB_DEADLINE, EMB_SIGNAL, EMB_LEPOLL };

/* The C side's state, shared with Lua through host.count's upvalue. */
typedef struct emb_Host {
  long ticks;  /* timerfd expirations counted in C */
  long timer;  /* host.count("timer"): Lua timers that fired */
  long served; /* host.count("served"): clients the Lua side served */
  int tickfd;  /* the timerfd behind ticks */
  int sigfd;   /* SIGINT and SIGTERM */
} emb_Host;

/*** host.count(what): count a Lua-side event in C.
 * @function count
 * @tparam string what "timer" or "served"
 * @treturn integer the new count of that event
 * @treturn integer the ticks counted by C so far
 */
static int emb_count(lua_State *L) {
  static const char *const names[] = {"timer", "served", NULL};
  emb_Host *h = (emb_Host *)lua_touserdata(L, lua_upvalueindex(1));
  long n = luaL_checkoption(L, 1, NULL, names) == 0 ? ++h->timer
                                                    : ++h->served;
  lua_pushinteger(L, n);
  lua_pushinteger(L, h->ticks);
  return 2;
}

static int emb_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Call the function below nargs arguments; print a traceback on error. */
static int emb_pcall(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs, status;
  lua_pushcfunction(L, emb_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  if (status != LUA_OK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

/* In protected mode: the libraries, lepoll, the 'host' table, 'arg', then
 * the script (which sets things up and returns). Leaves require "lepoll". */
static int emb_setup(lua_State *L) {
  emb_Host *h = (emb_Host *)lua_touserdata(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int argc = (int)lua_tointeger(L, 3), i;
  lua_settop(L, 0);
  luaL_openlibs(L);
  lepoll_openlibs(L);
  lua_createtable(L, 0, 1); /* host = { count = <C function> } */
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, emb_count, 1);
  lua_setfield(L, -2, "count");
  lua_setglobal(L, "host");
  lua_createtable(L, argc, 1); /* arg[0] is the script */
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, argv[0]) != LUA_OK)
    return lua_error(L);
  luaL_checkstack(L, argc, "too many arguments");
  for (i = 1; i < argc; i++)
    lua_pushstring(L, argv[i]);
  lua_call(L, argc - 1, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lepoll");
  lua_call(L, 1, 1);
  return 1;
}

/* lepoll.NAME() with the module at index 1; its result on the stack. */
static int emb_lepoll(lua_State *L, const char *name, int nargs) {
  lua_getfield(L, 1, name);
  lua_insert(L, -1 - nargs);
  return emb_pcall(L, nargs, 1);
}

/* lepoll.timeout() in milliseconds for epoll_wait: -1 for none. */
static int emb_timeout(lua_State *L, int *ms) {
  lua_Number sec;
  if (emb_lepoll(L, "timeout", 0) != LUA_OK)
    return -1;
  if (lua_isnil(L, -1)) {
    *ms = -1;
  } else {
    sec = lua_tonumber(L, -1);
    if (!(sec >= 0)) /* negative or NaN: due now */
      *ms = 0;
    else if (sec >= INT_MAX / 1000.0)
      *ms = INT_MAX;
    else
      *ms = (int)ceil(sec * 1000.0); /* rounded up: no busy loop */
  }
  lua_pop(L, 1);
  return 0;
}

static int emb_add(int ep, int fd, uint32_t what) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.u32 = what;
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int emb_timerfd(long sec, long nsec, int repeat) {
  struct itimerspec its;
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd == -1)
    return -1;
  memset(&its, 0, sizeof its);
  its.it_value.tv_sec = sec;
  its.it_value.tv_nsec = nsec;
  if (repeat)
    its.it_interval = its.it_value;
  if (timerfd_settime(fd, 0, &its, NULL) == -1) {
    int en = errno;
    close(fd);
    errno = en;
    return -1;
  }
  return fd;
}

/* The C loop: the program's own fds and lepoll's, until the deadline or a
 * signal. Returns 0, or -1 after printing why. */
static int emb_loop(lua_State *L, emb_Host *h, int ep) {
  struct epoll_event evs[8];
  struct signalfd_siginfo si;
  uint64_t expired;
  int i, n, ms, step, done = 0;
  while (!done) {
    if (emb_timeout(L, &ms) != 0)
      return -1;
    n = epoll_wait(ep, evs, 8, ms);
    if (n == -1) {
      if (errno == EINTR) /* a signal we do not handle: go round again */
        continue;
      perror("embed: epoll_wait");
      return -1;
    }
    step = n == 0; /* lepoll's own deadline came */
    for (i = 0; i < n; i++) {
      int fd = -1;
      switch (evs[i].data.u32) {
      case EMB_TICK: /* our own work: count the expirations */
        if (read(h->tickfd, &expired, sizeof expired) == sizeof expired)
          h->ticks += (long)expired;
        else if (errno != EAGAIN)
          fd = h->tickfd;
        break;
      case EMB_DEADLINE:
        done = 1;
        break;
      case EMB_SIGNAL:
        if (read(h->sigfd, &si, sizeof si) == sizeof si)
          done = 1;
        else if (errno != EAGAIN)
          fd = h->sigfd;
        break;
      case EMB_LEPOLL: /* lepoll has an fd ready or a timer due */
        step = 1;
        break;
      }
      if (fd != -1) {
        perror("embed: read");
        return -1;
      }
    }
    if (step) {
      lua_pushnumber(L, 0);
      if (emb_lepoll(L, "step", 1) != LUA_OK)
        return -1;
      lua_pop(L, 1);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  emb_Host host = {0, 0, 0, -1, -1};
  double seconds = 10;
  int first = 1, status = EXIT_FAILURE;
  int ep = -1, deadline = -1, lfd, isnum;
  sigset_t mask;
  lua_State *L = NULL;
  if (argc > 2 && strcmp(argv[1], "-t") == 0) {
    char *end;
    seconds = strtod(argv[2], &end);
    if (*end != '\0' || !(seconds > 0 && seconds < 86400)) {
      fprintf(stderr, "embed: bad -t %s\n", argv[2]);
      return EXIT_FAILURE;
    }
    first = 3;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: embed [-t seconds] script.lua [args...]\n");
    return EXIT_FAILURE;
  }
  /* SIGINT/SIGTERM end the program through a signalfd in our own set */
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
      (ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
      (host.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
      (host.tickfd = emb_timerfd(0, EMB_TICK_NS, 1)) == -1 ||
      (deadline = emb_timerfd((long)seconds,
                              (long)((seconds - (long)seconds) * 1e9), 0)) ==
          -1 ||
      emb_add(ep, host.sigfd, EMB_SIGNAL) == -1 ||
      emb_add(ep, host.tickfd, EMB_TICK) == -1 ||
      emb_add(ep, deadline, EMB_DEADLINE) == -1) {
    perror("embed");
    goto out;
  }
  if ((L = luaL_newstate()) == NULL) {
    fprintf(stderr, "embed: not enough memory\n");
    goto out;
  }
  lua_pushcfunction(L, emb_setup);
  lua_pushlightuserdata(L, &host);
  lua_pushlightuserdata(L, argv + first);
  lua_pushinteger(L, argc - first);
  if (emb_pcall(L, 3, 1) != LUA_OK) /* leaves the lepoll module at 1 */
    goto out;
  if (emb_lepoll(L, "fileno", 0) != LUA_OK)
    goto out;
  lfd = (int)lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum || lfd < 0) {
    fprintf(stderr, "embed: lepoll.fileno() returned no fd\n");
    goto out;
  }
  if (emb_add(ep, lfd, EMB_LEPOLL) == -1) {
    perror("embed: adding lepoll.fileno()");
    goto out;
  }
  if (emb_loop(L, &host, ep) == 0)
    status = EXIT_SUCCESS;
  printf("ticks=%ld timer=%ld served=%ld\n", host.ticks, host.timer,
         host.served);
out:
  if (L != NULL)
    lua_close(L); /* closes lepoll's sockets and its epoll fd */
  if (deadline != -1)
    close(deadline);
  if (host.tickfd != -1)
    close(host.tickfd);
  if (host.sigfd != -1)
    close(host.sigfd);
  if (ep != -1)
    close(ep);
  return status;
}
