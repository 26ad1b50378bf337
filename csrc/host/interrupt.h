/* interrupt.h - SIGINT interrupts the running Lua code, coroutines included; signal(7), lua(1). */
#ifndef LEPOLL_HOST_INTERRUPT_H
#define LEPOLL_HOST_INTERRUPT_H

#include <lua.h>

/* Replace coroutine.resume and coroutine.wrap with versions that tell the
 * SIGINT handler which coroutine runs (a hook set on the main thread alone
 * never fires while a coroutine spins). Same results and messages as
 * Lua's own. Call once, after luaL_openlibs, before any script runs. */
void host_trackcoroutines(lua_State *L);

/* on: until host_catchint(L, 0), a SIGINT raises "interrupted!" in the
 * Lua code that runs, then in each resumer up to L, the main thread; a
 * second SIGINT before that kills the process as usual. No SA_RESTART, so
 * a blocking read returns to Lua at once. off: SIGINT's default again. */
void host_catchint(lua_State *L, int on);

#endif
