# bench.mk - `make bench`: the load generator and raw C baseline (bench/*.c,
# plain C, no Lua) built into $(BUILD)/bench/, then bench/run.
#   make bench BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_CONNS=50   (a quick run)
BENCH_BINS := $(BUILD)/bench/loadgen $(BUILD)/bench/raw_server

.PHONY: bench bench-bins
bench: all $(BENCH_BINS)
	BUILD=$(BUILD) BENCH_BIN=$(BUILD)/bench LUA=$(LUA) bench/run

bench-bins: $(BENCH_BINS)

$(BUILD)/bench/%: bench/%.c | $(BUILD)/bench
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE $(LDFLAGS) -o $@ $<

$(BUILD)/bench:
	mkdir -p $@
