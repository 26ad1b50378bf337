# oracle.mk - $(BUILD)/oracle_http1, the test oracles of the differential
# spec of lepoll.http1 (spec/http1_diff_spec.lua): picohttpparser from
# Debian's libh2o-evloop0.13 (dlopen'd at run time) and llhttp compiled from
# Debian's node-llhttp sources. A test program: no module links either.
#
# Built with the modules (and the sanitizers of check-asan) when
# node-llhttp's sources are there; without them the spec fails and says to
# run .ci/deps, which installs both packages.
LLHTTP_DIR    ?= /usr/share/llhttp
LLHTTP_INC    ?= /usr/share/include/llhttp
ORACLE_HTTP1   = $(BUILD)/oracle_http1
ORACLE_LLHTTP  = $(BUILD)/obj/oracle/llhttp.o $(BUILD)/obj/oracle/api.o $(BUILD)/obj/oracle/http.o

ifneq ($(wildcard $(LLHTTP_DIR)/llhttp.c),)
all:: $(ORACLE_HTTP1)
endif

# The project's compile flags (a packager's included), but llhttp's
# generated C is not ours to hold to our warnings: -w, after them, silences
# them (and so -Werror).
$(BUILD)/obj/oracle/%.o: $(LLHTTP_DIR)/%.c $(LLHTTP_INC)/llhttp.h $(BUILD)/obj/cflags
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -w -I$(LLHTTP_INC) -c -o $@ $<

$(ORACLE_HTTP1): spec/support/oracle_http1.c $(ORACLE_LLHTTP) $(BUILD)/obj/cflags
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -I$(LLHTTP_INC) $(SANFLAGS) $(LDFLAGS) \
	  -o $@ $< $(ORACLE_LLHTTP) -ldl
