#!/bin/sh
# Installs nginx with the nchan module for the etl-wsd comparison benchmark
# (bench/wsd_bench.py), when missing. Debian packages: nginx-light is not
# enough (no dynamic nchan), so nginx + libnginx-mod-nchan.
# apt would start a system nginx on port 80: while installing, a
# policy-rc.d that forbids service starts is put in place (unless one
# exists already), and an nginx that still got started is stopped by the
# PID in its pid file. The benchmark runs its own nginx, never the system one.
# Exit status 0 when nginx can load nchan afterwards.
set -eu
mod=/usr/lib/nginx/modules/ngx_nchan_module.so
if command -v nginx >/dev/null 2>&1 && [ -f "$mod" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "nchan/install.sh: nginx+nchan missing and not root: apt-get install nginx libnginx-mod-nchan" >&2
	exit 1
fi
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	ours=1
fi
rc=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	nginx libnginx-mod-nchan >&2 || rc=$?
if [ "$rc" -ne 0 ]; then
	apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends nginx libnginx-mod-nchan >&2 && rc=0
fi
[ "$ours" -eq 1 ] && rm -f "$policy"
# a system nginx started despite the policy (systemd hosts): stop it by PID
for pidf in /run/nginx.pid /var/run/nginx.pid; do
	if [ -s "$pidf" ]; then
		pid=$(cat "$pidf")
		case $pid in *[!0-9]* | '') continue ;; esac
		kill -QUIT "$pid" 2>/dev/null || true
	fi
done
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now nginx >/dev/null 2>&1 || true
fi
[ "$rc" -eq 0 ] && [ -f "$mod" ]
