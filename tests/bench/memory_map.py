#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where an idle `keel serve`'s resident memory is: starts the agent as check.py's rss group does
(all four services, loopback, a private state_dir), leaves it idle, and prints /proc/PID/smaps
summed by mapping — each library (its .bss with it), the heap, the anonymous mappings (thread
stacks, malloc arenas) — with its private dirty part, then the total.
Usage: memory_map.py PATH-TO-KEEL [SECONDS [NAME=VALUE...]]; the NAME=VALUEs go to the agent's
environment (MALLOC_ARENA_MAX=1, KEEL_PLUGINS_DISABLED=[token]...)."""

import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_http import free_port, start_keel  # noqa: E402


def by_mapping(pid):
    """{name: Counter(Rss=..., Private_Dirty=...)} in kB; anonymous memory right after a library's
    last mapping is its .bss."""
    sums, name, last_file, last_end = collections.defaultdict(collections.Counter), None, None, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
            if m:
                start, end, path = int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip()
                if path.startswith("/"):
                    name = last_file = os.path.basename(path)
                elif not path and last_file and start == last_end:
                    name = last_file
                else:
                    name, last_file = path or "[anon]", None
                last_end = end
                continue
            m = re.match(r"^(Rss|Private_Dirty):\s+(\d+) kB", line)
            if m:
                sums[name][m.group(1)] += int(m.group(2))
    return sums


def main():
    keel, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    extra = dict(a.split("=", 1) for a in sys.argv[3:])
    tmp = tempfile.mkdtemp(prefix="keel-memory-map-")
    p = start_keel(keel, tmp, free_port(), **extra)
    try:
        time.sleep(seconds)
        sums = by_mapping(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'mapping':32} {'Rss kB':>7} {'private dirty':>14}")
    for name, c in sorted(sums.items(), key=lambda kv: -kv[1]["Rss"]):
        if c["Rss"]:
            print(f"{name:32} {c['Rss']:7} {c['Private_Dirty']:14}")
    print(f"{'total':32} {sum(c['Rss'] for c in sums.values()):7} {sum(c['Private_Dirty'] for c in sums.values()):14}")


if __name__ == "__main__":
    main()
