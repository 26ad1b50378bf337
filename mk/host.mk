# mk/host.mk - the lepoll program, liblepoll.a/.so, lepoll.pc and their install.
#
#   $(BUILD)/bin/lepoll     lua(1) with the C modules linked in and lua/lepoll built in
#   $(BUILD)/liblepoll.a    the C modules, lepoll_openlibs and the Lua sources
#   $(BUILD)/liblepoll.so   the same objects, shared (soname liblepoll.so.0)
#   $(BUILD)/lepoll.pc      pkg-config file for $(PREFIX)
#
# The Lua sources are whatever lua/lepoll/*.lua exist when make runs,
# turned into $(BUILD)/gen/lepoll_lua.c by csrc/host/embed.lua.

BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LUA_LIBS     ?= $(or $(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null),-llua5.4)
# What the C modules need beyond -lc (llround & co; each module's MODLIBS_x).
LEPOLL_LIBS  ?= -lm $(foreach m,$(MODULES),$(MODLIBS_$(m)))
LEPOLL_SOMAJOR := $(firstword $(subst ., ,$(LEPOLL_VERSION)))

HOST_LUA_SRCS := $(sort $(wildcard lua/lepoll/*.lua))
HOST_OBJ      := $(BUILD)/obj/host
HOST_GEN      := $(BUILD)/gen
HOST_CFLAGS    = $(ALLCFLAGS) -Icsrc -Icsrc/host
HOST_HEADERS  := csrc/lepoll.h csrc/internal.h csrc/host/embedded.h
# The library: every C module, the shared helpers, openlibs, the Lua text.
LEPOLL_OBJS    = $(MODULES:%=$(BUILD)/obj/%.o) $(HELPER_OBJS) \
                 $(HOST_OBJ)/openlibs.o $(HOST_OBJ)/lepoll_lua.o
HOST_TARGETS   = $(BUILD)/bin/lepoll $(BUILD)/liblepoll.a $(BUILD)/liblepoll.so \
                 $(BUILD)/lepoll.pc

.PHONY: host host-always
all:: $(HOST_TARGETS)
host: $(HOST_TARGETS)

# What goes into the generated file, rewritten only when it changes (a
# Lua file added or removed, a C module added): the generator reruns then.
$(HOST_GEN)/embed.list: host-always
	@mkdir -p $(@D)
	@echo '$(MODULES) | $(HOST_LUA_SRCS)' | cmp -s - $@ 2>/dev/null || \
	  echo '$(MODULES) | $(HOST_LUA_SRCS)' > $@

$(HOST_GEN)/lepoll_lua.c: csrc/host/embed.lua $(HOST_LUA_SRCS) $(HOST_GEN)/embed.list
	@mkdir -p $(@D)
	$(LUA) csrc/host/embed.lua $@ '$(MODULES)' $(HOST_LUA_SRCS)

$(HOST_OBJ)/lepoll_lua.o: $(HOST_GEN)/lepoll_lua.c csrc/host/embedded.h $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -c -o $@ $<

$(HOST_OBJ)/openlibs.o: csrc/host/openlibs.c $(HOST_HEADERS) $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -c -o $@ $<

# The program alone (not liblepoll): its command line, SIGINT handling and
# the REPL's line editing (readline or libedit, dlopen'd: -ldl for a libc
# older than glibc 2.34, where dlopen moved into libc itself).
HOST_PROG_OBJS = $(HOST_OBJ)/main.o $(HOST_OBJ)/interrupt.o $(HOST_OBJ)/lineedit.o
HOST_PROG_LIBS ?= -ldl

$(HOST_OBJ)/main.o: csrc/host/main.c csrc/host/interrupt.h csrc/host/lineedit.h csrc/lepoll.h \
                    $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -c -o $@ $<

$(HOST_OBJ)/interrupt.o: csrc/host/interrupt.c csrc/host/interrupt.h $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -c -o $@ $<

$(HOST_OBJ)/lineedit.o: csrc/host/lineedit.c csrc/host/lineedit.h $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -c -o $@ $<

$(BUILD)/bin/lepoll: $(HOST_PROG_OBJS) $(LEPOLL_OBJS)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LUA_LIBS) $(LEPOLL_LIBS) $(HOST_PROG_LIBS)

$(BUILD)/liblepoll.a: $(LEPOLL_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# No -llua5.4: the host program provides Lua, as for any Lua C module.
$(BUILD)/liblepoll.so: $(LEPOLL_OBJS)
	$(CC) -shared $(SANFLAGS) $(LDFLAGS) -Wl,-soname,liblepoll.so.$(LEPOLL_SOMAJOR) -o $@ $^ $(LEPOLL_LIBS)

# The prefix is baked in: the file is remade when PREFIX & co change.
$(HOST_GEN)/pc.vars: host-always
	@mkdir -p $(@D)
	@echo '$(LIBDIR) $(INCLUDEDIR) $(LUA_PC) $(LEPOLL_VERSION)' | cmp -s - $@ 2>/dev/null || \
	  echo '$(LIBDIR) $(INCLUDEDIR) $(LUA_PC) $(LEPOLL_VERSION)' > $@

$(BUILD)/lepoll.pc: $(HOST_GEN)/pc.vars
	printf '%s\n' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	  'Name: lepoll' \
	  'Description: Linux epoll for Lua 5.4, embeddable: C modules and the lepoll framework' \
	  'Version: $(LEPOLL_VERSION)' 'Requires: $(LUA_PC)' \
	  'Libs: -L$${libdir} -llepoll' 'Libs.private: $(LEPOLL_LIBS)' 'Cflags: -I$${includedir}' > $@

install:: $(HOST_TARGETS)
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(BUILD)/bin/lepoll $(DESTDIR)$(BINDIR)/lepoll
	install -m 644 $(BUILD)/liblepoll.a $(DESTDIR)$(LIBDIR)/liblepoll.a
	install -m 755 $(BUILD)/liblepoll.so $(DESTDIR)$(LIBDIR)/liblepoll.so.$(LEPOLL_VERSION)
	ln -sf liblepoll.so.$(LEPOLL_VERSION) $(DESTDIR)$(LIBDIR)/liblepoll.so.$(LEPOLL_SOMAJOR)
	ln -sf liblepoll.so.$(LEPOLL_SOMAJOR) $(DESTDIR)$(LIBDIR)/liblepoll.so
	install -m 644 csrc/lepoll.h $(DESTDIR)$(INCLUDEDIR)/lepoll.h
	install -m 644 $(BUILD)/lepoll.pc $(DESTDIR)$(PKGCONFIGDIR)/lepoll.pc

uninstall::
	rm -f $(DESTDIR)$(BINDIR)/lepoll $(DESTDIR)$(LIBDIR)/liblepoll.a \
	  $(DESTDIR)$(LIBDIR)/liblepoll.so.$(LEPOLL_VERSION) \
	  $(DESTDIR)$(LIBDIR)/liblepoll.so.$(LEPOLL_SOMAJOR) $(DESTDIR)$(LIBDIR)/liblepoll.so \
	  $(DESTDIR)$(INCLUDEDIR)/lepoll.h $(DESTDIR)$(PKGCONFIGDIR)/lepoll.pc
