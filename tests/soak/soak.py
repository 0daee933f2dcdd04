#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak (issue 14): `keel serve` under mixed load on every listener — tokens for many (domain,
role) pairs, the JWKS on the token keys server, /metrics, the probes — with a SIGHUP every second
and a certificate rotation every minute, for SECONDS (1800 by default). Samples the process's
RSS, open descriptors and threads every 10 s; passes when, from the end of the warm-up (a tenth
of the run, at least 60 s) to the end, RSS stays within 5 % and descriptors and threads within 5 %
of their warm-up values, and no request failed. Loopback only; bounded in time; the process it
starts is stopped at the end whatever happens.

Usage: soak.py KEEL [SECONDS]   (make soak SOAK_SECONDS=1800)"""

import http.client
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
os.environ["KEEL_BIN"] = os.path.abspath(sys.argv[1])
import keelrun  # noqa: E402  (after KEEL_BIN is set)

CONFIG = """log:
  level: warning
certificate:
  refresh_interval: 60s
token:
  jwks_server: true
  jwks_address: 127.0.0.1:0
"""


def addresses(k):
    status = k.ready()
    found = {}
    for label in ("token provider server", "token keys server", "metrics exporter server", "health check server"):
        m = re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", status)
        found[label] = (m.group(1), int(m.group(2)))
    return found


class Load(threading.Thread):
    """Keep-alive requests to one server in a loop, a few hundred a second at most."""

    def __init__(self, addr, requests, stop, pause):
        super().__init__(daemon=True)
        self.addr, self.requests, self.stop, self.pause = addr, requests, stop, pause
        self.ok = self.failed = 0
        self.failures = []

    def run(self):
        conn, i = None, 0
        while not self.stop.is_set():
            path, headers, check = self.requests[i % len(self.requests)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.addr, timeout=10)
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.status == 200 and check(body):
                    self.ok += 1
                else:
                    self.fail(f"{path}: {r.status} {body[:200]!r}")
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                # An idle keep-alive connection the server closed (http.request_header_timeout)
                # is not a failure: the request is sent again on a new one.
                conn = None
                if not isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    self.fail(f"{path}: {e!r}")
            time.sleep(self.pause)

    def fail(self, what):
        self.failed += 1
        if len(self.failures) < 20:
            self.failures.append(what)


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss = int(status["VmRSS"].split()[0]) * 1024
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def main():
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1800.0
    warmup = max(60.0, seconds / 10)
    k = keelrun.Keel("serve", config=CONFIG)
    stop = threading.Event()
    loads = []
    try:
        a = addresses(k)
        pairs = [{"X-Athenz-Domain": f"domain{d}", "X-Athenz-Role": f"role{r}"} for d in range(20) for r in range(5)]
        token = [("/token", h, lambda b: b"access_token" in b) for h in pairs]
        jwks = [("/.well-known/jwks.json", {}, lambda b: len(json.loads(b)["keys"]) >= 1)]
        metrics = [("/metrics", {}, lambda b: b"keel_build_info" in b)]
        probes = [(p, {}, lambda b: b.startswith(b"ok")) for p in ("/livez", "/readyz", "/healthz")]
        loads = [Load(a["token provider server"], token, stop, 0.002), Load(a["token provider server"], token[::-1], stop, 0.002),
                 Load(a["token keys server"], jwks, stop, 0.01), Load(a["metrics exporter server"], metrics, stop, 0.2),
                 Load(a["health check server"], probes, stop, 0.01)]
        for t in loads:
            t.start()
        started = time.monotonic()
        samples, base = [], None
        next_sample = started
        reloads = 0
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            n = len(k.messages())
            k.kill(signal.SIGHUP)
            k.wait_notify("READY=1", start=n + 1, timeout=30)
            reloads += 1
            now = time.monotonic()
            if now >= next_sample:
                s = sample(k.proc.pid)
                samples.append((now - started, *s))
                if base is None and now - started >= warmup:
                    base = s
                next_sample += 10
        stop.set()
        for t in loads:
            t.join(timeout=30)
        c = http.client.HTTPConnection(*a["metrics exporter server"], timeout=10)
        c.request("GET", "/metrics")
        m = re.search(rb"(?m)^keel_certificate_refresh_total (\d+)", c.getresponse().read())
        c.close()
        rotations = int(m.group(1)) if m else 0
        k.kill(signal.SIGTERM)
        status, _, err = k.wait(timeout=60)
    finally:
        stop.set()
        k.close()

    ok = sum(t.ok for t in loads)
    failed = sum(t.failed for t in loads)
    after = [s for s in samples if s[0] >= warmup]
    worst = {name: max(abs(s[i] - base[i - 1]) / base[i - 1] for s in after) for i, name in ((1, "rss"), (2, "fds"), (3, "threads"))}
    print(f"soak: {seconds:.0f}s requests_ok={ok} failed={failed} reloads={reloads} key_rotations={rotations} exit={status}")
    print(f"soak: after warm-up ({warmup:.0f}s) rss {base[0] / 1048576:.2f} MiB, fds {base[1]}, threads {base[2]}; "
          f"largest drift rss {worst['rss'] * 100:.1f}% fds {worst['fds'] * 100:.1f}% threads {worst['threads'] * 100:.1f}%")
    print("soak: samples (s, rss MiB, fds, threads): " +
          " ".join(f"{t:.0f}:{r / 1048576:.2f}/{f}/{n}" for t, r, f, n in samples[::max(1, len(samples) // 12)]))
    for t in loads:
        for f in t.failures:
            print("soak: failed:", f)
    good = failed == 0 and status == 0 and all(v <= 0.05 for v in worst.values()) and rotations >= max(1, int(seconds / 60 * 0.8))
    if not good:
        print("soak: FAILED" + ("" if status == 0 else f"; keel exited {status}:\n{err[-3000:]}"))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
