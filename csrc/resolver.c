/* resolver.c - lepoll.resolver: getaddrinfo(3) on a capped thread pool, answers through an eventfd(2). */

/***
 * Name lookups that never block the caller's thread.
 *
 * A pool runs getaddrinfo(3) on at most `threads` threads of its own,
 * started when a lookup finds none idle, and queues at most `queue`
 * lookups waiting for one. A finished lookup's answer waits in the pool
 * until `take` collects it; the pool's eventfd (`fileno`) is readable
 * then. Answers not taken count against the same bound: the pool holds
 * at most `queue + threads` lookups in all. No thread of the pool ever calls into Lua: the Lua side submits,
 * watches the eventfd, drains and takes.
 *
 * The threads share the pool's state with it, counted: whoever leaves
 * last (the pool's close, or a thread that was still inside getaddrinfo)
 * frees it, so closing a pool never waits for a lookup and never frees
 * what a thread still uses; an answer nobody awaits any more (cancelled,
 * or the pool closed) is freed when it comes.
 *
 * The module pins itself when it is loaded (RTLD_NODELETE): lua_close
 * unloads C modules, and a detached thread still inside getaddrinfo (or
 * just woken to leave) would return into unmapped code.
 *
 * A process forked from one whose pool had started threads has none of
 * them: the pool notices (its pid changed) on its next use and starts
 * afresh, with its own state, eventfd and threads, never touching the
 * parent's mutex. Lookups in flight at the fork never end in the child.
 *
 * `numeric` tells numeric addresses apart without any lookup (inet_pton).
 * @module lepoll.resolver
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <net/if.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define RS_T          "lepoll.Resolver"
#define RS_MAXTHREADS 64
#define RS_MAXQUEUE   65536
#define RS_MAXNAME    1024    /* longer is no host name (NI_MAXHOST - 1) */
#define RS_MAXADDRS   64      /* addresses kept per answer */
/* an address as text: IPv6, and for a scoped one "%" and the interface's
 * name (or the scope id in decimal, at most 10 digits) */
#define RS_ADDRLEN    (INET6_ADDRSTRLEN + IF_NAMESIZE)

enum { RS_QUEUED, RS_RUNNING, RS_DONE };

/* One lookup, owned by exactly one list of its state (queue, running,
 * done) or by nobody but a thread while it is cancelled and running. */
typedef struct rs_Req {
  struct rs_Req *next, *prev;
  lua_Integer id;
  int family;
  int where;          /* RS_QUEUED, RS_RUNNING, RS_DONE */
  int cancelled;      /* running: free the answer when it comes */
  int gai;            /* getaddrinfo's result; 0: naddrs addresses */
  int syserr;         /* errno, for EAI_SYSTEM */
  int naddrs;
  char addrs[RS_MAXADDRS][RS_ADDRLEN];  /* filled only on success */
  char name[];
} rs_Req;

typedef struct rs_List {
  rs_Req *head, *tail;
  int n;
} rs_List;

/* What the pool and its threads share, under mu. */
typedef struct rs_State {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;           /* the pool (until closed) + each live thread */
  int closing;
  int efd;            /* -1 once the pool closed it: threads write it only
                         under mu and while it is open */
  int nthreads, idle, maxthreads, maxqueue;
  rs_List queue, running, done;
} rs_State;

typedef struct rs_Pool {
  rs_State *s;        /* NULL once closed */
  int efd;            /* the same eventfd, read without the lock */
  pid_t pid;          /* the process s belongs to */
  int maxthreads, maxqueue;
  lua_Integer lastid;
  lua_Integer gen;    /* states made: a new eventfd may reuse the old number */
} rs_Pool;

/* ---- lists (caller holds mu) ---------------------------------------- */

static void rs_push(rs_List *l, rs_Req *r) {
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail) l->tail->next = r;
  else l->head = r;
  l->tail = r;
  l->n++;
}

static void rs_unlink(rs_List *l, rs_Req *r) {
  if (r->prev) r->prev->next = r->next;
  else l->head = r->next;
  if (r->next) r->next->prev = r->prev;
  else l->tail = r->prev;
  r->next = r->prev = NULL;
  l->n--;
}

static void rs_freelist(rs_List *l) {
  rs_Req *r = l->head;
  while (r) {
    rs_Req *next = r->next;
    free(r);
    r = next;
  }
  l->head = l->tail = NULL;
  l->n = 0;
}

static void rs_lock(rs_State *s) {
  int e = pthread_mutex_lock(&s->mu);
  if (e != 0) abort();  /* only on a corrupt mutex: nothing safe to do */
}

static void rs_unlock(rs_State *s) {
  int e = pthread_mutex_unlock(&s->mu);
  if (e != 0) abort();
}

/* The last one out: nothing else can reach s. */
static void rs_destroy(rs_State *s) {
  rs_freelist(&s->queue);
  rs_freelist(&s->running);
  rs_freelist(&s->done);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* ---- the threads ------------------------------------------------------ */

/* The text of ai's address into buf (RS_ADDRLEN bytes): 0, or -1 for a
 * family we cannot use. A scoped IPv6 address (link-local) keeps its
 * scope, "fe80::1%eth0", or "fe80::1%7" when the index names no interface
 * any more: without it the address cannot be reached. */
static int rs_addrtext(const struct addrinfo *ai, char *buf) {
  const struct sockaddr_in6 *sin6;
  char ifname[IF_NAMESIZE];
  size_t n;
  if (ai->ai_family == AF_INET) {
    const struct sockaddr_in *sin = (const void *)ai->ai_addr;
    return inet_ntop(AF_INET, &sin->sin_addr, buf, RS_ADDRLEN) ? 0 : -1;
  }
  if (ai->ai_family != AF_INET6) return -1;
  sin6 = (const void *)ai->ai_addr;
  if (!inet_ntop(AF_INET6, &sin6->sin6_addr, buf, INET6_ADDRSTRLEN)) return -1;
  if (sin6->sin6_scope_id == 0) return 0;
  n = strlen(buf);
  if (if_indextoname(sin6->sin6_scope_id, ifname))
    snprintf(buf + n, RS_ADDRLEN - n, "%%%s", ifname);
  else
    snprintf(buf + n, RS_ADDRLEN - n, "%%%u", (unsigned)sin6->sin6_scope_id);
  return 0;
}

/* Run one lookup into r (no lock held: r is the thread's alone). */
static void rs_lookup(rs_Req *r) {
  struct addrinfo hints, *res = NULL, *ai;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = r->family;
  hints.ai_socktype = SOCK_STREAM;  /* each address once, not per socket type */
  errno = 0;
  r->gai = getaddrinfo(r->name, NULL, &hints, &res);
  r->syserr = errno;
  r->naddrs = 0;
  if (r->gai != 0) return;
  for (ai = res; ai && r->naddrs < RS_MAXADDRS; ai = ai->ai_next) {
    char buf[RS_ADDRLEN];
    int i, dup = 0;
    if (rs_addrtext(ai, buf) != 0) continue;
    for (i = 0; i < r->naddrs && !dup; i++) dup = strcmp(r->addrs[i], buf) == 0;
    if (!dup) memcpy(r->addrs[r->naddrs++], buf, sizeof buf);
  }
  freeaddrinfo(res);
  if (r->naddrs == 0) r->gai = EAI_NONAME;  /* only families we cannot use */
}

/* Tell the pool's eventfd (caller holds mu, efd open). A full counter
 * (EAGAIN) is already readable: nothing is lost. */
static void rs_notify(rs_State *s) {
  uint64_t one = 1;
  while (write(s->efd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

static void *rs_thread(void *arg) {
  rs_State *s = arg;
  int last;
  rs_lock(s);
  for (;;) {
    rs_Req *r;
    while (!s->closing && s->queue.head == NULL) {
      int e;
      s->idle++;
      e = pthread_cond_wait(&s->cv, &s->mu);
      s->idle--;
      if (e != 0) abort();
    }
    if (s->closing) break;
    r = s->queue.head;
    rs_unlink(&s->queue, r);  /* out of one list before into the next */
    r->where = RS_RUNNING;
    rs_push(&s->running, r);
    rs_unlock(s);
    rs_lookup(r);
    rs_lock(s);
    rs_unlink(&s->running, r);
    if (r->cancelled || s->closing) {
      free(r);  /* a late answer: nobody waits for it */
    } else {
      r->where = RS_DONE;
      rs_push(&s->done, r);
      rs_notify(s);
    }
  }
  s->nthreads--;
  last = --s->refs == 0;
  rs_unlock(s);
  if (last) rs_destroy(s);
  return NULL;
}

/* Start one thread (caller holds mu): 0 or an error number. Its signals
 * are all blocked, so that a signal meant for the loop's signalfd never
 * lands on it (and never kills the process by its default action). */
static int rs_start(rs_State *s) {
  pthread_attr_t attr;
  pthread_t tid;
  sigset_t all, old;
  int e, e2;
  if ((e = pthread_attr_init(&attr)) != 0) return e;
  e = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (e == 0) {
    sigfillset(&all);
    e = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (e == 0) {
      s->refs++;
      s->nthreads++;
      e = pthread_create(&tid, &attr, rs_thread, s);
      if (e != 0) {
        s->refs--;
        s->nthreads--;
      }
      e2 = pthread_sigmask(SIG_SETMASK, &old, NULL);
      if (e == 0) e = e2;
    }
  }
  pthread_attr_destroy(&attr);
  return e;
}

/* ---- the pool --------------------------------------------------------- */

/* A fresh state and eventfd for p: 0, or an errno (p unchanged). */
static int rs_init(rs_Pool *p) {
  rs_State *s = calloc(1, sizeof *s);
  int e;
  if (!s) return ENOMEM;
  if ((e = pthread_mutex_init(&s->mu, NULL)) != 0) {
    free(s);
    return e;
  }
  if ((e = pthread_cond_init(&s->cv, NULL)) != 0) {
    pthread_mutex_destroy(&s->mu);
    free(s);
    return e;
  }
  s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->efd < 0) {
    e = errno;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return e;
  }
  s->refs = 1;
  s->maxthreads = p->maxthreads;
  s->maxqueue = p->maxqueue;
  p->s = s;
  p->efd = s->efd;
  p->pid = getpid();
  p->gen++;
  return 0;
}

/* Close p's side of its state. In the process that made it: mark it
 * closing, free what waits, wake the idle threads, close the eventfd; a
 * thread inside getaddrinfo frees the rest when it comes back. In a
 * forked child: the parent's threads are not here and its mutex may be
 * held forever, so the state is never locked; it is freed (unlocked) only
 * when no lookup was in flight at the fork, and otherwise left as it is
 * (a list some thread was changing cannot be trusted). */
static void rs_release(rs_Pool *p) {
  rs_State *s = p->s;
  int efd, last;
  if (!s) return;
  p->s = NULL;
  p->efd = -1;
  if (p->pid != getpid()) {
    close(s->efd);  /* this process's copy; the parent keeps its own */
    if (s->queue.n == 0 && s->running.n == 0 && s->done.n == 0 &&
        s->queue.head == NULL && s->running.head == NULL && s->done.head == NULL)
      free(s);
    return;
  }
  rs_lock(s);
  s->closing = 1;
  rs_freelist(&s->queue);
  rs_freelist(&s->done);
  efd = s->efd;
  s->efd = -1;
  if (pthread_cond_broadcast(&s->cv) != 0) abort();
  last = --s->refs == 0;
  rs_unlock(s);
  close(efd);  /* never retried: the fd is gone even on EINTR */
  if (last) rs_destroy(s);
}

static rs_Pool *rs_check(lua_State *L) {
  rs_Pool *p = luaL_checkudata(L, 1, RS_T);
  if (!p->s) luaL_error(L, "attempt to use a closed " RS_T);
  return p;
}

/* p's state in this process: a forked child starts afresh. 0 or errno. */
static int rs_here(rs_Pool *p) {
  if (p->pid == getpid()) return 0;
  rs_release(p);
  return rs_init(p);
}

/***
 * A new pool (no thread yet).
 * @function new
 * @tparam[opt=4] integer threads at most this many lookups at once (1..64)
 * @tparam[opt=256] integer queue at most this many waiting (1..65536)
 * @treturn[1] lepoll.Resolver
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 * @see eventfd(2)
 */
static int rs_new(lua_State *L) {
  int threads = (int)lp_optrange(L, 1, 1, RS_MAXTHREADS, 4);
  int queue = (int)lp_optrange(L, 2, 1, RS_MAXQUEUE, 256);
  rs_Pool *p = lua_newuserdatauv(L, sizeof *p, 0);
  int e;
  memset(p, 0, sizeof *p);
  p->efd = -1;
  p->maxthreads = threads;
  p->maxqueue = queue;
  luaL_setmetatable(L, RS_T);  /* closed until rs_init succeeds */
  if ((e = rs_init(p)) != 0) return lp_fail(L, e);
  return 1;
}

/***
 * Queue a lookup of a host name.
 * @function Resolver:submit
 * @tparam string name the host name (at most 1024 bytes, no NUL)
 * @tparam[opt="any"] string family `"inet"`, `"inet6"` or `"any"`
 * @treturn[1] integer the lookup's id (for `take` and `cancel`)
 * @return[2] nil
 * @treturn[2] string `"resolver busy"` when the queue is full, or when the
 *   pool holds `queue + threads` lookups (queued, running, or finished and
 *   not taken), else a message
 * @treturn[2] integer errno (absent for `"resolver busy"`)
 * @see getaddrinfo(3)
 */
static int rs_submit(lua_State *L) {
  static const char *const fams[] = {"any", "inet", "inet6", NULL};
  static const int famv[] = {AF_UNSPEC, AF_INET, AF_INET6};
  rs_Pool *p = rs_check(L);
  size_t len;
  const char *name = lp_checkstr(L, 2, &len);
  int fam = famv[lp_checkoption(L, 3, "any", fams)];
  rs_State *s;
  rs_Req *r;
  int e = 0;
  luaL_argcheck(L, len <= RS_MAXNAME && strlen(name) == len, 2,
                "host name of at most 1024 bytes without NUL expected");
  if ((e = rs_here(p)) != 0) return lp_fail(L, e);
  s = p->s;
  r = malloc(sizeof *r + len + 1);
  if (!r) return lp_fail(L, ENOMEM);
  memset(r, 0, sizeof *r);
  memcpy(r->name, name, len + 1);
  r->family = fam;
  rs_lock(s);
  /* answers nobody takes count too: a pool whose user submits and never
   * takes stops at queue + threads lookups instead of growing */
  if (s->queue.n >= s->maxqueue ||
      s->queue.n + s->running.n + s->done.n >= s->maxqueue + s->maxthreads) {
    rs_unlock(s);
    free(r);
    luaL_pushfail(L);
    lua_pushliteral(L, "resolver busy");
    return 2;
  }
  /* lookups beyond the idle threads start one more, up to the cap */
  if (s->idle <= s->queue.n && s->nthreads < s->maxthreads)
    e = rs_start(s);
  if (e != 0 && s->nthreads == 0) {
    rs_unlock(s);
    free(r);
    return lp_fail(L, e);  /* no thread at all: the lookup would never run */
  }
  r->id = ++p->lastid;  /* only a queued lookup uses up an id */
  r->where = RS_QUEUED;
  rs_push(&s->queue, r);
  if (pthread_cond_signal(&s->cv) != 0) abort();
  rs_unlock(s);
  lua_pushinteger(L, r->id);
  return 1;
}

/* The request with id in l, or NULL. */
static rs_Req *rs_find(rs_List *l, lua_Integer id) {
  rs_Req *r;
  for (r = l->head; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

/***
 * Forget a lookup: a queued one leaves the queue without running, a
 * running one's answer is freed when it comes, a finished one is freed.
 * @function Resolver:cancel
 * @tparam integer id
 * @treturn boolean whether the pool still knew the lookup
 */
static int rs_cancel(lua_State *L) {
  rs_Pool *p = rs_check(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  rs_State *s;
  rs_Req *r;
  int found = 1;
  if (p->pid != getpid()) {  /* the parent's lookups: never ending here */
    lua_pushboolean(L, 0);
    return 1;
  }
  s = p->s;
  rs_lock(s);
  if ((r = rs_find(&s->queue, id)) != NULL) {
    rs_unlink(&s->queue, r);
    free(r);
  } else if ((r = rs_find(&s->done, id)) != NULL) {
    rs_unlink(&s->done, r);
    free(r);
  } else if ((r = rs_find(&s->running, id)) != NULL) {
    r->cancelled = 1;
  } else {
    found = 0;
  }
  rs_unlock(s);
  lua_pushboolean(L, found);
  return 1;
}

static const char *rs_eainame(int gai) {
  switch (gai) {
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
    case EAI_AGAIN:      return "EAI_AGAIN";
    case EAI_BADFLAGS:   return "EAI_BADFLAGS";
    case EAI_FAIL:       return "EAI_FAIL";
    case EAI_FAMILY:     return "EAI_FAMILY";
    case EAI_MEMORY:     return "EAI_MEMORY";
    case EAI_NODATA:     return "EAI_NODATA";
    case EAI_NONAME:     return "EAI_NONAME";
    case EAI_SERVICE:    return "EAI_SERVICE";
    case EAI_SOCKTYPE:   return "EAI_SOCKTYPE";
    case EAI_SYSTEM:     return "EAI_SYSTEM";
    case EAI_OVERFLOW:   return "EAI_OVERFLOW";
    default:             return "EAI_UNKNOWN";
  }
}

/***
 * Collect one finished lookup, if any.
 * @function Resolver:take
 * @treturn[1] integer id
 * @treturn[1] table the addresses, in getaddrinfo's order, each once
 * @treturn[2] integer id
 * @return[2] nil
 * @treturn[2] string gai_strerror's message (strerror's for EAI_SYSTEM)
 * @treturn[2] string the EAI_* name, e.g. `"EAI_NONAME"`
 * @return[3] nil when no lookup has finished
 * @see gai_strerror(3)
 */
static int rs_take(lua_State *L) {
  rs_Pool *p = rs_check(L);
  rs_State *s;
  rs_Req *r, a;  /* a: r's answer (all but the name) */
  int i;
  if (p->pid != getpid()) {
    lua_pushnil(L);
    return 1;
  }
  s = p->s;
  /* r leaves done before anything is pushed, and its answer is pushed
   * from a copy: the allocations below may run a finalizer that closes
   * the pool or cancels r's id, which must find nothing of r to free. A
   * memory error loses this answer (its lookup then times out). */
  rs_lock(s);
  r = s->done.head;
  if (r) {
    rs_unlink(&s->done, r);
    a = *r;
  }
  rs_unlock(s);
  if (!r) {
    lua_pushnil(L);
    return 1;
  }
  free(r);
  lua_pushinteger(L, a.id);
  if (a.gai == 0) {
    lua_createtable(L, a.naddrs, 0);
    for (i = 0; i < a.naddrs; i++) {
      lua_pushstring(L, a.addrs[i]);
      lua_rawseti(L, -2, i + 1);
    }
    return 2;
  }
  lua_pushnil(L);
  if (a.gai == EAI_SYSTEM && a.syserr != 0) lua_pushstring(L, strerror(a.syserr));
  else lua_pushstring(L, gai_strerror(a.gai));
  lua_pushstring(L, rs_eainame(a.gai));
  return 4;
}

/***
 * Reset the eventfd after it was readable (then `take` until nil).
 * @function Resolver:drain
 * @treturn boolean whether it had been written
 * @see eventfd(2)
 */
static int rs_drain(lua_State *L) {
  rs_Pool *p = rs_check(L);
  uint64_t v;
  ssize_t n;
  if (p->pid != getpid()) {  /* the parent's eventfd: not ours to read */
    lua_pushboolean(L, 0);
    return 1;
  }
  n = read(p->efd, &v, sizeof v);  /* EAGAIN: not written; EINTR: next time */
  lua_pushboolean(L, n == (ssize_t)sizeof v);
  return 1;
}

/***
 * The eventfd, readable while finished lookups wait. It changes when a
 * forked child first uses the pool (the child gets its own, possibly
 * under the same number: the generation tells).
 * @function Resolver:fileno
 * @treturn[1] integer the fd
 * @treturn[1] integer its generation (1 for the first eventfd)
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] integer errno
 */
static int rs_fileno(lua_State *L) {
  rs_Pool *p = rs_check(L);
  int e = rs_here(p);
  if (e != 0) return lp_fail(L, e);
  lua_pushinteger(L, p->efd);
  lua_pushinteger(L, p->gen);
  return 2;
}

/***
 * The pool's numbers now.
 * @function Resolver:stats
 * @treturn table `{threads, idle, queued, running, done}`
 */
static int rs_stats(lua_State *L) {
  rs_Pool *p = rs_check(L);
  rs_State *s;
  int v[5] = {0, 0, 0, 0, 0};
  if (p->pid == getpid()) {
    s = p->s;
    rs_lock(s);
    v[0] = s->nthreads;
    v[1] = s->idle;
    v[2] = s->queue.n;
    v[3] = s->running.n;
    v[4] = s->done.n;
    rs_unlock(s);
  }
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, v[0]); lua_setfield(L, -2, "threads");
  lua_pushinteger(L, v[1]); lua_setfield(L, -2, "idle");
  lua_pushinteger(L, v[2]); lua_setfield(L, -2, "queued");
  lua_pushinteger(L, v[3]); lua_setfield(L, -2, "running");
  lua_pushinteger(L, v[4]); lua_setfield(L, -2, "done");
  return 1;
}

/***
 * Close the pool: waiting lookups are dropped, running ones' answers
 * freed when they come; never waits for a thread. Idempotent; also
 * `__gc` and `__close`.
 * @function Resolver:close
 * @treturn boolean true
 */
static int rs_close(lua_State *L) {
  rs_Pool *p = luaL_checkudata(L, 1, RS_T);
  rs_release(p);
  lua_pushboolean(L, 1);
  return 1;
}

static int rs_tostring(lua_State *L) {
  rs_Pool *p = luaL_checkudata(L, 1, RS_T);
  if (p->s) lua_pushfstring(L, RS_T " (fd %d)", p->efd);
  else lua_pushliteral(L, RS_T " (closed)");
  return 1;
}

/***
 * A numeric address (inet_pton(3): IPv4 dotted quad, IPv6, IPv6 in
 * brackets) in its canonical form, and its family; no lookup.
 * @function numeric
 * @tparam string host
 * @treturn[1] string the address, e.g. `"::1"` for `"[::1]"`
 * @treturn[1] string `"inet"` or `"inet6"`
 * @return[2] nil when host is not a numeric address
 * @see inet_pton(3)
 */
static int rs_numeric(lua_State *L) {
  size_t len;
  const char *host = lp_checkstr(L, 1, &len);
  char buf[INET6_ADDRSTRLEN], in[INET6_ADDRSTRLEN + 2];
  unsigned char bin[sizeof(struct in6_addr)];
  if (len == 0 || len >= sizeof in || strlen(host) != len) {
    lua_pushnil(L);
    return 1;
  }
  if (host[0] == '[' && host[len - 1] == ']' && len > 2) {
    memcpy(in, host + 1, len - 2);
    in[len - 2] = '\0';
    if (inet_pton(AF_INET6, in, bin) == 1 &&
        inet_ntop(AF_INET6, bin, buf, sizeof buf)) {
      lua_pushstring(L, buf);
      lua_pushliteral(L, "inet6");
      return 2;
    }
  } else if (inet_pton(AF_INET, host, bin) == 1 &&
             inet_ntop(AF_INET, bin, buf, sizeof buf)) {
    lua_pushstring(L, buf);
    lua_pushliteral(L, "inet");
    return 2;
  } else if (inet_pton(AF_INET6, host, bin) == 1 &&
             inet_ntop(AF_INET6, bin, buf, sizeof buf)) {
    lua_pushstring(L, buf);
    lua_pushliteral(L, "inet6");
    return 2;
  }
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg rs_methods[] = {
  {"submit", rs_submit},
  {"take",   rs_take},
  {"drain",  rs_drain},
  {"cancel", rs_cancel},
  {"fileno", rs_fileno},
  {"stats",  rs_stats},
  {"close",  rs_close},
  {NULL, NULL}
};

static const luaL_Reg rs_meta[] = {
  {"__index",    NULL},
  {"__gc",       rs_close},
  {"__close",    rs_close},
  {"__tostring", rs_tostring},
  {NULL, NULL}
};

static const luaL_Reg rs_funcs[] = {
  {"new",     rs_new},
  {"numeric", rs_numeric},
  {NULL, NULL}
};

/* Keep the object this code lives in mapped for good: lua_close
 * dlcloses C modules (package's finalizer), and a pool thread may still
 * be inside getaddrinfo, or just woken by the pool's close, and return
 * into this code afterwards. Linked into the program itself (the host
 * program, a static embedder) it is never unloaded: nothing to do. 0, or
 * -1 with L's top the reason. */
static int rs_pin(lua_State *L) {
  Dl_info info;
  struct link_map *lm = NULL;
  const char *err;
  if (dladdr1((const void *)rs_thread, &info, (void **)&lm, RTLD_DL_LINKMAP) == 0 || !lm) {
    lua_pushliteral(L, "dladdr found no object for its own code");
    return -1;
  }
  if (lm->l_name[0] == '\0') return 0;  /* the program itself */
  /* NOLOAD: only the object already loaded, never another by the name;
   * the handle is never closed (that is the point) */
  if (dlopen(lm->l_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) return 0;
  err = dlerror();
  lua_pushstring(L, err ? err : "dlopen failed");
  return -1;
}

/* declared here until csrc/lepoll.h lists it with the other modules */
LEPOLL_API int luaopen_lepoll_resolver(lua_State *L);

LEPOLL_API int luaopen_lepoll_resolver(lua_State *L) {
  luaL_checkversion(L);
  if (rs_pin(L) != 0)
    return luaL_error(L, "lepoll.resolver: cannot keep the module loaded: %s",
                      lua_tostring(L, -1));
  if (luaL_newmetatable(L, RS_T)) {
    luaL_setfuncs(L, rs_meta, 0);
    luaL_newlib(L, rs_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, rs_funcs);
  lp_setmodinfo(L);
  return 1;
}
