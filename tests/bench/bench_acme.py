#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ACME issuance time: `keel serve` with certificate.provider acme against Debian's pebble on
loopback (real http-01 validation, PEBBLE_VA_NOSLEEP=1, no nonce rejections), a fresh state
directory each run, so that each run creates an account key, an account, an order, answers the
challenge, finalizes and downloads. Prints the issuance time keel logs ("Issued a certificate …
in X") and the time from exec to the health check listening, median and range over RUNS.
Usage: bench_acme.py PATH-TO-KEEL [RUNS]. Loopback only; every process is stopped at the end."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from pebble import Pebble, free_port  # noqa: E402

from bench_http import wait_listening  # noqa: E402


def duration_ms(text):
    m = re.fullmatch(r"(?:(\d+)m)?([\d.]+)(ms|s|µs)", text)
    value = float(m.group(2)) * {"ms": 1, "s": 1000, "µs": 0.001}[m.group(3)]
    return value + (int(m.group(1)) * 60000 if m.group(1) else 0)


def one_run(keel, pebble, health_port):
    tmp = tempfile.mkdtemp(prefix="keel-bench-acme-")
    config = os.path.join(tmp, "keel.yaml")
    with open(config, "w") as f:
        f.write(f"""certificate:
  provider: acme
  dns_names: [localhost]
  acme:
    directory_url: {pebble.directory_url}
    ca_file: {pebble.ca_file}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "NOTIFY_"))}
    env.update(KEEL_DEFAULTS_FILE="/nonexistent", KEEL_STATE_DIR=os.path.join(tmp, "state"),
               KEEL_HEALTHCHECK_ADDRESS=f"127.0.0.1:{health_port}", KEEL_METRICS_ADDRESS="127.0.0.1:0",
               KEEL_TOKEN_ADDRESS="127.0.0.1:0", no_proxy="127.0.0.1,localhost")
    t0 = time.monotonic()
    p = subprocess.Popen([keel, "--config", config, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        issued = None
        for line in p.stderr:
            m = re.search(r"Issued a certificate for \S+ by ACME .* in (\S+)", line)
            if m:
                issued = duration_ms(m.group(1))
            if "Starting health check server" in line:
                break
        wait_listening(health_port)
        ready = (time.monotonic() - t0) * 1000
        return issued, ready
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def summary(values):
    values = sorted(values)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return f"median={median:.1f}ms min={values[0]:.1f}ms max={values[-1]:.1f}ms"


def main():
    keel, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    health_port = free_port()
    pebble = Pebble(health_port)
    try:
        results = [one_run(keel, pebble, health_port) for _ in range(runs)]
    finally:
        pebble.close()
    issued = [r[0] for r in results if r[0] is not None]
    print(f"bench-acme: runs={runs} issued={len(issued)} issuance {summary(issued)}")
    print(f"bench-acme: exec to listening (issuance included) {summary([r[1] for r in results])}")


if __name__ == "__main__":
    main()
