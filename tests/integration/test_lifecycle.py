# SPDX-License-Identifier: MIT
"""The lifecycle of the real binary: signals, start errors, notify messages, exit statuses."""

import os
import shutil
import signal
import tempfile
import time
import unittest

from httpclient import wait_for
from keelrun import KeelTestCase, load_trace, run


class Signals(KeelTestCase):
    def stop_with(self, sig):
        k = self.keel("serve")
        k.ready()
        k.kill(sig)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return k, err

    def test_sigterm_after_ready_exits_0_and_notifies_in_order(self):
        k, err = self.stop_with(signal.SIGTERM)
        self.assertIn("Received signal: terminated", err)
        self.assertIn("Shutdown completed", err)
        self.assertInOrder(k.messages(), ["STATUS=Selecting the command", "STATUS=Initializing", "STATUS=Configuring",
                                          "STATUS=Starting services", "STATUS=Getting ready", "READY=1",
                                          "STOPPING=1", "EXTEND_TIMEOUT_USEC=", "STATUS=Stopping", "STATUS=Finalizing"])

    def test_sigint_after_ready_exits_0(self):
        _, err = self.stop_with(signal.SIGINT)
        self.assertIn("Received signal: interrupt", err)

    def test_sigquit_after_ready_drains_and_exits_0(self):
        _, err = self.stop_with(signal.SIGQUIT)
        self.assertIn("Received signal: quit", err)
        self.assertIn("Stopped health check server", err)
        self.assertIn("Shutdown completed", err)

    def test_sigusr1_and_sigusr2_are_logged_and_ignored(self):
        k = self.keel("serve")
        k.ready()
        k.kill(signal.SIGUSR1)
        wait_for(lambda: "Received signal: user defined signal 1, ignoring" in k.stderr_so_far(), 10, "SIGUSR1 logged")
        time.sleep(1.2)  # past the once-a-second limit of "ignoring" lines, counted from that one
        k.kill(signal.SIGUSR2)
        wait_for(lambda: "Received signal: user defined signal 2, ignoring" in k.stderr_so_far(), 10, "SIGUSR2 logged")
        self.assertIsNone(k.proc.poll(), "still serving")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Received signal: user defined signal 1, ignoring", err)
        self.assertIn("Received signal: user defined signal 2, ignoring", err)

    def test_a_flood_of_ignored_signals_is_logged_once_a_second(self):
        k = self.keel("serve", "--set", "shutdown.delay=1500ms")
        k.ready()
        k.kill(signal.SIGTERM)
        k.wait_notify("STOPPING=1")
        for _ in range(500):
            k.kill(signal.SIGHUP)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        lines = err.count("Received signal: hangup during shutdown, ignoring")
        self.assertTrue(1 <= lines <= 3, f"{lines} lines for 500 signals in 1.5 s")

    def test_ready_carries_a_status(self):
        k = self.keel("serve")
        self.assertIn("STATUS=Ready", k.ready())

    def test_sighup_while_ready_reloads_and_tells_systemd(self):
        k = self.keel("serve")
        k.ready()
        before = len(k.messages())
        k.kill(signal.SIGHUP)
        reloading = k.wait_notify("RELOADING=1", start=before)
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        k.wait_notify("READY=1", start=before + 1)
        self.assertInOrder(k.messages()[before:], ["RELOADING=1", "READY=1"])
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Received signal: hangup, reloading", err)

    def test_sighup_before_ready_is_ignored_and_logged(self):
        k = self.keel("serve", env={"KEEL_FAULT": "sighup@before:pidfile.acquire"})
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Received signal: hangup before ready, ignoring", err)
        self.assertFalse(any(m.startswith("RELOADING=1") for m in k.messages()))

    def test_second_signal_during_shutdown_is_logged_and_changes_nothing(self):
        # A delay of 2 s: the second signal comes during it on a loaded machine too.
        k = self.keel("serve", "--set", "shutdown.delay=2s")
        k.ready()
        k.kill(signal.SIGTERM)
        k.wait_notify("STOPPING=1")
        k.kill(signal.SIGINT)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Received signal: interrupt", err)
        self.assertIn("Already shutting down (received signal: terminated), ignoring: received signal: interrupt", err)

    def test_watchdog_pings_when_systemd_asks(self):
        k = self.keel("serve", env={"WATCHDOG_USEC": "200000"})
        k.ready()
        k.wait_notify("WATCHDOG=1", timeout=5)
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)


class StartErrors(KeelTestCase):
    def test_start_error_exits_1_without_ready(self):
        status, _, err, msgs = run("serve", env={"KEEL_FAULT": "error@in:pidfile.acquire"})
        self.assertEqual(status, 1, err)
        self.assertIn("Observer pidfile.acquire failed: test error", err)
        self.assertIn("Initiating shutdown, cause: start failed\n", err)
        self.assertIn("Exiting with status 1: start failed\n", err)
        self.assertEqual(err.count("test error"), 1, "one line per error:\n" + err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs), msgs)
        self.assertIn("STOPPING=1", msgs)

    def test_signal_before_a_start_observer_skips_it_and_exits_0(self):
        status, _, err, msgs = run("serve", env={"KEEL_FAULT": "sigint@before:pidfile.acquire"})
        self.assertEqual(status, 0, err)
        self.assertIn("Skipped observer pidfile.acquire", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs), msgs)

    def test_error_in_configure_exits_78_and_never_starts(self):
        status, _, err, msgs = run("serve", env={"KEEL_FAULT": "error@in:config.load"})
        self.assertEqual(status, 78, err)
        self.assertNotIn("STATUS=Starting services", msgs)

    def test_error_in_init_exits_1_and_never_configures(self):
        status, _, err, msgs = run("serve", env={"KEEL_FAULT": "error@before:systemd.watchdog"})
        self.assertEqual(status, 1, err)
        self.assertNotIn("STATUS=Configuring", msgs)


class StopBudget(KeelTestCase):
    def test_a_long_stop_keeps_extending_the_service_manager_timeout(self):
        k = self.keel("serve", env={"KEEL_FAULT": "sleep=1200@before:pidfile.release"})
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        extends = [m for m in k.messages() if m.startswith("EXTEND_TIMEOUT_USEC=")]
        self.assertGreaterEqual(len(extends), 2, k.messages())
        self.assertGreater(int(extends[0].split("=")[1]), 30_000_000, "covers shutdown.timeout (30s) and a margin")

    def test_a_stop_that_overruns_but_finishes_exits_2(self):
        trace = os.path.join(self.tmpdir(), "trace.json")
        # 400 ms: past the 300 ms budget, and 0.9 s before the forced exit (the budget and a second),
        # room for the rest of the stop on a loaded machine.
        k = self.keel("--trace", trace, "serve", "--set", "shutdown.timeout=300ms",
                      env={"KEEL_FAULT": "sleep=400@in:shutdown.delay"})
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 2, err)
        self.assertIn("more than shutdown.timeout (0.300s)", err)
        names = [e["name"] for e in load_trace(trace) if e.get("cat") == "event"]
        self.assertEqual(names[-1], "finalize", "finalize still runs after an overrun")

    def test_a_stuck_stop_observer_is_named_and_the_process_forced_out_with_2(self):
        trace = os.path.join(self.tmpdir(), "trace.json")
        k = self.keel("--trace", trace, "serve", "--set", "shutdown.timeout=200ms",
                      env={"KEEL_FAULT": "sleep=20000@in:shutdown.delay"})
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait(timeout=10)
        self.assertEqual(status, 2, err)
        self.assertIn("shutdown overran shutdown.timeout in observer shutdown.delay; forcing exit with status 2", err)
        events = load_trace(trace)  # still a complete JSON document
        self.assertIn("start", [e["name"] for e in events if e.get("cat") == "event"])

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="keel-stop-")
        self.addCleanup(shutil.rmtree, d, True)
        return d


class PidFile(KeelTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-pid-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pidfile = os.path.join(self.dir, "keel.pid")

    def test_second_instance_fails_and_the_file_is_removed_at_exit(self):
        first = self.keel("serve", "--set", f"pidfile={self.pidfile}")
        first.ready()
        with open(self.pidfile) as f:
            self.assertEqual(int(f.read()), first.proc.pid)
        status, _, err, _ = run("serve", "--pidfile", self.pidfile)  # the option and the key are one
        self.assertEqual(status, 1, err)
        self.assertIn(f"another instance is already running (PID {first.proc.pid})", err)
        with open(self.pidfile) as f:
            self.assertEqual(int(f.read()), first.proc.pid, "the second instance touched the first one's file")
        first.kill(signal.SIGTERM)
        self.assertEqual(first.wait()[0], 0)
        self.assertFalse(os.path.exists(self.pidfile))

    def test_stale_file_is_taken_over(self):
        with open(self.pidfile, "w") as f:
            f.write("999999\n")
        k = self.keel("serve", "--set", f"pidfile={self.pidfile}")
        k.ready()
        with open(self.pidfile) as f:
            self.assertEqual(int(f.read()), k.proc.pid)
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)


if __name__ == "__main__":
    unittest.main()
