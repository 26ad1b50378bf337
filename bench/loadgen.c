/* loadgen.c - single-threaded epoll(7) load generator for `make bench`.
 *
 *   loadgen hello HOST PORT [--conns N] [--seconds S]
 *       N connections in flight: connect, read until "hello\n", close, again.
 *       Latency is connect -> the whole "hello\n" received.
 *   loadgen echo HOST PORT [--conns N] [--seconds S] [--size B]
 *       N persistent connections, each a B-byte ping-pong; latency is the
 *       first byte sent -> the last byte of the echo received.
 *   loadgen idle HOST PORT [--conns N] [--seconds S] [--batch B]
 *       For an echo server's memory per connection: open N connections, at
 *       most B (default 256) of them still connecting at a time, send one
 *       byte on each and read its echo (so the server has accepted it and
 *       is waiting in a read), then print
 *         workload=idle conns=N established=M connect_s=T errors=E
 *       and hold them all open S seconds (the harness samples the server's
 *       RSS meanwhile), then close them and print
 *         held_s=S dropped=D
 *       where D counts connections the server closed or wrote to during the
 *       hold. Exits 0 when all N were established and none dropped. The
 *       connecting phase gives up after IDLE_CONNECT_S seconds, or after
 *       IDLE_STALL_S seconds in which no connection was established.
 *   loadgen http_idle HOST PORT [--conns N] [--seconds S] [--batch B]
 *       idle for an HTTP server: each connection sends one keep-alive
 *       "GET / HTTP/1.1" and reads the whole response (200, "hello\n" by
 *       Content-Length or chunked, no "Connection: close"), so the server
 *       has answered it and waits for the next request; then as idle, with
 *       workload=http_idle in the first line.
 *
 * Every reply is checked byte for byte (echo messages differ per connection
 * and per round trip, so a stale or crossed reply is caught); a wrong, short
 * or failed reply counts as an error. Prints one line:
 *   workload=echo conns=N seconds=S ops=N rate=R p50_us=X p99_us=Y errors=E
 * and exits 0 when there was at least one operation and no error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAXEVENTS 256
#define MAXCONNS  100000
#define MAXSIZE   (16 * 1024 * 1024)
#define IDLE_CONNECT_S 60   /* idle: bound on establishing the connections */
#define IDLE_STALL_S   10   /* idle: ... and on a stretch with no progress */
#define HTTP_RESP_MAX  4096 /* http_idle: the longest response accepted */

static const char hello[] = "hello\n";
#define HELLO_LEN (sizeof hello - 1)
static const char http_req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
#define HTTP_REQ_LEN (sizeof http_req - 1)

typedef struct conn {
  int fd;             /* -1: to be (re)opened */
  int want_out;       /* OUT is registered (echo: partial send) */
  uint64_t start;     /* ns: start of the current operation */
  size_t sent;        /* echo: bytes of msg sent */
  size_t got;         /* bytes of the reply received */
  uint32_t seq;       /* echo: round trip number */
  unsigned char *msg; /* echo: the current message */
  char *resp;         /* http_idle: the response so far, while connecting */
} conn;

typedef struct gen {
  int ep;
  int echo;
  int http;           /* http_idle */
  size_t size;
  struct sockaddr_in addr;
  conn *conns;
  size_t nconns;
  uint64_t ops;
  uint64_t errors;
  uint64_t *lat;      /* ns per operation */
  size_t nlat, caplat;
  unsigned char rbuf[65536];
} gen;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void record(gen *g, uint64_t ns) {
  if (g->nlat == g->caplat) {
    size_t cap = g->caplat ? g->caplat * 2 : 65536;
    uint64_t *p = realloc(g->lat, cap * sizeof *p);
    if (p == NULL)
      die("realloc");
    g->lat = p;
    g->caplat = cap;
  }
  g->lat[g->nlat++] = ns;
  g->ops++;
}

/* Message for connection i, round trip seq: differs in every byte run. */
static void fill(gen *g, size_t i, conn *c) {
  size_t k;
  uint32_t x = (uint32_t)i * 2654435761u ^ c->seq * 40503u;
  for (k = 0; k < g->size; k++) {
    x = x * 1103515245u + 12345u;
    c->msg[k] = (unsigned char)(x >> 16);
  }
}

static int ctl(gen *g, int op, conn *c, size_t i, uint32_t flags) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = flags;
  ev.data.u64 = i;
  return epoll_ctl(g->ep, op, c->fd, &ev);
}

static void close_conn(conn *c) {
  if (c->fd >= 0)
    close(c->fd);     /* the fd is gone even on EINTR: never retried */
  c->fd = -1;
  free(c->resp);
  c->resp = NULL;
}

static void fail(gen *g, conn *c) {
  g->errors++;
  close_conn(c);
}

/* Open connection i (non-blocking connect). Leaves fd -1 on failure. */
static void open_conn(gen *g, size_t i) {
  conn *c = &g->conns[i];
  int one = 1;
  c->start = now_ns();
  c->got = c->sent = 0;
  c->want_out = 0;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd == -1) {
    g->errors++;
    return;
  }
  if (g->echo)
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&g->addr, sizeof g->addr) == -1 &&
      errno != EINPROGRESS) {
    fail(g, c);
    return;
  }
  /* echo: OUT tells us the connect finished, then the first send */
  c->want_out = g->echo;
  if (ctl(g, EPOLL_CTL_ADD, c, i, EPOLLIN | (g->echo ? EPOLLOUT : 0)) == -1)
    fail(g, c);
}

static void hello_event(gen *g, size_t i, uint64_t t) {
  conn *c = &g->conns[i];
  for (;;) {
    ssize_t n = recv(c->fd, g->rbuf, sizeof g->rbuf, 0);
    if (n > 0) {
      if (c->got + (size_t)n > HELLO_LEN ||
          memcmp(g->rbuf, hello + c->got, (size_t)n) != 0) {
        fail(g, c);                   /* wrong or too long */
        break;
      }
      c->got += (size_t)n;
      if (c->got == HELLO_LEN) {
        record(g, t - c->start);
        close_conn(c);
        break;
      }
    } else if (n == 0) {
      fail(g, c);                     /* EOF before the whole reply */
      break;
    } else if (errno == EAGAIN) {
      return;
    } else if (errno != EINTR) {
      fail(g, c);                     /* refused, reset */
      break;
    }
  }
  open_conn(g, i);
}

/* Send what is left of the message; OUT is registered while some is. */
static int echo_send(gen *g, conn *c, size_t i) {
  while (c->sent < g->size) {
    ssize_t n = send(c->fd, c->msg + c->sent, g->size - c->sent, MSG_NOSIGNAL);
    if (n >= 0)
      c->sent += (size_t)n;
    else if (errno == EAGAIN)
      break;
    else if (errno != EINTR)
      return -1;
  }
  if ((c->sent < g->size) != (c->want_out != 0)) {
    c->want_out = c->sent < g->size;
    return ctl(g, EPOLL_CTL_MOD, c, i, EPOLLIN | (c->want_out ? EPOLLOUT : 0));
  }
  return 0;
}

static void echo_event(gen *g, size_t i, uint32_t flags, uint64_t t) {
  conn *c = &g->conns[i];
  if (flags & EPOLLERR) {
    fail(g, c);
    open_conn(g, i);
    return;
  }
  if ((flags & EPOLLOUT) && c->want_out) {
    if (c->sent == 0 && c->got == 0 && c->seq == 0)
      c->start = t;                   /* connected: the first ping starts */
    if (echo_send(g, c, i) == -1) {
      fail(g, c);
      open_conn(g, i);
      return;
    }
  }
  if (!(flags & (EPOLLIN | EPOLLHUP)))
    return;
  for (;;) {
    ssize_t n = recv(c->fd, g->rbuf, sizeof g->rbuf, 0);
    if (n > 0) {
      if (c->got + (size_t)n > c->sent ||
          memcmp(g->rbuf, c->msg + c->got, (size_t)n) != 0) {
        fail(g, c);                   /* more than we sent, or different */
        open_conn(g, i);
        return;
      }
      c->got += (size_t)n;
      if (c->got == g->size) {
        record(g, t - c->start);
        c->seq++;
        fill(g, i, c);
        c->sent = c->got = 0;
        c->start = t;
        if (echo_send(g, c, i) == -1) {
          fail(g, c);
          open_conn(g, i);
        }
        return;
      }
    } else if (n == 0 || errno != EAGAIN) {
      if (n != 0 && errno == EINTR)
        continue;
      fail(g, c);                     /* EOF mid-reply, reset, refused */
      open_conn(g, i);
      return;
    } else {
      return;
    }
  }
}

/* idle: connection i connects (want_out), sends its byte (sent), gets the
 * echo (got): then it is established and only watched for a drop. */
static int idle_start(gen *g, size_t i) {
  conn *c = &g->conns[i];
  c->got = c->sent = 0;
  c->want_out = 1;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd == -1)
    return -1;
  if (g->http && (c->resp = malloc(HTTP_RESP_MAX + 1)) == NULL)
    die("malloc");
  if ((connect(c->fd, (struct sockaddr *)&g->addr, sizeof g->addr) == -1 &&
       errno != EINPROGRESS) ||
      ctl(g, EPOLL_CTL_ADD, c, i, EPOLLIN | EPOLLOUT) == -1) {
    close_conn(c);
    return -1;
  }
  return 0;
}

/* Header field `name` (lower case, with the colon) of the head h..end, or
 * NULL: a bench check, not a parser (the servers are trusted to be sane). */
static const char *field(const char *h, const char *end, const char *name) {
  size_t n = strlen(name);
  const char *p = strstr(h, "\r\n");
  while (p != NULL && p + 2 < end) {
    p += 2;
    if (strncasecmp(p, name, n) == 0) {
      p += n;
      while (*p == ' ' || *p == '\t')
        p++;
      return p;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

/* http_idle: is the response in c->resp (len bytes, NUL-terminated)
 * complete? 1 yes and right, 0 not yet, -1 wrong. */
static int http_complete(const char *r, size_t len) {
  const char *end = strstr(r, "\r\n\r\n"), *v, *p;
  char body[HTTP_RESP_MAX + 1];
  size_t blen = 0, head, cl;
  if (end == NULL)
    return len >= HTTP_RESP_MAX ? -1 : 0;
  if (strncmp(r, "HTTP/1.1 200 ", 13) != 0)
    return -1;
  head = (size_t)(end - r) + 4;
  v = field(r, end, "connection:");
  if (v != NULL && strncasecmp(v, "close", 5) == 0)
    return -1;                        /* it would not stay idle */
  if ((v = field(r, end, "content-length:")) != NULL) {
    cl = strtoul(v, NULL, 10);
    if (len < head + cl)
      return 0;
    return len == head + cl && cl == HELLO_LEN &&
           memcmp(r + head, hello, HELLO_LEN) == 0 ? 1 : -1;
  }
  v = field(r, end, "transfer-encoding:");
  if (v == NULL || strncasecmp(v, "chunked", 7) != 0)
    return -1;
  if (len < head + 5 || memcmp(r + len - 5, "0\r\n\r\n", 5) != 0)
    return 0;                         /* no last chunk yet */
  for (p = r + head;;) {               /* size CRLF data CRLF ... 0 CRLF CRLF */
    char *q;
    unsigned long n = strtoul(p, &q, 16);
    if (q == p || strncmp(q, "\r\n", 2) != 0)
      return -1;
    p = q + 2;
    if (n == 0)
      break;
    if (n > (unsigned long)(r + len - p) || blen + n > HTTP_RESP_MAX)
      return -1;
    memcpy(body + blen, p, n);
    blen += n;
    p += n;
    if (strncmp(p, "\r\n", 2) != 0)
      return -1;
    p += 2;
  }
  return p + 2 == r + len && blen == HELLO_LEN && memcmp(body, hello, HELLO_LEN) == 0
             ? 1 : -1;
}

/* http_idle's idle_step: send the request, read the response. */
static int http_step(gen *g, size_t i, uint32_t flags) {
  conn *c = &g->conns[i];
  ssize_t n;
  int done;
  if (flags & EPOLLERR)
    goto failed;
  if (c->want_out && (flags & EPOLLOUT)) {
    while (c->sent < HTTP_REQ_LEN) {
      n = send(c->fd, http_req + c->sent, HTTP_REQ_LEN - c->sent, MSG_NOSIGNAL);
      if (n >= 0)
        c->sent += (size_t)n;
      else if (errno == EAGAIN)
        return 0;
      else if (errno != EINTR)
        goto failed;
    }
    c->want_out = 0;
    if (ctl(g, EPOLL_CTL_MOD, c, i, EPOLLIN) == -1)
      goto failed;
  }
  if (c->sent < HTTP_REQ_LEN || !(flags & (EPOLLIN | EPOLLHUP)))
    return 0;
  for (;;) {
    n = recv(c->fd, c->resp + c->got, HTTP_RESP_MAX - c->got, 0);
    if (n > 0) {
      c->got += (size_t)n;
      c->resp[c->got] = '\0';
      if (memchr(c->resp + c->got - (size_t)n, '\0', (size_t)n) != NULL)
        goto failed;
      done = http_complete(c->resp, c->got);
      if (done == 1) {
        free(c->resp);
        c->resp = NULL;
        return 1;
      }
      if (done == -1)
        goto failed;
    } else if (n == -1 && errno == EAGAIN) {
      return 0;
    } else if (n == 0 || errno != EINTR) {
      goto failed;                    /* EOF or an error before the whole */
    }
  }
failed:
  close_conn(c);
  return -1;
}

/* One event on a connection still being established: 1 when it now is,
 * 0 when it needs more events, -1 when it failed (closed). */
static int idle_step(gen *g, size_t i, uint32_t flags) {
  conn *c = &g->conns[i];
  unsigned char byte = (unsigned char)('a' + i % 26);
  ssize_t n;
  if (g->http)
    return http_step(g, i, flags);
  if (flags & EPOLLERR)
    goto failed;
  if (c->want_out && (flags & EPOLLOUT)) {
    do
      n = send(c->fd, &byte, 1, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    if (n == -1 && errno == EAGAIN)
      return 0;
    if (n != 1)
      goto failed;
    c->sent = 1;
    c->want_out = 0;
    if (ctl(g, EPOLL_CTL_MOD, c, i, EPOLLIN) == -1)
      goto failed;
  }
  if (!c->sent || !(flags & (EPOLLIN | EPOLLHUP)))
    return 0;
  do
    n = recv(c->fd, g->rbuf, sizeof g->rbuf, 0);
  while (n == -1 && errno == EINTR);
  if (n == -1 && errno == EAGAIN)
    return 0;
  if (n != 1 || g->rbuf[0] != byte)
    goto failed;                      /* EOF, error, or not our byte */
  c->got = 1;
  return 1;
failed:
  close_conn(c);
  return -1;
}

/* idle: connection c is established (its byte, or whole response, came). */
static int settled(const conn *c) {
  return c->got && c->resp == NULL;
}

static int run_idle(gen *g, double seconds, size_t batch) {
  struct epoll_event evs[MAXEVENTS];
  size_t next = 0, pending = 0, established = 0, dropped = 0, i;
  uint64_t t0 = now_ns(), t, deadline, progress = t0;
  int n, k;
  deadline = t0 + (uint64_t)IDLE_CONNECT_S * 1000000000u;
  for (t = t0; established + g->errors < g->nconns && t < deadline &&
               t - progress < (uint64_t)IDLE_STALL_S * 1000000000u;) {
    while (next < g->nconns && pending < batch) {
      if (idle_start(g, next++) == 0)
        pending++;
      else
        g->errors++;
    }
    n = epoll_wait(g->ep, evs, MAXEVENTS, 100);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (k = 0; k < n; k++) {
      i = (size_t)evs[k].data.u64;
      if (g->conns[i].fd == -1)
        continue;
      if (settled(&g->conns[i])) {    /* established, yet an event: */
        dropped++;                    /* closed by the server already */
        close_conn(&g->conns[i]);
        continue;
      }
      switch (idle_step(g, i, evs[k].events)) {
      case 1:
        established++;
        pending--;
        progress = now_ns();
        break;
      case -1:
        g->errors++;
        pending--;
        break;
      default:
        break;
      }
    }
    t = now_ns();
  }
  for (i = 0; i < g->nconns; i++)    /* timed out: still connecting */
    if (g->conns[i].fd != -1 && !settled(&g->conns[i]))
      close_conn(&g->conns[i]);
  g->errors = g->nconns - established;  /* failed or timed out */
  printf("workload=%s conns=%zu established=%zu connect_s=%.3f errors=%llu\n",
         g->http ? "http_idle" : "idle", g->nconns, established - dropped,
         (double)(now_ns() - t0) / 1e9,
         (unsigned long long)g->errors);
  fflush(stdout);

  t0 = now_ns();                      /* hold: any event is a drop */
  deadline = t0 + (uint64_t)(seconds * 1e9);
  for (t = t0; t < deadline; t = now_ns()) {
    n = epoll_wait(g->ep, evs, MAXEVENTS,
                   (int)((deadline - t + 999999) / 1000000));
    if (n == -1) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (k = 0; k < n; k++) {
      i = (size_t)evs[k].data.u64;
      if (g->conns[i].fd != -1) {
        dropped++;
        close_conn(&g->conns[i]);
      }
    }
  }
  for (i = 0; i < g->nconns; i++)
    close_conn(&g->conns[i]);
  printf("held_s=%.3f dropped=%zu\n", (double)(now_ns() - t0) / 1e9, dropped);
  fflush(stdout);
  return g->errors == 0 && dropped == 0 && established == g->nconns ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double pct_us(gen *g, unsigned p) {
  if (g->nlat == 0)
    return 0.0;
  return (double)g->lat[(g->nlat - 1) * p / 100] / 1000.0;
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen hello|echo|idle|http_idle HOST PORT [--conns N] "
                  "[--seconds S] [--size B] [--batch B]\n");
  exit(2);
}

static long num(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi)
    usage();
  return v;
}

int main(int argc, char **argv) {
  static gen g;                       /* static: the receive buffer */
  struct epoll_event evs[MAXEVENTS];
  double seconds = 5.0;
  uint64_t t0, deadline, t;
  size_t i, batch = 256;
  int a, idle;
  if (argc < 4 || (strcmp(argv[1], "hello") && strcmp(argv[1], "echo") &&
                   strcmp(argv[1], "idle") && strcmp(argv[1], "http_idle")))
    usage();
  g.echo = strcmp(argv[1], "echo") == 0;
  g.http = strcmp(argv[1], "http_idle") == 0;
  idle = g.http || strcmp(argv[1], "idle") == 0;
  g.nconns = 50;
  g.size = 64;
  memset(&g.addr, 0, sizeof g.addr);
  g.addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, argv[2], &g.addr.sin_addr) != 1)
    usage();
  g.addr.sin_port = htons((unsigned short)num(argv[3], 1, 65535));
  for (a = 4; a < argc; a += 2) {
    if (a + 1 >= argc)
      usage();
    if (strcmp(argv[a], "--conns") == 0)
      g.nconns = (size_t)num(argv[a + 1], 1, MAXCONNS);
    else if (strcmp(argv[a], "--seconds") == 0)
      seconds = (double)num(argv[a + 1], 1, 3600);
    else if (strcmp(argv[a], "--size") == 0)
      g.size = (size_t)num(argv[a + 1], 1, MAXSIZE);
    else if (strcmp(argv[a], "--batch") == 0)
      batch = (size_t)num(argv[a + 1], 1, MAXCONNS);
    else
      usage();
  }
  g.ep = epoll_create1(EPOLL_CLOEXEC);
  if (g.ep == -1)
    die("epoll_create1");
  g.conns = calloc(g.nconns, sizeof *g.conns);
  if (g.conns == NULL)
    die("calloc");
  for (i = 0; i < g.nconns; i++) {
    g.conns[i].fd = -1;
    if (g.echo) {
      g.conns[i].msg = malloc(g.size);
      if (g.conns[i].msg == NULL)
        die("malloc");
      fill(&g, i, &g.conns[i]);
    }
  }
  if (idle)
    return run_idle(&g, seconds, batch);

  t0 = now_ns();
  deadline = t0 + (uint64_t)(seconds * 1e9);
  for (i = 0; i < g.nconns; i++)
    open_conn(&g, i);
  for (t = t0; t < deadline;) {
    int n, k, retry = 0, ms;
    for (i = 0; i < g.nconns; i++)    /* slots whose open failed */
      if (g.conns[i].fd == -1) {
        open_conn(&g, i);
        retry = 1;
      }
    ms = (int)((deadline - t + 999999) / 1000000);
    if (retry && ms > 1)
      ms = 1;                         /* failing opens: back off a little */
    n = epoll_wait(g.ep, evs, MAXEVENTS, ms);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    t = now_ns();
    for (k = 0; k < n; k++) {
      i = (size_t)evs[k].data.u64;
      if (g.conns[i].fd == -1)
        continue;
      if (g.echo)
        echo_event(&g, i, evs[k].events, t);
      else
        hello_event(&g, i, t);
    }
  }
  t = now_ns();
  qsort(g.lat, g.nlat, sizeof *g.lat, cmp_u64);
  printf("workload=%s conns=%zu seconds=%.3f ops=%llu rate=%.1f p50_us=%.1f "
         "p99_us=%.1f errors=%llu\n", g.echo ? "echo" : "hello", g.nconns,
         (double)(t - t0) / 1e9, (unsigned long long)g.ops,
         (double)g.ops * 1e9 / (double)(t - t0), pct_us(&g, 50), pct_us(&g, 99),
         (unsigned long long)g.errors);
  fflush(stdout);
  return g.ops > 0 && g.errors == 0 ? 0 : 1;
}
