#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Exec to READY=1 of `keel serve` (all four services) cut into segments, from the trace's
monotonic timestamps: from posix_spawn() to the first trace record (the dynamic loader, the
constructors, keel_app_new(), the plugins, the command line), the configure event, each service's
start observer, and from the end of start to the READY=1 datagram. Medians over RUNS, each build's
run in turn, so drift in the machine hits all of them; with --first every run gets a new state
directory (a new CA, key and certificate), otherwise the first run makes the one the others reuse.
Usage: startup_timeline.py RUNS [--first] BUILD..."""

import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time

STEPS = ("config.load", "certificate.start", "token.start", "metrics.start", "healthcheck.start")


def spawn_until_ready(argv, env, sock):
    """(start µs, READY=1 µs) on CLOCK_MONOTONIC, the trace's clock; the process is stopped."""
    t0 = time.monotonic_ns() // 1000
    pid = os.posix_spawn(argv[0], argv, env)
    sock.settimeout(10)
    while "READY=1" not in sock.recv(4096).decode():
        pass
    ready = time.monotonic_ns() // 1000
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
    return t0, ready


def segments(trace, t0, ready):
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    spans = {e["name"]: (e["ts"], e["ts"] + e.get("dur", 0)) for e in events if e.get("ph") == "X"}
    out = {"exec -> first trace record": min(e["ts"] for e in events if "ts" in e) - t0}
    out["event configure"] = spans["configure"][1] - spans["configure"][0]
    for name in STEPS:
        if name in spans:
            out[name] = spans[name][1] - spans[name][0]
    out["event start"] = spans["start"][1] - spans["start"][0]
    out["end of start -> READY=1"] = ready - spans["start"][1]
    out["exec -> READY=1"] = ready - t0
    return out


def main():
    args = sys.argv[1:]
    first = "--first" in args
    args = [a for a in args if a != "--first"]
    if len(args) < 2:
        raise SystemExit(__doc__)
    runs, builds = int(args[0]), args[1:]
    tmp = tempfile.mkdtemp(prefix="keel-timeline-")
    try:
        open(os.path.join(tmp, "keel.yaml"), "w").close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(tmp, "notify"))
        results = {b: {} for b in builds}
        for i in range(runs + (0 if first else 1)):
            for n, build in enumerate(builds):
                env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "NOTIFY_"))}
                env.update(KEEL_DEFAULTS_FILE="/nonexistent", KEEL_HEALTHCHECK_ADDRESS="127.0.0.1:0",
                           KEEL_METRICS_ADDRESS="127.0.0.1:0", KEEL_TOKEN_ADDRESS="127.0.0.1:0",
                           KEEL_STATE_DIR=os.path.join(tmp, f"state-{n}-{i}" if first else f"state-{n}"),
                           NOTIFY_SOCKET=os.path.join(tmp, "notify"))
                trace = os.path.join(tmp, "trace.json")
                argv = [os.path.join(build, "keel"), "--config", os.path.join(tmp, "keel.yaml"), "--log-level", "warning",
                        "--trace", trace, "serve"]
                t0, ready = spawn_until_ready(argv, env, sock)
                if first or i > 0:
                    for name, usec in segments(trace, t0, ready).items():
                        results[build].setdefault(name, []).append(usec)
        names = list(results[builds[0]])
        print(f"{'median ms':28}" + "".join(f"{os.path.basename(os.path.dirname(os.path.abspath(b))):>14}" for b in builds))
        for name in names:
            print(f"{name:28}" + "".join(f"{statistics.median(results[b][name]) / 1000:14.3f}" for b in builds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
