/* lineedit.h - the REPL's line editing and history, readline(3) or libedit loaded at run time. */
#ifndef LEPOLL_HOST_LINEEDIT_H
#define LEPOLL_HOST_LINEEDIT_H

/* The two functions the REPL uses, from whichever library was found. No
 * link-time dependency: the program runs where neither is installed (and
 * GNU readline, GPL, is never linked into it). */
typedef struct host_LineEdit {
  void *lib;                              /* dlopen handle, NULL: none */
  char *(*readline)(const char *prompt);  /* a malloc'd line, NULL at EOF */
  void (*add_history)(const char *line);
} host_LineEdit;

/* Load libreadline, else libedit, when standard input and output are
 * terminals and LEPOLL_NO_READLINE is not set; 1 when one was loaded. */
int host_lineedit_open(host_LineEdit *le);

/* Done with it (the library itself stays loaded until the program ends). */
void host_lineedit_close(host_LineEdit *le);

#endif
