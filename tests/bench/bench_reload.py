#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SIGHUP to READY=1: how long `keel serve` (every service it has) takes to reload.

Usage: bench_reload.py KEEL [ROUNDS]. Runs keel with a fake NOTIFY_SOCKET (the integration
harness), sends SIGHUP ROUNDS times, and reports the median and p99 from the signal to the
READY=1 datagram, as a service manager would see it."""

import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
os.environ["KEEL_BIN"] = os.path.abspath(sys.argv[1])
import keelrun  # noqa: E402  (after KEEL_BIN is set)


def main():
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    k = keelrun.Keel("serve", config="log:\n  level: warning\n")
    try:
        k.ready()
        samples = []
        for _ in range(rounds):
            before = len(k.messages())
            sent = time.monotonic()
            k.kill(signal.SIGHUP)
            k.wait_notify("READY=1", start=before + 1)
            with k.cond:
                received = next(t for t, m in k.notifications[before:] if m.startswith("READY=1"))
            samples.append((received - sent) * 1e3)
        k.kill(signal.SIGTERM)
        status = k.wait()[0]
    finally:
        k.close()
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"bench-reload: rounds={rounds} sighup_to_ready_ms median={statistics.median(samples):.3f} "
          f"p99={p99:.3f} min={samples[0]:.3f} exit={status}")


if __name__ == "__main__":
    main()
