/* tls.c - lepoll.tls: one non-blocking OpenSSL 3 connection on a socket fd; ssl(7). */

/***
 * TLS on a socket the caller owns, without blocking: a thin binding of one
 * OpenSSL 3 `SSL` object per connection (`SSL_set_fd`: OpenSSL reads and
 * writes the fd itself). Nothing here waits or touches epoll: a call that
 * cannot go on returns `false, "read"` or `false, "write"`, and the caller
 * retries it when the fd is ready (the framework parks a coroutine).
 *
 * Every session call clears OpenSSL's error queue first and maps results so:
 * `false, "read"` / `false, "write"` (would block), `nil, "closed"` (the
 * peer's close_notify), `nil, "closed", "truncated"` (end of stream without
 * one), `nil, "tls: " .. strerror, errno` (a socket error such as EPIPE or
 * ECONNRESET), `nil, "tls: certificate verify failed: " .. reason`, or
 * `nil, "tls: " .. reason` for any other OpenSSL error. The fd must not
 * raise SIGPIPE (OpenSSL uses write(2)): the lepoll loop ignores it.
 *
 * Misuse (a wrong type, an unknown option, a freed session) raises an error
 * naming the argument, and the option field.
 * @module lepoll.tls
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

#define TLS_CTX_T     "lepoll.tls.context"
#define TLS_SESSION_T "lepoll.tls.session"
#define TLS_READMAX   ((lua_Integer)1 << 30)
#define TLS_RECORD    16384  /* a read takes at most a record more than pending */

/* A context's C side: refcounted, since an SSL that uses it (and a parent
 * whose sni table names it) may outlive its Lua userdata. The SSL_CTX's app
 * data points here, for the callbacks. Lua states are single-threaded, and
 * a userdata never crosses states: the count needs no atomics. */
typedef struct tls_Ctx tls_Ctx;

typedef struct tls_Sni {
  char *name;    /* "host.example" or "*.example.org" */
  tls_Ctx *ctx;  /* a reference */
} tls_Sni;

struct tls_Ctx {
  SSL_CTX *ctx;
  int refs;
  int verify;             /* -1: not given (tls.new applies the role's default) */
  unsigned char *alpn;    /* server preference list, wire format */
  unsigned int alpnlen;
  size_t nsni;
  tls_Sni *sni;
};

typedef struct tls_CtxBox {  /* the Lua userdata: NULL once closed */
  tls_Ctx *c;
} tls_CtxBox;

typedef struct tls_Session {  /* the Lua userdata; SSL's app data */
  SSL *ssl;               /* NULL once freed */
  tls_Ctx *ctx;           /* a reference: the context it was made from */
  tls_Ctx *sni;           /* a reference: the sni context switched to, or NULL */
  SSL_SESSION *newest;    /* the newest ticket's session (client), owned */
  int fd;
  int server;
  int fatal;              /* a fatal error happened: no close_notify to send */
  int hellos;             /* server: ClientHellos seen */
  char name[256];         /* server: the host name the client sent, or "" */
} tls_Session;

/* ---- contexts ---------------------------------------------------------- */

static void tls_release(tls_Ctx *c) {
  size_t i;
  if (c == NULL || --c->refs > 0)
    return;
  SSL_CTX_free(c->ctx);
  for (i = 0; i < c->nsni; i++) {
    free(c->sni[i].name);
    tls_release(c->sni[i].ctx);  /* children never name their parent: no cycle */
  }
  free(c->sni);
  free(c->alpn);
  free(c);
}

/* "tls: <prefix><reason of the first queued error>" on the stack; the
 * queue is drained. */
static void tls_pushreason(lua_State *L, const char *prefix, unsigned long e) {
  char buf[256];
  const char *r = NULL;
  if (e != 0 && ERR_SYSTEM_ERROR(e))
    r = strerror(ERR_GET_REASON(e));  /* OpenSSL keeps no string for errno */
  else if (e != 0)
    r = ERR_reason_error_string(e);
  if (r == NULL && e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    r = buf;
  }
  lua_pushfstring(L, "tls: %s%s", prefix, r != NULL ? r : "unknown error");
  ERR_clear_error();
}

/* nil, "tls: <what> <path>: <reason>" for a failed load. */
static int tls_loadfail(lua_State *L, const char *what, const char *path) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s %s: ", what, path);
  tls_pushreason(L, lua_tostring(L, -1), ERR_peek_error());
  lua_remove(L, -2);
  return 2;
}

static tls_Ctx *tls_checkctx(lua_State *L, int arg) {
  tls_CtxBox *b = (tls_CtxBox *)luaL_checkudata(L, arg, TLS_CTX_T);
  if (b->c == NULL)
    luaL_error(L, "attempt to use a closed TLS context");
  return b->c;
}

enum { F_CERT, F_KEY, F_PASSWORD, F_CA, F_VERIFY, F_ALPN, F_SNI, F_MINV,
       F_MAXV, F_CIPHERS, F_SUITES, F_TICKETS, F_N };
static const char *const tls_fields[] = {
  "cert", "key", "password", "ca", "verify", "alpn", "sni", "min_version",
  "max_version", "ciphers", "ciphersuites", "tickets", NULL
};
static const int tls_fieldtypes[] = {
  LUA_TSTRING, LUA_TSTRING, LUA_TSTRING, LUA_TSTRING, LUA_TBOOLEAN,
  LUA_TTABLE, LUA_TTABLE, LUA_TSTRING, LUA_TSTRING, LUA_TSTRING,
  LUA_TSTRING, LUA_TBOOLEAN
};

static const char *const tls_versions[] = {
  "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL
};
static const int tls_versionnums[] = {
  TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION
};

static int tls_fielderror(lua_State *L, int arg, const char *field,
                          const char *msg) {
  return luaL_argerror(L, arg, lua_pushfstring(L, "field '%s': %s", field, msg));
}

/* The index in lst of the string s (len bytes), or -1. */
static int tls_find(const char *const lst[], const char *s, size_t len) {
  int i;
  for (i = 0; lst[i] != NULL; i++)
    if (lp_streq(s, len, lst[i]))
      return i;
  return -1;
}

/* The ALPN list at idx (an array of 1..255-byte strings) checked; its wire
 * length (at most 65535: the extension's own length field). */
static size_t tls_checkalpn(lua_State *L, int arg, int idx) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  size_t total = 0, len;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {  /* only 1..n: a hole or a key is misuse */
    if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
        lua_tointeger(L, -2) > n)
      tls_fielderror(L, arg, "alpn", "array of strings expected");
    lua_pop(L, 1);
  }
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING)
      tls_fielderror(L, arg, "alpn", lua_pushfstring(L,
                     "item %I: string expected, got %s", (LUAI_UACINT)i,
                     luaL_typename(L, -1)));
    lua_tolstring(L, -1, &len);
    if (len < 1 || len > 255)
      tls_fielderror(L, arg, "alpn", lua_pushfstring(L,
                     "item %I: 1..255 bytes expected", (LUAI_UACINT)i));
    total += 1 + len;
    lua_pop(L, 1);
  }
  if (total > 65535)
    tls_fielderror(L, arg, "alpn", "list longer than 65535 bytes");
  return total;
}

/* The checked list at idx in wire format into p (tls_checkalpn's size). */
static void tls_wirealpn(lua_State *L, int idx, unsigned char *p) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  size_t len;
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, idx, i);
    s = lua_tolstring(L, -1, &len);
    *p++ = (unsigned char)len;  /* 1..255: checked */
    memcpy(p, s, len);
    p += len;
    lua_pop(L, 1);
  }
}

/* An option table is read once, raw (lua_next: no __index, no metamethod
 * runs), each value checked and copied into the stack slot base + field
 * (nil when absent); every later read is of those slots. Lua code that
 * runs afterwards (a finalizer, at any allocation) cannot change them, and
 * they keep the strings alive for as long as C uses them. On entry the
 * stack top is base - 1. */
static void tls_slots(lua_State *L, int base, int n) {
  luaL_checkstack(L, n + 8, "too many options");
  lua_settop(L, base + n - 1);
}

/* tls.context's options (arg 1) into the slots from base. */
static size_t tls_checksni(lua_State *L, int arg, int idx);

static void tls_checkopts(lua_State *L, int arg, int base) {
  size_t len;
  tls_slots(L, base, F_N);
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    const char *k;
    int f;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L, "field names must be strings, got %s",
                    luaL_typename(L, -2)));
    k = lua_tolstring(L, -2, &len);
    if ((f = tls_find(tls_fields, k, len)) < 0)
      tls_fielderror(L, arg, k, "unknown option");
    if (lua_type(L, -1) != tls_fieldtypes[f])
      tls_fielderror(L, arg, k, lua_pushfstring(L, "%s expected, got %s",
                     lua_typename(L, tls_fieldtypes[f]), luaL_typename(L, -1)));
    if (tls_fieldtypes[f] == LUA_TSTRING) {
      const char *v = lua_tolstring(L, -1, &len);
      if (strlen(v) != len)
        tls_fielderror(L, arg, k, "contains a zero byte");
      if ((f == F_MINV || f == F_MAXV) && tls_find(tls_versions, v, len) < 0)
        tls_fielderror(L, arg, k, lua_pushfstring(L, "unknown version '%s'", v));
    }
    lua_copy(L, -1, base + f);
    lua_pop(L, 1);
  }
  if (lua_type(L, base + F_ALPN) == LUA_TTABLE)
    tls_checkalpn(L, arg, base + F_ALPN);
  if (lua_type(L, base + F_SNI) == LUA_TTABLE)
    tls_checksni(L, arg, base + F_SNI);
}

/* The sni table at idx checked: names to open contexts; its entry count. */
static size_t tls_checksni(lua_State *L, int arg, int idx) {
  size_t n = 0, len;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *name;
    tls_CtxBox *b;
    if (lua_type(L, -2) != LUA_TSTRING)
      tls_fielderror(L, arg, "sni", "host names expected as keys");
    name = lua_tolstring(L, -2, &len);
    if (len == 0 || strlen(name) != len)
      tls_fielderror(L, arg, "sni", "empty name or zero byte in a name");
    b = (tls_CtxBox *)luaL_testudata(L, -1, TLS_CTX_T);
    if (b == NULL || b->c == NULL)
      tls_fielderror(L, arg, "sni", lua_pushfstring(L,
                     "'%s': open " TLS_CTX_T " expected", name));
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* A slot's string (the slot keeps it alive), or NULL. */
static const char *tls_optstring(lua_State *L, int slot) {
  return lua_type(L, slot) == LUA_TSTRING ? lua_tostring(L, slot) : NULL;
}

/* A slot's boolean: -1 absent, 0 false, 1 true. */
static int tls_optbool(lua_State *L, int slot) {
  return lua_isnil(L, slot) ? -1 : lua_toboolean(L, slot);
}

typedef struct tls_Password {
  const char *s;
  size_t len;
} tls_Password;

/* Never a terminal prompt: no password given fails the load. */
static int tls_passwordcb(char *buf, int size, int rwflag, void *ud) {
  const tls_Password *pw = (const tls_Password *)ud;
  (void)rwflag;
  if (pw == NULL || pw->s == NULL || size < 0 || pw->len > (size_t)size)
    return 0;
  memcpy(buf, pw->s, pw->len);
  return (int)pw->len;
}

/* TLS 1.3 tickets arrive after the handshake, whenever the client reads:
 * this is the one place that sees them. Keeps the newest, drops the older. */
static int tls_newsession(SSL *ssl, SSL_SESSION *sess) {
  tls_Session *s = (tls_Session *)SSL_get_app_data(ssl);
  if (s == NULL || s->server)
    return 0;  /* not taken: OpenSSL frees it */
  SSL_SESSION_free(s->newest);
  s->newest = sess;
  return 1;
}

static int tls_alpnselect(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  const tls_Ctx *c = (const tls_Ctx *)arg;
  unsigned char *sel;
  (void)ssl;
  if (c->alpnlen == 0 || inlen == 0)
    return SSL_TLSEXT_ERR_NOACK;
  /* the first of the server's list that the client offers */
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpnlen, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  /* no overlap: no ALPN, not a failure */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* "*.example.org" matches one label: "a.example.org", not "a.b.example.org". */
static tls_Ctx *tls_snimatch(const tls_Ctx *c, const char *name) {
  const char *dot = strchr(name, '.');
  size_t i;
  for (i = 0; i < c->nsni; i++)
    if (strcasecmp(c->sni[i].name, name) == 0)
      return c->sni[i].ctx;
  if (dot == NULL || dot == name)
    return NULL;
  for (i = 0; i < c->nsni; i++) {
    const char *p = c->sni[i].name;
    if (p[0] == '*' && p[1] == '.' && strcasecmp(p + 1, dot) == 0)
      return c->sni[i].ctx;
  }
  return NULL;
}

static int tls_verifymode(int on, int server) {
  if (!on)
    return SSL_VERIFY_NONE;
  return server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                : SSL_VERIFY_PEER;
}

/* The host name of a server_name extension's body (RFC 6066, section 3:
 * a 2-byte list length, then one entry: type 0, a 2-byte length, the name)
 * into buf (at least 256 bytes), NUL-terminated; 0 when it is malformed,
 * empty, longer than 255 bytes or holds a zero byte (OpenSSL then refuses
 * the ClientHello itself). */
static int tls_parsesni(const unsigned char *p, size_t len, char *buf) {
  size_t n;
  if (len < 5 || (((size_t)p[0] << 8) | p[1]) != len - 2 || p[2] != 0)
    return 0;
  n = ((size_t)p[3] << 8) | p[4];
  if (n == 0 || n > 255 || n != len - 5 || memchr(p + 5, 0, n) != NULL)
    return 0;
  memcpy(buf, p + 5, n);
  buf[n] = '\0';
  return 1;
}

/* The SNI switch, made where the ClientHello is first seen: before OpenSSL
 * parses its extensions, before a ticket or PSK is looked at, so that the
 * child's session id context (and its verify mode) decide whether a session
 * resumes. A servername callback would run after that decision: a ticket
 * from a context without mTLS then resumed on one with it. A second
 * ClientHello (after a HelloRetryRequest) must name the same host. */
static int tls_clienthello(SSL *ssl, int *al, void *arg) {
  tls_Ctx *c = (tls_Ctx *)arg;
  tls_Session *s = (tls_Session *)SSL_get_app_data(ssl);
  const unsigned char *p;
  size_t len;
  char name[256];
  int has;
  tls_Ctx *m;
  if (s == NULL)
    return SSL_CLIENT_HELLO_SUCCESS;
  has = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1 &&
        tls_parsesni(p, len, name);
  if (s->hellos++ > 0) {
    if (has ? strcmp(name, s->name) == 0 : s->name[0] == '\0')
      return SSL_CLIENT_HELLO_SUCCESS;
    *al = SSL_AD_ILLEGAL_PARAMETER;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (!has)
    return SSL_CLIENT_HELLO_SUCCESS;
  memcpy(s->name, name, sizeof name);
  if ((m = tls_snimatch(c, name)) == NULL)
    return SSL_CLIENT_HELLO_SUCCESS;  /* no match keeps this context */
  if (SSL_set_SSL_CTX(ssl, m->ctx) == NULL) {
    *al = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (m->verify >= 0)
    SSL_set_verify(ssl, tls_verifymode(m->verify, 1), NULL);
  m->refs++;  /* its alpn list must live as long as this SSL uses it */
  s->sni = m;
  return SSL_CLIENT_HELLO_SUCCESS;
}

/* Load cert, key and ca; nil, message (2) on a failure, else 0. */
static int tls_loadfiles(lua_State *L, SSL_CTX *ctx, int base) {
  const char *cert = tls_optstring(L, base + F_CERT);
  const char *key = tls_optstring(L, base + F_KEY);
  const char *ca = tls_optstring(L, base + F_CA);
  tls_Password pw;
  int ok;
  if (key != NULL && cert == NULL)
    tls_fielderror(L, 1, "key", "given without 'cert'");
  pw.s = tls_optstring(L, base + F_PASSWORD);
  pw.len = pw.s != NULL ? strlen(pw.s) : 0;
  if (cert != NULL) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
      return tls_loadfail(L, "cert", cert);
    if (key == NULL)
      key = cert;
    SSL_CTX_set_default_passwd_cb(ctx, tls_passwordcb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &pw);
    ok = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 &&
         SSL_CTX_check_private_key(ctx) == 1;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);  /* pw is on our stack */
    if (!ok)
      return tls_loadfail(L, "key", key);
  }
  if (ca != NULL) {
    struct stat st;
    if (stat(ca, &st) == -1) {
      luaL_pushfail(L);
      lua_pushfstring(L, "tls: ca %s: %s", ca, strerror(errno));
      return 2;
    }
    ok = S_ISDIR(st.st_mode) ? SSL_CTX_load_verify_dir(ctx, ca)
                             : SSL_CTX_load_verify_file(ctx, ca);
    if (ok != 1)
      return tls_loadfail(L, "ca", ca);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return tls_loadfail(L, "ca", "(system default)");
  }
  return 0;
}

/* The version a checked slot names; the lowest or highest when absent. */
static int tls_optversion(lua_State *L, int slot, int absent) {
  size_t len;
  const char *s = lua_tolstring(L, slot, &len);
  int i = s != NULL ? tls_find(tls_versions, s, len) : -1;
  return i >= 0 ? tls_versionnums[i] : absent;
}

/* Every other option of the checked slots from base into c; nil, message
 * (2) on a failure, else 0. */
static int tls_applyopts(lua_State *L, tls_Ctx *c, int base) {
  SSL_CTX *ctx = c->ctx;
  const char *s;
  int lo = tls_optversion(L, base + F_MINV, TLS1_2_VERSION);
  int hi = tls_optversion(L, base + F_MAXV, 0);
  if ((s = tls_optstring(L, base + F_MAXV)) == NULL)
    s = tls_optstring(L, base + F_MINV);
  if (hi != 0 && hi < lo)
    tls_fielderror(L, 1, "max_version", "below min_version");
  if (SSL_CTX_set_min_proto_version(ctx, lo) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, hi) != 1)
    return tls_loadfail(L, "version", s != NULL ? s : "range");
  if ((s = tls_optstring(L, base + F_CIPHERS)) != NULL &&
      SSL_CTX_set_cipher_list(ctx, s) != 1)
    return tls_loadfail(L, "ciphers", s);
  if ((s = tls_optstring(L, base + F_SUITES)) != NULL &&
      SSL_CTX_set_ciphersuites(ctx, s) != 1)
    return tls_loadfail(L, "ciphersuites", s);
  c->verify = tls_optbool(L, base + F_VERIFY);
  if (tls_optbool(L, base + F_TICKETS) == 0) {
    /* no ticket at all: SSL_OP_NO_TICKET alone makes TLS 1.3 send stateful
     * ones instead, and those would still resume */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  if (lua_type(L, base + F_ALPN) == LUA_TTABLE) {
    /* checked again: a finalizer may have changed it since; nothing but
     * malloc comes between this check and the copy */
    size_t n = tls_checkalpn(L, 1, base + F_ALPN);
    if (n > 0) {
      if ((c->alpn = malloc(n)) == NULL)
        return luaL_error(L, "not enough memory");
      tls_wirealpn(L, base + F_ALPN, c->alpn);
      c->alpnlen = (unsigned int)n;  /* <= 65535: checked */
      if (SSL_CTX_set_alpn_protos(ctx, c->alpn, c->alpnlen) != 0)  /* 0 is success */
        return tls_loadfail(L, "alpn", "list");
      SSL_CTX_set_alpn_select_cb(ctx, tls_alpnselect, c);
    }
  }
  if (lua_type(L, base + F_SNI) == LUA_TTABLE) {
    int t = base + F_SNI;
    size_t n = tls_checksni(L, 1, t);  /* again: a child may have closed */
    if (n > 0 && (c->sni = calloc(n, sizeof *c->sni)) == NULL)
      return luaL_error(L, "not enough memory");
    lua_pushnil(L);
    while (c->nsni < n && lua_next(L, t) != 0) {
      tls_Sni *e = &c->sni[c->nsni];
      if ((e->name = strdup(lua_tostring(L, -2))) == NULL)
        return luaL_error(L, "not enough memory");
      e->ctx = ((tls_CtxBox *)lua_touserdata(L, -1))->c;
      e->ctx->refs++;
      c->nsni++;
      lua_pop(L, 1);
    }
  }
  return 0;
}

/***
 * Make a TLS context: certificates, trust, protocol options.
 * @function context
 * @tparam[opt] table opts `cert`, `key`, `password`, `ca`, `verify`,
 *   `alpn`, `sni`, `min_version`, `max_version`, `ciphers`, `ciphersuites`,
 *   `tickets` (see docs/tls.md); an unknown field or a wrong type raises
 * @treturn[1] lepoll.tls.context
 * @return[2] nil
 * @treturn[2] string `"tls: cert /path: reason"` and the like
 */
static int tls_context(lua_State *L) {
  unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
  tls_CtxBox *b;
  tls_Ctx *c;
  int r;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  tls_checkopts(L, 1, 2);  /* slots 2 .. F_N + 1 */
  b = (tls_CtxBox *)lua_newuserdatauv(L, sizeof *b, 0);  /* F_N + 2 */
  b->c = NULL;  /* closed until made: a raise below leaves nothing half-made */
  luaL_setmetatable(L, TLS_CTX_T);
  if ((c = calloc(1, sizeof *c)) == NULL)
    return luaL_error(L, "not enough memory");
  c->refs = 1;
  c->verify = -1;
  b->c = c;
  ERR_clear_error();
  if ((c->ctx = SSL_CTX_new(TLS_method())) == NULL) {
    luaL_pushfail(L);
    tls_pushreason(L, "", ERR_peek_error());
    return 2;
  }
  SSL_CTX_set_app_data(c->ctx, c);
  /* No auto chain: the chain is what the cert file holds (as nginx
   * does); building it from the CA store cost a directory scan of
   * /etc/ssl/certs in every server handshake. Read-ahead: one read(2) per
   * record, not one for its header and one for its body. */
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_read_ahead(c->ctx, 1);
  /* Clients keep no cache of their own (s:session() hands sessions to
   * Lua); servers resume from stateless tickets only, so no server-side
   * session cache grows either. */
  SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT |
                                 SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c->ctx, tls_newsession);
  /* Sessions resume only under the context that made them: each context
   * has its own session id context, so a ticket that one context's keys
   * open (a parent's, while an sni child served the session) never resumes
   * under another, whose verify and certificates it never saw. */
  if (RAND_bytes(sid, (int)sizeof sid) != 1 ||
      SSL_CTX_set_session_id_context(c->ctx, sid, sizeof sid) != 1) {
    luaL_pushfail(L);
    tls_pushreason(L, "", ERR_peek_error());
    return 2;
  }
  /* every server records the name a client sent (s:info().sni); a
   * context with sni switches there too */
  SSL_CTX_set_client_hello_cb(c->ctx, tls_clienthello, c);
  if ((r = tls_loadfiles(L, c->ctx, 2)) != 0 || (r = tls_applyopts(L, c, 2)) != 0)
    return r;
  ERR_clear_error();
  lua_settop(L, F_N + 2);
  return 1;
}

/***
 * Close a context (idempotent). Sessions made from it keep what they use.
 * @function context:close
 */
static int tls_ctxclose(lua_State *L) {
  tls_CtxBox *b = (tls_CtxBox *)luaL_checkudata(L, 1, TLS_CTX_T);
  tls_Ctx *c = b->c;
  b->c = NULL;
  tls_release(c);
  return 0;
}

static int tls_ctxtostring(lua_State *L) {
  tls_CtxBox *b = (tls_CtxBox *)luaL_checkudata(L, 1, TLS_CTX_T);
  if (b->c == NULL)
    lua_pushliteral(L, TLS_CTX_T " (closed)");
  else
    lua_pushfstring(L, TLS_CTX_T " (%p)", (void *)b->c);
  return 1;
}

/* ---- sessions ---------------------------------------------------------- */

static tls_Session *tls_checksession(lua_State *L) {
  tls_Session *s = (tls_Session *)luaL_checkudata(L, 1, TLS_SESSION_T);
  if (s->ssl == NULL)
    luaL_error(L, "attempt to use a freed TLS session");
  return s;
}

static int tls_isip(const char *name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

enum { N_NAME, N_VERIFY, N_ALPN, N_SESSION, N_N };
static const char *const tls_sessfields[] = {
  "server_name", "verify", "alpn", "session", NULL
};
static const int tls_sesstypes[] = {
  LUA_TSTRING, LUA_TBOOLEAN, LUA_TTABLE, LUA_TSTRING
};

/* tls.new's options (arg 4) into the slots 5 .. 4 + N_N (see tls_slots). */
static void tls_checknewopts(lua_State *L, int server) {
  size_t len;
  tls_slots(L, 5, N_N);
  lua_pushnil(L);
  while (lua_next(L, 4) != 0) {
    const char *k;
    int f;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_argerror(L, 4, "field names must be strings");
    k = lua_tolstring(L, -2, &len);
    if ((f = tls_find(tls_sessfields, k, len)) < 0)
      tls_fielderror(L, 4, k, "unknown option");
    if (server)
      tls_fielderror(L, 4, k, "client only");
    if (lua_type(L, -1) != tls_sesstypes[f])
      tls_fielderror(L, 4, k, lua_pushfstring(L, "%s expected, got %s",
                     lua_typename(L, tls_sesstypes[f]), luaL_typename(L, -1)));
    if (f == N_NAME) {
      const char *v = lua_tolstring(L, -1, &len);
      if (len == 0 || strlen(v) != len)
        tls_fielderror(L, 4, k, "empty or contains a zero byte");
    }
    lua_copy(L, -1, 5 + f);
    lua_pop(L, 1);
  }
  if (lua_type(L, 5 + N_ALPN) == LUA_TTABLE)
    tls_checkalpn(L, 4, 5 + N_ALPN);
}

/* The client options (checked) into s; nil, message (2) on a failure. */
static int tls_clientopts(lua_State *L, tls_Session *s) {
  const char *name = tls_optstring(L, 5 + N_NAME);
  const char *der;
  size_t len;
  if (name != NULL) {
    if (tls_isip(name)) {  /* no SNI for an address (RFC 6066, section 3) */
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name) != 1)
        return tls_loadfail(L, "server_name", name);
    } else {
      SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set_tlsext_host_name(s->ssl, name) != 1 ||
          SSL_set1_host(s->ssl, name) != 1)
        return tls_loadfail(L, "server_name", name);
    }
  }
  if (lua_type(L, 5 + N_ALPN) == LUA_TTABLE) {
    /* checked again, then copied with nothing but malloc between: a
     * finalizer (run by any Lua allocation) may have changed it */
    size_t n = tls_checkalpn(L, 4, 5 + N_ALPN);
    unsigned char *p = malloc(n > 0 ? n : 1);
    int set;
    if (p == NULL)
      return luaL_error(L, "not enough memory");
    tls_wirealpn(L, 5 + N_ALPN, p);
    set = SSL_set_alpn_protos(s->ssl, n > 0 ? p : NULL, (unsigned int)n) == 0;
    free(p);  /* OpenSSL keeps a copy */
    if (!set)
      return tls_loadfail(L, "alpn", "list");
  }
  if (lua_type(L, 5 + N_SESSION) == LUA_TSTRING) {
    const unsigned char *p;
    SSL_SESSION *sess;
    der = lua_tolstring(L, 5 + N_SESSION, &len);
    p = (const unsigned char *)der;
    if (len > LONG_MAX || (sess = d2i_SSL_SESSION(NULL, &p, (long)len)) == NULL) {
      ERR_clear_error();
      tls_fielderror(L, 4, "session", "not a TLS session");
      return 0;
    }
    int set = SSL_set_session(s->ssl, sess) == 1;
    SSL_SESSION_free(sess);  /* the SSL holds its own reference */
    if (!set)
      return tls_loadfail(L, "session", "(given)");
  }
  return 0;
}

/***
 * Start a TLS session on a connected socket.
 * @function new
 * @tparam lepoll.tls.context ctx
 * @param fd the socket (an integer or an fd object; never closed here)
 * @tparam string role `"server"` or `"client"`
 * @tparam[opt] table opts client only: `server_name`, `verify`, `alpn`,
 *   `session`
 * @treturn[1] lepoll.tls.session
 * @return[2] nil
 * @treturn[2] string message
 */
static int tls_new(lua_State *L) {
  static const char *const roles[] = {"server", "client", NULL};
  tls_Ctx *c;
  tls_Session *s;
  int fd, server, verify;
  tls_checkctx(L, 1);  /* the pointer is taken below: Lua may run until then */
  fd = lp_checkfd(L, 2);  /* may call a fileno() method */
  server = lp_checkoption(L, 3, NULL, roles) == 0;
  if (lua_isnoneornil(L, 4)) {
    lua_settop(L, 3);
    lua_newtable(L);
  }
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  tls_checknewopts(L, server);  /* slots 5 .. 4 + N_N */
  s = (tls_Session *)lua_newuserdatauv(L, sizeof *s, 0);  /* 5 + N_N */
  memset(s, 0, sizeof *s);  /* freed until made */
  luaL_setmetatable(L, TLS_SESSION_T);
  /* No Lua runs from here to the reference (no allocation: no finalizer):
   * whatever closed the context before raises now, never a dangling c. */
  c = tls_checkctx(L, 1);
  s->ctx = c;
  c->refs++;
  verify = tls_optbool(L, 5 + N_VERIFY);
  if (verify < 0)
    verify = c->verify >= 0 ? c->verify : !server;
  ERR_clear_error();
  if ((s->ssl = SSL_new(c->ctx)) == NULL) {
    luaL_pushfail(L);
    tls_pushreason(L, "", ERR_peek_error());
    return 2;
  }
  s->fd = fd;
  s->server = server;
  SSL_set_app_data(s->ssl, s);
  if (SSL_set_fd(s->ssl, fd) != 1) {
    luaL_pushfail(L);
    tls_pushreason(L, "", ERR_peek_error());
    return 2;
  }
  SSL_set_verify(s->ssl, tls_verifymode(verify, server), NULL);
  if (server) {
    SSL_set_accept_state(s->ssl);
  } else {
    int r;
    SSL_set_connect_state(s->ssl);
    if ((r = tls_clientopts(L, s)) != 0)
      return r;
  }
  ERR_clear_error();
  lua_settop(L, 5 + N_N);
  return 1;
}

/* The result of a failed call: SSL_get_error's err and the errno en saved
 * right after the call. The queue is drained. */
static int tls_fail(lua_State *L, tls_Session *s, int err, int en) {
  unsigned long e, first = 0;
  int verify = 0, eof = 0;
  switch (err) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    lua_pushboolean(L, 0);
    lua_pushstring(L, err == SSL_ERROR_WANT_READ ? "read" : "write");
    ERR_clear_error();
    return 2;
  case SSL_ERROR_ZERO_RETURN:
    luaL_pushfail(L);
    lua_pushliteral(L, "closed");
    ERR_clear_error();
    return 2;
  default:
    break;
  }
  s->fatal = 1;
  while ((e = ERR_get_error()) != 0) {
    if (first == 0)
      first = e;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
      verify = 1;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      eof = 1;
  }
  luaL_pushfail(L);
  if (eof || (err == SSL_ERROR_SYSCALL && first == 0 && en == 0)) {
    lua_pushliteral(L, "closed");
    lua_pushliteral(L, "truncated");
    return 3;
  }
  if (err == SSL_ERROR_SYSCALL && first == 0) {
    lua_pushfstring(L, "tls: %s", strerror(en));
    lua_pushinteger(L, en);
    return 3;
  }
  if (verify) {
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK) {
      lua_pushfstring(L, "tls: certificate verify failed: %s",
                      X509_verify_cert_error_string(v));
      return 2;
    }
  }
  tls_pushreason(L, "", first);
  return 2;
}

/* Whether a failed SSL call was a read(2) or write(2) that a signal
 * interrupted. OpenSSL's socket BIO counts EINTR among the retryable errors
 * (BIO_sock_should_retry), so it comes back as SSL_ERROR_WANT_READ or
 * WANT_WRITE, never as SSL_ERROR_SYSCALL. Passed on as a want, the caller
 * would wait for readiness that the fd may already have, and under
 * edge-triggered epoll no new edge need ever come: the call is made again
 * at once instead (like SA_RESTART). On a non-blocking socket read and
 * write never sleep, and Linux reports EINTR only from a call that slept,
 * so this practically never happens; each retry is one more syscall that
 * moves bytes or reports EAGAIN, never a spin. errno is zeroed before the
 * call: EINTR here is the last failed syscall's. */
static int tls_interrupted(int err, int en) {
  return en == EINTR && ERR_peek_error() == 0 &&
         (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
          err == SSL_ERROR_SYSCALL);
}

/* Runs one SSL call: ERR_clear_error first, errno saved right after it,
 * again while tls_interrupted. */
#define TLS_CALL(s, ok, call, err, en) \
  for (;;) { \
    ERR_clear_error(); \
    errno = 0; \
    ok = (call); \
    en = errno; \
    if (ok > 0) \
      break; \
    err = SSL_get_error((s)->ssl, ok); \
    if (!tls_interrupted(err, en)) \
      break; \
  }

/***
 * Run (or go on with) the handshake.
 * @function session:handshake
 * @treturn[1] boolean true when done
 * @return[2] false
 * @treturn[2] string `"read"` or `"write"`: what to wait for before calling again
 * @return[3] nil
 * @treturn[3] string message
 * @treturn[3] integer errno (a socket error), or `"truncated"`
 */
static int tls_handshake(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  int ok, err = 0, en;
  TLS_CALL(s, ok, SSL_do_handshake(s->ssl), err, en);
  if (ok == 1) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return tls_fail(L, s, err, en);
}

/***
 * Read decrypted bytes: at most one record more than `pending` holds, so a
 * huge max costs nothing.
 * @function session:read
 * @tparam integer max 1..2^30
 * @treturn[1] string 1..max bytes
 * @return[2] false
 * @treturn[2] string want: `"read"` or `"write"`
 * @return[3] nil
 * @treturn[3] string message (`"closed"` for the peer's close_notify)
 * @treturn[3] integer errno, or `"truncated"` (an end without close_notify)
 */
static int tls_read(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  size_t max = (size_t)lp_checkrange(L, 2, 1, TLS_READMAX);
  int pend = SSL_pending(s->ssl);
  size_t n = TLS_RECORD + (size_t)(pend > 0 ? pend : 0), got = 0;
  int ok, err = 0, en;
  luaL_Buffer b;
  char *p, small[TLS_RECORD];
  if (n > max)
    n = max;
  if (n <= sizeof small) {  /* the common read: no allocation but the string */
    TLS_CALL(s, ok, SSL_read_ex(s->ssl, small, n, &got), err, en);
    if (ok == 1) {
      lua_pushlstring(L, small, got);
      return 1;
    }
    return tls_fail(L, s, err, en);
  }
  p = luaL_buffinitsize(L, &b, n);
  TLS_CALL(s, ok, SSL_read_ex(s->ssl, p, n, &got), err, en);
  if (ok == 1) {
    luaL_pushresultsize(&b, got);
    return 1;
  }
  return tls_fail(L, s, err, en);
}

/***
 * Write bytes of str from i: at least one byte is taken on success
 * (partial writes). After `false, want`, call again with the same bytes.
 * @function session:write
 * @tparam string str
 * @tparam[opt=1] integer i the first byte (1..); past the end: 0 is returned
 * @treturn[1] integer bytes taken
 * @return[2] false
 * @treturn[2] string want
 * @return[3] nil
 * @treturn[3] string message
 * @treturn[3] integer errno
 */
static int tls_write(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  size_t len, n, done = 0;
  const char *str = lp_checkstr(L, 2, &len);
  lua_Integer i = lp_optrange(L, 3, 1, LUA_MAXINTEGER, 1);
  int ok, err = 0, en;
  if ((lua_Unsigned)i > len) {
    lua_pushinteger(L, 0);
    return 1;
  }
  n = len - (size_t)(i - 1);
  TLS_CALL(s, ok, SSL_write_ex(s->ssl, str + (i - 1), n, &done), err, en);
  if (ok == 1) {
    lua_pushinteger(L, (lua_Integer)done);
    return 1;
  }
  return tls_fail(L, s, err, en);
}

/***
 * Send our close_notify (without waiting for the peer's).
 * @function session:shutdown
 * @treturn[1] boolean true once sent
 * @return[2] false
 * @treturn[2] string want
 * @return[3] nil
 * @treturn[3] string message
 */
static int tls_shutdown(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  int ok, err = 0, en;
  if (s->fatal) {  /* OpenSSL forbids it after a fatal error */
    luaL_pushfail(L);
    lua_pushliteral(L, "tls: shutdown after a fatal error");
    return 2;
  }
  for (;;) {  /* TLS_CALL, but 0 is a success too */
    ERR_clear_error();
    errno = 0;
    ok = SSL_shutdown(s->ssl);
    en = errno;
    if (ok >= 0)
      break;
    err = SSL_get_error(s->ssl, ok);
    if (!tls_interrupted(err, en))
      break;
  }
  if (ok >= 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return tls_fail(L, s, err, en);
}

/***
 * Decrypted bytes held by OpenSSL, not yet read; and whether it holds any
 * input at all (with read-ahead, records read from the socket but not
 * yet decrypted count too: SSL_has_pending).
 * @function session:pending
 * @treturn integer
 * @treturn boolean
 */
static int tls_pending(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  lua_pushinteger(L, SSL_pending(s->ssl));
  lua_pushboolean(L, SSL_has_pending(s->ssl));
  return 2;
}

/* The name as one RFC 2253 line, or nil. */
static void tls_pushname(lua_State *L, const X509_NAME *name) {
  BIO *bio;
  char *p;
  long n;
  if (name == NULL || (bio = BIO_new(BIO_s_mem())) == NULL) {
    lua_pushnil(L);
    return;
  }
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0 ||
      (n = BIO_get_mem_data(bio, &p)) < 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, p, (size_t)n);
  BIO_free(bio);
}

/***
 * What was negotiated: version, cipher, bits, alpn, sni, subject, issuer,
 * resumed, verified.
 * @function session:info
 * @treturn table
 */
static int tls_info(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  const SSL_CIPHER *ci = SSL_get_current_cipher(s->ssl);
  const unsigned char *alpn = NULL;
  unsigned int alpnlen = 0;
  const char *sni = s->server ? (s->name[0] != '\0' ? s->name : NULL)
                              : SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
  X509 *peer = SSL_get0_peer_certificate(s->ssl);
  ERR_clear_error();
  lua_createtable(L, 0, 9);
  lua_pushstring(L, SSL_get_version(s->ssl));
  lua_setfield(L, -2, "version");
  if (ci != NULL) {
    lua_pushstring(L, SSL_CIPHER_get_name(ci));
    lua_setfield(L, -2, "cipher");
    lua_pushinteger(L, SSL_CIPHER_get_bits(ci, NULL));
    lua_setfield(L, -2, "bits");
  }
  SSL_get0_alpn_selected(s->ssl, &alpn, &alpnlen);
  if (alpn != NULL && alpnlen > 0) {
    lua_pushlstring(L, (const char *)alpn, alpnlen);
    lua_setfield(L, -2, "alpn");
  }
  if (sni != NULL) {
    lua_pushstring(L, sni);
    lua_setfield(L, -2, "sni");
  }
  if (peer != NULL) {
    tls_pushname(L, X509_get_subject_name(peer));
    lua_setfield(L, -2, "subject");
    tls_pushname(L, X509_get_issuer_name(peer));
    lua_setfield(L, -2, "issuer");
  }
  lua_pushboolean(L, SSL_session_reused(s->ssl));
  lua_setfield(L, -2, "resumed");
  lua_pushboolean(L, peer != NULL && (SSL_get_verify_mode(s->ssl) & SSL_VERIFY_PEER) &&
                     SSL_get_verify_result(s->ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  return 1;
}

/***
 * The newest session a ticket brought (client), serialised for `new`'s
 * `session` option; nil before one arrived.
 * @function session:session
 * @treturn string|nil
 */
static int tls_sessionder(lua_State *L) {
  tls_Session *s = tls_checksession(L);
  luaL_Buffer b;
  unsigned char *p;
  int n;
  ERR_clear_error();
  if (s->newest == NULL || (n = i2d_SSL_SESSION(s->newest, NULL)) <= 0) {
    ERR_clear_error();
    lua_pushnil(L);
    return 1;
  }
  p = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
  if (i2d_SSL_SESSION(s->newest, &p) != n) {
    ERR_clear_error();
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/***
 * The socket's fd, as given to `new`.
 * @function session:fd
 * @treturn integer
 */
static int tls_fd(lua_State *L) {
  lua_pushinteger(L, tls_checksession(L)->fd);
  return 1;
}

/***
 * Free the session's OpenSSL state (idempotent; the fd stays open). Also
 * `__gc` and `__close`; no other method works after it.
 * @function session:free
 */
static int tls_free(lua_State *L) {
  tls_Session *s = (tls_Session *)luaL_checkudata(L, 1, TLS_SESSION_T);
  if (s->ssl != NULL) {
    SSL *ssl = s->ssl;
    s->ssl = NULL;
    SSL_free(ssl);  /* never writes: no close_notify, the fd may be gone */
  }
  SSL_SESSION_free(s->newest);
  s->newest = NULL;
  tls_release(s->sni);
  s->sni = NULL;
  tls_release(s->ctx);
  s->ctx = NULL;
  return 0;
}

static int tls_sesstostring(lua_State *L) {
  tls_Session *s = (tls_Session *)luaL_checkudata(L, 1, TLS_SESSION_T);
  if (s->ssl == NULL)
    lua_pushliteral(L, TLS_SESSION_T " (freed)");
  else
    lua_pushfstring(L, TLS_SESSION_T " (fd %d, %s)", s->fd,
                    s->server ? "server" : "client");
  return 1;
}

/* ---- the module -------------------------------------------------------- */

static const luaL_Reg tls_ctxmethods[] = {
  {"close",      tls_ctxclose},
  {NULL, NULL}
};

static const luaL_Reg tls_ctxmeta[] = {
  {"__index",    NULL},
  {"__gc",       tls_ctxclose},
  {"__close",    tls_ctxclose},
  {"__tostring", tls_ctxtostring},
  {NULL, NULL}
};

static const luaL_Reg tls_sessmethods[] = {
  {"handshake",  tls_handshake},
  {"read",       tls_read},
  {"write",      tls_write},
  {"shutdown",   tls_shutdown},
  {"pending",    tls_pending},
  {"info",       tls_info},
  {"session",    tls_sessionder},
  {"fd",         tls_fd},
  {"free",       tls_free},
  {NULL, NULL}
};

static const luaL_Reg tls_sessmeta[] = {
  {"__index",    NULL},
  {"__gc",       tls_free},
  {"__close",    tls_free},
  {"__tostring", tls_sesstostring},
  {NULL, NULL}
};

static const luaL_Reg tls_funcs[] = {
  {"context",    tls_context},
  {"new",        tls_new},
  {NULL, NULL}
};

static void tls_newtype(lua_State *L, const char *tname, const luaL_Reg *meta,
                        const luaL_Reg *methods) {
  if (luaL_newmetatable(L, tname)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

/***
 * OpenSSL's version, e.g. `"OpenSSL 3.0.19 27 Jan 2026"`.
 * @field version
 */

/***
 * The library version, `"lepoll 0.1.0"`.
 * @field _VERSION
 */
LEPOLL_API int luaopen_lepoll_tls(lua_State *L);

LEPOLL_API int luaopen_lepoll_tls(lua_State *L) {
  luaL_checkversion(L);
  if (OPENSSL_init_ssl(0, NULL) != 1)
    return luaL_error(L, "lepoll.tls: OpenSSL failed to initialise");
  tls_newtype(L, TLS_CTX_T, tls_ctxmeta, tls_ctxmethods);
  tls_newtype(L, TLS_SESSION_T, tls_sessmeta, tls_sessmethods);
  luaL_newlib(L, tls_funcs);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "version");
  lp_setmodinfo(L);
  return 1;
}
