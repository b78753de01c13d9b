#!/bin/sh
# Wraps another pipeline to count runs: ETL_PIPELINE_CMD="count-runs.sh INNER".
# Appends "start <job id> <pid>" to ./runs.txt (the worker's ETL_PIPELINE_CWD)
# before running INNER with the job's sistemas, and "end <job id> <status>"
# after it, so a test can check that no job was ever started twice.
inner=$1
shift
echo "start $ETL_JOB_ID $$" >> runs.txt
"$inner" "$@"
rc=$?
echo "end $ETL_JOB_ID $rc" >> runs.txt
exit $rc
