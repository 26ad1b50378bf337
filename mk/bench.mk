# bench.mk - `make bench`: the load generator and raw C baseline (bench/*.c,
# plain C, no Lua) built into $(BUILD)/bench/, then bench/run: the hello and
# echo workloads (rates, CPU) and the idle one (RSS per connection) against
# the raw C server, the examples, and bench/servers/{luv,cqueues,copas}_*.lua
# where Debian's lua-luv, lua-cqueues, lua-copas are installed; and the http,
# http_pipeline and http_idle workloads (wrk) against nginx (the reference),
# nginx with OpenResty's Lua module, examples/hello_http.lua and lua-http;
# then https, tls_handshake and https_idle against nginx over ssl and
# bench/servers/lepoll_https.lua (certificates made by openssl at bench
# time, no resumption, bench/tls_idle.py holding the idle connections);
# then workers_hello and workers_echo: examples/hello.lua and echo.lua under
# `build/bin/lepoll --workers N` for N = 1 and 2, and hello against nginx's
# stream module with 1 and 2 worker processes, reported as each server's
# 2-worker/1-worker ratio (server and load generator share the machine's
# CPUs, unpinned; workers_http, hello_http.lua against nginx return, on
# request) - bench/run first has bench/deps install from Debian what is
# missing of nginx-light, libnginx-mod-http-lua, libnginx-mod-stream,
# lua-http, lua5.3 and wrk (apt-get; BENCH_DEPS=0 skips that).
#   make bench BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_IDLE_SECONDS=1  (a quick run)
#   make bench BENCH_WORKLOADS=idle                                 (memory only)
#   make bench BENCH_WORKLOADS="http http_pipeline http_idle"       (HTTP only)
#   make bench BENCH_WORKLOADS="https tls_handshake https_idle"      (TLS only)
#   make bench BENCH_WORKLOADS="workers_hello workers_echo workers_http"
#                                                         (workers only)
#   make bench BENCH_WORKLOADS=workers_hello BENCH_WORKERS="1 4 8"  (a bigger machine)
# The knobs are documented at the top of bench/run.
BENCH_BINS := $(BUILD)/bench/loadgen $(BUILD)/bench/raw_server

.PHONY: bench bench-bins
bench: all $(BENCH_BINS)
	BUILD=$(BUILD) BENCH_BIN=$(BUILD)/bench LUA=$(LUA) bench/run

bench-bins: $(BENCH_BINS)

$(BUILD)/bench/%: bench/%.c | $(BUILD)/bench
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE $(LDFLAGS) -o $@ $<

$(BUILD)/bench:
	mkdir -p $@
