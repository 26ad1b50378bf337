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
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes
CFLAGS   ?= $(OPT)
ALLCFLAGS = $(WARN) $(CFLAGS) -D_GNU_SOURCE -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(SANFLAGS)
LDFLAGS  ?=
SANFLAGS ?=

HELPERS  := fdobj result
# One Lua module per csrc/*.c that is not a shared helper (epoll, net, io).
MODULES  := $(basename $(notdir $(filter-out $(HELPERS:%=csrc/%.c),$(wildcard csrc/*.c))))
SOS      := $(MODULES:%=$(BUILD)/lepoll/%.so)
HELPER_OBJS := $(HELPERS:%=$(BUILD)/obj/%.o)

.PHONY: all deps doc hello test check check-asan check-valgrind bench install clean lint
all:: $(SOS)

$(BUILD)/obj/%.o: csrc/%.c csrc/internal.h csrc/lepoll.h | $(BUILD)/obj
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(BUILD)/lepoll/%.so: $(BUILD)/obj/%.o $(HELPER_OBJS) | $(BUILD)/lepoll
	$(CC) -shared $(SANFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/obj $(BUILD)/lepoll:
	mkdir -p $@

# The README's test command; prints "N passed, N failed" last.
test: deps
	$(MAKE) all
	LEPOLL_BUILD=$(BUILD) LEPOLL_CPATH=./$(BUILD)/?.so spec/run $(SPEC)

deps:
	@.ci/deps

# The C modules' LDoc reference, as HTML in build/doc (needs lua-ldoc).
doc:
	ldoc .

lint:
	luacheck -q lua spec examples bench

# Specs with the C modules under ASan+UBSan, then under valgrind.
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_LIB = $(shell $(CC) -print-file-name=libubsan.so)
check:: check-asan check-valgrind

check-asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" all
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LEPOLL_BUILD=build/asan LEPOLL_CPATH=./build/asan/?.so LEPOLL_SANITIZED=asan spec/run --exclude-tags=install,lint $(SPEC)

check-valgrind: all
	LEPOLL_BUILD=$(BUILD) LEPOLL_CPATH=./$(BUILD)/?.so LEPOLL_SANITIZED=valgrind \
	  LEPOLL_WRAP="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
	  spec/run --exclude-tags=install,lint $(SPEC)

# The hello server (README quick start): make hello [PORT=8080]
PORT ?= 8080
hello: deps
	$(MAKE) all
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;" \
	  $(LUA) examples/hello.lua $(PORT)

install:: all
	mkdir -p $(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll $(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll
	install -m 755 $(SOS) $(DESTDIR)$(LUA_LIBDIR_INSTALL)/lepoll/
	if ls lua/lepoll/*.lua >/dev/null 2>&1; then \
	  install -m 644 lua/lepoll/*.lua $(DESTDIR)$(LUA_SHAREDIR_INSTALL)/lepoll/; fi

clean::
	rm -rf build

# Fragments for bench/, the host program and friends. all, check, install
# and clean are double-colon rules so that a fragment can add to them.
-include mk/*.mk
