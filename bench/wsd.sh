#!/bin/sh
# etl-wsd benchmarks: fan-out to 1,000 clients, PUBLISH->client latency at
# 100 msg/s (1 and 1,000 clients), RSS with 10,000 idle clients.
# Usage: BUILD=/abs/build sh bench/wsd.sh [fanout|latency1|latency1000|rss]...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:=$(dirname "$here")/build}"
export BUILD
for b in etl-wsd wsclient; do
	[ -x "$BUILD/$b" ] || { echo "wsd.sh: $BUILD/$b missing: run make" >&2; exit 1; }
done
exec "${PYTHON:-/usr/bin/python3}" "$here/wsd_bench.py" "$@"
