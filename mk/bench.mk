# bench.mk - `make bench`: the load generator and raw C baseline (bench/*.c,
# plain C, no Lua) built into $(BUILD)/bench/, then bench/run: the hello and
# echo workloads (rates, CPU) and the idle one (RSS per connection) against
# the raw C server, the examples, and bench/servers/{luv,cqueues,copas}_*.lua
# where Debian's lua-luv, lua-cqueues, lua-copas are installed.
#   make bench BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_IDLE_SECONDS=1  (a quick run)
#   make bench BENCH_WORKLOADS=idle                                 (memory only)
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
