# lepoll - build, test, check, bench, install.
LUA        ?= lua5.4
PKG_CONFIG ?= pkg-config
LUA_PC     ?= lua5.4
LUA_INCDIR ?= $(or $(patsubst -I%,%,$(filter -I%,$(shell $(PKG_CONFIG) --cflags-only-I $(LUA_PC) 2>/dev/null))),/usr/include/lua5.4)
BUSTED     ?= busted
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_VERSION ?= 5.4
LUA_LIBDIR_INSTALL ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR_INSTALL ?= $(PREFIX)/share/lua/$(LUA_VERSION)

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -g
# -Werror only in the project's own builds: test, check and CI set
# WERROR=-Werror; a plain `make` (a packager, a release) warns and goes on.
WERROR   ?=
WARN     := -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes
CPPFLAGS ?=
CFLAGS   ?= $(OPT)
ALLCFLAGS = -D_GNU_SOURCE -I$(LUA_INCDIR) $(CPPFLAGS) $(WARN) $(CFLAGS) -fPIC \
            -fvisibility=hidden $(SANFLAGS)
LDFLAGS  ?=
SANFLAGS ?=
LEPOLL_VERSION := $(shell sed -n 's/.*LEPOLL_VERSION  *"\(.*\)".*/\1/p' csrc/lepoll.h)

HELPERS  := fdobj result
# One Lua module per csrc/*.c that is not a shared helper (epoll, net, io).
MODULES  := $(basename $(notdir $(filter-out $(HELPERS:%=csrc/%.c),$(wildcard csrc/*.c))))
SOS      := $(MODULES:%=$(BUILD)/lepoll/%.so)
HELPER_OBJS := $(HELPERS:%=$(BUILD)/obj/%.o)

.PHONY: all deps doc dist hello hello-http test test-rock check check-asan check-valgrind bench \
        install uninstall clean lint flags-always
all:: $(SOS)

# The compile command, rewritten only when it changes: objects built
# without -Werror (or with other flags) are rebuilt for `make test`.
$(BUILD)/obj/cflags: flags-always | $(BUILD)/obj
	@echo '$(CC) $(ALLCFLAGS)' | cmp -s - $@ 2>/dev/null || \
	  echo '$(CC) $(ALLCFLAGS)' > $@

$(BUILD)/obj/%.o: csrc/%.c csrc/internal.h csrc/lepoll.h $(BUILD)/obj/cflags | $(BUILD)/obj
	$(CC) $(ALLCFLAGS) -c -o $@ $<

# A module that needs a library (libssl, pthreads) names it in its
# mk/NAME.mk as MODLIBS_NAME; the host program and liblepoll take them all.
$(BUILD)/lepoll/%.so: $(BUILD)/obj/%.o $(HELPER_OBJS) | $(BUILD)/lepoll
	$(CC) -shared $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(MODLIBS_$*)

$(BUILD)/obj $(BUILD)/lepoll:
	mkdir -p $@

# The README's test command; prints "N passed, N failed" last.
test: deps
	$(MAKE) all WERROR=-Werror
	LEPOLL_BUILD=$(BUILD) LEPOLL_CPATH=./$(BUILD)/?.so spec/run $(SPEC)

# `luarocks test` (the rockspecs' test command): the specs against the C
# modules `luarocks make` built here (./lepoll/*.so, where LuaRocks'
# builtin build leaves them) and the Lua sources; no apt, no sudo, nothing
# built by this Makefile, so the specs of build/ (#build: the host
# program, liblepoll), of packaging (#install), of make doc (#doc) and
# luacheck (#lint) are left out. Arguments after the rockspec and `--`
# go to make: luarocks test ROCKSPEC -- SPEC=spec/io_spec.lua
test-rock:
	@test -f lepoll/epoll.so || { echo "test-rock: no ./lepoll/epoll.so:" \
	  "run 'luarocks make ROCKSPEC' here first" >&2; exit 1; }
	LEPOLL_CPATH='./?.so' spec/run --exclude-tags=build,doc,install,lint $(SPEC)

deps:
	@.ci/deps

# The C modules' LDoc reference, as HTML in $(BUILD)/doc. Debian's
# lua-ldoc comes without its markdown.lua: lua-markdown provides one.
# Without it ldoc falls back to plain text (backticks, unclosed <p>):
# that is a failure here, not a warning.
doc:
	@mkdir -p $(BUILD)
	ldoc -d $(BUILD)/doc . > $(BUILD)/ldoc.log 2>&1 || { cat $(BUILD)/ldoc.log; exit 1; }
	@cat $(BUILD)/ldoc.log
	@if grep -q "falling back to text" $(BUILD)/ldoc.log; then \
	  echo "make doc: ldoc found no markdown processor (Debian: lua-markdown)" >&2; exit 1; fi

lint:
	luacheck -q lua spec examples bench

# Specs with the C modules under ASan+UBSan, then under valgrind.
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_LIB = $(shell $(CC) -print-file-name=libubsan.so)
check:: check-asan check-valgrind

check-asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" WERROR=-Werror \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" all
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LEPOLL_BUILD=build/asan LEPOLL_CPATH=./build/asan/?.so LEPOLL_SANITIZED=asan spec/run --exclude-tags=doc,install,lint $(SPEC)

check-valgrind:
	$(MAKE) all WERROR=-Werror
	LEPOLL_BUILD=$(BUILD) LEPOLL_CPATH=./$(BUILD)/?.so LEPOLL_SANITIZED=valgrind \
	  LEPOLL_WRAP="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
	  spec/run --exclude-tags=doc,install,lint $(SPEC)

# The hello server (README quick start): make hello [PORT=8080]
PORT ?= 8080
hello: deps
	$(MAKE) all
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;" \
	  $(LUA) examples/hello.lua $(PORT)

# The hello server over HTTP/1.1 (examples/hello_http.lua): make hello-http [PORT=8080]
hello-http: deps
	$(MAKE) all
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;" \
	  $(LUA) examples/hello_http.lua $(PORT)

LUA_SRCS := $(sort $(wildcard lua/lepoll/*.lua))

install:: all
	mkdir -p $(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll $(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll
	install -m 755 $(SOS) $(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll/
	$(if $(LUA_SRCS),install -m 644 $(LUA_SRCS) $(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll/)

# What install put there (the same PREFIX, DESTDIR and *DIR variables);
# the lepoll folders go when nothing else is left in them.
uninstall::
	rm -f $(MODULES:%=$(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll/%.so) \
	  $(LUA_SRCS:lua/lepoll/%=$(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll/%)
	rmdir $(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll $(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll \
	  2>/dev/null || true

# The release archive: `git archive` of the tag v$(LEPOLL_VERSION) (HEAD
# until that tag exists; DIST_REF=... picks another) with every path under
# lepoll-$(LEPOLL_VERSION)/: the file the versioned rockspec's source.url
# names, byte for byte (git's gzip leaves no timestamp in it). Outside a
# git checkout of its own (an unpacked release) it packs the tree as it
# is, without build outputs.
DIST_DIR := lepoll-$(LEPOLL_VERSION)
DIST     := $(BUILD)/dist/$(DIST_DIR).tar.gz
DIST_GIT := $(filter $(CURDIR),$(shell git rev-parse --show-toplevel 2>/dev/null))
DIST_REF ?= $(if $(DIST_GIT),$(if $(shell git rev-parse -q --verify \
              refs/tags/v$(LEPOLL_VERSION)),v$(LEPOLL_VERSION),HEAD),)
dist:
	@mkdir -p $(dir $(DIST))
ifneq ($(DIST_GIT),)
	git archive --format=tar.gz --prefix=$(DIST_DIR)/ -o $(DIST) $(DIST_REF)
else
	tar -czf $(DIST) --sort=name --exclude=./build --exclude=./lepoll --exclude='*.o' \
	  --exclude='*.so' --exclude='*.rock' --transform 's,^\.,$(DIST_DIR),' .
endif
	@echo "$(DIST) ($(or $(DIST_REF),this tree))"

# build/, and what `luarocks make` leaves beside the sources.
clean::
	rm -rf build lepoll csrc/*.o

# Fragments for bench/, the host program and friends. all, check, install
# and clean are double-colon rules so that a fragment can add to them.
-include mk/*.mk
