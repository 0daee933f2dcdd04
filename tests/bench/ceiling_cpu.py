#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""CPU per /healthz answered under wrk -t1 -c50, in µs, of keel, nginx-light (one worker, `return
200`), the do-nothing epoll server (ceiling.c: a recv() and a send() a request) and the same with
io_uring (ceiling-uring.c: one io_uring_enter() a turn of its loop), ROUNDS rounds of SECONDS each,
in turn, with each one's ratio to nginx's in the same round. It tells how far a CPU floor against
nginx is from the least an epoll server spends, and what batching system calls would change.
Build the programs with `make bench` (or `cmake --build BUILD --target benches`) first.
Usage: ceiling_cpu.py BUILD [ROUNDS [SECONDS]]"""

import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
from bench_http import free_port, wait_listening  # noqa: E402


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    build = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    tmp = tempfile.mkdtemp(prefix="keel-ceiling-cpu-")
    ports = {name: free_port() for name in ("keel", "nginx", "ceiling", "ceiling-uring")}
    procs = {"keel": check.start_keel(os.path.join(build, "keel"), tmp, ports["keel"]),
             "nginx": check.start_nginx(tmp, ports["nginx"])}
    try:
        for name in ("ceiling", "ceiling-uring"):
            program = os.path.join(build, "tests", name)
            if os.access(program, os.X_OK):
                procs[name] = subprocess.Popen([program, str(ports[name])])
                wait_listening(ports[name])
        pids = {name: p.pid for name, p in procs.items()}
        pids["nginx"] = check.nginx_worker(procs["nginx"].pid)
        used = {name: [] for name in pids}
        for _ in range(rounds):
            for name, pid in pids.items():
                used[name].append(check.cpu_per_request(pid, ports[name], seconds))
        for name, values in used.items():
            ratios = [v / n for v, n in zip(values, used["nginx"])]
            print(f"{name:14} {statistics.median(values):6.2f} µs a request (median), "
                  f"{statistics.median(ratios):.2f}× nginx's; rounds: {' '.join(f'{r:.2f}' for r in ratios)}")
    finally:
        check.stop(list(procs.values()))


if __name__ == "__main__":
    main()
