# mk/resolver.mk - lepoll.resolver runs getaddrinfo(3) on threads of its own.
MODLIBS_resolver := -pthread
$(BUILD)/obj/resolver.o: ALLCFLAGS += -pthread

# spec/resolve_spec.lua's fork(2) for Lua (a spec helper, never installed).
RESOLVE_FORK_SO = $(BUILD)/resolve_fork.so
all:: $(RESOLVE_FORK_SO)
$(RESOLVE_FORK_SO): spec/support/resolve_fork.c | $(BUILD)/obj
	$(CC) -I$(LUA_INCDIR) $(WARN) $(CFLAGS) -D_GNU_SOURCE -fPIC -shared $(SANFLAGS) $(LDFLAGS) -o $@ $<
