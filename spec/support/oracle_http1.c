/* oracle_http1.c - two other HTTP/1.1 request parsers as test oracles for
 * lepoll.http1 (spec/http1_diff_spec.lua): picohttpparser, as exported by
 * Debian's libh2o-evloop (dlopen'd: it has no -dev package), and node's
 * llhttp, compiled from Debian's node-llhttp sources. A test program only:
 * nothing in csrc/ or lua/ links either.
 *
 * Usage: oracle_http1 FILE
 * FILE holds records "<decimal length>\n<that many bytes>". For each record
 * it prints, one item a line:
 *   case N
 *   pico RET METHOD PATH MINOR NHEADERS   RET: bytes of the head, -1 error, -2 incomplete
 *   pico-h NAME VALUE                     each header (NAME ! for a continuation line)
 *   pico-chunked RET DECODED              when the last Transfer-Encoding coding is
 *                                         "chunked": phr_decode_chunked on the rest
 *                                         (RET as pico's: bytes left after the
 *                                         trailers, -1, -2), DECODED the data
 *   llhttp ERRNO NAME REASON HEAD DONE CONSUMED METHOD URL MAJOR MINOR BODY
 *   llhttp-h NAME VALUE                   each head field, then
 *   llhttp-t NAME VALUE                   each trailer field
 *   end
 * Strings are written as "=" and the bytes, with '%' and every byte outside
 * 0x21..0x7E as %XX; "!" is no string. llhttp runs in HTTP_REQUEST mode with
 * llhttp_init's settings: no lenient flag set (LENIENT_HEADERS,
 * LENIENT_CHUNKED_LENGTH, LENIENT_KEEP_ALIVE, LENIENT_TRANSFER_ENCODING,
 * LENIENT_VERSION all off) and LLHTTP_STRICT_MODE as Debian's build has it
 * (0). It stops at the end of the first message: DONE says it saw that end,
 * CONSUMED is where it was (the whole input when it did not stop). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "llhttp.h"

/* picohttpparser's documented API (picohttpparser.h), declared here. */
struct phr_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* The decoder's public prefix as h2o 2.2 has it; later picohttpparsers
 * append counters, so the tail leaves them room. Zero-filled before use. */
struct phr_chunked_decoder {
  size_t bytes_left_in_chunk;
  char consume_trailer;
  char hex_count_;
  char state_;
  char room_[64];
};

typedef int (*parse_request_fn)(const char *buf, size_t len, const char **method,
                                size_t *method_len, const char **path, size_t *path_len,
                                int *minor_version, struct phr_header *headers,
                                size_t *num_headers, size_t last_len);
typedef ssize_t (*decode_chunked_fn)(struct phr_chunked_decoder *decoder, char *buf,
                                     size_t *bufsz);

#define PICO_LIB "libh2o-evloop.so.0.13"
/* The lepoll server's default field limit. */
#define MAX_HEADERS 100
#define MAX_FIELDS 512

static void put_str(const char *s, size_t n) {
  if (s == NULL) {
    fputs(" !", stdout);
    return;
  }
  fputs(" =", stdout);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e || c == '%')
      printf("%%%02X", c);
    else
      putchar(c);
  }
}

static int coding_is_chunked_last(const char *v, size_t n) {
  /* the last comma-separated coding of v, without OWS */
  size_t end = n;
  while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
  size_t start = end;
  while (start > 0 && v[start - 1] != ',') start--;
  while (start < end && (v[start] == ' ' || v[start] == '\t')) start++;
  return end - start == 7 && strncasecmp(v + start, "chunked", 7) == 0;
}

static void run_pico(parse_request_fn parse, decode_chunked_fn decode, const char *buf,
                     size_t len) {
  const char *method = NULL, *path = NULL;
  size_t method_len = 0, path_len = 0, nh = MAX_HEADERS;
  int minor = -1;
  struct phr_header h[MAX_HEADERS];
  int ret = parse(buf, len, &method, &method_len, &path, &path_len, &minor, h, &nh, 0);
  if (ret < 0) nh = 0;
  printf("pico %d", ret);
  put_str(ret >= 0 ? method : NULL, method_len);
  put_str(ret >= 0 ? path : NULL, path_len);
  printf(" %d %zu\n", ret >= 0 ? minor : -1, nh);
  const char *te = NULL;
  size_t te_len = 0;
  for (size_t i = 0; i < nh; i++) {
    fputs("pico-h", stdout);
    put_str(h[i].name, h[i].name_len);
    put_str(h[i].value, h[i].value_len);
    putchar('\n');
    if (h[i].name && h[i].name_len == 17 &&
        strncasecmp(h[i].name, "transfer-encoding", 17) == 0) {
      te = h[i].value;
      te_len = h[i].value_len;
    }
  }
  if (ret < 0 || te == NULL || !coding_is_chunked_last(te, te_len)) return;
  size_t n = len - (size_t)ret;
  char *body = malloc(n + 1); /* decoded in place: a copy */
  if (body == NULL) {
    perror("oracle_http1: malloc");
    exit(2);
  }
  memcpy(body, buf + ret, n);
  struct phr_chunked_decoder dec;
  memset(&dec, 0, sizeof dec);
  dec.consume_trailer = 1;
  size_t size = n;
  ssize_t left = decode(&dec, body, &size);
  printf("pico-chunked %zd", left);
  put_str(body, left == -1 ? 0 : size);
  putchar('\n');
  free(body);
}

/* llhttp side: spans point into the input (one llhttp_execute call over it
 * all), so a field is (start, length); a span that goes on where the last
 * one ended extends it. */
struct span {
  const char *p;
  size_t n;
};

struct ll_state {
  struct span url, body;
  struct span name[MAX_FIELDS], value[MAX_FIELDS];
  int trailer[MAX_FIELDS];
  int nfields, in_value, head_done, msg_done, overflow;
};

static void extend(struct span *s, const char *at, size_t n) {
  if (s->p == NULL) {
    s->p = at;
    s->n = n;
  } else if (s->p + s->n == at) {
    s->n += n;
  } else {
    s->n = (size_t)-1; /* cannot happen with one execute call; shown as such */
  }
}

static int ll_url(llhttp_t *p, const char *at, size_t n) {
  extend(&((struct ll_state *)p->data)->url, at, n);
  return 0;
}

static int ll_field(llhttp_t *p, const char *at, size_t n) {
  struct ll_state *st = p->data;
  if (st->in_value || st->nfields == 0) {
    if (st->nfields == MAX_FIELDS) {
      st->overflow = 1;
      return 0;
    }
    st->nfields++;
    st->in_value = 0;
    st->trailer[st->nfields - 1] = st->head_done;
  }
  extend(&st->name[st->nfields - 1], at, n);
  return 0;
}

static int ll_value(llhttp_t *p, const char *at, size_t n) {
  struct ll_state *st = p->data;
  if (st->nfields == 0 || st->overflow) return 0;
  st->in_value = 1;
  extend(&st->value[st->nfields - 1], at, n);
  return 0;
}

static int ll_value_done(llhttp_t *p) {
  struct ll_state *st = p->data;
  /* an empty value gets no on_header_value: mark it present */
  if (st->nfields > 0 && !st->overflow) {
    struct span *v = &st->value[st->nfields - 1];
    if (v->p == NULL) v->p = "";
  }
  st->in_value = 1;
  return 0;
}

static int ll_headers_done(llhttp_t *p) {
  ((struct ll_state *)p->data)->head_done = 1;
  return 0;
}

static int ll_body(llhttp_t *p, const char *at, size_t n) {
  struct ll_state *st = p->data;
  if (st->body.p == NULL || st->body.p + st->body.n == at) {
    extend(&st->body, at, n);
  } else {
    st->body.n = (size_t)-1; /* chunked data is not contiguous: lengths only */
  }
  return 0;
}

static int ll_msg_done(llhttp_t *p) {
  ((struct ll_state *)p->data)->msg_done = 1;
  return HPE_PAUSED; /* the first message only */
}

static void put_span(const struct span *s) {
  if (s->n == (size_t)-1)
    fputs(" =%FF%FF", stdout);
  else
    put_str(s->p ? s->p : "", s->p ? s->n : 0);
}

static void run_llhttp(const llhttp_settings_t *settings, const char *buf, size_t len,
                       struct ll_state *st) {
  llhttp_t parser;
  memset(st, 0, sizeof *st);
  llhttp_init(&parser, HTTP_REQUEST, settings);
  parser.data = st;
  llhttp_errno_t err = llhttp_execute(&parser, buf, len);
  size_t consumed = len;
  if (err != HPE_OK && llhttp_get_error_pos(&parser) != NULL)
    consumed = (size_t)(llhttp_get_error_pos(&parser) - buf);
  const char *reason = err == HPE_OK ? "" : llhttp_get_error_reason(&parser);
  if (reason == NULL) reason = "";
  printf("llhttp %d", (int)err);
  const char *name = llhttp_errno_name(err);
  put_str(name, strlen(name));
  put_str(reason, strlen(reason));
  printf(" %d %d %zu", st->head_done, st->msg_done, consumed);
  const char *m = llhttp_method_name((llhttp_method_t)parser.method);
  put_str(st->head_done ? m : NULL, strlen(m));
  put_span(&st->url);
  printf(" %d %d", parser.http_major, parser.http_minor);
  /* chunked bodies arrive in pieces: the spec compares their total */
  if (st->body.n == (size_t)-1)
    fputs(" !", stdout);
  else
    put_span(&st->body);
  putchar('\n');
  for (int i = 0; i < st->nfields; i++) {
    fputs(st->trailer[i] ? "llhttp-t" : "llhttp-h", stdout);
    put_span(&st->name[i]);
    put_span(&st->value[i]);
    putchar('\n');
  }
  if (st->overflow) puts("llhttp-overflow");
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (b == NULL) break;
    n += fread(b + n, 1, cap - n, f);
    if (n < cap) break;
    char *nb = realloc(b, cap * 2);
    if (nb == NULL) {
      free(b);
      b = NULL;
      break;
    }
    b = nb;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(b);
    return NULL;
  }
  *len = n;
  return b;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fputs("usage: oracle_http1 FILE\n", stderr);
    return 2;
  }
  void *lib = dlopen(PICO_LIB, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "oracle_http1: %s (Debian: libh2o-evloop0.13; run .ci/deps)\n", dlerror());
    return 3;
  }
  parse_request_fn parse;
  decode_chunked_fn decode;
  *(void **)&parse = dlsym(lib, "phr_parse_request");
  *(void **)&decode = dlsym(lib, "phr_decode_chunked");
  if (parse == NULL || decode == NULL) {
    fprintf(stderr, "oracle_http1: %s lacks phr_parse_request/phr_decode_chunked\n", PICO_LIB);
    return 3;
  }
  size_t total = 0;
  char *all = read_file(argv[1], &total);
  if (all == NULL) {
    fprintf(stderr, "oracle_http1: %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = ll_url;
  settings.on_header_field = ll_field;
  settings.on_header_value = ll_value;
  settings.on_header_value_complete = ll_value_done;
  settings.on_headers_complete = ll_headers_done;
  settings.on_body = ll_body;
  settings.on_message_complete = ll_msg_done;
  struct ll_state *st = malloc(sizeof *st);
  if (st == NULL) {
    perror("oracle_http1: malloc");
    return 2;
  }
  size_t pos = 0;
  for (unsigned long ncase = 1; pos < total; ncase++) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(all + pos, &end, 10);
    if (errno || end == all + pos || end >= all + total || *end != '\n' ||
        n > total - (size_t)(end + 1 - all)) {
      fprintf(stderr, "oracle_http1: bad record at byte %zu\n", pos);
      return 2;
    }
    const char *rec = end + 1;
    /* each parser gets an exact-size copy: a read past it is ASan's to see */
    char *copy = malloc(n ? n : 1);
    if (copy == NULL) {
      perror("oracle_http1: malloc");
      return 2;
    }
    memcpy(copy, rec, n);
    printf("case %lu\n", ncase);
    run_pico(parse, decode, copy, n);
    run_llhttp(&settings, copy, n, st);
    puts("end");
    free(copy);
    pos = (size_t)(rec + n - all);
  }
  free(st);
  free(all);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("oracle_http1: stdout");
    return 2;
  }
  return 0;
}
