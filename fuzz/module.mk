# Fuzzing (libFuzzer, clang): fuzz/fuzz_NAME.c -> $(BUILD)/fuzz/fuzz_NAME,
# each linked with the library (and, for the API and relay targets, the
# program sources they exercise) compiled by clang with
# -fsanitize=fuzzer-no-link,address,undefined into $(BUILD)/fuzz/obj/: the
# gcc-built $(LIB) is never mixed in.
#
#   make fuzz                     build, replay fuzz/regress/, fuzz each
#                                 target FUZZ_SECONDS (30) over its seeds
#   make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS="lparse js"
#   make fuzz-build               build only
#   make fuzz-check               build, run each seed and regression input once (CI)
#
# New inputs go to $(BUILD)/fuzz/corpus/NAME (the checked-in seeds in
# fuzz/corpus/NAME are only read); crashes to $(BUILD)/fuzz/artifacts/NAME/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c17 -D_GNU_SOURCE -DETL_VERSION='"$(VERSION)"' \
	$(filter-out -Werror,$(WARN)) -Wno-unused-command-line-argument -Wno-format-nonliteral \
	-Ilib -Ifcgi -Iwsd -Ifuzz -I$(BUILD) $(PKG_CFLAGS) -g -O1 \
	-fsanitize=fuzzer-no-link $(FUZZ_SAN) -MMD -MP
FUZZ_LDFLAGS := -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_OBJ     := $(BUILD)/fuzz/obj

FUZZ_NAMES   := $(sort $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_OBJ)/%.o) $(FUZZ_OBJ)/schema_sql.o
# the API targets: etl-api without main.c, and a cheap stand-in for pw.c
FUZZ_API_OBJS := $(filter-out $(FUZZ_OBJ)/lib/pw.o,$(FUZZ_LIB_OBJS)) \
	$(patsubst %.c,$(FUZZ_OBJ)/%.o,$(filter-out fcgi/main.c,$(sort $(wildcard fcgi/*.c)))) \
	$(FUZZ_OBJ)/fuzz/api_harness.o $(FUZZ_OBJ)/fuzz/pw_stub.o

$(FUZZ_OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OBJ)/schema_sql.o: $(BUILD)/schema_sql.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# the generic rule: a target linked with the library only
$(BUILD)/fuzz/fuzz_%: $(FUZZ_OBJ)/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# fuzz_tok checks lib/sha256.c against OpenSSL: it alone links libcrypto.
$(FUZZ_OBJ)/fuzz/fuzz_tok.o: FUZZ_CFLAGS += $(CRYPTO_CFLAGS)
$(BUILD)/fuzz/fuzz_tok: $(FUZZ_OBJ)/fuzz/fuzz_tok.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CRYPTO_LIBS)

$(BUILD)/fuzz/fuzz_relay: $(FUZZ_OBJ)/fuzz/fuzz_relay.o $(FUZZ_OBJ)/wsd/relay.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(BUILD)/fuzz/fuzz_route $(BUILD)/fuzz/fuzz_body: $(BUILD)/fuzz/fuzz_%: \
		$(FUZZ_OBJ)/fuzz/fuzz_%.o $(FUZZ_API_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(FCGI_LIBS)

fuzz-build: $(FUZZ_BINS)

# keep the targets' objects (pattern-chain intermediates would be deleted)
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_OBJ)/fuzz/fuzz_%.o)

# Replays every saved regression input (fuzz/regress/NAME/*) once, then
# fuzzes each target; stops at the first failure.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		if ls fuzz/regress/$$t/* >/dev/null 2>&1; then \
			echo "== fuzz $$t: replaying fuzz/regress/$$t ($$(ls fuzz/regress/$$t | wc -l) input(s))"; \
			$(BUILD)/fuzz/fuzz_$$t fuzz/regress/$$t/* >$(BUILD)/fuzz/$$t.regress.log 2>&1 \
			|| { tail -n 40 $(BUILD)/fuzz/$$t.regress.log; exit 1; }; \
		fi; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/artifacts/$$t; \
		dict=; [ -f fuzz/dict/$$t.dict ] && dict=-dict=fuzz/dict/$$t.dict; \
		echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
		$(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 $$dict \
			-artifact_prefix=$(BUILD)/fuzz/artifacts/$$t/ \
			$(BUILD)/fuzz/corpus/$$t fuzz/corpus/$$t 2>$(BUILD)/fuzz/$$t.log \
		|| { tail -n 40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
			$(BUILD)/fuzz/$$t.log | tr '\n' ' '; echo; \
	done

# CI's check (.ci/run): every target builds, and runs once over its
# checked-in seeds and regression inputs (libFuzzer's -runs=0: each input
# once, no fuzzing, so the outcome does not depend on luck or time).
fuzz-check: fuzz-build
	@set -e; for t in $(FUZZ_NAMES); do \
		dirs=; for d in fuzz/corpus/$$t fuzz/regress/$$t; do \
			if [ -d $$d ]; then dirs="$$dirs $$d"; fi; done; \
		if [ -z "$$dirs" ]; then echo "fuzz-check $$t: no inputs"; continue; fi; \
		mkdir -p $(BUILD)/fuzz/artifacts/$$t; \
		$(BUILD)/fuzz/fuzz_$$t -runs=0 -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=$(BUILD)/fuzz/artifacts/$$t/ $$dirs \
			>$(BUILD)/fuzz/$$t.check.log 2>&1 \
		|| { tail -n 40 $(BUILD)/fuzz/$$t.check.log; exit 1; }; \
		echo "fuzz-check $$t: $$(find $$dirs -type f | wc -l) input(s) ok"; \
	done

.PHONY: fuzz fuzz-build fuzz-check
