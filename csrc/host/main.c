/* main.c - the lepoll program: a Lua 5.4 interpreter with lepoll built in, lua(1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "interrupt.h"
#include "lineedit.h"
#include "lepoll.h"

#if LUA_VERSION_NUM != 504
#error "lepoll targets Lua 5.4"
#endif

#define HOST_PROGNAME "lepoll"

/* What the command line asks for (lua(1)'s options). */
typedef struct host_Opts {
  const char *progname;  /* argv[0], for messages; NULL inside the REPL */
  char **argv;
  int argc;
  int script;      /* argv index of the script, 0 when there is none */
  int optend;      /* first argv index after the options */
  int version;     /* -v (and -i) */
  int interactive; /* -i */
  int execute;     /* some -e */
  int noenv;       /* -E */
  const char *workers; /* --workers N: run the script on N workers */
  const char *bad; /* the offending option, if any */
} host_Opts;

static void host_message(const char *progname, const char *msg) {
  if (progname != NULL)
    fprintf(stderr, "%s: ", progname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

static void host_usage(const host_Opts *o) {
  const char *b = o->bad;
  if (b[1] == 'e' || b[1] == 'l' || strcmp(b, "--workers") == 0)
    fprintf(stderr, "%s: '%s' needs argument\n", o->progname, b);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", o->progname, b);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Runs a Lua 5.4 script with lepoll built in. Options:\n"
          "  -e chunk  run the string 'chunk'\n"
          "  -i        interactive mode after the script\n"
          "  -l mod    require 'mod', set global 'mod' to the result\n"
          "  -l g=mod  require 'mod', set global 'g' to the result\n"
          "  -v        print the version\n"
          "  -E        ignore LUA_INIT, LUA_PATH and LUA_CPATH\n"
          "  --workers N  run the script on N workers (or 'auto': one per CPU)\n"
          "               under a master: lepoll.workers{count = N}\n"
          "  -W        turn warnings on\n"
          "  --        end of options\n"
          "  -         end of options, run standard input\n",
          o->progname);
  fflush(stderr);
}

static void host_version(void) {
  printf("lepoll %s  %s\n", LEPOLL_VERSION, LUA_COPYRIGHT);
  fflush(stdout);
}

/* Parse the options as lua(1) does; 0 (and o->bad set) on a bad one. */
static int host_parseargs(int argc, char **argv, host_Opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  o->argc = argc;
  o->argv = argv;
  o->progname =
      (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') ? argv[0]
                                                           : HOST_PROGNAME;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { /* the script */
      o->script = o->optend = i;
      return 1;
    }
    switch (a[1]) {
    case '-': /* "--": the script, if any, follows */
      if (strncmp(a, "--workers=", 10) == 0 && a[10] != '\0') {
        o->workers = a + 10;
        continue;
      }
      if (strcmp(a, "--workers") == 0) {
        if (i + 1 < argc && argv[i + 1][0] != '-') {
          o->workers = argv[++i];
          continue;
        }
        break;
      }
      if (a[2] != '\0')
        break;
      o->optend = i + 1;
      o->script = i + 1 < argc ? i + 1 : 0;
      return 1;
    case '\0': /* "-": standard input is the script */
      o->script = o->optend = i;
      return 1;
    case 'E':
      if (a[2] != '\0')
        break;
      o->noenv = 1;
      continue;
    case 'W':
      if (a[2] != '\0')
        break;
      continue;
    case 'i':
    case 'v':
      if (a[2] != '\0')
        break;
      o->version = 1;
      o->interactive |= a[1] == 'i';
      continue;
    case 'e':
    case 'l':
      o->execute |= a[1] == 'e';
      if (a[2] != '\0') /* "-echunk": the argument is attached */
        continue;
      if (i + 1 < argc && argv[i + 1][0] != '-') {
        i++;
        continue;
      }
      break;
    default:
      break;
    }
    o->bad = a;
    return 0;
  }
  o->script = 0;
  o->optend = argc;
  return 1;
}

/* Message handler for every protected call: the message plus a traceback.
 * An error object with __tostring is shown as that, without traceback. */
static int host_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Call the function below narg arguments with a traceback handler. */
static int host_docall(lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, host_msghandler);
  lua_insert(L, base);
  host_catchint(L, 1);
  status = lua_pcall(L, narg, nres, base);
  host_catchint(L, 0);
  lua_remove(L, base);
  return status;
}

/* Print the error on top of the stack, if status says there is one. */
static int host_report(lua_State *L, const host_Opts *o, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    host_message(o->progname,
                 msg != NULL ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

static int host_dochunk(lua_State *L, const host_Opts *o, int status) {
  if (status == LUA_OK)
    status = host_docall(L, 0, 0);
  return host_report(L, o, status);
}

static int host_dostring(lua_State *L, const host_Opts *o, const char *s,
                         const char *name) {
  return host_dochunk(L, o, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l [g=]mod: g = require(mod); without "g=", g is mod up to a '-'. */
static int host_dolibrary(lua_State *L, const host_Opts *o, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq != NULL ? eq + 1 : spec;
  size_t globlen = eq != NULL ? (size_t)(eq - spec) : strcspn(spec, "-");
  int status;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = host_docall(L, 1, 1);
  if (status == LUA_OK) { /* _G[name] = module: the name is not a C string */
    lua_pushglobaltable(L);
    lua_pushlstring(L, spec, globlen);
    lua_rotate(L, -3, -1); /* G, name, module */
    lua_settable(L, -3);
    lua_pop(L, 1);
  }
  return host_report(L, o, status);
}

/* The global 'arg': the script at 0, its arguments at 1.., the program
 * and the options before it at negative indexes (all at 0.. if no script). */
static void host_argtable(lua_State *L, const host_Opts *o) {
  int i;
  lua_createtable(L, o->argc - o->script, o->script + 1);
  for (i = 0; i < o->argc; i++) {
    lua_pushstring(L, o->argv[i]);
    lua_rawseti(L, -2, i - o->script);
  }
  lua_setglobal(L, "arg");
}

/* LUA_INIT_5_4, else LUA_INIT: "@file" runs the file, else the string. */
static int host_luainit(lua_State *L, const host_Opts *o) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL)
    return LUA_OK;
  if (init[0] == '@')
    return host_dochunk(L, o, luaL_loadfile(L, init + 1));
  return host_dostring(L, o, init, name);
}

/* -e and -l (and -W) in their order on the command line. */
static int host_runoptions(lua_State *L, const host_Opts *o) {
  int i;
  for (i = 1; i < o->optend; i++) {
    const char *a = o->argv[i];
    int opt = a[1];
    if (opt == 'e' || opt == 'l') {
      const char *val = a[2] != '\0' ? a + 2 : o->argv[++i];
      int status = opt == 'e'
                       ? host_dostring(L, o, val, "=(command line)")
                       : host_dolibrary(L, o, val);
      if (status != LUA_OK)
        return 0;
    } else if (opt == 'W') {
      lua_warning(L, "@on", 0);
    }
  }
  return 1;
}

/* --workers N: the script's listeners bind in a master that forks N
 * workers at lepoll.run() (lua/lepoll/_workers.lua). */
static int host_workers(lua_State *L, const host_Opts *o) {
  int status;
  char *end;
  long n = strtol(o->workers, &end, 10);
  if (strcmp(o->workers, "auto") != 0 &&
      (end == o->workers || *end != '\0' || n < 1 || n > 1024)) {
    host_message(o->progname,
                 lua_pushfstring(L, "'--workers' needs an integer 1..1024 or "
                                    "'auto', got '%s'", o->workers));
    lua_pop(L, 1);
    return LUA_ERRRUN;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lepoll._workers");
  status = host_docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_getfield(L, -1, "command_line");
    lua_remove(L, -2);
    lua_pushstring(L, o->workers);
    status = host_docall(L, 1, 0);
  }
  return host_report(L, o, status);
}

/* Load the script ("-" is standard input unless right after "--") and
 * call it with the arguments after it as '...'. */
static int host_runscript(lua_State *L, const host_Opts *o) {
  const char *fname = o->argv[o->script];
  int status, i, n = o->argc - o->script - 1;
  if (strcmp(fname, "-") == 0 && strcmp(o->argv[o->script - 1], "--") != 0)
    fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = o->script + 1; i < o->argc; i++)
      lua_pushstring(L, o->argv[i]);
    status = host_docall(L, n, LUA_MULTRET);
  }
  return host_report(L, o, status);
}

/* {==== the read-eval-print loop (-i, or a terminal on stdin) */

/* The prompt: _PROMPT (first line) or _PROMPT2 (continuation), pushed. */
static const char *host_prompt(lua_State *L, int first) {
  const char *p;
  lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) {
    lua_pop(L, 1);
    p = lua_pushstring(L, first ? "> " : ">> ");
  }
  return p;
}

/* Push one line of standard input without its newline; 0 at end of file.
 * On a terminal with readline or libedit, the line is edited there. A
 * first line "=expr" is "return expr", as lua(1) still accepts. */
static int host_pushline(lua_State *L, const host_LineEdit *le, int first) {
  const char *prompt = host_prompt(L, first);
  if (le->readline != NULL) {
    char *line = le->readline(prompt);
    lua_pop(L, 1); /* the prompt */
    if (line == NULL)
      return 0;
    lua_pushstring(L, line); /* a memory error here leaks the line once */
    free(line);
  } else {
    luaL_Buffer b;
    int c, any = 0;
    fputs(prompt, stdout);
    fflush(stdout);
    lua_pop(L, 1);
    luaL_buffinit(L, &b);
    while ((c = getchar()) != EOF) {
      any = 1;
      if (c == '\n')
        break;
      luaL_addchar(&b, (char)c);
    }
    luaL_pushresult(&b); /* also takes the buffer's own slot off the stack */
    if (!any) {
      lua_pop(L, 1);
      clearerr(stdin);
      return 0;
    }
  }
  if (first && lua_tostring(L, -1)[0] == '=') {
    lua_pushfstring(L, "return %s", lua_tostring(L, -1) + 1);
    lua_remove(L, -2);
  }
  return 1;
}

/* Keep a statement in the line editor's history, as lua(1) does: whole,
 * once it is complete (or wrong), never an empty line. */
static void host_saveline(const host_LineEdit *le, const char *text) {
  if (le->add_history != NULL && text[0] != '\0')
    le->add_history(text);
}

/* An expression first: "return LINE;" compiled, with the line below it. */
static int host_tryexpr(lua_State *L, const host_LineEdit *le) {
  size_t len;
  int status;
  const char *expr;
  lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
  expr = lua_tolstring(L, -1, &len);
  status = luaL_loadbuffer(L, expr, len, "=stdin");
  lua_remove(L, -2); /* the "return" text */
  if (status != LUA_OK)
    lua_pop(L, 1);
  else
    host_saveline(le, lua_tostring(L, -2));
  return status;
}

/* A syntax error at <eof>: the statement may go on in the next line. */
static int host_incomplete(lua_State *L, int status) {
  static const char mark[] = "<eof>";
  const size_t marklen = sizeof mark - 1;
  size_t len;
  const char *msg;
  if (status != LUA_ERRSYNTAX)
    return 0;
  msg = lua_tolstring(L, -1, &len);
  return len >= marklen && strcmp(msg + len - marklen, mark) == 0;
}

/* A statement, possibly over several lines: keep reading while the
 * compiler says it is incomplete. Leaves the text and the chunk, or the
 * error (at end of input too: "'end' expected near <eof>"). */
static int host_trystatement(lua_State *L, const host_LineEdit *le) {
  for (;;) {
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, text, len, "=stdin");
    if (!host_incomplete(L, status) || !host_pushline(L, le, 0)) {
      host_saveline(le, lua_tostring(L, -2));
      return status;
    }
    lua_remove(L, -2); /* the message */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3); /* text .. "\n" .. next line */
  }
}

/* Read one statement: the compiled chunk on the stack and LUA_OK, an
 * error message and its status, or -1 at end of input. */
static int host_readstatement(lua_State *L, const host_LineEdit *le) {
  int status;
  lua_settop(L, 0);
  if (!host_pushline(L, le, 1))
    return -1;
  if ((status = host_tryexpr(L, le)) != LUA_OK)
    status = host_trystatement(L, le);
  lua_remove(L, 1); /* the text */
  return status;
}

/* Print what the statement returned with the global 'print'. */
static void host_printresults(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0)
    return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_getglobal(L, "print");
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK)
    host_message(NULL, lua_pushfstring(L, "error calling 'print' (%s)",
                                       lua_tostring(L, -1)));
}

static void host_repl(lua_State *L, host_Opts *o) {
  int status;
  const char *progname = o->progname;
  host_LineEdit le;
  host_lineedit_open(&le);
  o->progname = NULL; /* messages in the loop go without the name */
  while ((status = host_readstatement(L, &le)) != -1) {
    if (status == LUA_OK)
      status = host_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      host_printresults(L);
    else
      host_report(L, o, status);
  }
  lua_settop(L, 0);
  host_lineedit_close(&le);
  fputs("\n", stdout);
  fflush(stdout);
  o->progname = progname;
}

/* }==== */

/* Everything that runs Lua, in protected mode: a memory error anywhere is
 * reported, not fatal. Returns true when all went well. */
static int host_main(lua_State *L) {
  host_Opts *o = (host_Opts *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  luaL_checkversion(L);
  if (o->version)
    host_version();
  if (o->noenv) { /* the package library then ignores LUA_PATH & co */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  host_trackcoroutines(L);
  lepoll_openlibs(L);
  host_argtable(L, o);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!o->noenv && host_luainit(L, o) != LUA_OK)
    return 0;
  if (o->workers != NULL && host_workers(L, o) != LUA_OK)
    return 0;
  if (!host_runoptions(L, o))
    return 0;
  if (o->script > 0 && host_runscript(L, o) != LUA_OK)
    return 0;
  if (o->interactive) {
    host_repl(L, o);
  } else if (o->script == 0 && !o->execute && !o->version) {
    if (isatty(STDIN_FILENO)) {
      host_version();
      host_repl(L, o);
    } else if (host_dochunk(L, o, luaL_loadfile(L, NULL)) != LUA_OK) {
      return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  host_Opts opts;
  lua_State *L;
  int status, ok;
  if (!host_parseargs(argc, argv, &opts)) {
    host_usage(&opts);
    return EXIT_FAILURE;
  }
  L = luaL_newstate();
  if (L == NULL) {
    host_message(opts.progname, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP); /* no collections while the state is built */
  lua_pushcfunction(L, host_main);
  lua_pushlightuserdata(L, &opts);
  status = lua_pcall(L, 1, 1, 0);
  ok = lua_toboolean(L, -1);
  host_report(L, &opts, status);
  lua_close(L);
  return ok && status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
