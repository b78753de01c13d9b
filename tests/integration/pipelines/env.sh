#!/bin/sh
# Reports what the worker gave the pipeline: argv, environment, open fds,
# working directory, stdin, process group and session.
echo "[INFO] [stdout] args=$*"
env | sort | sed 's/^/[INFO] [stdout] env /'
# ls lists its own fds: what it inherited plus the one it opens (3) to read the dir.
for fd in $(ls /proc/self/fd); do
	echo "[INFO] [stdout] fd $fd"
done
echo "[INFO] [stdout] cwd=$(pwd)"
echo "[INFO] [stdout] stdin=$(readlink /proc/self/fd/0)"
set -- $(cut -d')' -f2 /proc/$$/stat)
echo "[INFO] [stdout] pid=$$ pgrp=$3 sid=$4"
