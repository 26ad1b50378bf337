/* resolve_gai_shim.c - an LD_PRELOAD getaddrinfo(3) for spec/resolve_spec.lua:
 * answers that the specs control, with no name server.
 *   "fast..."   127.0.0.1, at once
 *   "many..."   100 IPv4 addresses, at once
 *   "block..."  stays inside getaddrinfo until released, then 127.0.0.1
 *   any other   EAI_NONAME
 * gai_shim_wait_blocked(n, s): until n lookups wait inside (1), or s
 * seconds passed (0). gai_shim_release_and_wait(s): lets them return and
 * waits (bounded) until the process has one thread left: 1, or 0. At exit
 * (a destructor, after lua.c's lua_close unloaded the C modules) blocked
 * lookups are released the same way: a pool thread then returns through
 * the resolver's code. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int gai_shim_wait_blocked(int n, double secs);
int gai_shim_release_and_wait(double secs);

static pthread_mutex_t shim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t shim_cv = PTHREAD_COND_INITIALIZER;
static int shim_blocked, shim_released;

static struct addrinfo *shim_addr(unsigned a) {
  struct addrinfo *ai = calloc(1, sizeof *ai);
  struct sockaddr_in *sin = calloc(1, sizeof *sin);
  if (!ai || !sin) abort();
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(a);
  ai->ai_family = AF_INET;
  ai->ai_socktype = SOCK_STREAM;
  ai->ai_addr = (struct sockaddr *)sin;
  ai->ai_addrlen = sizeof *sin;
  return ai;
}

static struct timespec shim_deadline(double secs) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += (time_t)secs;
  t.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

int getaddrinfo(const char *name, const char *serv, const struct addrinfo *hints,
                struct addrinfo **res) {
  struct addrinfo *head = NULL, **tail = &head;
  int i, n = 1;
  (void)serv;
  (void)hints;
  if (!name) return EAI_NONAME;
  if (strncmp(name, "many", 4) == 0) {
    n = 100;
  } else if (strncmp(name, "block", 5) == 0) {
    pthread_mutex_lock(&shim_mu);
    shim_blocked++;
    pthread_cond_broadcast(&shim_cv);
    while (!shim_released) pthread_cond_wait(&shim_cv, &shim_mu);
    shim_blocked--;
    pthread_mutex_unlock(&shim_mu);
  } else if (strncmp(name, "fast", 4) != 0) {
    return EAI_NONAME;
  }
  for (i = 0; i < n; i++) {
    *tail = shim_addr(0x7f000001u + (unsigned)i * 977u);
    tail = &(*tail)->ai_next;
  }
  *res = head;
  return 0;
}

void freeaddrinfo(struct addrinfo *ai) {
  while (ai) {
    struct addrinfo *next = ai->ai_next;
    free(ai->ai_addr);
    free(ai);
    ai = next;
  }
}

int gai_shim_wait_blocked(int n, double secs) {
  struct timespec until = shim_deadline(secs);
  int ok;
  pthread_mutex_lock(&shim_mu);
  while (shim_blocked < n &&
         pthread_cond_timedwait(&shim_cv, &shim_mu, &until) == 0)
    ;
  ok = shim_blocked >= n;
  pthread_mutex_unlock(&shim_mu);
  return ok;
}

static int shim_threads(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* A detached thread's end cannot be awaited otherwise: look, 1 ms apart. */
int gai_shim_release_and_wait(double secs) {
  struct timespec ms = {0, 1000000L};
  long i, steps = (long)(secs * 1000);
  pthread_mutex_lock(&shim_mu);
  shim_released = 1;
  pthread_cond_broadcast(&shim_cv);
  pthread_mutex_unlock(&shim_mu);
  for (i = 0; i < steps; i++) {
    if (shim_threads() == 1) return 1;
    nanosleep(&ms, NULL);
  }
  return 0;
}

__attribute__((destructor)) static void shim_at_exit(void) {
  int blocked;
  pthread_mutex_lock(&shim_mu);
  blocked = shim_blocked;
  pthread_mutex_unlock(&shim_mu);
  if (blocked > 0 && !gai_shim_release_and_wait(5.0)) {
    fputs("gai shim: the pool's threads did not end\n", stderr);
    _exit(3);
  }
}
