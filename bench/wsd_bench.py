"""etl-wsd benchmarks (run by bench/wsd.sh): fan-out throughput to 1,000
clients, PUBLISH->client latency at 100 msg/s with 1 and 1,000 clients, and
resident memory with 10,000 idle clients. Real Redis, real etl-wsd, the C
load generator (build/wsclient). Prints one JSON line per result."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

from harness import TestEnv, start_redis, wait_for  # noqa: E402
import harness_wsd as hw  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = {"job_id": 12, "slot_id": 0, "seq": 0, "ts": "2026-11-28T17:41:23.120Z",
           "level": "INFO", "sistema": "amplis",
           "mensagem": "Extraindo tabela clientes: 12000 linhas processadas"}


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sched_wait_s(pid):
    """Seconds the main (fan-out) thread spent runnable but waiting for a CPU:
    how much of the latency is this machine being busy."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def clients(w, n, expect, timeout=300, hold=0, expect_total=None):
    path = "/ws?token=" + hw.make_token(ttl=7200)
    p = subprocess.Popen([hw.WSCLIENT, "-p", str(w.port), "-P", path, "-c", str(n),
                          "-n", str(expect), "-T", str(timeout), "-H", str(hold)],
                         stdout=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline() or "{}")
    assert first.get("n") == n, first
    if expect_total is None:
        wait_for(lambda: w.metric("etl_wsd_clients") >= n, timeout=60, what=f"{n} clients")
    return p


def finish(p):
    out, _ = p.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def env_with_wsd(**extra):
    env = TestEnv(ETL_LOG_LEVEL="warn")
    _, url = start_redis(env)
    w = hw.start_wsd(env, url, extra_env=extra)
    return env, w, hw.Redis(url)


def fanout(n_clients=1000, n_msgs=2000, procs=2):
    """n_clients split over procs load-generator processes (the C client is
    single-threaded); deliveries/s over the wall time from the first PUBLISH
    to the last client's last message."""
    env, w, r = env_with_wsd(WSD_MAX_BACKLOG="65536")
    try:
        ps = [clients(w, n_clients // procs, n_msgs, expect_total=n_clients)
              for _ in range(procs)]
        wait_for(lambda: w.metric("etl_wsd_clients") >= n_clients, timeout=60,
                 what=f"{n_clients} clients")
        c0 = cpu_s(w.proc.pid)
        msgs = [hw.event("log", **dict(PAYLOAD, seq=i)) for i in range(n_msgs)]
        t0 = time.monotonic()
        for i in range(0, n_msgs, 500):
            r.publish_many(msgs[i:i + 500])
        ss = [finish(p) for p in ps]
        wall = time.monotonic() - t0
        wsd_cpu = cpu_s(w.proc.pid) - c0
        total = sum(s["messages"] for s in ss)
        return {"bench": "fanout", "clients": n_clients, "loadgen_procs": procs,
                "messages": n_msgs, "deliveries": total,
                "complete_clients": sum(s["complete"] for s in ss),
                "deliveries_per_s": round(total / wall), "wall_s": round(wall, 3),
                "wsd_cpu_s": round(wsd_cpu, 3),
                "wsd_cpu_us_per_delivery": round(wsd_cpu * 1e6 / max(total, 1), 3),
                "loadgen_cpu_s": round(sum(s["cpu_user_s"] + s["cpu_sys_s"] for s in ss), 3),
                "slow_consumer_closes": w.metric("etl_wsd_slow_consumer_closes_total"),
                "redis_reconnects": w.metric("etl_wsd_redis_reconnects_total")}
    finally:
        env.close()


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


def latency(n_clients, rate=100, seconds=10, procs=1):
    env, w, r = env_with_wsd()
    try:
        n_msgs = rate * seconds
        ps = [clients(w, n_clients // procs, n_msgs, expect_total=n_clients)
              for _ in range(procs)]
        wait_for(lambda: w.metric("etl_wsd_clients") >= n_clients, timeout=60,
                 what=f"{n_clients} clients")
        c0 = cpu_s(w.proc.pid)
        q0 = sched_wait_s(w.proc.pid)
        t_next = time.monotonic()
        for i in range(n_msgs):
            now = time.monotonic()
            if t_next > now:
                time.sleep(t_next - now)  # a paced load generator, not a test wait
            t_next += 1.0 / rate
            r.publish(hw.event("log", **dict(PAYLOAD, seq=i, t_us=time.time_ns() // 1000)))
        ss = [finish(p) for p in ps]
        return {"bench": "latency", "clients": n_clients, "loadgen_procs": procs,
                "rate_per_s": rate, "messages": n_msgs,
                "samples": sum(s["latency_samples"] for s in ss),
                "p50_us": max(s["latency_p50_us"] for s in ss),
                "p99_us": max(s["latency_p99_us"] for s in ss),
                "max_us": max(s["latency_max_us"] for s in ss),
                "wsd_internal_p50_le_s": hist_quantile(w, 0.5),
                "wsd_internal_p99_le_s": hist_quantile(w, 0.99),
                "complete_clients": sum(s["complete"] for s in ss),
                "wsd_cpu_s": round(cpu_s(w.proc.pid) - c0, 3),
                "wsd_runqueue_wait_s": round(sched_wait_s(w.proc.pid) - q0, 3),
                "loadavg_1m": os.getloadavg()[0],
                "loadgen_cpu_s": round(sum(s["cpu_user_s"] + s["cpu_sys_s"] for s in ss), 3)}
    finally:
        env.close()


def idle_rss(n_clients=10000, procs=10):
    """RSS of etl-wsd before and with n_clients idle, authorised clients
    (procs load generators: lws' poll() loop is O(fds) per turn)."""
    env, w, r = env_with_wsd()
    try:
        base = rss_kb(w.proc.pid)
        ps = [clients(w, n_clients // procs, 0, hold=600, expect_total=n_clients)
              for _ in range(procs)]
        wait_for(lambda: w.metric("etl_wsd_clients") >= n_clients, timeout=120,
                 what=f"{n_clients} clients")
        time.sleep(1)  # let the allocator settle before reading RSS
        full = rss_kb(w.proc.pid)
        for p in ps:
            p.terminate()
        for p in ps:
            finish(p)
        return {"bench": "idle_rss", "clients": n_clients, "base_rss_kb": base,
                "rss_kb": full, "per_conn_bytes": round((full - base) * 1024 / n_clients)}
    finally:
        env.close()


def main():
    which = sys.argv[1:] or ["fanout", "latency1", "latency1000", "rss"]
    for b in which:
        if b == "fanout":
            res = fanout()
        elif b == "latency1":
            res = latency(1)
        elif b == "latency1000":
            res = latency(1000, procs=2)
        elif b == "rss":
            res = idle_rss()
        else:
            raise SystemExit(f"unknown benchmark {b}")
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
