# SPDX-License-Identifier: MIT
"""--trace: the Chrome trace file parses and holds a complete event for every event that ran."""

import os
import shutil
import signal
import tempfile
import unittest

from keelrun import KeelTestCase, load_trace, run


class TraceFile(KeelTestCase):
    def trace_path(self):
        d = tempfile.mkdtemp(prefix="keel-trace-")
        self.addCleanup(shutil.rmtree, d, True)
        return os.path.join(d, "trace.json")

    def test_every_event_that_ran_is_a_complete_event(self):
        trace = self.trace_path()
        k = self.keel("--trace", trace, "serve")
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        events = load_trace(trace)
        ran = [e["name"] for e in events if e.get("cat") == "event"]
        self.assertEqual(ran, ["command", "init", "configure", "start", "ready", "stop", "finalize"])
        for e in events:
            if e.get("cat") in ("event", "observer", "phase"):
                self.assertEqual(e["ph"], "X")
                self.assertIsInstance(e["ts"], int)
                self.assertIsInstance(e["dur"], int)
                self.assertEqual(e["pid"], k.proc.pid)
        observers = {e["name"]: e for e in events if e.get("cat") == "observer"}
        self.assertEqual(observers["config.load"]["args"], {"event": "configure", "phase": "before", "result": "ok"})
        self.assertEqual(observers["commands.serve"]["args"]["phase"], "serve")
        signals = [e for e in events if e.get("cat") == "signal"]
        self.assertEqual([s["name"] for s in signals], ["SIGTERM"])
        self.assertEqual(signals[0]["ph"], "i")

    def test_every_thread_that_recorded_something_is_named(self):
        trace = self.trace_path()
        k = self.keel("--trace", trace, "serve")
        k.ready()
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)
        events = load_trace(trace)
        names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "thread_name"}
        tids = {e["tid"] for e in events if e.get("ph") != "M"}
        self.assertTrue(tids)
        self.assertEqual(tids - names.keys(), set(), f"unnamed threads; names: {names}")
        self.assertIn("main", names.values())
        self.assertTrue(any(n.startswith("token-") for n in names.values()), names)

    def test_error_and_skipped_observers_are_recorded(self):
        trace = self.trace_path()
        status, _, err, _ = run("--trace", trace, "serve", env={"KEEL_FAULT": "error@in:pidfile.acquire"})
        self.assertEqual(status, 1, err)
        observers = {e["name"]: e for e in load_trace(trace) if e.get("cat") == "observer"}
        self.assertEqual(observers["pidfile.acquire"]["args"],
                         {"event": "start", "phase": "before", "result": "error", "error": "test error"})
        ran = [e["name"] for e in load_trace(trace) if e.get("cat") == "event"]
        self.assertEqual(ran, ["command", "init", "configure", "start", "stop", "finalize"])

    def test_skipped_observer_has_zero_duration(self):
        trace = self.trace_path()
        status, _, err, _ = run("--trace", trace, "serve", env={"KEEL_FAULT": "sigterm@before:pidfile.acquire"})
        self.assertEqual(status, 0, err)
        skipped = [e for e in load_trace(trace) if e.get("cat") == "observer" and e["args"]["result"] == "skipped"]
        self.assertEqual([e["name"] for e in skipped], ["pidfile.acquire", "start.delay", "layout.check", "state-dir.acquire",
                                                  "layout.record", "certificate.start", "token.start", "metrics.start",
                                                  "healthcheck.start"])
        self.assertEqual(skipped[0]["dur"], 0)

    def test_trace_to_stderr_prints_readable_lines(self):
        status, _, err, _ = run("--trace", "-", "serve", env={"KEEL_FAULT": "sigint@before:pidfile.acquire"})
        self.assertEqual(status, 0, err)
        lines = [line for line in err.splitlines() if line.startswith("trace: ")]
        self.assertTrue(any("config.load" in line for line in lines), err)
        self.assertTrue(any("skipped" in line and "pidfile.acquire" in line for line in lines), err)

    def test_unwritable_trace_file_is_reported(self):
        status, _, err, _ = run("--trace", "/nonexistent/dir/trace.json", "serve")
        self.assertEqual(status, 73, err)
        self.assertIn("/nonexistent/dir/trace.json", err)


if __name__ == "__main__":
    unittest.main()
