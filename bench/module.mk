# Benchmarks: C programs under bench/ (bench/NAME.c -> $(BUILD)/bench/NAME),
# driven by bench/run, which `make bench` calls.
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

bench: deps
	$(MAKE) all $(BENCH_BINS)
	BUILD=$(abspath $(BUILD)) sh bench/run
