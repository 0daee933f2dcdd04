# SPDX-License-Identifier: MIT
"""The lifecycle table of docs/lifecycle.md, one run of `keel serve` per row.

A row is data: the faults injected (KEEL_FAULT), what the test does to the running process, what
each service's start observer must have done (from the trace), and the exit status. Every row
also checks that every stop observer ran and finalize after them, that every thread that started
exited and was joined with the main thread writing the last records, and that every listener was
closed while the process still lived (finalize is held 400 ms so that there is a moment to look:
after the exit the kernel closes them anyway)."""

import os
import re
import shutil
import signal
import socket
import tempfile
import time
import unittest
from dataclasses import dataclass, field

from httpclient import bound_address, get
from keelrun import KeelTestCase, load_trace

SERVICES = ("certificate", "token", "metrics", "healthcheck")
HOLD_FINALIZE = "sleep=400@in:pidfile.release"
RESULT = {"✅": "ok", "❌": "error", "⏭": "skipped"}


@dataclass
class Row:
    id: str
    fault: str          # KEEL_FAULT
    action: str         # "": runs to its end; "SIGINT"/"SIGTERM": sent once ready; "HUP+TERM": reload, then stop
    starts: str         # one mark per service in start order: ✅ ok, ❌ error, ⏭ skipped
    status: int
    ready: bool = True  # READY=1 was sent
    sets: tuple = ()
    logs: tuple = ()    # lines the log must contain
    stops: bool = True  # every stop observer ran (not for a forced exit)
    wait_for: str = ""  # a log line to see before the action


def seed(case, sig):
    """Rows 000-010 of the seed's table, with SIGINT or SIGTERM."""
    before = [
        ("000", "", "✅✅✅✅", True),
        ("001", "@before:certificate.start", "⏭⏭⏭⏭", False),
        ("002", "@before:token.start", "✅⏭⏭⏭", False),
        ("003", "@before:metrics.start", "✅✅⏭⏭", False),
        ("004", "@before:healthcheck.start", "✅✅✅⏭", False),
        # A signal inside a start observer lets it finish and skips the ones after it.
        ("005", "@before:certificate.spawn.refresh", "✅⏭⏭⏭", False),
        ("006", "@before:token.spawn.server", "✅✅⏭⏭", False),
        ("007", "@before:token.spawn.refresh", "✅✅⏭⏭", False),
        ("008", "@before:token.spawn.memory", "✅✅⏭⏭", False),
        ("009", "@before:metrics.spawn.server", "✅✅✅⏭", False),
        ("010", "@before:healthcheck.spawn.server", "✅✅✅✅", False),
    ][case]
    name = sig.lower()
    fault = f"{name}{before[1]}" if before[1] else ""
    return Row(f"{before[0]}-{name}", fault, sig if not fault else "", before[2], 0, ready=before[3])


ROWS = [seed(i, s) for s in ("SIGINT", "SIGTERM") for i in range(11)] + [
    Row("011", "error@in:certificate.start", "", "❌⏭⏭⏭", 1, ready=False,
        logs=("Error starting certificate provider: test error", "Skipped token provider start")),
    Row("012", "error@in:token.start", "", "✅❌⏭⏭", 1, ready=False, logs=("Error starting token provider: test error",)),
    Row("013", "error@in:metrics.start", "", "✅✅❌⏭", 1, ready=False),
    Row("014", "error@in:healthcheck.start", "", "✅✅✅❌", 1, ready=False),
    # The start error is the cause; a SIGINT during the stops is logged and changes nothing.
    Row("015", "error@in:metrics.start,sigint@in:token.stop", "", "✅✅❌⏭", 1, ready=False,
        logs=("Already shutting down (start failed), ignoring: received signal: interrupt",)),
    Row("sighup-before-ready", "sighup@before:metrics.start", "SIGTERM", "✅✅✅✅", 0,
        logs=("Received signal: hangup before ready, ignoring",)),
    Row("sighup-while-ready", "", "HUP+TERM", "✅✅✅✅", 0, logs=("Received signal: hangup, reloading", "Reloaded")),
    Row("second-signal-in-stop", "sigint@in:healthcheck.stop", "SIGTERM", "✅✅✅✅", 0,
        logs=("Already shutting down (received signal: terminated), ignoring: received signal: interrupt",)),
    Row("error-in-ready", "error@in:health.ready", "", "✅✅✅✅", 1, ready=False,
        logs=("Observer health.ready failed: test error",)),
    Row("error-in-init", "error@in:systemd.watchdog", "", "    ", 1, ready=False),
    Row("error-in-configure", "error@in:config.load", "", "    ", 78, ready=False),
    Row("stop-hangs", "sleep=20000@in:token.stop", "SIGTERM", "✅✅✅✅", 2, sets=("shutdown.timeout=300ms",),
        logs=("shutdown overran shutdown.timeout in observer token.stop; forcing exit with status 2",), stops=False),
    Row("refresh-keeps-failing", "error@in:certificate.refresh", "SIGTERM", "✅✅✅✅", 0,
        sets=("certificate.refresh_interval=50ms",), wait_for="certificate.refresh"),
    # 3s, not 50ms: the first refresh must come after READY=1, and under ThreadSanitizer the start
    # after certificate.start takes ~50 ms alone (1 run in 6 had the SIGINT before READY=1), far
    # more on a loaded machine.
    Row("sigint-in-failing-refresh", "error@in:certificate.refresh,sigint@in:certificate.refresh", "", "✅✅✅✅", 0,
        sets=("certificate.refresh_interval=3s",)),
]


class Table(KeelTestCase):
    def run_row(self, row):
        tmp = tempfile.mkdtemp(prefix=f"keel-row-{row.id}-")
        self.addCleanup(shutil.rmtree, tmp, True)
        trace = os.path.join(tmp, "trace.json")
        args = ["--trace", trace, "serve"]
        for s in row.sets:
            args += ["--set", s]
        k = self.keel(*args, env={"KEEL_FAULT": ",".join(f for f in (row.fault, HOLD_FINALIZE) if f)})
        if row.action:
            k.ready()
            if row.wait_for:
                self.wait_for_failures(k)
            if row.action == "HUP+TERM":
                before = len(k.messages())
                k.kill(signal.SIGHUP)
                k.wait_notify("READY=1", start=before + 1)
            k.kill(signal.SIGINT if row.action == "SIGINT" else signal.SIGTERM)
        closed_alive = self.listeners_closed_while_alive(k)
        status, _, err = k.wait(timeout=30)
        return status, err, k.messages(), load_trace(trace), closed_alive

    def wait_for_failures(self, k):
        deadline = time.monotonic() + 10
        while k.stderr_so_far().count("Failed to refresh") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreaterEqual(k.stderr_so_far().count("Failed to refresh"), 2, "refresh attempts keep failing")
        metrics = bound_address(k, "metrics exporter server")
        failures = re.search(r"(?m)^keel_certificate_refresh_failures_total (\S+)$", get(metrics, "/metrics")[2])
        self.assertGreaterEqual(float(failures.group(1)), 2, "the failures are counted")

    @staticmethod
    def listeners_closed_while_alive(k):
        """From STOPPING=1 on, probes every listener the log names until the process exits: True
        when all of them refused a connection at a moment the process was still running."""
        deadline = time.monotonic() + 30
        while k.proc.poll() is None and time.monotonic() < deadline:
            if any(m.startswith("STOPPING=1") for m in k.messages()):
                ports = listeners(k.stderr_so_far())
                if all(refused(address) for address in ports) and k.proc.poll() is None:
                    return True
            time.sleep(0.01)
        return False

    def check_row(self, row):
        status, err, msgs, events, closed_alive = self.run_row(row)
        self.assertEqual(status, row.status, err)
        for line in row.logs:
            self.assertIn(line, err)
        self.assertEqual(any(m.startswith("READY=1") for m in msgs), row.ready, msgs)
        observers = {}
        for e in events:
            if e.get("cat") == "observer":
                observers.setdefault(e["name"], []).append(e["args"])
        for service, mark in zip(SERVICES, row.starts):
            got = observers.get(f"{service}.start", [{}])[0].get("result")
            self.assertEqual(got, RESULT.get(mark), f"{service}.start; log:\n{err}")
            if row.stops and mark != " ":
                stops = observers.get(f"{service}.stop", [])
                self.assertEqual([s["result"] for s in stops], ["ok"], f"{service}.stop must run, and succeed")
        if row.stops:
            release = observers.get("pidfile.release", [])
            self.assertEqual([(r["event"], r["result"]) for r in release], [("finalize", "ok")], "finalize ran")
            self.check_threads(events)
            if listeners(err):  # none when init or configure failed, or the first start
                self.assertTrue(closed_alive, f"a listener was still open after the stop: {listeners(err)}")

    def check_threads(self, events):
        pid = events[-1]["pid"]
        tasks = [e for e in events if e.get("cat") == "task"]
        lifecycle = {}
        for e in tasks:
            lifecycle.setdefault(e["name"], []).append(e)
        for name, records in lifecycle.items():
            kinds = [detail(r) for r in records]
            self.assertEqual(kinds.count("started"), kinds.count("exited"), f"thread {name}: {kinds}")
            self.assertEqual(kinds.count("started"), kinds.count("joined"), f"thread {name} was not joined: {kinds}")
        # After the last join, only the main thread writes.
        last_join = max((i for i, e in enumerate(events) if e.get("cat") == "task" and detail(e) == "joined"), default=-1)
        self.assertTrue(all(e["tid"] == pid for e in events[last_join + 1:] if "tid" in e))

def listeners(log):
    return [(host, int(port)) for host, port in re.findall(r"server\[(127\.0\.0\.1):(\d+)\]", log)]


def refused(address):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(address) != 0


def detail(e):
    args = e.get("args", {})
    return args.get("detail") or args.get("name") or ""


def make_test(row):
    return lambda self: self.check_row(row)


for _row in ROWS:
    setattr(Table, f"test_{_row.id.replace('-', '_')}", make_test(_row))

if __name__ == "__main__":
    unittest.main()
