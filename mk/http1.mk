# http1.mk - `make check-fuzz`: lepoll.http1's parser core fuzzed under
# ASan+UBSan (spec/support/fuzz_http1.c includes csrc/http1.c and calls its
# static functions on exact-size copies of generated and mutated request
# and response heads, chunk lines and trailers; the whole and the pieces
# must agree).
#
#   make check-fuzz                       FUZZ_N inputs (default 300000), FUZZ_SEED (1)
#   make check-fuzz FUZZ_N=2000000 FUZZ_SEED=7
#
# Its last line is "1 passed, 0 failed" (or "0 passed, 1 failed"), the
# shape .ci/run and spec/run count.
FUZZ_BIN  = $(BUILD)/fuzz/fuzz_http1
FUZZ_N   ?= 300000
FUZZ_SEED ?= 1

.PHONY: check-fuzz
check:: check-fuzz

$(FUZZ_BIN): spec/support/fuzz_http1.c csrc/http1.c csrc/result.c csrc/internal.h csrc/lepoll.h
	@mkdir -p $(@D)
	$(CC) -D_GNU_SOURCE -I$(LUA_INCDIR) -Icsrc $(WARN) -Werror -O1 -g -fno-omit-frame-pointer \
	  -fsanitize=address,undefined -fno-sanitize-recover=all $(LDFLAGS) \
	  -o $@ spec/support/fuzz_http1.c csrc/result.c $(LUA_LIBS)

check-fuzz: $(FUZZ_BIN)
	@if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_BIN) $(FUZZ_N) $(FUZZ_SEED); then echo "1 passed, 0 failed"; \
	  else echo "0 passed, 1 failed"; exit 1; fi
