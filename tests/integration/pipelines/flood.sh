#!/bin/sh
# Prints N log lines as fast as it can (N from ETL_JOB_PARAMS "lines", or
# 100000), each "[INFO] [<first sistema>] line <i>" padded to about 100 bytes.
n=$(printf '%s' "$ETL_JOB_PARAMS" | sed -n 's/.*"lines": *\([0-9]*\).*/\1/p')
exec awk -v n="${n:-100000}" -v s="${1:-stdout}" 'BEGIN {
	pad = sprintf("%60s", ""); gsub(/ /, "y", pad)
	for (i = 1; i <= n; i++) printf "[INFO] [%s] line %d %s\n", s, i, pad
}'
