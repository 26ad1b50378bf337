/* lineedit.c - the REPL's line editing and history, readline(3) or libedit loaded at run time; dlopen(3). */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lineedit.h"

/* By soname first: the development symlinks (libreadline.so) are only
 * there with the -dev packages. libedit exports the same two functions. */
static const char *const le_libs[] = {
  "libreadline.so.8", "libreadline.so.7", "libreadline.so",
  "libedit.so.2", "libedit.so",
  NULL
};

int host_lineedit_open(host_LineEdit *le) {
  const char *const *name;
  const char *off = getenv("LEPOLL_NO_READLINE");
  memset(le, 0, sizeof *le);
  if ((off != NULL && off[0] != '\0') || !isatty(STDIN_FILENO) ||
      !isatty(STDOUT_FILENO))
    return 0;
  for (name = le_libs; *name != NULL; name++) {
    void *lib = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
    void *rl, *ah;
    char **appname;
    if (lib == NULL)
      continue;
    rl = dlsym(lib, "readline");
    ah = dlsym(lib, "add_history");
    if (rl == NULL || ah == NULL) {
      dlclose(lib);
      continue;
    }
    /* so that ~/.inputrc can say "$if lepoll"; absent from libedit */
    appname = (char **)dlsym(lib, "rl_readline_name");
    if (appname != NULL)
      *appname = (char *)"lepoll";
    le->lib = lib;
    /* POSIX dlsym: a data pointer that holds a function's address */
    memcpy(&le->readline, &rl, sizeof rl);
    memcpy(&le->add_history, &ah, sizeof ah);
    return 1;
  }
  return 0;
}

/* The library stays loaded: its history and buffers hang off its own
 * globals, which dlclose would unmap (leaking them for good), and the
 * program is about to end anyway. */
void host_lineedit_close(host_LineEdit *le) {
  memset(le, 0, sizeof *le);
}
