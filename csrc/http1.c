/* http1.c - lepoll.http1: HTTP/1.1 message syntax, request and response heads and chunked bodies; RFC 9112. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/***
 * HTTP/1.1 message syntax (RFC 9112, RFC 9110): request heads and chunked
 * bodies, parsed strictly, straight from a connection's read buffer.
 *
 * Positions are 1-based, as in `string.find`. Each parser reports one of
 * three outcomes: complete (the values), incomplete (`false`: more bytes
 * are needed, nothing is wrong so far) or rejected (`nil, status, reason`:
 * the HTTP status to answer with, and a short lower-case phrase for logs).
 * Where the RFCs leave a choice, the stricter one is taken: lines end in
 * CRLF only, a bare CR or LF anywhere is `400`, as are obs-fold,
 * whitespace before a colon, control bytes, conflicting or malformed
 * framing (`Content-Length` with `Transfer-Encoding`, two lengths, a
 * length that is not `1*DIGIT`) and a missing or repeated `Host` on
 * HTTP/1.1.
 *
 * The module holds no state: every call parses the bytes it is given.
 * @module lepoll.http1
 */

/* ---- the parser core: plain C over (const char *, size_t) --------------
 *
 * Nothing here knows Lua. Offsets are 0-based; no function reads outside
 * [b, b + len). The Lua functions below and spec/support/fuzz_http1.c
 * (which includes this file) are its callers. */

enum { H1_ERROR = -1, H1_AGAIN = 0, H1_DONE = 1 };

/* The Connection and Expect bits of a request head (module constants). */
enum {
  H1_CLOSE = 1, H1_KEEPALIVE = 2, H1_UPGRADE = 4, H1_CONTINUE = 8,
  H1_EXPECT = 16
};

/* Empty lines skipped before a request line (RFC 9112 2.2: "at least one"). */
#define H1_MAXEMPTY 8
/* Field lines the first pass remembers, so that a head that fits is read
 * once; longer heads are walked a second time. 16 bytes each. */
#define H1_SPANS 32
/* Largest chunk size (RFC 9112 7.1 leaves it to us): 2^62. */
#define H1_MAXCHUNK ((uint64_t)1 << 62)

/* Character classes (RFC 9110 5.6.2, 5.5, RFC 9112 3.2, RFC 3986 3.2.2). */
#define H1_TOK 1   /* tchar */
#define H1_VAL 2   /* field-vchar, SP, HTAB: inside a field value */
#define H1_TGT 4   /* a request-target byte: 0x21-0x7E but '#' */
#define H1_HEX 8   /* HEXDIG */
#define H1_QD  16  /* qdtext: inside a quoted-string */
#define H1_REG 32  /* reg-name: unreserved, sub-delims, '%' */

static const unsigned char h1_class[256] = {
   0,  0,  0,  0,  0,  0,  0,  0,  0, 18,  0,  0,  0,  0,  0,  0,  /* 00 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10 */
  18, 55,  6, 19, 55, 55, 55, 55, 54, 54, 55, 55, 54, 55, 55, 22,  /* 20 */
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 22, 54, 22, 54, 22, 22,  /* 30 */
  22, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,  /* 40 */
  55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 22,  6, 22, 23, 55,  /* 50 */
  23, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,  /* 60 */
  55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 22, 23, 22, 55,  0,  /* 70 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* 80 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* 90 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* a0 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* b0 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* c0 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* d0 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* e0 */
  18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,  /* f0 */
};

#define H1_IS(c, cls) (h1_class[(unsigned char)(c)] & (cls))
#define H1_OWS(c)     ((c) == ' ' || (c) == '\t')

typedef struct h1_Limits {
  size_t max_line;    /* request line (or chunk line), CRLF excluded */
  size_t max_head;    /* the whole head (or trailer section), CRLFs included */
  size_t max_fields;  /* field lines */
} h1_Limits;

/* A field line as sent: the name's case kept, the value without OWS. */
typedef struct h1_Field {
  const char *name, *value;
  size_t nlen, vlen;
} h1_Field;

/* Called once per field line, in order, when a head is complete. */
typedef int (*h1_FieldFn)(void *ud, const h1_Field *f);

typedef struct h1_Span {
  uint32_t name, nlen, value, vlen;  /* offsets from the head's start */
} h1_Span;

typedef struct h1_Head {
  /* the request line (request heads only) */
  const char *method, *target, *path, *query;  /* query NULL: none */
  size_t mlen, tlen, plen, qlen;
  int version;                                 /* 10 or 11 */
  /* the status line (response heads only) */
  int code;                                    /* 100..599 */
  const char *phrase;                          /* the reason-phrase */
  size_t phlen;
  /* the outcome */
  size_t nxt;        /* H1_DONE: offset of the first byte after the head */
  size_t scan;       /* H1_AGAIN: offset to resume at */
  size_t nfields;    /* H1_DONE: field lines */
  int64_t bodylen;   /* -1 chunked, else Content-Length (0 without one);
                        responses: -2 until the server closes */
  int flags;         /* H1_CLOSE ... */
  int status;        /* H1_ERROR: 400, 414, 431, 501, 505 */
  const char *reason;
  /* what the first pass saw, when it started at the head's start */
  int whole;         /* it did: spans hold the first nspans field lines */
  size_t nspans;
  h1_Span spans[H1_SPANS];
} h1_Head;

/* What the fields of a request head say about its framing. */
typedef struct h1_Sem {
  int hosts, hostok, has_cl, te, chunked, chunked_last, te_other;
  int expects, continues, flags;
  uint64_t cl;
} h1_Sem;

static int h1_fail(h1_Head *h, int status, const char *reason) {
  h->status = status;
  h->reason = reason;
  return H1_ERROR;
}

static unsigned char h1_lower(unsigned char c) {
  return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

/* Case-insensitive equality with a lower-case literal of the same length. */
static int h1_ieq(const char *s, const char *lit, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (h1_lower((unsigned char)s[i]) != (unsigned char)lit[i])
      return 0;
  }
  return 1;
}

/* The request line [p, e); *e is the CR of its CRLF, which stops every
 * class loop below (CR is in no class), so they need no bounds test. */
static int h1_hostok(const char *v, size_t n);

static int h1_reqline(const char *p, const char *e, h1_Head *h) {
  const char *q = p, *t, *v, *a;
  while (H1_IS(*q, H1_TOK))
    q++;
  if (q == p || *q != ' ')
    return h1_fail(h, 400, q < e && *q == '\r' ? "bare CR in request line"
                                               : "invalid method");
  h->method = p;
  h->mlen = (size_t)(q - p);
  t = ++q;
  while (H1_IS(*q, H1_TGT))
    q++;
  if (*q != ' ' || q == t) {
    unsigned char c = (unsigned char)*q;
    if (q < e && c == '\r')
      return h1_fail(h, 400, "bare CR in request line");
    if (q == e)
      return h1_fail(h, 400, "missing http version");
    if (c < 0x20 || c == 0x7f)
      return h1_fail(h, 400, "control byte in target");
    return h1_fail(h, 400, "invalid target");
  }
  h->target = t;
  h->tlen = (size_t)(q - t);
  v = q + 1;
  if (memchr(v, '\r', (size_t)(e - v)) != NULL)
    return h1_fail(h, 400, "bare CR in request line");
  if (e - v != 8 || memcmp(v, "HTTP/", 5) != 0 ||
      (unsigned)(v[5] - '0') > 9u || v[6] != '.' ||
      (unsigned)(v[7] - '0') > 9u)
    return h1_fail(h, 400, "invalid http version");
  if (v[5] != '1')
    return h1_fail(h, 505, "unsupported http version");
  h->version = v[7] == '0' ? 10 : 11;
  /* the target's form (RFC 9112 3.2) decides what its path is */
  h->query = NULL;
  h->qlen = 0;
  a = memchr(t, '?', h->tlen);
  if (a != NULL) {
    h->query = a + 1;
    h->qlen = (size_t)(q - a - 1);
  } else {
    a = q;
  }
  h->path = t;
  h->plen = (size_t)(a - t);
  if (h->mlen == 7 && memcmp(p, "CONNECT", 7) == 0) {
    if (*t == '/' || *t == '*' || memchr(t, '/', h->tlen) != NULL ||
        h->query != NULL)
      return h1_fail(h, 400, "connect needs authority-form");
    return 0;
  }
  if (*t == '/')
    return 0;  /* origin-form */
  if (h->tlen == 1 && *t == '*') {
    if (h->mlen == 7 && memcmp(p, "OPTIONS", 7) == 0)
      return 0;
    return h1_fail(h, 400, "asterisk-form without options");
  }
  /* absolute-form: scheme ":" hier-part; the path after "//authority" */
  q = t;
  if ((unsigned char)((*q | 0x20) - 'a') >= 26u)
    return h1_fail(h, 400, "invalid target");
  while (q < a && ((unsigned char)((*q | 0x20) - 'a') < 26u ||
                   (unsigned char)(*q - '0') < 10u || *q == '+' ||
                   *q == '-' || *q == '.'))
    q++;
  if (q == a || *q != ':')
    return h1_fail(h, 400, "invalid target");
  q++;
  /* "//" authority path-abempty (RFC 3986 3): an http(s) URI needs its
   * host (RFC 9110 4.2.1), and a path, if any, starts with "/" */
  if (a - q < 2 || q[0] != '/' || q[1] != '/')
    return h1_fail(h, 400, "invalid target");
  q += 2;
  t = q;
  while (q < a && *q != '/')
    q++;
  if (q == t || !h1_hostok(t, (size_t)(q - t)))
    return h1_fail(h, 400, "invalid target");
  h->path = q;
  h->plen = (size_t)(a - q);
  if (h->plen == 0) {
    h->path = "/";
    h->plen = 1;
  }
  return 0;
}

/* The status line [p, e) of a response (RFC 9112 4): HTTP-version SP
 * 3DIGIT [SP reason-phrase]; *e is its CR. The SP before an empty reason
 * may be missing (a shape some servers send; nothing else reads it). */
static int h1_statusline(const char *p, const char *e, h1_Head *h) {
  const char *q;
  unsigned code;
  if (e - p < 12 || memcmp(p, "HTTP/", 5) != 0 ||
      (unsigned)(p[5] - '0') > 9u || p[6] != '.' ||
      (unsigned)(p[7] - '0') > 9u || p[8] != ' ')
    return h1_fail(h, 400, memchr(p, '\r', (size_t)(e - p)) != NULL
                               ? "bare CR in status line"
                               : "invalid status line");
  if (p[5] != '1')
    return h1_fail(h, 505, "unsupported http version");
  h->version = p[7] == '0' ? 10 : 11;
  if ((unsigned)(p[9] - '0') > 9u || (unsigned)(p[10] - '0') > 9u ||
      (unsigned)(p[11] - '0') > 9u)
    return h1_fail(h, 400, "invalid status code");
  code = (unsigned)(p[9] - '0') * 100 + (unsigned)(p[10] - '0') * 10 +
         (unsigned)(p[11] - '0');
  if (code < 100 || code > 599)
    return h1_fail(h, 400, "invalid status code");
  h->code = (int)code;
  q = p + 12;
  if (q < e && *q != ' ')
    return h1_fail(h, 400, *q == '\r' ? "bare CR in status line"
                                      : "invalid status code");
  if (q < e)
    q++;
  h->phrase = q;
  while (H1_IS(*q, H1_VAL))  /* HTAB, SP, VCHAR, obs-text; stops at the CR */
    q++;
  if (q != e)
    return h1_fail(h, 400, *q == '\r' ? "bare CR in status line"
                                      : "control byte in reason phrase");
  h->phlen = (size_t)(q - h->phrase);
  return 0;
}

/* A field line [p, e), *e its CR as above; first: no field line before. */
static int h1_fieldline(const char *p, const char *e, h1_Field *f,
                        h1_Head *h, int first) {
  const char *q = p, *v;
  unsigned char c;
  while (H1_IS(*q, H1_TOK))
    q++;
  c = (unsigned char)*q;
  if (c != ':' || q == p) {
    if (q == p && H1_OWS(c))
      return h1_fail(h, 400, first ? "whitespace before first field"
                                   : "obs-fold");
    if (H1_OWS(c)) {
      const char *w = q;
      while (H1_OWS(*w))
        w++;
      if (*w == ':')
        return h1_fail(h, 400, "whitespace before colon");
      return h1_fail(h, 400, c == '\t' ? "control byte in field name"
                                        : "invalid field name");
    }
    if (c == ':')
      return h1_fail(h, 400, "empty field name");
    if (q == e)
      return h1_fail(h, 400, "missing colon");
    if (c == '\r')
      return h1_fail(h, 400, "bare CR in field name");
    if (c < 0x20 || c == 0x7f)
      return h1_fail(h, 400, "control byte in field name");
    return h1_fail(h, 400, "invalid field name");
  }
  f->name = p;
  f->nlen = (size_t)(q - p);
  q++;
  while (H1_OWS(*q))
    q++;
  v = q;
  while (H1_IS(*q, H1_VAL))
    q++;
  if (q != e)  /* everything but CR that stops it is NUL, a CTL or DEL */
    return h1_fail(h, 400, *q == '\r' ? "bare CR in field value"
                                      : "control byte in field value");
  while (q > v && H1_OWS(q[-1]))
    q--;
  f->value = v;
  f->vlen = (size_t)(q - v);
  return 0;
}

/* The field lines from offset p (a line start; n field lines before it),
 * through the empty line that ends them. Every complete line is checked;
 * an incomplete last one only against the limits, in the same order as a
 * complete one would be, so that a head fed in pieces ends as it does
 * whole. record: remember the lines' spans (the pass began at start). */
static int h1_scanfields(const char *b, size_t len, size_t start, size_t p,
                         size_t n, const h1_Limits *lim, h1_Head *h,
                         int record, int trailer) {
  for (;;) {
    const char *nl = memchr(b + p, '\n', len - p);
    size_t le;
    h1_Field f;
    if (p < len && b[p] != '\r' && n >= lim->max_fields)
      return h1_fail(h, 431, trailer ? "too many trailer fields"
                                     : "too many header fields");
    if (nl == NULL) {
      if (len - start > lim->max_head)
        return h1_fail(h, 431, trailer ? "trailer section too large"
                                       : "header section too large");
      h->scan = p;
      return H1_AGAIN;
    }
    le = (size_t)(nl - b);
    if (le + 1 - start > lim->max_head)
      return h1_fail(h, 431, trailer ? "trailer section too large"
                                     : "header section too large");
    if (le == p || b[le - 1] != '\r')
      return h1_fail(h, 400, "bare LF in field line");
    if (le - 1 == p) {
      h->nxt = le + 1;
      h->nfields = n;
      return H1_DONE;
    }
    if (h1_fieldline(b + p, nl - 1, &f, h, n == 0) != 0)
      return H1_ERROR;
    n++;
    if (record && h->nspans < H1_SPANS) {
      h1_Span *s = &h->spans[h->nspans++];
      s->name = (uint32_t)(f.name - (b + start));
      s->nlen = (uint32_t)f.nlen;
      s->value = (uint32_t)(f.value - (b + start));
      s->vlen = (uint32_t)f.vlen;
    }
    p = le + 1;
  }
}

/* Leading CRLF pairs at start (empty lines before a request line). */
static size_t h1_skipempty(const char *b, size_t len, size_t p, size_t max) {
  size_t k = 0;
  while (k < max && len - p >= 2 && b[p] == '\r' && b[p + 1] == '\n') {
    p += 2;
    k++;
  }
  return p;
}

/* Field lines before a resume offset: its newlines, less those of the lines
 * before the fields. SIZE_MAX: the offset is no line start of this head. */
static size_t h1_linesbefore(const char *b, size_t from, size_t scan,
                             size_t skip) {
  size_t n = 0;
  const char *p = b + from, *e = b + scan, *nl;
  if (scan == from || b[scan - 1] != '\n')
    return SIZE_MAX;
  while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
    n++;
    p = nl + 1;
  }
  return n < skip ? SIZE_MAX : n - skip;
}

/* First pass over a request head at start: the request line, then the
 * field lines, every complete line checked once. scan > start resumes at
 * a line start a previous call returned (the bytes before it unchanged). */
static int h1_scanhead(const char *b, size_t len, size_t start, size_t scan,
                       const h1_Limits *lim, h1_Head *h) {
  size_t p = start;
  int empties = 0;
  h->whole = 0;
  h->nspans = 0;
  h->nfields = 0;
  if (scan > start && scan <= len) {
    size_t rl = h1_skipempty(b, len, start, H1_MAXEMPTY);
    size_t n = h1_linesbefore(b, rl, scan, 1);
    if (n != SIZE_MAX)
      return h1_scanfields(b, len, start, scan, n, lim, h, 0, 0);
  }
  for (;;) {
    const char *nl = memchr(b + p, '\n', len - p);
    size_t le, n;
    if (nl == NULL) {
      n = len - start;
      if (n > 0 && b[len - 1] == '\r')
        n--;  /* it may be the CR of the CRLF */
      if (n > lim->max_line)
        return h1_fail(h, 414, "request line too long");
      h->scan = start;
      return H1_AGAIN;
    }
    le = (size_t)(nl - b);
    n = le - start;
    if (le > p && b[le - 1] == '\r')
      n--;
    if (n > lim->max_line)
      return h1_fail(h, 414, "request line too long");
    if (le == p || b[le - 1] != '\r')
      return h1_fail(h, 400, "bare LF in request line");
    if (le - 1 == p) {
      if (++empties > H1_MAXEMPTY)
        return h1_fail(h, 400, "too many empty lines");
      p = le + 1;
      continue;
    }
    if (h1_reqline(b + p, nl - 1, h) != 0)
      return H1_ERROR;
    p = le + 1;
    if (p - start > lim->max_head)
      return h1_fail(h, 431, "header section too large");
    break;
  }
  h->whole = len - start <= UINT32_MAX;
  return h1_scanfields(b, len, start, p, 0, lim, h, h->whole, 0);
}

/* First pass over a response head at start, as h1_scanhead: the status
 * line (no empty lines before it: a response has none), then the field
 * lines. */
static int h1_scanstatus(const char *b, size_t len, size_t start,
                         size_t scan, const h1_Limits *lim, h1_Head *h) {
  const char *nl;
  size_t le, n;
  h->whole = 0;
  h->nspans = 0;
  h->nfields = 0;
  if (scan > start && scan <= len) {
    n = h1_linesbefore(b, start, scan, 1);
    if (n != SIZE_MAX)
      return h1_scanfields(b, len, start, scan, n, lim, h, 0, 0);
  }
  nl = memchr(b + start, '\n', len - start);
  if (nl == NULL) {
    n = len - start;
    if (n > 0 && b[len - 1] == '\r')
      n--;  /* it may be the CR of the CRLF */
    if (n > lim->max_line)
      return h1_fail(h, 431, "status line too long");
    h->scan = start;
    return H1_AGAIN;
  }
  le = (size_t)(nl - b);
  n = le - start;
  if (le > start && b[le - 1] == '\r')
    n--;
  if (n > lim->max_line)
    return h1_fail(h, 431, "status line too long");
  if (le == start || b[le - 1] != '\r')
    return h1_fail(h, 400, "bare LF in status line");
  if (h1_statusline(b + start, nl - 1, h) != 0)
    return H1_ERROR;
  if (le + 1 - start > lim->max_head)
    return h1_fail(h, 431, "header section too large");
  h->whole = len - start <= UINT32_MAX;
  return h1_scanfields(b, len, start, le + 1, 0, lim, h, h->whole, 0);
}

/* ---- what the fields mean (RFC 9110, RFC 9112 6) ---------------------- */

/* Content-Length: a list of 1*DIGIT, all the same ("5, 5" is 5). */
static int h1_contentlength(const char *v, size_t n, h1_Sem *s, h1_Head *h) {
  size_t i = 0;
  for (;;) {
    uint64_t x = 0;
    size_t d = i;
    while (i < n && (unsigned char)(v[i] - '0') < 10u) {
      unsigned dig = (unsigned)(v[i] - '0');
      if (x > ((uint64_t)INT64_MAX - dig) / 10)
        return h1_fail(h, 400, "invalid content-length");
      x = x * 10 + dig;
      i++;
    }
    if (i == d)
      return h1_fail(h, 400, "invalid content-length");
    if (s->has_cl && s->cl != x)
      return h1_fail(h, 400, "conflicting content-length");
    s->has_cl = 1;
    s->cl = x;
    while (i < n && H1_OWS(v[i]))
      i++;
    if (i == n)
      return 0;
    if (v[i] != ',')
      return h1_fail(h, 400, "invalid content-length");
    i++;
    while (i < n && H1_OWS(v[i]))
      i++;
  }
}

/* Transfer-Encoding: a list of codings (one field line of several); only
 * "chunked" is ours, and it must come last, once. */
static int h1_transferencoding(const char *v, size_t n, h1_Sem *s,
                               h1_Head *h) {
  size_t i = 0;
  s->te = 1;
  for (;;) {
    size_t t = i;
    int chunked;
    while (i < n && H1_IS(v[i], H1_TOK))
      i++;
    if (i == t)
      return h1_fail(h, 400, "invalid transfer-encoding");
    chunked = i - t == 7 && h1_ieq(v + t, "chunked", 7);
    while (i < n && H1_OWS(v[i]))
      i++;
    if (i < n && v[i] == ';') {  /* parameters: never on chunked */
      if (chunked)
        return h1_fail(h, 400, "invalid transfer-encoding");
      while (i < n && v[i] != ',')
        i++;
    }
    if (chunked)
      s->chunked++;
    else
      s->te_other = 1;
    s->chunked_last = chunked;
    if (i == n)
      return 0;
    if (v[i] != ',')
      return h1_fail(h, 400, "invalid transfer-encoding");
    i++;
    while (i < n && H1_OWS(v[i]))
      i++;
  }
}

/* Connection: the options we act on; others are the server's to ignore. */
static void h1_connection(const char *v, size_t n, h1_Sem *s) {
  size_t i = 0;
  while (i < n) {
    size_t t = i, l;
    while (i < n && v[i] != ',')
      i++;
    l = i;
    while (l > t && H1_OWS(v[l - 1]))
      l--;
    while (t < l && H1_OWS(v[t]))
      t++;
    if (l - t == 5 && h1_ieq(v + t, "close", 5))
      s->flags |= H1_CLOSE;
    else if (l - t == 10 && h1_ieq(v + t, "keep-alive", 10))
      s->flags |= H1_KEEPALIVE;
    else if (l - t == 7 && h1_ieq(v + t, "upgrade", 7))
      s->flags |= H1_UPGRADE;
    i++;
  }
}

/* Host: uri-host [":" port] (RFC 3986 3.2.2): an IP-literal in brackets,
 * or a reg-name (IPv4 addresses are reg-names too); port 0..65535 or empty. */
static int h1_hostok(const char *v, size_t n) {
  size_t i = 0;
  if (n > 0 && v[0] == '[') {
    for (i = 1; i < n && (H1_IS(v[i], H1_HEX) || v[i] == ':' || v[i] == '.');
         i++)
      ;
    if (i == 1 || i == n || v[i] != ']')
      return 0;
    i++;
  } else {
    while (i < n && H1_IS(v[i], H1_REG)) {
      if (v[i] == '%' && (n - i < 3 || !H1_IS(v[i + 1], H1_HEX) ||
                          !H1_IS(v[i + 2], H1_HEX)))
        return 0;
      i++;
    }
  }
  if (i < n) {
    unsigned port = 0;
    size_t d;
    if (v[i++] != ':')
      return 0;
    for (d = i; i < n && i - d < 5 && (unsigned char)(v[i] - '0') < 10u; i++)
      port = port * 10 + (unsigned)(v[i] - '0');
    if (i < n || port > 65535)
      return 0;
  }
  return 1;
}

static int h1_semfield(const h1_Field *f, h1_Sem *s, h1_Head *h) {
  switch (f->nlen) {
  case 4:
    if (h1_ieq(f->name, "host", 4)) {
      s->hosts++;
      s->hostok = h1_hostok(f->value, f->vlen);
    }
    break;
  case 6:
    if (h1_ieq(f->name, "expect", 6)) {
      s->expects++;
      if (f->vlen == 12 && h1_ieq(f->value, "100-continue", 12))
        s->continues++;
    }
    break;
  case 10:
    if (h1_ieq(f->name, "connection", 10))
      h1_connection(f->value, f->vlen, s);
    break;
  case 14:
    if (h1_ieq(f->name, "content-length", 14))
      return h1_contentlength(f->value, f->vlen, s, h);
    break;
  case 17:
    if (h1_ieq(f->name, "transfer-encoding", 17))
      return h1_transferencoding(f->value, f->vlen, s, h);
    break;
  default:
    break;
  }
  return 0;
}

/* The checks that need every field: framing first (smuggling), then Host. */
static int h1_semfinish(const h1_Sem *s, h1_Head *h) {
  if (s->te) {
    if (s->has_cl)
      return h1_fail(h, 400, "content-length and transfer-encoding");
    if (h->version == 10)
      return h1_fail(h, 400, "transfer-encoding on http/1.0");
    if (!s->chunked_last)
      return h1_fail(h, 400, "chunked not final");
    if (s->chunked > 1)
      return h1_fail(h, 400, "chunked twice");
    if (s->te_other)
      return h1_fail(h, 501, "unsupported transfer-coding");
    h->bodylen = -1;
  } else {
    h->bodylen = s->has_cl ? (int64_t)s->cl : 0;
  }
  if (s->hosts > 1)
    return h1_fail(h, 400, "duplicate host");
  if (s->hosts == 0 && h->version == 11)
    return h1_fail(h, 400, "missing host");
  if (s->hosts == 1 && !s->hostok)
    return h1_fail(h, 400, "invalid host");
  h->flags = s->flags;
  if (s->expects > 0) {
    if (s->expects > 1 || s->continues != 1)
      h->flags |= H1_EXPECT;
    else if (h->version == 11)  /* 1.0: ignored (RFC 9110 10.1.1) */
      h->flags |= H1_CONTINUE;
  }
  return 0;
}

/* A response's framing (RFC 9112 6.3), as strict as a request's: where
 * the RFC would read a body it cannot delimit until the close (a
 * transfer coding other than a final chunked), it is refused. 1xx, 204
 * and 304 have no body whatever their fields say (after the conflicts
 * were refused); HEAD is the caller's to know. */
static int h1_semresponse(const h1_Sem *s, h1_Head *h) {
  if (s->te) {
    if (s->has_cl)
      return h1_fail(h, 400, "content-length and transfer-encoding");
    if (h->version == 10)
      return h1_fail(h, 400, "transfer-encoding on http/1.0");
    if (!s->chunked_last)
      return h1_fail(h, 400, "chunked not final");
    if (s->chunked > 1)
      return h1_fail(h, 400, "chunked twice");
    if (s->te_other)
      return h1_fail(h, 501, "unsupported transfer-coding");
    h->bodylen = -1;
  } else {
    h->bodylen = s->has_cl ? (int64_t)s->cl : -2;
  }
  if (h->code < 200 || h->code == 204 || h->code == 304)
    h->bodylen = 0;
  h->flags = s->flags & (H1_CLOSE | H1_KEEPALIVE | H1_UPGRADE);
  return 0;
}

/* A request head is h1_scanhead, then (when it says H1_DONE) h1_emit with
 * H1_REQUEST; a response head h1_scanstatus, then h1_emit with
 * H1_RESPONSE: the caller makes its table in between, sized nfields. */

/* Second pass, over a complete head [start, h->nxt): each field to the
 * semantics (request heads) and to cb. From the first pass's spans when it
 * saw every line; else the lines are walked and checked again (a resumed
 * head, or more lines than H1_SPANS). */
enum { H1_TRAILERS = 0, H1_REQUEST = 1, H1_RESPONSE = 2 };

static int h1_emit(const char *b, size_t start, h1_Head *h, int kind,
                   h1_FieldFn cb, void *ud) {
  int request = kind != H1_TRAILERS;  /* a head: its fields mean something */
  h1_Sem s;
  h1_Field f;
  memset(&s, 0, sizeof s);
  if (h->whole && h->nspans == h->nfields) {
    size_t i;
    for (i = 0; i < h->nspans; i++) {
      const h1_Span *sp = &h->spans[i];
      f.name = b + start + sp->name;
      f.nlen = sp->nlen;
      f.value = b + start + sp->value;
      f.vlen = sp->vlen;
      if (request && h1_semfield(&f, &s, h) != 0)
        return H1_ERROR;
      if (cb != NULL && cb(ud, &f) != 0)
        return h1_fail(h, 500, "field callback failed");
    }
  } else {
    size_t p = start, end = h->nxt, n = 0;
    const char *nl;
    if (request) {
      if (kind == H1_REQUEST)
        p = h1_skipempty(b, end, start, H1_MAXEMPTY);
      nl = memchr(b + p, '\n', end - p);
      if (nl == NULL || nl == b + p || nl[-1] != '\r')
        return h1_fail(h, 400, "malformed head");
      if ((kind == H1_REQUEST ? h1_reqline(b + p, nl - 1, h)
                              : h1_statusline(b + p, nl - 1, h)) != 0)
        return H1_ERROR;
      p = (size_t)(nl - b) + 1;
    }
    for (;;) {
      nl = memchr(b + p, '\n', end - p);
      if (nl == NULL || nl == b + p || nl[-1] != '\r')
        return h1_fail(h, 400, "malformed head");
      if (nl - 1 == b + p)
        break;
      if (h1_fieldline(b + p, nl - 1, &f, h, n == 0) != 0)
        return H1_ERROR;
      n++;
      if (request && h1_semfield(&f, &s, h) != 0)
        return H1_ERROR;
      if (cb != NULL && cb(ud, &f) != 0)
        return h1_fail(h, 500, "field callback failed");
      p = (size_t)(nl - b) + 1;
    }
    h->nfields = n;
  }
  if (kind == H1_REQUEST)
    return h1_semfinish(&s, h) == 0 ? H1_DONE : H1_ERROR;
  if (kind == H1_RESPONSE)
    return h1_semresponse(&s, h) == 0 ? H1_DONE : H1_ERROR;
  return H1_DONE;
}

/* The trailer section at offset start: field lines, then CRLF. */
static int h1_parsetrailers(const char *b, size_t len, size_t start,
                            size_t scan, const h1_Limits *lim, h1_Head *h,
                            h1_FieldFn cb, void *ud) {
  size_t n = SIZE_MAX;
  int rc;
  h->whole = 0;
  h->nspans = 0;
  h->nfields = 0;
  if (scan > start && scan <= len)
    n = h1_linesbefore(b, start, scan, 0);
  if (n != SIZE_MAX) {
    rc = h1_scanfields(b, len, start, scan, n, lim, h, 0, 1);
  } else {
    h->whole = len - start <= UINT32_MAX;
    rc = h1_scanfields(b, len, start, start, 0, lim, h, h->whole, 1);
  }
  if (rc != H1_DONE)
    return rc;
  return h1_emit(b, start, h, H1_TRAILERS, cb, ud);
}

typedef struct h1_Chunk {
  uint64_t size;
  size_t nxt;  /* H1_DONE: offset of the first data byte */
  int status;
  const char *reason;
} h1_Chunk;

static int h1_chunkfail(h1_Chunk *c, const char *reason) {
  c->status = 400;
  c->reason = reason;
  return H1_ERROR;
}

/* A chunk-size line at pos: 1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS
 * ( token / quoted-string ) ] ) CRLF (RFC 9112 7.1.1). Read from pos on
 * every call (it is short); each verdict depends only on the bytes up to
 * the one it is about, so a line fed in pieces ends as it does whole. */
static int h1_parsechunk(const char *b, size_t len, size_t pos,
                         size_t max_line, h1_Chunk *c) {
  size_t i = pos, digits;
  uint64_t size = 0;
/* the byte at i is wanted: wait for it, or refuse it past max_line */
#define NEED(i) do { if ((i) >= len) return H1_AGAIN; } while (0)
#define BODY(i) do { if ((i) - pos >= max_line)                            \
                       return h1_chunkfail(c, "chunk extension too long");  \
                   } while (0)
#define BWS() do { NEED(i); while (H1_OWS(b[i])) { BODY(i); i++; NEED(i); } \
                 } while (0)
  NEED(i);
  while (H1_IS(b[i], H1_HEX)) {
    unsigned char d = (unsigned char)b[i];
    unsigned v = d <= '9' ? (unsigned)(d - '0')
                          : (unsigned)((d | 0x20) - 'a' + 10);
    BODY(i);
    if (size > (H1_MAXCHUNK - v) / 16)
      return h1_chunkfail(c, "chunk size overflow");
    size = size * 16 + v;
    i++;
    NEED(i);
  }
  if (i == pos)
    return h1_chunkfail(c, b[i] == '\n' ? "bare LF in chunk line"
                                         : "invalid chunk size");
  digits = i;
  for (;;) {
    NEED(i);
    if (b[i] == '\r') {
      NEED(i + 1);
      if (b[i + 1] != '\n')
        return h1_chunkfail(c, "bare CR in chunk line");
      c->size = size;
      c->nxt = i + 2;
      return H1_DONE;
    }
    if (b[i] == '\n')
      return h1_chunkfail(c, "bare LF in chunk line");
    BODY(i);
    if (b[i] != ';' && !H1_OWS(b[i]))
      return h1_chunkfail(c, i == digits ? "invalid chunk size"
                                         : "invalid chunk extension");
    BWS();
    if (b[i] != ';')
      return h1_chunkfail(c, "invalid chunk extension");
    BODY(i);
    i++;
    BWS();
    if (!H1_IS(b[i], H1_TOK))
      return h1_chunkfail(c, "invalid chunk extension");
    while (H1_IS(b[i], H1_TOK)) {
      BODY(i);
      i++;
      NEED(i);
    }
    BWS();
    if (b[i] != '=')
      continue;
    BODY(i);
    i++;
    BWS();
    if (b[i] == '"') {
      BODY(i);
      i++;
      for (;;) {
        NEED(i);
        if (b[i] == '"')
          break;
        if (b[i] == '\\') {
          BODY(i);
          i++;
          NEED(i);
          if (!H1_IS(b[i], H1_VAL))
            return h1_chunkfail(c, "invalid chunk extension");
        } else if (!H1_IS(b[i], H1_QD)) {
          return h1_chunkfail(c, "invalid chunk extension");
        }
        BODY(i);
        i++;
      }
      BODY(i);
      i++;
    } else {
      if (!H1_IS(b[i], H1_TOK))
        return h1_chunkfail(c, "invalid chunk extension");
      while (H1_IS(b[i], H1_TOK)) {
        BODY(i);
        i++;
        NEED(i);
      }
    }
  }
#undef NEED
#undef BODY
#undef BWS
}

/* ---- the Lua binding --------------------------------------------------- */

/* Field names up to this long are lower-cased on the C stack. */
#define H1_NAMEBUF 64

typedef struct h1_LuaSink {
  lua_State *L;
  int t;  /* absolute index of the table to fill */
} h1_LuaSink;

/* lp_checkrange, with the common case (an integer in range) inline: these
 * run five times per request. */
static lua_Integer h1_checkint(lua_State *L, int arg, lua_Integer lo,
                               lua_Integer hi) {
  if (lua_isinteger(L, arg)) {
    lua_Integer v = lua_tointeger(L, arg);
    if (v >= lo && v <= hi)
      return v;
  }
  return lp_checkrange(L, arg, lo, hi);
}

static size_t h1_checklimit(lua_State *L, int arg) {
  lua_Integer v = h1_checkint(L, arg, 1, LUA_MAXINTEGER);
  return (uint64_t)v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* The keys request() sets, as upvalues: lua_setfield would look each name
 * up in the string cache on every call. */
enum { H1_KMETHOD = 1, H1_KTARGET, H1_KPATH, H1_KQUERY, H1_KVERSION,
       H1_KHEADERS, H1_NKEYS = H1_KHEADERS };
static const char *const h1_keys[H1_NKEYS] = {
  "method", "target", "path", "query", "version", "headers"
};

/* Push a key of req; the value goes on top, then lua_rawset(L, 4): req is
 * a plain table the caller made. */
#define h1_pushkey(L, key) lua_pushvalue(L, lua_upvalueindex(key))

static void h1_pushlower(lua_State *L, const char *s, size_t n) {
  luaL_Buffer B;
  char *d = luaL_buffinitsize(L, &B, n);
  size_t i;
  for (i = 0; i < n; i++)
    d[i] = (char)h1_lower((unsigned char)s[i]);
  luaL_pushresultsize(&B, n);
}

/* t[lower(name)] = value, or joined to what is there: ", " (RFC 9110 5.3),
 * "; " for cookie (RFC 6265 5.4). */
static int h1_setfield(void *ud, const h1_Field *f) {
  const h1_LuaSink *k = (const h1_LuaSink *)ud;
  lua_State *L = k->L;
  int cookie;
  if (f->nlen <= H1_NAMEBUF) {
    char buf[H1_NAMEBUF];
    size_t i;
    for (i = 0; i < f->nlen; i++)
      buf[i] = (char)h1_lower((unsigned char)f->name[i]);
    cookie = f->nlen == 6 && memcmp(buf, "cookie", 6) == 0;
    lua_pushlstring(L, buf, f->nlen);
  } else {
    cookie = 0;
    h1_pushlower(L, f->name, f->nlen);
  }
  lua_pushvalue(L, -1);
  if (lua_rawget(L, k->t) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushlstring(L, f->value, f->vlen);
  } else {
    lua_pushstring(L, cookie ? "; " : ", ");
    lua_pushlstring(L, f->value, f->vlen);
    lua_concat(L, 3);
  }
  lua_rawset(L, k->t);
  return 0;
}

static int h1_pushreject(lua_State *L, int status, const char *reason) {
  luaL_pushfail(L);
  lua_pushinteger(L, status);
  lua_pushstring(L, reason);
  return 3;
}

static int h1_pushagain(lua_State *L, size_t scan) {
  lua_pushboolean(L, 0);
  lua_pushinteger(L, (lua_Integer)scan + 1);
  return 2;
}

/***
 * Parse a request head.
 *
 * The head starts at position `init` of `s` (a connection's read buffer:
 * it may hold several pipelined requests, or part of one). On success the
 * fields of `req` are set: `method` (case kept), `target` (as sent),
 * `path` (the target up to `?`; for the absolute-form its path, `/` when
 * empty; `*` for the asterisk-form), `query` (after the first `?`, or
 * nil), `version` (10 or 11) and `headers`, a new table: lower-case field
 * name to value, leading and trailing whitespace removed, repeated fields
 * joined with `", "` (`cookie` with `"; "`).
 *
 * Up to 8 empty lines before the request line are skipped (counted in
 * `max_line`). The framing (`bodylen`) follows RFC 9112 6.3; ambiguous
 * framing is rejected, never guessed.
 * @function request
 * @tparam string s the buffer
 * @tparam integer init where the head starts, 1 .. `#s + 1`
 * @tparam integer scan `init` on the first call; after `false, scan`,
 *   that `scan` (the bytes before it must be unchanged: the buffer may only
 *   grow), so that a head arriving in pieces is read once
 * @tparam table req the table to fill, set raw (pre-set its keys: no
 *   rehash)
 * @tparam integer max_line longest request line, CRLF excluded (else 414)
 * @tparam integer max_head longest head, request line through the final
 *   CRLF (else 431)
 * @tparam integer max_fields most field lines (else 431)
 * @treturn[1] integer the position after the head's final CRLF
 * @treturn[1] integer the body length: -1 chunked, else Content-Length
 *   (0 without one)
 * @treturn[1] integer flags: `CLOSE`, `KEEPALIVE`, `UPGRADE`, `CONTINUE`,
 *   `EXPECT`
 * @return[2] false: the head is incomplete
 * @treturn[2] integer scan, for the next call
 * @return[3] nil
 * @treturn[3] integer status: 400, 414, 431, 501 (a transfer coding other
 *   than chunked) or 505 (an HTTP major version other than 1)
 * @treturn[3] string reason, such as `"bare CR in field value"`
 * @usage local nxt, bodylen, flags = http1.request(buf, 1, 1, req, 8192, 16384, 100)
 */
static int h1_request(lua_State *L) {
  size_t len;
  const char *s = lp_checkstr(L, 1, &len);
  lua_Integer init = h1_checkint(L, 2, 1, (lua_Integer)len + 1);
  lua_Integer scan = h1_checkint(L, 3, init, (lua_Integer)len + 1);
  h1_Limits lim;
  h1_Head h;
  h1_LuaSink k;
  int rc;
  luaL_checktype(L, 4, LUA_TTABLE);
  lim.max_line = h1_checklimit(L, 5);
  lim.max_head = h1_checklimit(L, 6);
  lim.max_fields = h1_checklimit(L, 7);
  rc = h1_scanhead(s, len, (size_t)init - 1, (size_t)scan - 1, &lim, &h);
  if (rc == H1_AGAIN)
    return h1_pushagain(L, h.scan);
  if (rc == H1_ERROR)
    return h1_pushreject(L, h.status, h.reason);
  lua_settop(L, 7);
  lua_createtable(L, 0, h.nfields > INT_MAX ? INT_MAX : (int)h.nfields);
  k.L = L;
  k.t = 8;
  if (h1_emit(s, (size_t)init - 1, &h, H1_REQUEST, h1_setfield, &k) != H1_DONE)
    return h1_pushreject(L, h.status, h.reason);
  h1_pushkey(L, H1_KHEADERS);
  lua_pushvalue(L, 8);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_KMETHOD);
  lua_pushlstring(L, h.method, h.mlen);
  lua_rawset(L, 4);
  lua_pushlstring(L, h.target, h.tlen);  /* 9 */
  h1_pushkey(L, H1_KTARGET);
  lua_pushvalue(L, 9);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_KPATH);
  if (h.path == h.target && h.plen == h.tlen)
    lua_pushvalue(L, 9);  /* one string for both */
  else
    lua_pushlstring(L, h.path, h.plen);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_KQUERY);
  if (h.query != NULL)
    lua_pushlstring(L, h.query, h.qlen);
  else
    lua_pushnil(L);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_KVERSION);
  lua_pushinteger(L, h.version);
  lua_rawset(L, 4);
  lua_pushinteger(L, (lua_Integer)h.nxt + 1);
  lua_pushinteger(L, (lua_Integer)h.bodylen);
  lua_pushinteger(L, h.flags);
  return 3;
}

/* The keys response() sets, as upvalues (see h1_keys). */
enum { H1_RSTATUS = 1, H1_RREASON, H1_RVERSION, H1_RHEADERS,
       H1_NRKEYS = H1_RHEADERS };
static const char *const h1_rkeys[H1_NRKEYS] = {
  "status", "reason", "version", "headers"
};

/* As h1_setfield, but set-cookie: an array of its values, one per field
 * line (RFC 9110 5.3: its values cannot be joined, a date holds a comma). */
static int h1_setresfield(void *ud, const h1_Field *f) {
  const h1_LuaSink *k = (const h1_LuaSink *)ud;
  lua_State *L = k->L;
  lua_Integer n;
  if (f->nlen != 10 || !h1_ieq(f->name, "set-cookie", 10))
    return h1_setfield(ud, f);
  lua_pushliteral(L, "set-cookie");
  if (lua_rawget(L, k->t) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 2, 0);
    lua_pushliteral(L, "set-cookie");
    lua_pushvalue(L, -2);
    lua_rawset(L, k->t);
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushlstring(L, f->value, f->vlen);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
  return 0;
}

/***
 * Parse a response head (RFC 9112 4, 6.3), as strictly as `request` a
 * request head: the status line `HTTP/1.x SP 3DIGIT SP reason-phrase`
 * (the SP before an empty reason may be missing), status 100..599; the
 * field lines by the same rules; the framing unambiguous
 * (`Content-Length` with `Transfer-Encoding`, two lengths, a transfer
 * coding other than a final `chunked`, `Transfer-Encoding` on HTTP/1.0
 * are refused). On success the fields of `res` are set: `status`
 * (integer), `reason` (as sent), `version` (10 or 11) and `headers` (as
 * `request`'s, but `set-cookie`: an array of its values, one per field
 * line).
 * @function response
 * @tparam string s the buffer
 * @tparam integer init where the head starts, 1 .. `#s + 1`
 * @tparam integer scan `init` on the first call; after `false, scan`,
 *   that `scan`
 * @tparam table res the table to fill, set raw
 * @tparam integer max_line longest status line, CRLF excluded
 * @tparam integer max_head longest head, status line through the final
 *   CRLF
 * @tparam integer max_fields most field lines
 * @treturn[1] integer the position after the head's final CRLF
 * @treturn[1] integer the body length: -1 chunked, -2 until the server
 *   closes, else Content-Length; 0 for 1xx, 204 and 304 (a response to
 *   HEAD has none either: the caller knows)
 * @treturn[1] integer flags: `CLOSE`, `KEEPALIVE`, `UPGRADE`
 * @return[2] false: the head is incomplete
 * @treturn[2] integer scan, for the next call
 * @return[3] nil
 * @treturn[3] integer 400, 431 (a limit), 501 (a transfer coding other
 *   than chunked) or 505 (an HTTP major version other than 1)
 * @treturn[3] string reason, such as `"invalid status line"`
 * @usage local nxt, bodylen, flags = http1.response(buf, 1, 1, res, 8192, 16384, 100)
 */
static int h1_response(lua_State *L) {
  size_t len;
  const char *s = lp_checkstr(L, 1, &len);
  lua_Integer init = h1_checkint(L, 2, 1, (lua_Integer)len + 1);
  lua_Integer scan = h1_checkint(L, 3, init, (lua_Integer)len + 1);
  h1_Limits lim;
  h1_Head h;
  h1_LuaSink k;
  int rc;
  luaL_checktype(L, 4, LUA_TTABLE);
  lim.max_line = h1_checklimit(L, 5);
  lim.max_head = h1_checklimit(L, 6);
  lim.max_fields = h1_checklimit(L, 7);
  rc = h1_scanstatus(s, len, (size_t)init - 1, (size_t)scan - 1, &lim, &h);
  if (rc == H1_AGAIN)
    return h1_pushagain(L, h.scan);
  if (rc == H1_ERROR)
    return h1_pushreject(L, h.status, h.reason);
  lua_settop(L, 7);
  lua_createtable(L, 0, h.nfields > INT_MAX ? INT_MAX : (int)h.nfields);
  k.L = L;
  k.t = 8;
  if (h1_emit(s, (size_t)init - 1, &h, H1_RESPONSE, h1_setresfield, &k) !=
      H1_DONE)
    return h1_pushreject(L, h.status, h.reason);
  h1_pushkey(L, H1_RHEADERS);
  lua_pushvalue(L, 8);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_RSTATUS);
  lua_pushinteger(L, h.code);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_RREASON);
  lua_pushlstring(L, h.phrase, h.phlen);
  lua_rawset(L, 4);
  h1_pushkey(L, H1_RVERSION);
  lua_pushinteger(L, h.version);
  lua_rawset(L, 4);
  lua_pushinteger(L, (lua_Integer)h.nxt + 1);
  lua_pushinteger(L, (lua_Integer)h.bodylen);
  lua_pushinteger(L, h.flags);
  return 3;
}

/***
 * Parse a chunk-size line (RFC 9112 7.1): `1*HEXDIG [chunk-ext] CRLF`.
 *
 * Extensions (`;name`, `;name=token`, `;name="quoted"`, with optional
 * whitespace around `;` and `=`) are checked and skipped. The CRLF after
 * each chunk's data is the caller's to check.
 * @function chunk
 * @tparam string s the buffer
 * @tparam integer pos where the line starts, 1 .. `#s + 1`
 * @tparam integer max_line longest line, extensions included, CRLF
 *   excluded
 * @treturn[1] integer the chunk size, 0 .. 2^62 (0: the last chunk;
 *   trailers follow at `nxt`)
 * @treturn[1] integer nxt, the position of the first data byte
 * @return[2] false: the line is incomplete
 * @return[3] nil
 * @treturn[3] integer 400
 * @treturn[3] string reason, such as `"chunk size overflow"` or `"chunk
 *   extension too long"`
 */
static int h1_chunk(lua_State *L) {
  size_t len;
  const char *s = lp_checkstr(L, 1, &len);
  lua_Integer pos = h1_checkint(L, 2, 1, (lua_Integer)len + 1);
  size_t max_line = h1_checklimit(L, 3);
  h1_Chunk c;
  int rc = h1_parsechunk(s, len, (size_t)pos - 1, max_line, &c);
  if (rc == H1_AGAIN) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc == H1_ERROR)
    return h1_pushreject(L, c.status, c.reason);
  lua_pushinteger(L, (lua_Integer)c.size);
  lua_pushinteger(L, (lua_Integer)c.nxt + 1);
  return 2;
}

/***
 * Parse the trailer section after the last chunk: field lines, then CRLF,
 * with the field rules of a request head, into `t` (names lower-cased,
 * repeated fields joined as in `request`). `t` is written only when the
 * section is complete and valid.
 * @function trailers
 * @tparam string s the buffer
 * @tparam integer pos where the section starts (the `nxt` of the last
 *   chunk), 1 .. `#s + 1`
 * @tparam integer scan `pos` on the first call; after `false, scan`, that
 *   `scan`
 * @tparam table t the table to fill
 * @tparam integer max_head longest section, final CRLF included (else 431)
 * @tparam integer max_fields most field lines (else 431)
 * @treturn[1] integer the position after the final CRLF
 * @return[2] false: the section is incomplete
 * @treturn[2] integer scan, for the next call
 * @return[3] nil
 * @treturn[3] integer status: 400 or 431
 * @treturn[3] string reason
 */
static int h1_trailers(lua_State *L) {
  size_t len;
  const char *s = lp_checkstr(L, 1, &len);
  lua_Integer pos = lp_checkrange(L, 2, 1, (lua_Integer)len + 1);
  lua_Integer scan = lp_checkrange(L, 3, pos, (lua_Integer)len + 1);
  h1_Limits lim;
  h1_Head h;
  h1_LuaSink k;
  int rc;
  luaL_checktype(L, 4, LUA_TTABLE);
  lim.max_line = 0;
  lim.max_head = h1_checklimit(L, 5);
  lim.max_fields = h1_checklimit(L, 6);
  k.L = L;
  k.t = 4;
  rc = h1_parsetrailers(s, len, (size_t)pos - 1, (size_t)scan - 1, &lim, &h,
                        h1_setfield, &k);
  if (rc == H1_AGAIN)
    return h1_pushagain(L, h.scan);
  if (rc == H1_ERROR)
    return h1_pushreject(L, h.status, h.reason);
  lua_pushinteger(L, (lua_Integer)h.nxt + 1);
  return 1;
}

/* What field() says a name is, for the fields a server must treat apart. */
enum { H1_F_OTHER, H1_F_CONTENT_LENGTH, H1_F_CONNECTION,
       H1_F_TRANSFER_ENCODING, H1_F_DATE, H1_F_SERVER };

static int h1_fieldkind(const char *n, size_t len) {
  switch (len) {
    case 4: return h1_ieq(n, "date", 4) ? H1_F_DATE : H1_F_OTHER;
    case 6: return h1_ieq(n, "server", 6) ? H1_F_SERVER : H1_F_OTHER;
    case 10: return h1_ieq(n, "connection", 10) ? H1_F_CONNECTION : H1_F_OTHER;
    case 14:
      return h1_ieq(n, "content-length", 14) ? H1_F_CONTENT_LENGTH : H1_F_OTHER;
    case 17:
      return h1_ieq(n, "transfer-encoding", 17) ? H1_F_TRANSFER_ENCODING
                                                : H1_F_OTHER;
    default: return H1_F_OTHER;
  }
}

/***
 * Make a response field line, checked: `name` must be a token and `value`
 * hold only field-vchar, obs-text, SP and HTAB (no CR, LF, NUL or other
 * control byte: a value cannot smuggle a second field).
 * @function field
 * @tparam string name the field name, as it is to be sent
 * @tparam string value the field value
 * @treturn[1] string `name .. ": " .. value .. "\r\n"`
 * @treturn[1] integer what the name is (any case): 0 another field,
 *   1 content-length, 2 connection, 3 transfer-encoding, 4 date, 5 server
 * @return[2] nil
 * @treturn[2] integer 1: the name is not a token; 2: the value has a byte
 *   a field value cannot hold
 */
static int h1_field(lua_State *L) {
  size_t nlen, vlen, i;
  const char *n = luaL_checklstring(L, 1, &nlen);
  const char *v = luaL_checklstring(L, 2, &vlen);
  luaL_Buffer b;
  for (i = 0; i < nlen && H1_IS(n[i], H1_TOK); i++)
    ;
  if (nlen == 0 || i < nlen) {
    luaL_pushfail(L);
    lua_pushinteger(L, 1);
    return 2;
  }
  for (i = 0; i < vlen && H1_IS(v[i], H1_VAL); i++)
    ;
  if (i < vlen) {
    luaL_pushfail(L);
    lua_pushinteger(L, 2);
    return 2;
  }
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, n, nlen);
  luaL_addlstring(&b, ": ", 2);
  luaL_addlstring(&b, v, vlen);
  luaL_addlstring(&b, "\r\n", 2);
  luaL_pushresult(&b);
  lua_pushinteger(L, h1_fieldkind(n, nlen));
  return 2;
}

static const luaL_Reg h1_funcs[] = {
  {"request",  NULL},  /* h1_request, with the keys as upvalues */
  {"response", NULL},  /* h1_response, likewise */
  {"chunk",    h1_chunk},
  {"trailers", h1_trailers},
  {"field",    h1_field},
  {NULL, NULL}
};

/***
 * Constants.
 * @section constants
 */

/***
 * The bits of `request`'s flags, and the module's version.
 * @table lepoll.http1
 * @field CLOSE Connection has the option "close"
 * @field KEEPALIVE Connection has the option "keep-alive"
 * @field UPGRADE Connection has the option "upgrade"
 * @field CONTINUE Expect is exactly "100-continue" (any case; HTTP/1.1
 *   only: on HTTP/1.0 it is ignored, as RFC 9110 10.1.1 says)
 * @field EXPECT any other Expect (the server answers 417)
 * @field _VERSION `"lepoll 0.1.0"`
 */
static const lp_Const h1_consts[] = {
  {"CLOSE",     H1_CLOSE},
  {"KEEPALIVE", H1_KEEPALIVE},
  {"UPGRADE",   H1_UPGRADE},
  {"CONTINUE",  H1_CONTINUE},
  {"EXPECT",    H1_EXPECT},
  {NULL, 0}
};

LEPOLL_API int luaopen_lepoll_http1(lua_State *L);

LEPOLL_API int luaopen_lepoll_http1(lua_State *L) {
  int i;
  luaL_checkversion(L);
  luaL_newlib(L, h1_funcs);
  for (i = 0; i < H1_NKEYS; i++)
    lua_pushstring(L, h1_keys[i]);
  lua_pushcclosure(L, h1_request, H1_NKEYS);
  lua_setfield(L, -2, "request");
  for (i = 0; i < H1_NRKEYS; i++)
    lua_pushstring(L, h1_rkeys[i]);
  lua_pushcclosure(L, h1_response, H1_NRKEYS);
  lua_setfield(L, -2, "response");
  lp_setconsts(L, h1_consts);
  lua_pushliteral(L, LP_MODVERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
