# mk/resolver.mk - lepoll.resolver runs getaddrinfo(3) on threads of its own.
# -ldl: dladdr1/dlopen, with which the module pins itself (in libc since
# glibc 2.34, a library of its own before).
MODLIBS_resolver := -pthread -ldl
$(BUILD)/obj/resolver.o: ALLCFLAGS += -pthread
# resolver.so is never unloaded (DF_1_NODELETE): a detached pool thread
# may return into its code after lua_close dlcloses it. Only on the
# module's own link, not the host program's or liblepoll's (MODLIBS_x go
# there too): the module pins whatever object holds it when it is loaded.
$(BUILD)/lepoll/resolver.so: MODLIBS_resolver += -Wl,-z,nodelete

# spec/resolve_spec.lua's fork(2) for Lua (a spec helper, never installed).
RESOLVE_FORK_SO = $(BUILD)/resolve_fork.so
all:: $(RESOLVE_FORK_SO)
$(RESOLVE_FORK_SO): spec/support/resolve_fork.c | $(BUILD)/obj
	$(CC) -I$(LUA_INCDIR) $(WARN) $(CFLAGS) -D_GNU_SOURCE -fPIC -shared $(SANFLAGS) $(LDFLAGS) -o $@ $<
