"""etl-wsd benchmarks (run by bench/wsd.sh): fan-out throughput to 1,000
clients, PUBLISH->client latency at 100 msg/s with 1 and 1,000 clients, and
resident memory with 10,000 idle clients. Real Redis, real etl-wsd, the C
load generator (build/wsclient). Prints one JSON line per result.

The same workloads run, in the same run, against nginx with nchan in Redis
mode (bench/nchan/nginx.conf.in) when nginx and its nchan module are
installed (bench/nchan/install.sh; WSD_BENCH_NCHAN=0 skips them). Their JSON
lines are "nchan_<bench>", and "vs_nchan.<metric> VALUE UNIT nchan REF" lines
carry the headline numbers with nchan's as the reference, so that bench/run
prints etl-wsd/nchan ratios.

The one difference in the workload: etl-wsd relays what is PUBLISHed on a
Redis channel, while nchan cannot relay a raw Redis channel (it speaks its
own protocol over Redis); a message reaches nchan through its HTTP publisher
location, here over one keep-alive connection (pipelined for the fan-out
burst, as the Redis PUBLISHes are), and nchan then goes through Redis to its
workers. Both servers subscribe to the same kind of Redis (a private
redis-server, over TCP on 127.0.0.1: nchan takes no unix socket)."""
import json
import os
import pwd
import grp
import selectors
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

from harness import TestEnv, free_port, proc_stats, start_redis, wait_for  # noqa: E402
import harness_wsd as hw  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = {"job_id": 12, "slot_id": 0, "seq": 0, "ts": "2026-11-28T17:41:23.120Z",
           "level": "INFO", "sistema": "amplis",
           "mensagem": "Extraindo tabela clientes: 12000 linhas processadas"}
NCHAN_CONF = os.path.join(HERE, "nchan", "nginx.conf.in")
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
NCHAN_WORKERS = 2  # see the comment in nginx.conf.in


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sched_wait_s(pid):
    """Seconds the threads of pid spent runnable but waiting for a CPU: how
    much of the latency is this machine being busy."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except OSError:
            pass
    return total / 1e9


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    """Proportional set size: shared pages (nginx's shared memory zone,
    the binary) counted once across processes, not once per process."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    return [p for p, f in proc_stats() if int(f[1]) == pid]


def frame_of(event):
    """What etl-wsd sends a client for event: {"type", "payload"}, compact."""
    return json.dumps({"type": event["type"], "payload": event["payload"]},
                      separators=(",", ":"))


# ---- the two servers ------------------------------------------------------
class WsdTarget:
    name = "etl-wsd"
    prefix = ""

    def __init__(self, **extra):
        self.env = TestEnv(ETL_LOG_LEVEL="warn")
        try:
            rport = free_port()
            _, url = start_redis(self.env, port=rport)
            self.redis_pid = self.env.procs[-1].pid
            self.r = hw.Redis(url)  # the publisher: unix socket
            self.w = hw.start_wsd(self.env, f"redis://127.0.0.1:{rport}", extra_env=extra)
        except BaseException:
            self.env.close()
            raise
        self.port = self.w.port

    def path(self):
        return "/ws?token=" + hw.make_token(ttl=7200)

    def pids(self):
        return [self.w.proc.pid]

    def subscribers(self):
        return self.w.metric("etl_wsd_clients")

    def publish_many(self, events):
        self.r.publish_many(events)

    def publish(self, event):
        self.r.publish(event)

    def mark(self):
        self.w0 = self.w.metric("etl_wsd_writes_total")

    def extra(self, res):
        """etl-wsd's own view: sends (frames to one client coalesce into one
        when it lags), its relay-latency histogram, slow closes."""
        writes = self.w.metric("etl_wsd_writes_total") - self.w0
        res["writes"] = int(writes)
        res["server_cpu_per_write_us"] = round(res["server_cpu_s"] * 1e6 / max(writes, 1), 3)
        if res["bench"] == "latency":
            res["wsd_internal_p50_le_s"] = hist_quantile(self.w, 0.5)
            res["wsd_internal_p99_le_s"] = hist_quantile(self.w, 0.99)
        elif res["bench"] == "fanout":
            res["slow_consumer_closes"] = self.w.metric("etl_wsd_slow_consumer_closes_total")
            res["redis_reconnects"] = self.w.metric("etl_wsd_redis_reconnects_total")

    def close(self):
        self.r.close()
        rc = self.w.proc.stop()
        self.env.close()
        if rc != 0:
            raise SystemExit(f"etl-wsd exited {rc}: {self.w.proc.log()[-2000:]}")


class HttpPub:
    """nchan's publisher over one keep-alive HTTP/1.1 connection; requests
    can be pipelined (sent while earlier answers are read)."""

    def __init__(self, port, path="/pub"):
        self.port, self.path = port, path
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _request(self, body):
        if isinstance(body, str):
            body = body.encode()
        return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (self.path.encode(), self.port, len(body))) + body

    def _response(self):
        """One complete response from self.buf, or None if more bytes are needed."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = None
        for h in head[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
            elif k.strip().lower() == "transfer-encoding":
                raise RuntimeError("nchan publisher answered chunked: not handled")
        if length is None:
            length = 0
        if len(self.buf) < end + 4 + length:
            return None
        self.buf = self.buf[end + 4 + length:]
        return status

    @staticmethod
    def _check(status):
        if status not in (200, 201, 202):
            raise RuntimeError(f"nchan publish: HTTP {status}")

    def post_many(self, bodies):
        out = b"".join(self._request(b) for b in bodies)
        want, got, sent = len(bodies), 0, 0
        sel = selectors.DefaultSelector()
        self.s.setblocking(False)
        sel.register(self.s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while got < want:
                for _, ev in sel.select(30):
                    if ev & selectors.EVENT_WRITE and sent < len(out):
                        sent += self.s.send(out[sent:sent + 262144])
                        if sent == len(out):
                            sel.modify(self.s, selectors.EVENT_READ)
                    if ev & selectors.EVENT_READ:
                        d = self.s.recv(262144)
                        if not d:
                            raise ConnectionError("nchan closed the publisher connection")
                        self.buf += d
                        while got < want and (st := self._response()) is not None:
                            self._check(st)
                            got += 1
        finally:
            sel.unregister(self.s)
            self.s.setblocking(True)

    def post(self, body, check=True):
        self.s.sendall(self._request(body))
        while (st := self._response()) is None:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("nchan closed the publisher connection")
            self.buf += d
        if check:
            self._check(st)
        return st

    def subscribers(self):
        """nchan's channel info (a GET on the publisher location)."""
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/json\r\n\r\n"
                       % self.path.encode())
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1").lower()
                n = int(head.split("content-length:")[1].split("\r\n")[0]) \
                    if "content-length:" in head else 0
                if len(self.buf) >= end + 4 + n:
                    body = self.buf[end + 4:end + 4 + n].decode()
                    self.buf = self.buf[end + 4 + n:]
                    status = int(head.split(" ", 2)[1])
                    if status == 404:
                        return 0  # no channel yet: nobody subscribed
                    return int(json.loads(body)["subscribers"])
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("nchan closed the publisher connection")
            self.buf += d

    def close(self):
        self.s.close()


class NchanTarget:
    name = "nchan"
    prefix = "nchan_"

    def __init__(self, **_extra):
        self.env = TestEnv(ETL_LOG_LEVEL="warn")
        try:
            rport = free_port()
            start_redis(self.env, port=rport)
            self.redis_pid = self.env.procs[-1].pid
            wait_for(lambda: socket.create_connection(("127.0.0.1", rport), 1).close() or True,
                     what="redis TCP port")
            self.port = free_port()
            user = ""
            if os.geteuid() == 0:
                # a root master would run its workers as "nobody": keep ours
                user = "user %s %s;" % (pwd.getpwuid(os.getuid()).pw_name,
                                        grp.getgrgid(os.getgid()).gr_name)
            with open(NCHAN_CONF) as f:
                conf = f.read()
            for k, v in {"@DIR@": self.env.dir, "@PORT@": str(self.port),
                         "@WORKERS@": str(NCHAN_WORKERS), "@USER@": user,
                         "@REDIS_URL@": f"redis://127.0.0.1:{rport}"}.items():
                conf = conf.replace(k, v)
            path = self.env.path("nginx.conf")
            with open(path, "w") as f:
                f.write(conf)
            err = self.env.path("nginx-error.log")
            self.proc = self.env.start(["nginx", "-c", path, "-e", err], "nginx")
            wait_for(lambda: not self.proc.alive() or len(children(self.proc.pid)) >= NCHAN_WORKERS,
                     what="nginx workers")
            wait_for(lambda: not self.proc.alive()
                     or socket.create_connection(("127.0.0.1", self.port), 1).close() or True,
                     what="nginx listening")
            if not self.proc.alive():
                raise SystemExit("nginx did not start: " + self.proc.log()[-2000:])
            self.pub = HttpPub(self.port)
            # nchan connects to Redis (and loads its scripts) lazily: one
            # publish to nobody, answered, means the Redis side is ready.
            wait_for(lambda: self.pub.post("{}", check=False) in (200, 201, 202), timeout=20, what="nchan publisher")
        except BaseException:
            self.env.close()
            raise

    def path(self):
        return "/sub"

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def subscribers(self):
        return self.pub.subscribers()

    def publish_many(self, events):
        self.pub.post_many([frame_of(e) for e in events])

    def publish(self, event):
        self.pub.post(frame_of(event))

    def mark(self):
        pass

    def extra(self, res):
        pass

    def close(self):
        self.pub.close()
        self.env.close()


def nchan_available():
    if os.environ.get("WSD_BENCH_NCHAN", "1") == "0":
        return False
    return os.path.exists(NCHAN_MODULE) and \
        subprocess.run(["sh", "-c", "command -v nginx"], capture_output=True).returncode == 0


# ---- the workloads -------------------------------------------------------
def clients(t, n, expect, timeout=300, hold=0):
    p = subprocess.Popen([hw.WSCLIENT, "-p", str(t.port), "-P", t.path(), "-c", str(n),
                          "-n", str(expect), "-T", str(timeout), "-H", str(hold)],
                         stdout=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline() or "{}")
    assert first.get("n") == n, first
    return p


def finish(p):
    out, _ = p.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def cpu_of(pids):
    total = 0.0
    for p in pids:
        try:
            total += cpu_s(p)
        except OSError:
            pass
    return total


def fanout(kind, n_clients=1000, n_msgs=2000, procs=2):
    """n_clients split over procs load-generator processes (the C client is
    single-threaded); deliveries/s over the wall time from the first PUBLISH
    to the last client's last message."""
    t = kind(WSD_MAX_BACKLOG="65536")
    try:
        ps = [clients(t, n_clients // procs, n_msgs, timeout=120) for _ in range(procs)]
        wait_for(lambda: t.subscribers() >= n_clients, timeout=60,
                 what=f"{n_clients} clients")
        pids = t.pids()
        t.mark()
        c0, r0 = cpu_of(pids), cpu_s(t.redis_pid)
        msgs = [hw.event("log", **dict(PAYLOAD, seq=i)) for i in range(n_msgs)]
        t0 = time.monotonic()
        for i in range(0, n_msgs, 500):
            t.publish_many(msgs[i:i + 500])
        ss = [finish(p) for p in ps]
        wall = time.monotonic() - t0
        cpu = cpu_of(pids) - c0
        total = sum(s["messages"] for s in ss)
        res = {"bench": "fanout", "server": t.name, "clients": n_clients,
               "loadgen_procs": procs, "messages": n_msgs, "deliveries": total,
               "complete_clients": sum(s["complete"] for s in ss),
               "deliveries_per_s": round(total / wall), "wall_s": round(wall, 3),
               "server_cpu_s": round(cpu, 3),
               "server_cpu_per_delivery_us": round(cpu * 1e6 / max(total, 1), 3),
               "redis_cpu_s": round(cpu_s(t.redis_pid) - r0, 3),
               "loadgen_cpu_s": round(sum(s["cpu_user_s"] + s["cpu_sys_s"] for s in ss), 3)}
        t.extra(res)
        return res
    finally:
        t.close()


def hist_quantile(w, q):
    """q-quantile (upper bucket bound, s) of wsd's own relay latency histogram."""
    m = w.metrics()
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in m.items()
                     if k.startswith("etl_wsd_relay_latency_seconds_bucket")
                     and "+Inf" not in k)
    total = m["etl_wsd_relay_latency_seconds_count"]
    for le, v in buckets:
        if v >= q * total:
            return le
    return float("inf")


def latency(kind, n_clients, rate=100, seconds=10, procs=1):
    t = kind()
    try:
        n_msgs = rate * seconds
        ps = [clients(t, n_clients // procs, n_msgs, timeout=seconds + 60)
              for _ in range(procs)]
        wait_for(lambda: t.subscribers() >= n_clients, timeout=60,
                 what=f"{n_clients} clients")
        pids = t.pids()
        t.mark()
        c0, r0 = cpu_of(pids), cpu_s(t.redis_pid)
        q0 = sum(sched_wait_s(p) for p in pids)
        t_next = time.monotonic()
        for i in range(n_msgs):
            now = time.monotonic()
            if t_next > now:
                time.sleep(t_next - now)  # a paced load generator, not a test wait
            t_next += 1.0 / rate
            t.publish(hw.event("log", **dict(PAYLOAD, seq=i, t_us=time.time_ns() // 1000)))
        ss = [finish(p) for p in ps]
        res = {"bench": "latency", "server": t.name, "clients": n_clients,
               "loadgen_procs": procs, "rate_per_s": rate, "messages": n_msgs,
               "samples": sum(s["latency_samples"] for s in ss),
               "p50_us": max(s["latency_p50_us"] for s in ss),
               "p99_us": max(s["latency_p99_us"] for s in ss),
               "max_us": max(s["latency_max_us"] for s in ss),
               "complete_clients": sum(s["complete"] for s in ss),
               "server_cpu_s": round(cpu_of(pids) - c0, 3),
               "server_runqueue_wait_s": round(sum(sched_wait_s(p) for p in pids) - q0, 3),
               "redis_cpu_s": round(cpu_s(t.redis_pid) - r0, 3),
               "loadavg_1m": os.getloadavg()[0],
               "loadgen_cpu_s": round(sum(s["cpu_user_s"] + s["cpu_sys_s"] for s in ss), 3)}
        res["loadgen_cpu_per_msg_us"] = round(res["loadgen_cpu_s"] * 1e6
                                              / max(sum(s["messages"] for s in ss), 1), 3)
        t.extra(res)
        return res
    finally:
        t.close()


def tcp_floor(conns=1000, rounds=300):
    """The kernel's share: CPU per 200-byte send and receive on loopback TCP
    with nothing else (build/tcpfloor), at the latency benchmark's pace."""
    r = subprocess.run([os.path.join(os.environ["BUILD"], "tcpfloor"), "-c", str(conns),
                        "-r", str(rounds), "-g", "10000", "-b", "200"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit("tcpfloor failed: " + r.stderr[-1000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["bench"] = "tcp_floor"
    return res


def idle_rss(kind, n_clients=10000, procs=10):
    """RSS of the server (nginx: master and workers summed) before and with
    n_clients idle clients (procs load generators: lws' poll() loop is
    O(fds) per turn). PSS too: nginx's processes share pages."""
    t = kind()
    try:
        pids = t.pids()
        base = sum(rss_kb(p) for p in pids)
        base_pss = sum(pss_kb(p) for p in pids)
        ps = [clients(t, n_clients // procs, 0, hold=600) for _ in range(procs)]
        wait_for(lambda: t.subscribers() >= n_clients, timeout=120,
                 what=f"{n_clients} clients")
        time.sleep(1)  # let the allocator settle before reading RSS
        full = sum(rss_kb(p) for p in pids)
        full_pss = sum(pss_kb(p) for p in pids)
        for p in ps:
            p.terminate()
        for p in ps:
            finish(p)
        return {"bench": "idle_rss", "server": t.name, "clients": n_clients,
                "processes": len(pids), "base_rss_kb": base, "rss_kb": full,
                "per_conn_bytes": round((full - base) * 1024 / n_clients),
                "base_pss_kb": base_pss, "pss_kb": full_pss,
                "pss_per_conn_bytes": round((full_pss - base_pss) * 1024 / n_clients)}
    finally:
        t.close()


WORKLOADS = {
    "fanout": (lambda k: fanout(k), "fanout",
               [("deliveries_per_s", "/s"), ("server_cpu_per_delivery_us", "us"),
                ("loadgen_cpu_s", "s")]),
    "latency1": (lambda k: latency(k, 1), "latency1",
                 [("p50_us", "us"), ("p99_us", "us"), ("max_us", "us")]),
    "latency1000": (lambda k: latency(k, 1000, procs=2), "latency1000",
                    [("p50_us", "us"), ("p99_us", "us"), ("max_us", "us"),
                     ("server_cpu_s", "s"), ("loadgen_cpu_s", "s")]),
    "rss": (lambda k: idle_rss(k), "idle_rss",
            [("base_rss_kb", "KiB"), ("rss_kb", "KiB"), ("per_conn_bytes", "bytes"),
             ("pss_per_conn_bytes", "bytes")]),
}


def main():
    which = sys.argv[1:] or ["fanout", "latency1", "latency1000", "rss"]
    with_nchan = nchan_available()
    if not with_nchan:
        print("wsd_bench: nginx with nchan not available: etl-wsd only", file=sys.stderr)
    for b in which:
        if b not in WORKLOADS:
            raise SystemExit(f"unknown benchmark {b}")
        run, label, headline = WORKLOADS[b]
        res = run(WsdTarget)
        print(json.dumps(res), flush=True)
        ref = None
        if with_nchan:
            ref = run(NchanTarget)
            ref["bench"] = "nchan_" + ref["bench"]
            print(json.dumps(ref), flush=True)
        # "name value unit nchan ref": bench/run shows etl-wsd/nchan
        for key, unit in headline:
            line = f"vs_nchan.{label}_{key} {res[key]} {unit}"
            if ref is not None:
                line += f" nchan {ref[key]}"
            print(line, flush=True)
        if b == "latency1000":
            # how far above the bare kernel cost etl-wsd's sends and the
            # load generators' receives are (doc/wsd.md)
            fl = tcp_floor()
            print(json.dumps(fl), flush=True)
            print(f"vs_floor.latency1000_server_cpu_per_write_us "
                  f"{res['server_cpu_per_write_us']} us tcp_send {fl['send_cpu_us']}", flush=True)
            print(f"vs_floor.latency1000_loadgen_cpu_per_msg_us "
                  f"{res['loadgen_cpu_per_msg_us']} us tcp_recv {fl['recv_cpu_us']}", flush=True)


if __name__ == "__main__":
    main()
