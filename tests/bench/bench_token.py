#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Cached GET /token against /healthz of the same keel, with `wrk -t1 -c50`, alternating rounds.
Every /token request is for one (domain, role) pair whose token the first request minted, so this
measures the cache hit path: header checks, the cache lookup and copy, the JSON answer. The
target is a median per-round ratio token/healthz of at least 0.8. Then the same /token over TLS
(`token.tls: self`, a second keel) against plain HTTP, alternating, on kept-alive connections and
with a new connection (and handshake) per request.
Usage: bench_token.py PATH-TO-KEEL [SECONDS [ROUNDS]]. Loopback only; keel is stopped at the end."""

import os
import shutil
import ssl
import signal
import subprocess
import sys
import tempfile
import urllib.request

from bench_http import free_port, wait_listening, wrk

HEADERS = ("X-Athenz-Domain: sports", "X-Athenz-Role: reader")


def start_keel(keel, tmp, tport, hport, **extra):
    open(os.path.join(tmp, "keel.yaml"), "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "NOTIFY_"))}
    env.update(KEEL_DEFAULTS_FILE="/nonexistent", KEEL_STATE_DIR=os.path.join(tmp, "state"),
               KEEL_HEALTHCHECK_ADDRESS=f"127.0.0.1:{hport}", KEEL_METRICS_ADDRESS="127.0.0.1:0",
               KEEL_TOKEN_ADDRESS=f"127.0.0.1:{tport}", **extra)
    p = subprocess.Popen([keel, "--config", os.path.join(tmp, "keel.yaml"), "--log-level", "warning", "serve"], env=env)
    wait_listening(tport)
    wait_listening(hport)
    return p


def warm(tport, scheme="http"):
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{tport}/token",
                                 headers=dict(h.split(": ") for h in HEADERS))
    ctx = ssl._create_unverified_context() if scheme == "https" else None
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        assert r.status == 200, r.status


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def tls_rounds(keel, tmp, plain_port, seconds, rounds):
    """/token over TLS on a second keel against the first one's plain /token."""
    tport, hport = free_port(), free_port()
    k = start_keel(keel, os.path.join(tmp, "tls"), tport, hport, KEEL_TOKEN_TLS="self")
    try:
        warm(tport, "https")
        for close in (False, True):
            headers = HEADERS + (("Connection: close",) if close else ())
            runs = {"http": [], "https": []}
            for _ in range(rounds):
                runs["http"].append(wrk(plain_port, seconds, "/token", headers))
                runs["https"].append(wrk(tport, seconds, "/token", headers, "https"))
            mode = "new-connection" if close else "keep-alive"
            for name, rs in runs.items():
                for rps, p50, p99, errors in rs:
                    print(f"bench-token-tls: {mode} scheme={name} rps={rps:.0f} p50={p50} p99={p99} errors={errors}")
            ratio = median([t[0] / h[0] for t, h in zip(runs["https"], runs["http"])])
            print(f"bench-token-tls: {mode} rounds={rounds} ratio_median={ratio:.2f} (/token over TLS ÷ plain)")
    finally:
        k.send_signal(signal.SIGTERM)
        k.wait(timeout=15)


def main():
    keel, seconds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    tmp = tempfile.mkdtemp(prefix="keel-bench-token-")
    k = None
    try:
        tport, hport = free_port(), free_port()
        k = start_keel(keel, tmp, tport, hport)
        warm(tport)
        runs = {"token": [], "healthz": []}
        for _ in range(rounds):  # alternate, so drift in the machine hits both
            runs["token"].append(wrk(tport, seconds, "/token", HEADERS))
            runs["healthz"].append(wrk(hport, seconds, "/healthz"))
        for name, rs in runs.items():
            for rps, p50, p99, errors in rs:
                print(f"bench-token-http: path={name} rps={rps:.0f} p50={p50} p99={p99} errors={errors}")
        ratio = median([t[0] / h[0] for t, h in zip(runs["token"], runs["healthz"])])
        print(f"bench-token-http: rounds={rounds} ratio_median={ratio:.2f} (cached /token ÷ /healthz)")
        os.mkdir(os.path.join(tmp, "tls"))
        tls_rounds(keel, tmp, tport, seconds, rounds)
    finally:
        if k:
            k.send_signal(signal.SIGTERM)
            try:
                k.wait(timeout=10)
            except subprocess.TimeoutExpired:
                k.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
