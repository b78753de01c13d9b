#!/bin/sh
# Leaves a process behind that escaped the job's process group (its own
# session) and still holds stdout, writes its pid to ./escaped.pid, then
# exits 0: the job must still end at once.
setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' &
while [ ! -s escaped.pid ]; do sleep 0.01; done
echo "[SUCCESS] [${1:-stdout}] done"
