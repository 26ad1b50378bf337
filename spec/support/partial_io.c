/* partial_io.c - an LD_PRELOAD injector of partial reads and writes on stream sockets, for the specs; recv(2), send(2), epoll(7). */

/*
 * A slow network, simulated. Preloaded (LD_PRELOAD=build/partial_io.so),
 * it makes every read, readv, recv, recvfrom, recvmsg (reads) and write,
 * writev, send, sendto, sendmsg (writes) on a stream socket -- AF_INET,
 * AF_INET6 or AF_UNIX with SOCK_STREAM, asked of the kernel on each call
 * (getsockopt SO_TYPE, SO_DOMAIN) -- move at most N bytes: the call is
 * made with its length, or its iovec cut, limited to N. Everything else
 * passes through untouched: pipes, files, ttys, eventfds, timerfds,
 * datagram and seqpacket sockets.
 *
 *   LEPOLL_PARTIAL_IO      r, w or rw: the directions cut (default rw)
 *   LEPOLL_PARTIAL_IO_MAX  N, a positive integer (default 1)
 *
 * Any other value aborts the process with a message on stderr: a mistyped
 * setting must not pass for a run under the injector.
 *
 * Passed through unchanged: a call that asks for N bytes or fewer (0
 * included: the kernel may still move less, as always); a receive with
 * MSG_PEEK (it consumes nothing), MSG_WAITALL (the caller asked the
 * kernel for all of it) or MSG_ERRQUEUE (not stream data); a send or
 * receive with MSG_OOB (one urgent byte, whose place in the stream a cut
 * would move). The fortified __read_chk, __recv_chk and __recvfrom_chk
 * are cut like read, recv and recvfrom. Not intercepted: recvmmsg,
 * sendmmsg, sendfile, splice, preadv/pwritev (not on sockets), poll,
 * select.
 *
 * Edge-triggered epoll stays correct. The kernel raises an edge when bytes
 * arrive or room appears, never because a read or write left some behind;
 * a program that stops at a short read or write (on a real kernel it has
 * drained the socket, or filled it) then waits for the next edge. So when
 * the injector cuts a call and the kernel could have moved more -- a read
 * got its N bytes and FIONREAD still counts bytes queued; a write had its
 * N bytes taken (room may be left: a spurious edge is harmless) -- it owes
 * that fd an edge in that direction (EPOLLIN for reads, EPOLLOUT for
 * writes) on every epoll set where the fd is registered, armed, with
 * EPOLLET and that direction. The next epoll_wait, epoll_pwait or
 * epoll_pwait2 on such a set polls the fd (poll(2), no wait) and reports
 * what the registration asks for that the fd is ready for (with EPOLLERR
 * and EPOLLHUP, as always), with the registered data: what the kernel
 * reports when a peer's bytes arrive one at a time. An owed edge whose
 * direction is no longer ready (and no error or hang-up) lapses, as the
 * kernel drops a ready item whose poll comes back empty. While edges are
 * owed on a set its wait does not block (timeout 0); owed events follow
 * the real ones, never beyond maxevents (the rest stay owed), and an fd
 * the kernel reported too gets the owed flags ORed into that event, never
 * a second one. Events are told apart by their data: two fds with the
 * same data in one set would be confused.
 *
 * The bookkeeping: epoll_ctl is intercepted to remember (epoll fd, fd) ->
 * events, data. EPOLL_CTL_DEL, close(2), and dup2/dup3 onto the fd forget
 * it; closing an epoll fd forgets its registrations. EPOLL_CTL_MOD settles
 * what was owed (the kernel polls the fd itself then) and re-arms an
 * EPOLLONESHOT registration. A oneshot registration that reported an
 * event (a real one, or an owed one, after which the injector disarms it
 * in the kernel too, by a MOD to no events) is owed nothing until re-armed.
 * Level-triggered registrations of sockets need nothing: the kernel
 * reports them again. An epoll fd nested in another set (a host polling
 * lepoll.fileno() in its own epoll) is owed an EPOLLIN there, level- or
 * edge-triggered, while edges are owed inside it: its own readiness is
 * the kernel's, which knows nothing of them.
 *
 * So a program that is correct on a real kernel against a peer that sends
 * and receives one byte at a time survives the injector; one that loses
 * bytes at a partial write, or takes one read for a whole message, fails.
 *
 * Limits, fine for the specs: registrations are known by fd number, so
 * a cut call through a dup of a registered fd owes nothing, and a
 * registration the kernel keeps after close() because a dup is still open
 * is forgotten here; an fd closed behind the injector's back (close_range,
 * fclose: glibc closes internally) keeps its registrations until a poll
 * finds the fd invalid. One
 * mutex guards the bookkeeping, never held across a blocking call: threads
 * are safe, a signal handler doing socket I/O or closing fds is not. The
 * state is global by nature (one per process), unlike the C modules'.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* glibc's fortified entry points (declared only under _FORTIFY_SOURCE). */
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       __SOCKADDR_ARG addr, socklen_t *alen);

enum { PIO_R = 1, PIO_W = 2 };
#define PIO_IOV 64 /* iovec entries a cut call keeps (it may move less than N) */
#define PIO_NEST 5 /* epoll nesting depth, as the kernel's EP_MAX_NESTS */
/* receive flags that make a call move nothing, or everything, or not data */
#define PIO_RPASS (MSG_PEEK | MSG_WAITALL | MSG_ERRQUEUE | MSG_OOB)

/* The functions behind ours (dlsym RTLD_NEXT). */
static struct {
  ssize_t (*read)(int, void *, size_t);
  ssize_t (*readv)(int, const struct iovec *, int);
  ssize_t (*recv)(int, void *, size_t, int);
  ssize_t (*recvfrom)(int, void *, size_t, int, __SOCKADDR_ARG, socklen_t *);
  ssize_t (*recvmsg)(int, struct msghdr *, int);
  ssize_t (*write)(int, const void *, size_t);
  ssize_t (*writev)(int, const struct iovec *, int);
  ssize_t (*send)(int, const void *, size_t, int);
  ssize_t (*sendto)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG,
                    socklen_t);
  ssize_t (*sendmsg)(int, const struct msghdr *, int);
  ssize_t (*read_chk)(int, void *, size_t, size_t);
  ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
  ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, __SOCKADDR_ARG,
                          socklen_t *);
  int (*epoll_ctl)(int, int, int, struct epoll_event *);
  int (*epoll_wait)(int, struct epoll_event *, int, int);
  int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
  int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *,
                      const sigset_t *);
  int (*close)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
} pio_real;

static int pio_dirs = PIO_R | PIO_W; /* LEPOLL_PARTIAL_IO */
static size_t pio_max = 1;           /* LEPOLL_PARTIAL_IO_MAX */
static pthread_once_t pio_once = PTHREAD_ONCE_INIT;

/* One registration of an fd in an epoll set, as epoll_ctl left it. */
typedef struct pio_Reg pio_Reg;
struct pio_Reg {
  pio_Reg *next;           /* the fd's next registration (another set) */
  pio_Reg *onext, **oprev; /* in the owed list while owed != 0 */
  int epfd, fd;
  uint32_t events;         /* as registered */
  uint32_t owed;           /* EPOLLIN, EPOLLOUT: edges owed */
  int armed;               /* 0: an EPOLLONESHOT registration that fired */
  uint64_t data;
};

/* What is known of an fd number. */
typedef struct pio_Fd {
  pio_Reg *regs; /* its registrations, in any set */
  int nset;      /* registrations in it, as an epoll set */
  int noneshot;  /* of those, EPOLLONESHOT ones */
} pio_Fd;

static pthread_mutex_t pio_mu = PTHREAD_MUTEX_INITIALIZER;
static pio_Fd *pio_fds; /* indexed by fd number */
static size_t pio_nfds;
static pio_Reg *pio_owed; /* registrations with edges owed */

static void pio_die(const char *what, const char *detail) {
  fprintf(stderr, "partial_io: %s%s\n", what, detail);
  abort();
}

static void pio_lock(void) {
  if (pthread_mutex_lock(&pio_mu) != 0) pio_die("mutex lock failed", "");
}

static void pio_unlock(void) {
  pthread_mutex_unlock(&pio_mu);
}

/* A fork while another thread holds the lock must not leave it held in
 * the child. */
static void pio_unlock_fork(void) {
  pthread_mutex_unlock(&pio_mu);
}

static void *pio_sym(const char *name, int needed) {
  void *p = dlsym(RTLD_NEXT, name);
  if (p == NULL && needed) pio_die("no next definition of ", name);
  return p;
}

static void pio_init(void) {
  const char *mode = getenv("LEPOLL_PARTIAL_IO");
  const char *max = getenv("LEPOLL_PARTIAL_IO_MAX");
  pio_real.read = (ssize_t (*)(int, void *, size_t))pio_sym("read", 1);
  pio_real.readv = (ssize_t (*)(int, const struct iovec *, int))pio_sym("readv", 1);
  pio_real.recv = (ssize_t (*)(int, void *, size_t, int))pio_sym("recv", 1);
  pio_real.recvfrom = (ssize_t (*)(int, void *, size_t, int, __SOCKADDR_ARG,
                                   socklen_t *))pio_sym("recvfrom", 1);
  pio_real.recvmsg = (ssize_t (*)(int, struct msghdr *, int))pio_sym("recvmsg", 1);
  pio_real.write = (ssize_t (*)(int, const void *, size_t))pio_sym("write", 1);
  pio_real.writev = (ssize_t (*)(int, const struct iovec *, int))pio_sym("writev", 1);
  pio_real.send = (ssize_t (*)(int, const void *, size_t, int))pio_sym("send", 1);
  pio_real.sendto = (ssize_t (*)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG,
                                 socklen_t))pio_sym("sendto", 1);
  pio_real.sendmsg = (ssize_t (*)(int, const struct msghdr *, int))pio_sym("sendmsg", 1);
  pio_real.read_chk = (ssize_t (*)(int, void *, size_t, size_t))pio_sym("__read_chk", 0);
  pio_real.recv_chk = (ssize_t (*)(int, void *, size_t, size_t, int))pio_sym("__recv_chk", 0);
  pio_real.recvfrom_chk = (ssize_t (*)(int, void *, size_t, size_t, int, __SOCKADDR_ARG,
                                       socklen_t *))pio_sym("__recvfrom_chk", 0);
  pio_real.epoll_ctl = (int (*)(int, int, int, struct epoll_event *))pio_sym("epoll_ctl", 1);
  pio_real.epoll_wait = (int (*)(int, struct epoll_event *, int, int))pio_sym("epoll_wait", 1);
  pio_real.epoll_pwait = (int (*)(int, struct epoll_event *, int, int,
                                  const sigset_t *))pio_sym("epoll_pwait", 1);
  pio_real.epoll_pwait2 = (int (*)(int, struct epoll_event *, int, const struct timespec *,
                                   const sigset_t *))pio_sym("epoll_pwait2", 0);
  pio_real.close = (int (*)(int))pio_sym("close", 1);
  pio_real.dup2 = (int (*)(int, int))pio_sym("dup2", 1);
  pio_real.dup3 = (int (*)(int, int, int))pio_sym("dup3", 1);
  if (mode != NULL) {
    if (strcmp(mode, "r") == 0) pio_dirs = PIO_R;
    else if (strcmp(mode, "w") == 0) pio_dirs = PIO_W;
    else if (strcmp(mode, "rw") == 0) pio_dirs = PIO_R | PIO_W;
    else pio_die("LEPOLL_PARTIAL_IO must be r, w or rw, not ", mode);
  }
  if (max != NULL) {
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(max, &end, 10);
    if (errno != 0 || end == max || *end != '\0' || max[0] == '-' || v < 1 || v > INT_MAX)
      pio_die("LEPOLL_PARTIAL_IO_MAX must be a positive integer, not ", max);
    pio_max = (size_t)v;
  }
  if (pthread_atfork(pio_lock, pio_unlock_fork, pio_unlock_fork) != 0)
    pio_die("pthread_atfork failed", "");
}

static void pio_start(void) {
  pthread_once(&pio_once, pio_init);
}

/* At load: a bad setting stops the program before it does anything. */
__attribute__((constructor)) static void pio_load(void) {
  pio_start();
}

/* Whether fd is a stream socket of a family we cut (errno kept). */
static int pio_stream(int fd) {
  int saved = errno, type = 0, dom = 0, ok;
  socklen_t len = sizeof type;
  ok = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
  if (ok) {
    len = sizeof dom;
    ok = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 &&
         (dom == AF_INET || dom == AF_INET6 || dom == AF_UNIX);
  }
  errno = saved;
  return ok;
}

/* The bytes a call of len bytes in direction dir on fd may move: len when
 * the call is left alone. */
static size_t pio_cap(int fd, size_t len, int dir) {
  pio_start();
  if (!(pio_dirs & dir) || len <= pio_max || !pio_stream(fd)) return len;
  return pio_max;
}

/* Cut iov[0..cnt) to at most pio_max bytes in cut[] (*ncut entries, *lim
 * bytes). 0: leave the call alone (not cut, or an iovec the kernel will
 * refuse, which it should be the one to refuse). */
static int pio_cutv(int fd, const struct iovec *iov, size_t cnt, int dir,
                    struct iovec *cut, int *ncut, size_t *lim) {
  size_t total = 0, got = 0, i;
  int k = 0;
  pio_start();
  if (!(pio_dirs & dir) || iov == NULL || cnt == 0 || cnt > IOV_MAX) return 0;
  for (i = 0; i < cnt && total <= pio_max; i++) total += iov[i].iov_len;
  if (total <= pio_max || !pio_stream(fd)) return 0;
  for (i = 0; i < cnt && got < pio_max && k < PIO_IOV; i++) {
    size_t take = iov[i].iov_len;
    if (take == 0) continue;
    if (take > pio_max - got) take = pio_max - got;
    cut[k].iov_base = iov[i].iov_base;
    cut[k].iov_len = take;
    got += take;
    k++;
  }
  *ncut = k;
  *lim = got;
  return 1;
}

/* The registrations of fd, or NULL. */
static pio_Fd *pio_fd(int fd) {
  if (fd < 0 || (size_t)fd >= pio_nfds) return NULL;
  return &pio_fds[fd];
}

/* Grow the table to hold fd (>= 0). */
static void pio_grow(int fd) {
  size_t n = pio_nfds ? pio_nfds : 64;
  pio_Fd *t;
  if ((size_t)fd < pio_nfds) return;
  while (n <= (size_t)fd) n *= 2;
  t = realloc(pio_fds, n * sizeof *t);
  if (t == NULL) pio_die("out of memory", "");
  memset(t + pio_nfds, 0, (n - pio_nfds) * sizeof *t);
  pio_fds = t;
  pio_nfds = n;
}

static void pio_owe_reg(pio_Reg *r, uint32_t what) {
  if (r->owed == 0) {
    r->onext = pio_owed;
    r->oprev = &pio_owed;
    if (pio_owed) pio_owed->oprev = &r->onext;
    pio_owed = r;
  }
  r->owed |= what;
}

static void pio_settle(pio_Reg *r) {
  if (r->owed == 0) return;
  *r->oprev = r->onext;
  if (r->onext) r->onext->oprev = r->oprev;
  r->owed = 0;
  r->onext = NULL;
  r->oprev = NULL;
}

/* Whether edges are owed on the epoll set epfd. */
static int pio_set_owed(int epfd) {
  pio_Reg *r;
  for (r = pio_owed; r; r = r->onext)
    if (r->epfd == epfd) return 1;
  return 0;
}

/* Edges are owed inside the epoll set epfd: owe EPOLLIN to where epfd is
 * registered itself (level- or edge-triggered: its readiness, as the
 * kernel sees it, does not show them), and so on outwards. */
static void pio_owe_nested(int epfd, int depth) {
  pio_Fd *f = pio_fd(epfd);
  pio_Reg *r;
  if (f == NULL || depth >= PIO_NEST) return;
  for (r = f->regs; r; r = r->next) {
    if (!r->armed || !(r->events & EPOLLIN)) continue;
    pio_owe_reg(r, EPOLLIN);
    pio_owe_nested(r->epfd, depth + 1);
  }
}

/* A cut call left bytes (or room) behind on fd: owe its edge-triggered
 * registrations for that direction an edge. */
static void pio_owe(int fd, uint32_t what) {
  pio_Fd *f;
  pio_Reg *r;
  pio_lock();
  f = pio_fd(fd);
  for (r = f ? f->regs : NULL; r; r = r->next) {
    if (!r->armed || !(r->events & what) || !(r->events & EPOLLET)) continue;
    pio_owe_reg(r, what);
    pio_owe_nested(r->epfd, 1);
  }
  pio_unlock();
}

/* After a cut call on fd that was allowed lim bytes and moved n. */
static void pio_after(int fd, int dir, ssize_t n, size_t lim) {
  int saved = errno, queued = 0;
  if (n < 0 || (size_t)n != lim) return; /* the kernel itself moved less */
  if (dir == PIO_R) {
    if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) pio_owe(fd, EPOLLIN);
  } else {
    pio_owe(fd, EPOLLOUT);
  }
  errno = saved;
}

static pio_Reg *pio_find(int epfd, int fd) {
  pio_Fd *f = pio_fd(fd);
  pio_Reg *r;
  for (r = f ? f->regs : NULL; r; r = r->next)
    if (r->epfd == epfd) return r;
  return NULL;
}

static void pio_unlink(pio_Reg *r) {
  pio_Fd *f = pio_fd(r->fd), *s = pio_fd(r->epfd);
  pio_Reg **p;
  for (p = &f->regs; *p; p = &(*p)->next) {
    if (*p == r) {
      *p = r->next;
      break;
    }
  }
  pio_settle(r);
  if (s) {
    s->nset--;
    if (r->events & EPOLLONESHOT) s->noneshot--;
  }
  free(r);
}

/* Set r's events and data (an ADD or a MOD). */
static void pio_set(pio_Reg *r, const struct epoll_event *ev) {
  pio_Fd *s = pio_fd(r->epfd), *t = pio_fd(r->fd);
  if (r->events & EPOLLONESHOT) s->noneshot--;
  r->events = ev->events;
  r->data = ev->data.u64;
  r->armed = 1;
  if (r->events & EPOLLONESHOT) s->noneshot++;
  /* the kernel polls the fd now; it cannot see edges owed in a nested set */
  pio_settle(r);
  if (t && t->nset > 0 && (r->events & EPOLLIN) && pio_set_owed(r->fd))
    pio_owe_reg(r, EPOLLIN);
}

static void pio_remember(int epfd, int op, int fd, const struct epoll_event *ev) {
  pio_Reg *r;
  pio_lock();
  r = pio_find(epfd, fd);
  if (op == EPOLL_CTL_DEL) {
    if (r) pio_unlink(r);
  } else if (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) {
    if (r == NULL) {
      r = calloc(1, sizeof *r);
      if (r == NULL) pio_die("out of memory", "");
      pio_grow(epfd > fd ? epfd : fd);
      r->epfd = epfd;
      r->fd = fd;
      r->next = pio_fds[fd].regs;
      pio_fds[fd].regs = r;
      pio_fds[epfd].nset++;
    }
    pio_set(r, ev);
  }
  pio_unlock();
}

/* fd is gone (closed, or replaced by dup2/dup3): forget its registrations,
 * and its set's if it was an epoll fd. */
static void pio_forget(int fd) {
  pio_Fd *f;
  pio_lock();
  f = pio_fd(fd);
  if (f) {
    while (f->regs) pio_unlink(f->regs);
    if (f->nset > 0) {
      size_t i;
      for (i = 0; i < pio_nfds && pio_fds[fd].nset > 0; i++) {
        pio_Reg **p = &pio_fds[i].regs;
        while (*p) {
          if ((*p)->epfd == fd) pio_unlink(*p);
          else p = &(*p)->next;
        }
      }
    }
  }
  pio_unlock();
}

/* What fd is ready for now, as poll(2) says (and EPOLLIN for an epoll
 * set with edges owed); -1: fd is not open. */
static int64_t pio_ready(int fd) {
  struct pollfd p;
  int rc;
  pio_Fd *f = pio_fd(fd);
  p.fd = fd;
  p.events = POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | POLLRDBAND |
             POLLWRNORM | POLLWRBAND;
  p.revents = 0;
  do rc = poll(&p, 1, 0);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return 0;
  if (p.revents & POLLNVAL) return -1;
  if (f && f->nset > 0 && pio_set_owed(fd)) p.revents |= POLLIN;
  return (uint16_t)p.revents;
}

/* A oneshot registration in epfd that the kernel reported is disarmed. */
static void pio_disarm_reported(int epfd, const struct epoll_event *evs, int n) {
  size_t i;
  int k;
  for (i = 0; i < pio_nfds; i++) {
    pio_Reg *r;
    for (r = pio_fds[i].regs; r; r = r->next) {
      if (r->epfd != epfd || !(r->events & EPOLLONESHOT) || !r->armed) continue;
      for (k = 0; k < n; k++) {
        if (evs[k].data.u64 == r->data) {
          r->armed = 0;
          pio_settle(r);
          break;
        }
      }
    }
  }
}

/* Add the edges owed on epfd to the n events of a real wait. */
static int pio_deliver(int epfd, struct epoll_event *evs, int n, int max) {
  pio_Reg *r, *next;
  for (r = pio_owed; r; r = next) {
    int64_t ready;
    uint32_t flags;
    int k;
    next = r->onext;
    if (r->epfd != epfd) continue;
    if (!r->armed) {
      pio_settle(r);
      continue;
    }
    ready = pio_ready(r->fd);
    if (ready < 0) { /* closed behind our back */
      pio_unlink(r);
      continue;
    }
    flags = (uint32_t)ready & (r->events | EPOLLERR | EPOLLHUP);
    if (!(flags & (r->owed | EPOLLERR | EPOLLHUP))) { /* lapsed */
      pio_settle(r);
      continue;
    }
    for (k = 0; k < n && evs[k].data.u64 != r->data; k++) {}
    if (k < n) {
      evs[k].events |= flags;
      pio_settle(r);
      continue;
    }
    if (n >= max) continue; /* stays owed for the next wait */
    evs[n].events = flags;
    evs[n].data.u64 = r->data;
    n++;
    pio_settle(r);
    if (r->events & EPOLLONESHOT) {
      /* as the kernel does after reporting it: only private bits left */
      struct epoll_event off;
      off.events = EPOLLONESHOT;
      off.data.u64 = r->data;
      r->armed = 0;
      if (pio_real.epoll_ctl(epfd, EPOLL_CTL_MOD, r->fd, &off) != 0)
        pio_unlink(r);
    }
  }
  return n;
}

/* How the caller waits: which function, and its timeout and mask. */
typedef struct pio_Wait {
  int kind; /* 0 epoll_wait, 1 epoll_pwait, 2 epoll_pwait2 */
  int ms;
  const struct timespec *ts;
  const sigset_t *mask;
} pio_Wait;

static int pio_wait(int epfd, struct epoll_event *evs, int max, const pio_Wait *w) {
  static const struct timespec zero = {0, 0};
  int owed = 0, n, saved;
  pio_start();
  if (evs != NULL && max > 0) {
    pio_lock();
    owed = pio_set_owed(epfd);
    pio_unlock();
  }
  if (w->kind == 0) {
    n = pio_real.epoll_wait(epfd, evs, max, owed ? 0 : w->ms);
  } else if (w->kind == 1) {
    n = pio_real.epoll_pwait(epfd, evs, max, owed ? 0 : w->ms, w->mask);
  } else if (pio_real.epoll_pwait2 == NULL) {
    errno = ENOSYS;
    return -1;
  } else {
    n = pio_real.epoll_pwait2(epfd, evs, max, owed ? &zero : w->ts, w->mask);
  }
  if (n < 0 || evs == NULL || max <= 0) return n;
  saved = errno;
  pio_lock();
  {
    pio_Fd *s = pio_fd(epfd);
    if (s && s->noneshot > 0 && n > 0) pio_disarm_reported(epfd, evs, n);
    if (pio_owed) n = pio_deliver(epfd, evs, n, max);
  }
  pio_unlock();
  errno = saved;
  return n;
}

/* The interposed functions ------------------------------------------------ */

ssize_t read(int fd, void *buf, size_t len) {
  size_t lim = pio_cap(fd, len, PIO_R);
  ssize_t n = pio_real.read(fd, buf, lim);
  if (lim < len) pio_after(fd, PIO_R, n, lim);
  return n;
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) {
  pio_start();
  if (len > buflen && pio_real.read_chk) return pio_real.read_chk(fd, buf, len, buflen);
  return read(fd, buf, len);
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  size_t lim = (flags & PIO_RPASS) ? len : pio_cap(fd, len, PIO_R);
  ssize_t n;
  pio_start();
  n = pio_real.recv(fd, buf, lim, flags);
  if (lim < len) pio_after(fd, PIO_R, n, lim);
  return n;
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
  pio_start();
  if (len > buflen && pio_real.recv_chk) return pio_real.recv_chk(fd, buf, len, buflen, flags);
  return recv(fd, buf, len, flags);
}

ssize_t recvfrom(int fd, void *restrict buf, size_t len, int flags,
                 __SOCKADDR_ARG addr, socklen_t *restrict alen) {
  size_t lim = (flags & PIO_RPASS) ? len : pio_cap(fd, len, PIO_R);
  ssize_t n;
  pio_start();
  n = pio_real.recvfrom(fd, buf, lim, flags, addr, alen);
  if (lim < len) pio_after(fd, PIO_R, n, lim);
  return n;
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       __SOCKADDR_ARG addr, socklen_t *alen) {
  pio_start();
  if (len > buflen && pio_real.recvfrom_chk)
    return pio_real.recvfrom_chk(fd, buf, len, buflen, flags, addr, alen);
  return recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  struct iovec cut[PIO_IOV];
  int ncut;
  size_t lim;
  ssize_t n;
  pio_start();
  if (cnt < 0 || !pio_cutv(fd, iov, (size_t)cnt, PIO_R, cut, &ncut, &lim))
    return pio_real.readv(fd, iov, cnt);
  n = pio_real.readv(fd, cut, ncut);
  pio_after(fd, PIO_R, n, lim);
  return n;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  struct iovec cut[PIO_IOV];
  struct msghdr m;
  int ncut;
  size_t lim;
  ssize_t n;
  pio_start();
  if (msg == NULL || (flags & PIO_RPASS) ||
      !pio_cutv(fd, msg->msg_iov, msg->msg_iovlen, PIO_R, cut, &ncut, &lim))
    return pio_real.recvmsg(fd, msg, flags);
  m = *msg;
  m.msg_iov = cut;
  m.msg_iovlen = (size_t)ncut;
  n = pio_real.recvmsg(fd, &m, flags);
  msg->msg_namelen = m.msg_namelen; /* what the kernel writes back */
  msg->msg_controllen = m.msg_controllen;
  msg->msg_flags = m.msg_flags;
  pio_after(fd, PIO_R, n, lim);
  return n;
}

ssize_t write(int fd, const void *buf, size_t len) {
  size_t lim = pio_cap(fd, len, PIO_W);
  ssize_t n = pio_real.write(fd, buf, lim);
  if (lim < len) pio_after(fd, PIO_W, n, lim);
  return n;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  size_t lim = (flags & MSG_OOB) ? len : pio_cap(fd, len, PIO_W);
  ssize_t n;
  pio_start();
  n = pio_real.send(fd, buf, lim, flags);
  if (lim < len) pio_after(fd, PIO_W, n, lim);
  return n;
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags,
               __CONST_SOCKADDR_ARG addr, socklen_t alen) {
  size_t lim = (flags & MSG_OOB) ? len : pio_cap(fd, len, PIO_W);
  ssize_t n;
  pio_start();
  n = pio_real.sendto(fd, buf, lim, flags, addr, alen);
  if (lim < len) pio_after(fd, PIO_W, n, lim);
  return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  struct iovec cut[PIO_IOV];
  int ncut;
  size_t lim;
  ssize_t n;
  pio_start();
  if (cnt < 0 || !pio_cutv(fd, iov, (size_t)cnt, PIO_W, cut, &ncut, &lim))
    return pio_real.writev(fd, iov, cnt);
  n = pio_real.writev(fd, cut, ncut);
  pio_after(fd, PIO_W, n, lim);
  return n;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  struct iovec cut[PIO_IOV];
  struct msghdr m;
  int ncut;
  size_t lim;
  ssize_t n;
  pio_start();
  if (msg == NULL || (flags & MSG_OOB) ||
      !pio_cutv(fd, msg->msg_iov, msg->msg_iovlen, PIO_W, cut, &ncut, &lim))
    return pio_real.sendmsg(fd, msg, flags);
  m = *msg;
  m.msg_iov = cut;
  m.msg_iovlen = (size_t)ncut;
  n = pio_real.sendmsg(fd, &m, flags);
  pio_after(fd, PIO_W, n, lim);
  return n;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  int rc, saved;
  pio_start();
  rc = pio_real.epoll_ctl(epfd, op, fd, ev);
  if (rc != 0) return rc;
  saved = errno;
  pio_remember(epfd, op, fd, ev);
  errno = saved;
  return rc;
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int ms) {
  pio_Wait w = {0, ms, NULL, NULL};
  return pio_wait(epfd, evs, max, &w);
}

int epoll_pwait(int epfd, struct epoll_event *evs, int max, int ms, const sigset_t *mask) {
  pio_Wait w = {1, ms, NULL, mask};
  return pio_wait(epfd, evs, max, &w);
}

int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                 const sigset_t *mask) {
  pio_Wait w = {2, 0, ts, mask};
  return pio_wait(epfd, evs, max, &w);
}

int close(int fd) {
  pio_start();
  pio_forget(fd); /* before: once closed, the number may be reused at once */
  return pio_real.close(fd);
}

int dup2(int oldfd, int newfd) {
  int rc;
  pio_start();
  rc = pio_real.dup2(oldfd, newfd);
  if (rc >= 0 && oldfd != newfd) {
    int saved = errno;
    pio_forget(newfd);
    errno = saved;
  }
  return rc;
}

int dup3(int oldfd, int newfd, int flags) {
  int rc;
  pio_start();
  rc = pio_real.dup3(oldfd, newfd, flags);
  if (rc >= 0) {
    int saved = errno;
    pio_forget(newfd);
    errno = saved;
  }
  return rc;
}
