/* raw_server.c - the raw C epoll(7) baseline for `make bench`: hello and echo.
 *
 *   raw_server hello PORT   accept, OUT|ET, send "hello\n", delete, close
 *   raw_server echo PORT    persistent connections, level-triggered echo
 *
 * It does the same work, syscall for syscall, as examples/hello_epoll.lua and
 * examples/echo_epoll.lua: a non-blocking listener drained with accept4 until
 * EAGAIN, send(2) with MSG_NOSIGNAL, recv(2) into a buffer. The first line on
 * stdout is "listening on 127.0.0.1:PORT". Runs until SIGINT/SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAXEVENTS 256
#define RECVMAX   16384

/* Per connection: echo keeps unsent data after a partial send; hello
 * keeps how much of "hello\n" went out in len. */
typedef struct pending {
  char *buf;
  size_t len;
} pending;

typedef struct server {
  int ep;
  int lfd;
  int echo;                 /* 0: hello, 1: echo */
  pending *pend;            /* indexed by fd */
  size_t npend;
  char rbuf[RECVMAX];
} server;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}

static int listen_on(int port) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1)
    die("socket");
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1)
    die("setsockopt");
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1)
    die("bind");
  if (listen(fd, SOMAXCONN) == -1)
    die("listen");
  if (getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
    die("getsockname");
  printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
  fflush(stdout);
  return fd;
}

static int ctl(server *s, int op, int fd, uint32_t flags) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = flags;
  ev.data.u64 = (uint64_t)(int64_t)fd;
  return epoll_ctl(s->ep, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
}

static void drop(server *s, int fd) {
  if ((size_t)fd < s->npend) {
    free(s->pend[fd].buf);
    s->pend[fd].buf = NULL;
    s->pend[fd].len = 0;
  }
  (void)ctl(s, EPOLL_CTL_DEL, fd, 0);
  close(fd);   /* Linux releases the fd even on EINTR: never retried */
}

static void track(server *s, int fd) {
  size_t n;
  pending *p;
  if ((size_t)fd < s->npend)
    return;
  n = s->npend ? s->npend : 64;
  while (n <= (size_t)fd)
    n *= 2;
  p = realloc(s->pend, n * sizeof *p);
  if (p == NULL)
    die("realloc");
  memset(p + s->npend, 0, (n - s->npend) * sizeof *p);
  s->pend = p;
  s->npend = n;
}

static void on_accept(server *s) {
  for (;;) {
    struct sockaddr_storage peer;     /* asked for, as net.accept does */
    socklen_t plen = sizeof peer;
    int fd = accept4(s->lfd, (struct sockaddr *)&peer, &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;                       /* drained */
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        sleep_ms(10);                 /* let connections finish */
        return;
      }
      return;
    }
    track(s, fd);
    if (ctl(s, EPOLL_CTL_ADD, fd, s->echo ? EPOLLIN : EPOLLOUT | EPOLLET) == -1)
      close(fd);
  }
}

static const char hello[] = "hello\n";

static void on_hello(server *s, int fd) {
  size_t len = sizeof hello - 1;
  size_t *off = &s->pend[fd].len;
  while (*off < len) {
    ssize_t n = send(fd, hello + *off, len - *off, MSG_NOSIGNAL);
    if (n >= 0)
      *off += (size_t)n;
    else if (errno == EAGAIN)
      return;                         /* the rest on the next OUT edge */
    else if (errno != EINTR)
      break;                          /* reset by the peer: just close */
  }
  drop(s, fd);
}

/* Send buf[0..len); keep what is left for OUT. Returns -1 to drop. */
static int echo_send(server *s, int fd, const char *buf, size_t len) {
  pending *p = &s->pend[fd];
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += (size_t)n;
    } else if (errno == EAGAIN) {
      char *nb = malloc(len - off);
      if (nb == NULL)
        return -1;
      memcpy(nb, buf + off, len - off);
      free(p->buf);
      p->buf = nb;
      p->len = len - off;
      return ctl(s, EPOLL_CTL_MOD, fd, EPOLLOUT);
    } else if (errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

static void on_echo(server *s, int fd, uint32_t flags) {
  pending *p = &s->pend[fd];
  if (p->buf != NULL) {               /* waiting for OUT with leftovers */
    char *buf = p->buf;
    size_t len = p->len;
    if (!(flags & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
      return;
    p->buf = NULL;
    p->len = 0;
    if (echo_send(s, fd, buf, len) == -1) {
      free(buf);
      drop(s, fd);
      return;
    }
    free(buf);
    if (p->buf == NULL && ctl(s, EPOLL_CTL_MOD, fd, EPOLLIN) == -1)
      drop(s, fd);
    return;
  }
  for (;;) {
    ssize_t n = recv(fd, s->rbuf, sizeof s->rbuf, 0);
    if (n > 0) {
      if (echo_send(s, fd, s->rbuf, (size_t)n) == -1)
        drop(s, fd);
      return;                         /* level-triggered: more comes next wait */
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      drop(s, fd);                    /* EOF or error */
      return;
    }
    if (errno == EAGAIN)
      return;
  }
}

int main(int argc, char **argv) {
  static server s;                    /* static: the receive buffer */
  struct epoll_event evs[MAXEVENTS];
  long port;
  char *end;
  if (argc != 3 || (strcmp(argv[1], "hello") && strcmp(argv[1], "echo"))) {
    fprintf(stderr, "usage: raw_server hello|echo PORT\n");
    return 2;
  }
  port = strtol(argv[2], &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "raw_server: bad port %s\n", argv[2]);
    return 2;
  }
  s.echo = strcmp(argv[1], "echo") == 0;
  s.lfd = listen_on((int)port);
  s.ep = epoll_create1(EPOLL_CLOEXEC);
  if (s.ep == -1)
    die("epoll_create1");
  if (ctl(&s, EPOLL_CTL_ADD, s.lfd, EPOLLIN) == -1)
    die("epoll_ctl");
  for (;;) {
    int i, n = epoll_wait(s.ep, evs, MAXEVENTS, -1);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (i = 0; i < n; i++) {
      int fd = (int)(int64_t)evs[i].data.u64;
      if (fd == s.lfd)
        on_accept(&s);
      else if (s.echo)
        on_echo(&s, fd, evs[i].events);
      else
        on_hello(&s, fd);
    }
  }
}
