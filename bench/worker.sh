#!/bin/sh
# etl-worker benchmarks: dispatch latency enqueue -> pipeline start (p50,
# p99), trivial jobs per second with 4 slots (/bin/true), log ingest lines
# per second (1,000,000 lines of ~100 bytes), worker RSS idle and with 4
# busy slots. Real SQLite, real worker, real pipelines.
# Usage: BUILD=/abs/build sh bench/worker.sh [latency|jobs|lines|rss]...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:=$(dirname "$here")/build}"
export BUILD
[ -x "$BUILD/etl-worker" ] || { echo "worker.sh: $BUILD/etl-worker missing: run make" >&2; exit 1; }
# The latency pipeline is built static here: the generic bench rule links
# every library, and their loading would be measured as dispatch latency.
mkdir -p "$BUILD/bench"
${CC:-cc} -O2 -static -o "$BUILD/bench/worker_stamp_static" "$here/worker_stamp.c" 2>/dev/null ||
	${CC:-cc} -O2 -o "$BUILD/bench/worker_stamp_static" "$here/worker_stamp.c"
exec "${PYTHON:-/usr/bin/python3}" "$here/worker_bench.py" "$@"
