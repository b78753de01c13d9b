#!/bin/sh
# etl-wsd benchmarks: fan-out to 1,000 clients, PUBLISH->client latency at
# 100 msg/s (1 and 1,000 clients), RSS with 10,000 idle clients; the same
# workloads against nginx+nchan (Redis mode) as the reference, installed
# first when missing (bench/nchan/install.sh; WSD_BENCH_NCHAN=0 skips nchan).
# Usage: BUILD=/abs/build sh bench/wsd.sh [fanout|latency1|latency1000|rss]...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BUILD:=$(dirname "$here")/build}"
export BUILD
for b in etl-wsd wsclient tcpfloor; do
	[ -x "$BUILD/$b" ] || { echo "wsd.sh: $BUILD/$b missing: run make" >&2; exit 1; }
done
if [ "${WSD_BENCH_NCHAN:-1}" != 0 ] && ! sh "$here/nchan/install.sh"; then
	echo "wsd.sh: nginx+nchan not installable: etl-wsd numbers only" >&2
fi
exec "${PYTHON:-/usr/bin/python3}" "$here/wsd_bench.py" "$@"
