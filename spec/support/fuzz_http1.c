/* fuzz_http1.c - generated and mutated HTTP/1.1 request and response heads, chunk lines and trailers through lepoll.http1's parser core, under ASan+UBSan.
 *
 *   fuzz_http1 [N [SEED]]      (default 300000 inputs, seed 1)
 *
 * Each input is copied into a malloc'd buffer of exactly its size (ASan
 * sees a read one byte past it), parsed whole, then fed in pieces split at
 * random points, each piece again an exact-size copy, resuming at the scan
 * the last call returned: the pieces must end exactly as the whole does
 * (same outcome, status, reason, framing, fields). Invariants of every
 * result are checked. Prints one summary line; exits 1 at the first
 * broken invariant, with the input. Deterministic for a given seed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../csrc/http1.c"

static uint64_t fz_state;

static uint64_t fz_next(void) {  /* xorshift64* */
  fz_state ^= fz_state >> 12;
  fz_state ^= fz_state << 25;
  fz_state ^= fz_state >> 27;
  return fz_state * UINT64_C(2685821657736338717);
}

static size_t fz_below(size_t n) {
  return n == 0 ? 0 : (size_t)(fz_next() % n);
}

#define FZ_PICK(a) ((a)[fz_below(sizeof(a) / sizeof((a)[0]))])
#define FZ_MAX 4096

typedef struct fz_Buf {
  char b[FZ_MAX];
  size_t n;
} fz_Buf;

static void fz_add(fz_Buf *f, const char *s, size_t n) {
  if (n > FZ_MAX - f->n)
    n = FZ_MAX - f->n;
  memcpy(f->b + f->n, s, n);
  f->n += n;
}

static void fz_puts(fz_Buf *f, const char *s) {
  fz_add(f, s, strlen(s));
}

static void fz_printf(fz_Buf *f, const char *fmt, ...) {
  char tmp[512];
  int n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    fz_add(f, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static const char *const fz_methods[] = {
  "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "X-Y"
};
static const char *const fz_targets[] = {
  "/", "/a/b", "/?", "/p?q=1&r=2", "/%20x", "http://h/a?b", "http://h",
  "https://h:443/x", "urn:x", "*", "h:443", "//x", "/a?b?c"
};
static const char *const fz_names[] = {
  "Host", "host", "HOST", "Content-Length", "content-length",
  "Transfer-Encoding", "transfer-encoding", "Connection", "Expect",
  "Cookie", "cookie", "User-Agent", "Accept", "X-A", "x-a",
  "Accept-Encoding", "If-None-Match", "A", "Very-Long-Header-Name-For-Testing-Names-Past-Sixty-Four-Bytes-Long"
};
static const char *const fz_values[] = {
  "", "x", "127.0.0.1:8080", " spaced ", "a, b", "close", "keep-alive",
  "Upgrade, close", "100-continue", "100-Continue", "5", "5, 5", "0", "007",
  "chunked", "gzip, chunked", "chunked, gzip", "chunked, chunked", "+3",
  "-1", "1 2", "9223372036854775807", "9223372036854775808",
  "99999999999999999999", "\t tab \t", "\x80\xff", "a=1; b=2", "[::1]:80",
  "h:99999", "x y", "chunked;q=1", "gzip;q=1, chunked"
};
static const char *const fz_cl[] = {
  "0", "5", "5, 5", "5, 6", "+3", "-1", "1 2", "", "007",
  "9223372036854775807", "9223372036854775808", "0x10", "5,", ",5"
};
static const char *const fz_te[] = {
  "chunked", "CHUNKED", "gzip, chunked", "chunked, gzip", "chunked, chunked",
  "gzip", "", "chunked;x=1", "gzip;q=\"a,b\", chunked", " chunked ",
  "identity, chunked", ",chunked", "chunked,"
};
static const char fz_inserts[] = {'\r', '\n', '\0', ' ', '\t', ':', ',',
                                  '\x7f', '"', '\x80', '?', '#', 'A'};

/* A request head, mostly valid. */
static void fz_genrequest(fz_Buf *f) {
  size_t i, n = fz_below(8);
  int v10 = fz_below(4) == 0;
  if (fz_below(10) == 0)
    for (i = fz_below(4); i > 0; i--)
      fz_puts(f, "\r\n");
  fz_printf(f, "%s %s HTTP/1.%c\r\n", FZ_PICK(fz_methods),
            fz_below(2) ? "/" : FZ_PICK(fz_targets),
            v10 ? '0' : (fz_below(20) == 0 ? '7' : '1'));
  if (!v10 || fz_below(2))
    fz_printf(f, "Host: %s\r\n", fz_below(4) ? "h" : FZ_PICK(fz_values));
  for (i = 0; i < n; i++) {
    switch (fz_below(10)) {
    case 0:
      fz_printf(f, "Content-Length: %s\r\n", FZ_PICK(fz_cl));
      break;
    case 1:
      fz_printf(f, "Transfer-Encoding: %s\r\n", FZ_PICK(fz_te));
      break;
    default:
      fz_printf(f, "%s:%s%s\r\n", FZ_PICK(fz_names), fz_below(2) ? " " : "",
                FZ_PICK(fz_values));
    }
  }
  if (fz_below(20) == 0)  /* many fields: past the first pass's spans */
    for (i = 40; i > 0; i--)
      fz_printf(f, "F%zu: v\r\n", i);
  fz_puts(f, "\r\n");
  if (fz_below(3) == 0)
    fz_puts(f, "GET /next HTTP/1.1\r\n");  /* pipelined bytes after it */
}

static const char *const fz_statuses[] = {
  "HTTP/1.1 200 OK", "HTTP/1.0 200 OK", "HTTP/1.1 204 No Content",
  "HTTP/1.1 304 Not Modified", "HTTP/1.1 100 Continue", "HTTP/1.1 404",
  "HTTP/1.1 404 ", "HTTP/1.1 302 Found", "HTTP/1.1 599 \xe9t\xe9", "HTTP/1.1 099 x",
  "HTTP/1.1 600 x", "HTTP/2.0 200 OK", "HTTP/1.1  200 OK", "HTTP/1.1 20 OK",
  "ICY 200 OK", "HTTP/1.1 200 O\tK", "HTTP/1.7 101 Switching"
};

/* A response head, mostly valid. */
static void fz_genresponse(fz_Buf *f) {
  size_t i, n = fz_below(8);
  fz_printf(f, "%s\r\n", fz_below(2) ? "HTTP/1.1 200 OK" : FZ_PICK(fz_statuses));
  for (i = 0; i < n; i++) {
    switch (fz_below(10)) {
    case 0:
      fz_printf(f, "Content-Length: %s\r\n", FZ_PICK(fz_cl));
      break;
    case 1:
      fz_printf(f, "Transfer-Encoding: %s\r\n", FZ_PICK(fz_te));
      break;
    case 2:
      fz_printf(f, "Set-Cookie: %s\r\n", FZ_PICK(fz_values));
      break;
    default:
      fz_printf(f, "%s:%s%s\r\n", FZ_PICK(fz_names), fz_below(2) ? " " : "",
                FZ_PICK(fz_values));
    }
  }
  if (fz_below(20) == 0)
    for (i = 40; i > 0; i--)
      fz_printf(f, "F%zu: v\r\n", i);
  fz_puts(f, "\r\n");
  if (fz_below(3) == 0)
    fz_puts(f, "body bytes");
}

static void fz_gentrailers(fz_Buf *f) {
  size_t i, n = fz_below(5);
  for (i = 0; i < n; i++)
    fz_printf(f, "%s: %s\r\n", FZ_PICK(fz_names), FZ_PICK(fz_values));
  fz_puts(f, "\r\n");
}

static void fz_genchunk(fz_Buf *f) {
  static const char *const sizes[] = {
    "0", "1", "1a", "FF", "fF", "0010", "4000000000000000",
    "4000000000000001", "FFFFFFFFFFFFFFFFF", "x", ""
  };
  static const char *const exts[] = {
    "", ";a", ";a=b", " ; a = b", ";a=\"q \\\" x\"", ";a=\"\"", ";", ";=b",
    ";a=", "\t;a", " x", ";a=\"\x80\""
  };
  fz_printf(f, "%s%s%s\r\n", FZ_PICK(sizes), FZ_PICK(exts),
            fz_below(3) ? "" : FZ_PICK(exts));
  if (fz_below(2))
    fz_puts(f, "data");
}

/* Line boundaries of f (offsets after each LF). */
static size_t fz_lines(const fz_Buf *f, size_t *at, size_t max) {
  size_t i, n = 0;
  at[n++] = 0;
  for (i = 0; i < f->n && n < max; i++)
    if (f->b[i] == '\n')
      at[n++] = i + 1;
  return n;
}

static void fz_mutate(fz_Buf *f) {
  size_t at[256], nl, a, b, len;
  char tmp[FZ_MAX];
  switch (fz_below(8)) {
  case 0:  /* flip a byte */
    if (f->n > 0)
      f->b[fz_below(f->n)] = (char)fz_next();
    break;
  case 1:
  case 2:  /* insert a byte that matters to the grammar */
    if (f->n < FZ_MAX) {
      a = fz_below(f->n + 1);
      memmove(f->b + a + 1, f->b + a, f->n - a);
      f->b[a] = FZ_PICK(fz_inserts);
      f->n++;
    }
    break;
  case 3:  /* truncate */
    f->n = fz_below(f->n + 1);
    break;
  case 4:  /* duplicate a line */
    nl = fz_lines(f, at, 256);
    if (nl >= 2) {
      a = fz_below(nl - 1);
      len = at[a + 1] - at[a];
      if (len <= FZ_MAX - f->n) {
        memcpy(tmp, f->b + at[a], len);
        memmove(f->b + at[a] + len, f->b + at[a], f->n - at[a]);
        memcpy(f->b + at[a], tmp, len);
        f->n += len;
      }
    }
    break;
  case 5:  /* delete a line */
    nl = fz_lines(f, at, 256);
    if (nl >= 2) {
      a = fz_below(nl - 1);
      b = at[a + 1];
      memmove(f->b + at[a], f->b + b, f->n - b);
      f->n -= b - at[a];
    }
    break;
  case 6:  /* a framing field after the first line */
    nl = fz_lines(f, at, 256);
    a = nl >= 2 ? at[1] : 0;
    len = (size_t)snprintf(tmp, sizeof tmp, "%s: %s\r\n",
                           fz_below(2) ? "Content-Length" : "Transfer-Encoding",
                           fz_below(2) ? FZ_PICK(fz_cl) : FZ_PICK(fz_te));
    if (len <= FZ_MAX - f->n) {
      memmove(f->b + a + len, f->b + a, f->n - a);
      memcpy(f->b + a, tmp, len);
      f->n += len;
    }
    break;
  default:  /* overwrite a byte with one that matters */
    if (f->n > 0)
      f->b[fz_below(f->n)] = FZ_PICK(fz_inserts);
    break;
  }
}

/* ---- checking ----------------------------------------------------------- */

static const char *fz_kind;
static const fz_Buf *fz_input;

static void fz_die(const char *fmt, ...) {
  va_list ap;
  size_t i;
  fprintf(stderr, "fuzz_http1: %s: ", fz_kind);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\ninput (%zu bytes): \"", fz_input->n);
  for (i = 0; i < fz_input->n; i++) {
    unsigned char c = (unsigned char)fz_input->b[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      fputc(c, stderr);
    else
      fprintf(stderr, "\\x%02x", c);
  }
  fprintf(stderr, "\"\n");
  exit(1);
}

/* What the field callback saw: a digest of every name and value. */
typedef struct fz_Sink {
  const char *b;
  size_t len, n;
  uint64_t digest;
} fz_Sink;

static uint64_t fz_hash(uint64_t h, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
  return (h ^ n) * UINT64_C(1099511628211);
}

static int fz_field(void *ud, const h1_Field *f) {
  fz_Sink *k = (fz_Sink *)ud;
  size_t i;
  if (f->name < k->b || f->nlen == 0 || f->nlen > k->len ||
      f->name + f->nlen > k->b + k->len)
    fz_die("field name outside the buffer");
  if (f->value < k->b || f->vlen > k->len || f->value + f->vlen > k->b + k->len)
    fz_die("field value outside the buffer");
  for (i = 0; i < f->nlen; i++)
    if (!H1_IS(f->name[i], H1_TOK))
      fz_die("field name byte 0x%02x", (unsigned char)f->name[i]);
  for (i = 0; i < f->vlen; i++)
    if (!H1_IS(f->value[i], H1_VAL))
      fz_die("field value byte 0x%02x", (unsigned char)f->value[i]);
  if (f->vlen > 0 && (H1_OWS(f->value[0]) || H1_OWS(f->value[f->vlen - 1])))
    fz_die("field value not trimmed");
  k->n++;
  k->digest = fz_hash(fz_hash(k->digest, f->name, f->nlen), f->value, f->vlen);
  return 0;
}

/* One outcome, in offsets, comparable across buffers. */
typedef struct fz_Out {
  int rc, status, version, flags, code;
  const char *reason;
  size_t nxt, nfields, m, ml, t, tl, p, pl, q, ql;
  int64_t bodylen;
  uint64_t digest;
  int hasq;
} fz_Out;

static size_t fz_off(const char *p, const char *b, size_t len) {
  if (p == NULL)
    return 0;
  if (p >= b && p <= b + len)
    return (size_t)(p - b);
  return SIZE_MAX;  /* a literal ("/" of an empty absolute path) */
}

static void fz_same(const fz_Out *a, const fz_Out *b, const char *what) {
  if (a->rc != b->rc)
    fz_die("%s: outcome %d, whole %d", what, b->rc, a->rc);
  if (a->rc == H1_ERROR) {
    if (a->status != b->status || strcmp(a->reason, b->reason) != 0)
      fz_die("%s: %d %s, whole %d %s", what, b->status, b->reason, a->status,
             a->reason);
    return;
  }
  if (a->nxt != b->nxt || a->nfields != b->nfields || a->bodylen != b->bodylen ||
      a->flags != b->flags || a->version != b->version || a->digest != b->digest ||
      a->m != b->m || a->ml != b->ml || a->t != b->t || a->tl != b->tl ||
      a->p != b->p || a->pl != b->pl || a->q != b->q || a->ql != b->ql ||
      a->hasq != b->hasq || a->code != b->code)
    fz_die("%s: a different head than the whole", what);
}

static void fz_checkerror(int status, const char *reason) {
  if (reason == NULL || reason[0] == '\0')
    fz_die("rejected without a reason");
  if (status != 400 && status != 414 && status != 431 && status != 501 &&
      status != 505)
    fz_die("status %d", status);
}

static char *fz_copy(const fz_Buf *f, size_t n) {
  char *p = malloc(n > 0 ? n : 1);
  if (p == NULL) {
    perror("malloc");
    exit(2);
  }
  memcpy(p, f->b, n);
  return p;
}

/* What fz_head parses. */
enum { FZ_REQUEST, FZ_TRAILERS, FZ_RESPONSE };

/* Parse f->b[0, n) from start (a request head, trailers, a response head). */
static fz_Out fz_head(const fz_Buf *f, size_t n, size_t start, size_t scan,
                      const h1_Limits *lim, int kind) {
  char *b = fz_copy(f, n);  /* exact size: a read past n is an ASan error */
  h1_Head h;
  fz_Sink k;
  fz_Out o;
  memset(&o, 0, sizeof o);
  memset(&k, 0, sizeof k);
  k.b = b;
  k.len = n;
  if (kind == FZ_TRAILERS) {
    o.rc = h1_parsetrailers(b, n, start, scan, lim, &h, fz_field, &k);
  } else if (kind == FZ_RESPONSE) {
    o.rc = h1_scanstatus(b, n, start, scan, lim, &h);
    if (o.rc == H1_DONE)
      o.rc = h1_emit(b, start, &h, H1_RESPONSE, fz_field, &k);
  } else {
    o.rc = h1_scanhead(b, n, start, scan, lim, &h);
    if (o.rc == H1_DONE)
      o.rc = h1_emit(b, start, &h, H1_REQUEST, fz_field, &k);
  }
  if (o.rc == H1_AGAIN) {
    if (h.scan < start || h.scan > n || h.scan < scan)
      fz_die("scan %zu outside [%zu, %zu] or before %zu", h.scan, start, n,
             scan);
    o.nxt = h.scan;
  } else if (o.rc == H1_ERROR) {
    fz_checkerror(h.status, h.reason);
    o.status = h.status;
    o.reason = h.reason;
  } else {
    if (h.nxt <= start || h.nxt > n)
      fz_die("nxt %zu outside (%zu, %zu]", h.nxt, start, n);
    if (h.nxt < 2 || b[h.nxt - 1] != '\n' || b[h.nxt - 2] != '\r')
      fz_die("nxt %zu not after a CRLF", h.nxt);
    if (h.nfields != k.n)
      fz_die("%zu fields, %zu given to the callback", h.nfields, k.n);
    if (h.nfields > lim->max_fields || h.nxt - start > lim->max_head)
      fz_die("a limit passed");
    o.nxt = h.nxt;
    o.nfields = h.nfields;
    o.digest = k.digest;
    if (kind == FZ_RESPONSE) {
      if (h.bodylen < -2)
        fz_die("bodylen %lld", (long long)h.bodylen);
      if (h.flags & ~(H1_CLOSE | H1_KEEPALIVE | H1_UPGRADE))
        fz_die("flags %d", h.flags);
      if (h.version != 10 && h.version != 11)
        fz_die("version %d", h.version);
      if (h.code < 100 || h.code > 599)
        fz_die("status %d", h.code);
      if ((h.code < 200 || h.code == 204 || h.code == 304) && h.bodylen != 0)
        fz_die("a body on status %d", h.code);
      o.bodylen = h.bodylen;
      o.flags = h.flags;
      o.version = h.version;
      o.code = h.code;
      o.m = fz_off(h.phrase, b, n);
      o.ml = h.phlen;
      if (o.m == SIZE_MAX || o.m + o.ml > n)
        fz_die("the reason phrase outside the buffer");
    } else if (kind == FZ_REQUEST) {
      if (h.bodylen < -1)
        fz_die("bodylen %lld", (long long)h.bodylen);
      if (h.flags & ~31)
        fz_die("flags %d", h.flags);
      if (h.version != 10 && h.version != 11)
        fz_die("version %d", h.version);
      if (h.mlen == 0 || h.tlen == 0 || h.plen == 0)
        fz_die("an empty method, target or path");
      o.bodylen = h.bodylen;
      o.flags = h.flags;
      o.version = h.version;
      o.m = fz_off(h.method, b, n);
      o.ml = h.mlen;
      o.t = fz_off(h.target, b, n);
      o.tl = h.tlen;
      o.p = fz_off(h.path, b, n);
      o.pl = h.plen;
      o.hasq = h.query != NULL;
      o.q = fz_off(h.query, b, n);
      o.ql = h.qlen;
      if (o.m == SIZE_MAX || o.t == SIZE_MAX || o.q == SIZE_MAX ||
          (o.p == SIZE_MAX && !(h.plen == 1 && h.path[0] == '/')))
        fz_die("a request-line part outside the buffer");
    }
  }
  free(b);
  return o;
}

/* The whole, then pieces split at random points: the same end. */
static int fz_checkhead(const fz_Buf *f, size_t start, const h1_Limits *lim,
                        int kind) {
  fz_Out whole = fz_head(f, f->n, start, start, lim, kind), o;
  size_t scan = start, n = start, pieces = 1 + fz_below(4);
  while (pieces-- > 0 && n < f->n) {
    n += 1 + fz_below(f->n - n);
    if (pieces == 0 || n > f->n)
      n = f->n;
    o = fz_head(f, n, start, scan, lim, kind);
    if (o.rc != H1_AGAIN) {
      fz_same(&whole, &o, "in pieces");
      return whole.rc;
    }
    scan = o.nxt;
  }
  o = fz_head(f, f->n, start, scan, lim, kind);
  fz_same(&whole, &o, "resumed");
  return whole.rc;
}

/* A chunk line: every prefix is H1_AGAIN until the whole's verdict. */
static int fz_checkchunk(const fz_Buf *f, size_t max_line) {
  h1_Chunk c, w;
  char *b = fz_copy(f, f->n);
  int rw = h1_parsechunk(b, f->n, 0, max_line, &w), r;
  size_t n, stop = f->n;
  free(b);
  if (rw == H1_DONE) {
    if (w.nxt < 2 || w.nxt > f->n || w.size > H1_MAXCHUNK || w.nxt - 2 > max_line)
      fz_die("chunk: nxt %zu size %llu", w.nxt, (unsigned long long)w.size);
    stop = w.nxt;
  } else if (rw == H1_ERROR) {
    fz_checkerror(w.status, w.reason);
  }
  for (n = fz_below(4) == 0 ? 0 : f->n; n <= f->n; n++) {
    b = fz_copy(f, n);
    r = h1_parsechunk(b, n, 0, max_line, &c);
    free(b);
    if (r == H1_AGAIN)
      continue;
    if (r != rw || (r == H1_DONE && (c.size != w.size || c.nxt != w.nxt)) ||
        (r == H1_ERROR && strcmp(c.reason, w.reason) != 0))
      fz_die("chunk: a prefix of %zu bytes ends otherwise than the whole", n);
    if (r == H1_DONE && n < stop)
      fz_die("chunk: complete before its CRLF");
    break;
  }
  return rw;
}

int main(int argc, char **argv) {
  long long iters = argc > 1 ? atoll(argv[1]) : 300000;
  unsigned long long seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
  long long i, done = 0, rejected = 0, again = 0;
  static const size_t lines[] = {8192, 64, 20};
  static const size_t heads[] = {16384, 200, 60};
  static const size_t fields[] = {100, 5, 1};
  fz_Buf f;
  fz_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
  fz_input = &f;
  for (i = 0; i < iters; i++) {
    h1_Limits lim;
    size_t start = 0, m;
    int rc, what = (int)fz_below(13);
    f.n = 0;
    lim.max_line = fz_below(4) ? lines[0] : FZ_PICK(lines);
    lim.max_head = fz_below(4) ? heads[0] : FZ_PICK(heads);
    lim.max_fields = fz_below(4) ? fields[0] : FZ_PICK(fields);
    if (what < 7) {
      fz_kind = "request";
      if (fz_below(5) == 0) {  /* a pipelined request before it */
        fz_puts(&f, "GET /prev HTTP/1.1\r\nHost: h\r\n\r\n");
        start = f.n;
      }
      fz_genrequest(&f);
    } else if (what < 9) {
      fz_kind = "chunk";
      fz_genchunk(&f);
    } else if (what < 10) {
      fz_kind = "trailers";
      fz_gentrailers(&f);
    } else {
      fz_kind = "response";
      if (fz_below(5) == 0) {  /* a response before it */
        fz_puts(&f, "HTTP/1.1 204 No Content\r\n\r\n");
        start = f.n;
      }
      fz_genresponse(&f);
    }
    for (m = fz_below(4); m > 0; m--)
      fz_mutate(&f);
    if (start > f.n)
      start = f.n;
    if (what < 7)
      rc = fz_checkhead(&f, start, &lim, FZ_REQUEST);
    else if (what < 9)
      rc = fz_checkchunk(&f, fz_below(4) ? 100 : 8);
    else if (what < 10)
      rc = fz_checkhead(&f, 0, &lim, FZ_TRAILERS);
    else
      rc = fz_checkhead(&f, start, &lim, FZ_RESPONSE);
    if (rc == H1_DONE)
      done++;
    else if (rc == H1_ERROR)
      rejected++;
    else
      again++;
  }
  printf("fuzz_http1: %lld inputs, %lld accepted, %lld rejected, "
         "%lld incomplete (seed %llu)\n", iters, done, rejected, again, seed);
  return 0;
}
