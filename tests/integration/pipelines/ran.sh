#!/bin/sh
# Records each run in ./ran.txt (the worker's ETL_PIPELINE_CWD) as
# "<job id> <slot id> <start> <end>", sleeping "sleep" seconds from
# ETL_JOB_PARAMS in between, so tests can count runs and check overlaps.
s=$(printf '%s' "$ETL_JOB_PARAMS" | sed -n 's/.*"sleep": *\([0-9.]*\).*/\1/p')
start=$(date +%s.%N)
echo "[INFO] [${1:-stdout}] job $ETL_JOB_ID slot $ETL_SLOT_ID sistemas $ETL_SISTEMAS"
[ -n "$s" ] && sleep "$s"
echo "$ETL_JOB_ID $ETL_SLOT_ID $start $(date +%s.%N) $ETL_SISTEMAS" >> ran.txt
