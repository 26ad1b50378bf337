# partial.mk - the partial-I/O injector (spec/support/partial_io.c) and
# `make check-partial`: the framework's and the example servers' specs with
# every stream-socket read and write cut to a few bytes, and the spec that
# proves the injector is loaded (spec/partial_io_spec.lua).
#
#   make check-partial       the three runs below, then their total
#   make check-partial-r     reads cut   (LEPOLL_PARTIAL_IO=r)
#   make check-partial-w     writes cut  (LEPOLL_PARTIAL_IO=w)
#   make check-partial-rw    both
#   PARTIAL_MAX=N            bytes one call may move (default 1)
#   SPEC=spec/x_spec.lua     other specs than PARTIAL_SPECS
PARTIAL_SO    = $(BUILD)/partial_io.so
PARTIAL_MAX  ?= 1
PARTIAL_SPECS ?= spec/partial_io_spec.lua $(sort $(wildcard spec/lepoll_*_spec.lua)) \
                 spec/echo_epoll_spec.lua spec/hello_epoll_spec.lua \
                 spec/host_spec.lua spec/embed_spec.lua spec/http_server_spec.lua \
                 spec/tls_spec.lua spec/proxy_spec.lua

.PHONY: check-partial check-partial-r check-partial-w check-partial-rw
# Built with the modules: spec/partial_io_spec.lua preloads it into children
# in every run (make test, check-asan, check-valgrind).
all:: $(PARTIAL_SO)
check:: check-partial

$(PARTIAL_SO): spec/support/partial_io.c | $(BUILD)/obj
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -fPIC -shared $(SANFLAGS) $(LDFLAGS) -o $@ $< -ldl

check-partial-r check-partial-w check-partial-rw: check-partial-%: deps
	$(MAKE) all
	LD_PRELOAD=$(abspath $(PARTIAL_SO)) LEPOLL_PARTIAL_IO=$* LEPOLL_PARTIAL_IO_MAX=$(PARTIAL_MAX) \
	  LEPOLL_BUILD=$(BUILD) LEPOLL_CPATH=./$(BUILD)/?.so spec/run $(or $(SPEC),$(PARTIAL_SPECS))

# Each run's last line is its "N passed, N failed"; the last line here adds
# them up (a run that printed none counts as one failure).
check-partial:
	@passed=0; failed=0; status=0; log=$$(mktemp); rc=$$(mktemp); \
	for m in r w rw; do \
	  { $(MAKE) --no-print-directory check-partial-$$m; echo $$? > "$$rc"; } 2>&1 | tee "$$log"; \
	  [ "$$(cat "$$rc")" = 0 ] || status=1; \
	  line=$$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$$log" | tail -n 1); \
	  if [ -z "$$line" ]; then failed=$$((failed + 1)); status=1; continue; fi; \
	  passed=$$((passed + $$(echo "$$line" | sed -E 's/^([0-9]+) passed.*/\1/'))); \
	  failed=$$((failed + $$(echo "$$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/'))); \
	done; \
	rm -f "$$log" "$$rc"; \
	echo "check-partial, r + w + rw:"; \
	echo "$$passed passed, $$failed failed"; \
	exit $$status
