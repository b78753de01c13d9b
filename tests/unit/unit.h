/*
 * unit.h: what every cmocka unit test includes, plus helpers for a temp
 * database file per test.
 */
#ifndef ETL_UNIT_H
#define ETL_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* A fresh path for a database file under /tmp (the file does not exist).
 * Writes into out (at least 64 bytes). */
static inline void
unit_tmpdb(char *out, size_t n)
{
	static int seq;
	snprintf(out, n, "/tmp/etl-unit-%d-%d.db", (int)getpid(), seq++);
	unlink(out);
}

#endif
