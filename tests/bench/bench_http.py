#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""/healthz throughput and latency with `wrk -t1 -c50` against keel and against nginx-light
(`return 200`, one worker) in the same run, alternating; and keel's idle RSS.
Usage: bench_http.py PATH-TO-KEEL [SECONDS [ROUNDS]]. Each round runs keel then nginx; the VM's
noise moves single runs by ±20 %, so the line to read is the median of the per-round ratios.
Loopback only; every process it starts is stopped."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing listens on {port}")


def start_keel(keel, tmp, port, **extra):
    open(os.path.join(tmp, "keel.yaml"), "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "NOTIFY_"))}
    env.update(KEEL_DEFAULTS_FILE="/nonexistent", KEEL_HEALTHCHECK_ADDRESS=f"127.0.0.1:{port}",
               KEEL_METRICS_ADDRESS="127.0.0.1:0", KEEL_TOKEN_ADDRESS="127.0.0.1:0",
               KEEL_STATE_DIR=os.path.join(tmp, "state"))  # never /var/lib/keel
    env.update(extra)
    p = subprocess.Popen([keel, "--config", os.path.join(tmp, "keel.yaml"), "--log-level", "warning", "serve"], env=env)
    wait_listening(port)
    return p


def start_nginx(tmp, port):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }} }}
""")
    p = subprocess.Popen(["nginx", "-c", conf, "-e", f"{tmp}/error.log"])
    wait_listening(port)
    return p


def wrk(port, seconds, path="/healthz", headers=(), scheme="http"):
    extra = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", *extra, f"{scheme}://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rps, lat.get("50"), lat.get("99"), errors.group(0) if errors else "none"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def main():
    keel, seconds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    tmp = tempfile.mkdtemp(prefix="keel-bench-http-")
    procs = []
    try:
        kport, nport = free_port(), free_port()
        # Idle RSS with the health check and the metrics exporter only (issue 3's budget: 8 MB).
        small = start_keel(keel, tmp, kport, KEEL_PLUGINS_DISABLED="[certificate, token]")
        time.sleep(1)
        idle_small = rss_kib(small.pid)
        small.terminate()
        small.wait(timeout=30)
        k = start_keel(keel, tmp, kport)
        procs.append(k)
        time.sleep(1)
        idle = rss_kib(k.pid)
        n = start_nginx(tmp, nport)
        procs.append(n)
        runs = {"keel": [], "nginx": []}
        for _ in range(rounds):  # alternate, so drift in the machine hits both
            runs["keel"].append(wrk(kport, seconds))
            runs["nginx"].append(wrk(nport, seconds))
        for name, rs in runs.items():
            for rps, p50, p99, errors in rs:
                print(f"bench-http: server={name} rps={rps:.0f} p50={p50} p99={p99} errors={errors}")
        best = {name: max(r[0] for r in rs) for name, rs in runs.items()}
        mean = {name: sum(r[0] for r in rs) / len(rs) for name, rs in runs.items()}
        paired = sorted(k[0] / n[0] for k, n in zip(runs["keel"], runs["nginx"]))
        median = paired[len(paired) // 2] if len(paired) % 2 else (paired[len(paired) // 2 - 1] + paired[len(paired) // 2]) / 2
        print(f"bench-http: rounds={rounds} ratio_median={median:.2f} ratio_best={best['keel'] / best['nginx']:.2f} "
              f"ratio_mean={mean['keel'] / mean['nginx']:.2f} idle_rss_kib_health_metrics={idle_small} "
              f"idle_rss_kib_all_four={idle}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is procs[0] else signal.SIGQUIT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
