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
for b in etl-worker bench/worker_stamp; do
	[ -x "$BUILD/$b" ] || { echo "worker.sh: $BUILD/$b missing: run make all bench binaries" >&2; exit 1; }
done
exec "${PYTHON:-/usr/bin/python3}" "$here/worker_bench.py" "$@"
