# Unit tests: tests/unit/test_NAME.c -> $(BUILD)/tests/test_NAME, each a
# cmocka program linked with the shared library.
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
$(BUILD)/tests/unit/%.o: ALL_CFLAGS += -DFIXTURES='"$(abspath ..)/shared/fixtures"'

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) -lcmocka

# test_fuzz_regress replays fuzz_tok's inputs, and with them its OpenSSL oracle
$(BUILD)/tests/unit/test_fuzz_regress.o: ALL_CFLAGS += $(CRYPTO_CFLAGS)
$(BUILD)/tests/test_fuzz_regress: PKG_LIBS += $(CRYPTO_LIBS)

unit-tests: $(UNIT_BINS)
