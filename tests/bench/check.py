#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""make bench-check: the figures issue 24 promises, measured in one run of a few minutes on an idle
machine, each against the floor committed in tests/bench/targets; exits 1 when one misses it.
The table of current figures in docs/performance.md is written from this run (--write-doc),
never by hand.
Usage: check.py BUILD [--seconds N] [--rounds N] [--runs N] [--only GROUP,...] [--write-doc FILE]
--only measures some groups of figures (http, tls, startup, version, rss) and judges only those:
for working on one figure; the document is written from a whole run only.
Every ratio is paired: keel and its reference alternate within each round, so drift in the
machine hits both; the figure is the median of the per-round ratios. Loopback only; every
process it starts is stopped."""

import argparse
import datetime
import operator
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_http import free_port, rss_kib, start_keel, start_nginx, wait_listening, wrk  # noqa: E402
from bench_token import HEADERS, median, warm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(HERE, "targets")
OPS = {">=": operator.ge, "<=": operator.le}
GROUPS = ("rss", "http", "tls", "startup", "version")


def read_targets(path):
    """{figure: (op, floor, what)} from the targets file."""
    targets = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"(\w+)\s+(>=|<=)\s+([\d.]+)\s+(.+)", line)
            if not m:
                raise SystemExit(f"{path}:{n}: expected 'figure >=|<= number description', got {line!r}")
            targets[m.group(1)] = (m.group(2), float(m.group(3)), m.group(4))
    return targets


def paired(a, b, rounds):
    """Per-round ratios of a() to b(), alternating."""
    return [a() / b() for _ in range(rounds)]


def nginx_tls(tmp, port, cert, key):
    conf = os.path.join(tmp, "nginx-tls.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {tmp}/nginx-tls.pid; error_log {tmp}/error-tls.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_session_cache off; ssl_session_tickets off; location / {{ return 200 "ok"; }} }} }}
""")
    p = subprocess.Popen(["nginx", "-c", conf, "-e", f"{tmp}/error-tls.log"])
    wait_listening(port)
    return p


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGQUIT if "nginx" in str(p.args) else signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def cpu_ns(pid):
    """CPU time of every thread of @pid so far, in ns (schedstat: exact, where ticks are 10 ms)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def cpu_per_request(pid, port, seconds):
    """Microseconds of @pid's CPU per /healthz answered, under wrk -t1 -c50."""
    before = cpu_ns(pid)
    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", f"http://127.0.0.1:{port}/healthz"], capture_output=True,
                         text=True, check=True).stdout
    used = cpu_ns(pid) - before
    return used / 1000 / int(re.search(r"(\d+) requests in", out).group(1))


def nginx_worker(master):
    with open(f"/proc/{master}/task/{master}/children") as f:
        return int(f.read().split()[0])


def http_figures(keel, tmp, seconds, rounds, out):
    kport, nport, tport, cport = free_port(), free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(start_keel(keel, tmp, kport, KEEL_TOKEN_ADDRESS=f"127.0.0.1:{tport}"))
        procs.append(start_nginx(tmp, nport))
        procs.append(subprocess.Popen([os.path.join(os.path.dirname(keel), "tests", "ceiling"), str(cport)]))
        wait_listening(cport)
        warm(tport)
        rps = lambda port, path="/healthz", headers=(), scheme="http": wrk(port, seconds, path, headers, scheme)[0]
        health = paired(lambda: rps(kport), lambda: rps(nport), rounds)
        out["health_vs_nginx"], out["health_vs_nginx_min"] = median(health), min(health)
        out["ceiling_vs_nginx"] = median(paired(lambda: rps(cport), lambda: rps(nport), rounds))
        worker = nginx_worker(procs[1].pid)
        # Each round: keel, nginx and the server that does nothing but a recv() and a send() a
        # request (the least an epoll server can spend; most of it the kernel's, the same for all).
        cpu = [(cpu_per_request(procs[0].pid, kport, seconds), cpu_per_request(worker, nport, seconds),
                cpu_per_request(procs[2].pid, cport, seconds)) for _ in range(rounds)]
        out["health_cpu_vs_nginx"] = median([k / n for k, n, _ in cpu])
        out["ceiling_cpu_vs_nginx"] = median([c / n for _, n, c in cpu])
        out["health_work_vs_nginx"] = median([(k - c) / (n - c) for k, n, c in cpu])
        close = ("Connection: close",)
        out["health_new_conn_vs_nginx"] = median(paired(lambda: rps(kport, "/healthz", close), lambda: rps(nport, "/healthz", close),
                                                        rounds))
        out["token_vs_health"] = median(paired(lambda: rps(tport, "/token", HEADERS), lambda: rps(kport), rounds))
    finally:
        stop(procs)


def rss_figures(keel, tmp, out, starts=3):
    """Idle resident memory, the median of @starts agents each left idle for a second."""
    tmp = os.path.join(tmp, "rss")
    os.mkdir(tmp)
    idle = []
    for _ in range(starts):
        p = start_keel(keel, tmp, free_port())
        try:
            time.sleep(1)
            idle.append(rss_kib(p.pid))
        finally:
            stop([p])
    out["idle_rss_kib"] = median(idle)


def handshakes(port, total, concurrent):
    """`total` TLS connections, `concurrent` at a time, each a /token then closed."""
    ctx = ssl._create_unverified_context()
    request = ("GET /token HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in HEADERS) + "Connection: close\r\n\r\n").encode()

    def worker(n):
        for _ in range(n):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as t:
                t.sendall(request)
                while t.recv(4096):
                    pass

    threads = [threading.Thread(target=worker, args=(total // concurrent,)) for _ in range(concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def tls_figures(keel, tmp, seconds, rounds, out):
    tmp = os.path.join(tmp, "tls")
    os.mkdir(tmp)
    tport, hport, nport = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(start_keel(keel, tmp, hport, KEEL_TOKEN_ADDRESS=f"127.0.0.1:{tport}", KEEL_TOKEN_TLS="self"))
        wait_listening(tport)
        state = os.path.join(tmp, "state")
        procs.append(nginx_tls(tmp, nport, os.path.join(state, "cert.pem"), os.path.join(state, "key.pem")))
        warm(tport, "https")
        idle = rss_kib(procs[0].pid)
        handshakes(tport, 2000, 200)
        time.sleep(10)
        out["tls_burst_rss_vs_idle"] = rss_kib(procs[0].pid) / idle
        for name, close in (("tls_vs_nginx_tls", ()), ("tls_handshake_vs_nginx_tls", ("Connection: close",))):
            k = lambda: wrk(tport, seconds, "/token", HEADERS + close, "https")[0]
            n = lambda: wrk(nport, seconds, "/token", HEADERS + close, "https")[0]
            out[name] = median(paired(k, n, rounds))
    finally:
        stop(procs)


def startup_median(build, program, runs, label, *args, fresh=False):
    env = dict(os.environ, BENCH_FRESH_STATE="1" if fresh else "0")
    p = subprocess.run([os.path.join(build, "tests", "bench-startup"), program, str(runs), label, *args],
                       capture_output=True, text=True, env=env, timeout=600)
    m = re.search(r"exec_to_ready_median_ms=([\d.]+)", p.stdout)
    if p.returncode != 0 or not m:
        raise SystemExit(f"bench-startup {label} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return float(m.group(1))


def exec_median(build, program, runs):
    p = subprocess.run([os.path.join(build, "tests", "bench-exec"), str(runs), program, "--version"],
                       capture_output=True, text=True, timeout=600)
    m = re.search(r"median_us=(\d+)", p.stdout)
    if p.returncode != 0 or not m:
        raise SystemExit(f"bench-exec {program} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return int(m.group(1))


def startup_figures(build, tmp, runs, rounds, out):
    """Paired like the rates: each round times the floor program just before and just after keel's
    warm and first-run start-ups, and divides each by the mean of the two; the floor's own time
    moves by a third across minutes on this VM, so a floor measured once would swing both ratios."""
    keel, floor = os.path.join(build, "keel"), os.path.join(build, "tests", "floor")
    state = os.path.join(tmp, "warm-state")
    startup_median(build, keel, 3, "state", "--set", f"state_dir={state}")  # the warm runs' directory
    floors, ready, first = [], [], []
    for _ in range(rounds):
        before = startup_median(build, floor, runs, "floor")
        warm_ms = startup_median(build, keel, runs, "all-four-reuse", "--set", f"state_dir={state}")
        first_ms = startup_median(build, keel, runs, "all-four-first-run", fresh=True)
        floor_ms = (before + startup_median(build, floor, runs, "floor")) / 2
        floors.append(floor_ms)
        ready.append(warm_ms / floor_ms)
        first.append(first_ms / floor_ms)
        print(f"start-up round: floor {floor_ms:.2f} ms, warm {warm_ms:.2f} ms, first run {first_ms:.2f} ms", file=sys.stderr)
    out["floor_ready_ms"] = median(floors)
    out["ready_vs_floor"] = median(ready)
    out["first_run_vs_floor"] = median(first)


def version_figures(build, runs, out):
    keel, floor = os.path.join(build, "keel"), os.path.join(build, "tests", "floor")
    out["version_vs_floor"] = median([exec_median(build, keel, runs) / exec_median(build, floor, runs) for _ in range(3)])


def table(results, targets, only=None):
    rows = ["| figure | now | floor | what | |", "|---|---|---|---|---|"]
    failed = []
    for name, (op, floor, what) in targets.items():
        value = results.get(name)
        if only and value is None:
            continue
        ok = value is not None and OPS[op](value, floor)
        if not ok:
            failed.append(name)
        shown = "—" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.2f}")
        rows.append(f"| `{name}` | {shown} | {op} {floor:g} | {what} | {'ok' if ok else '**miss**'} |")
    return rows, failed


def write_doc(path, header, rows):
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- bench-check: begin -->", "<!-- bench-check: end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no '{begin}' … '{end}' block to write the figures into")
    block = "\n".join([begin, header, "", *rows, end])
    with open(path, "w") as f:
        f.write(text[:text.index(begin)] + block + text[text.index(end) + len(end):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30, help="start-ups per start-up figure")
    ap.add_argument("--only", help="comma-separated groups: " + ",".join(GROUPS))
    ap.add_argument("--write-doc")
    a = ap.parse_args()
    only = a.only.split(",") if a.only else None
    if only and (a.write_doc or not set(only) <= set(GROUPS)):
        ap.error(f"--only takes groups among {','.join(GROUPS)}, and not with --write-doc")
    targets = read_targets(TARGETS)
    build, keel = os.path.abspath(a.build), os.path.join(os.path.abspath(a.build), "keel")
    started, results = time.monotonic(), {}
    tmp = tempfile.mkdtemp(prefix="keel-bench-check-")
    groups = {
        "rss": lambda: rss_figures(keel, tmp, results),
        "http": lambda: http_figures(keel, tmp, a.seconds, a.rounds, results),
        "tls": lambda: tls_figures(keel, tmp, a.seconds, a.rounds, results),
        "startup": lambda: startup_figures(build, tmp, a.runs, a.rounds, results),
        "version": lambda: version_figures(build, a.runs, results),
    }
    try:
        for name in GROUPS:
            if not only or name in only:
                groups[name]()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows, failed = table(results, targets, only)
    commit = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    header = (f"`make bench-check` of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}, commit {commit}, "
              f"{os.cpu_count()} cores, {a.rounds} paired rounds of {a.seconds} s (wrk -t1 -c50), {a.runs} start-ups a "
              f"figure, {time.monotonic() - started:.0f} s in all"
              + (f"; the floor start-up took {results['floor_ready_ms']:.2f} ms (median of the rounds)" if "floor_ready_ms" in results else "")
              + (f"; the load generator's ceiling (tests/bench/ceiling.c, a server that only reads and answers) is "
                 f"{results['ceiling_vs_nginx']:.2f}× nginx, and spends {results['ceiling_cpu_vs_nginx']:.2f}× nginx's CPU a request"
                 if "ceiling_vs_nginx" in results else "")
              + f". {len(failed)} of {len(rows) - 2} figures miss their floor.")
    print(header)
    print("\n".join(rows))
    if a.write_doc:
        write_doc(a.write_doc, header, rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
