/*
 * fuzz.h: what the libFuzzer targets under fuzz/ share. Each target is one
 * fuzz_<name>.c defining LLVMFuzzerTestOneInput; fuzz/module.mk builds them
 * with clang -fsanitize=fuzzer,address,undefined against the library
 * compiled with the same flags, and `make fuzz` runs each over its seed
 * corpus fuzz/corpus/<name>/. A target fails (aborts, so libFuzzer saves
 * the input) on a sanitizer report or on a broken invariant checked with
 * FUZZ_CHECK.
 */
#ifndef ETL_FUZZ_H
#define ETL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: abort with a message when broken. */
#define FUZZ_CHECK(cond, ...)                                                                   \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: ", __FILE__, __LINE__, \
			    #cond);                                                             \
			fprintf(stderr, __VA_ARGS__);                                           \
			fputc('\n', stderr);                                                    \
			abort();                                                                \
		}                                                                               \
	} while (0)

#endif
