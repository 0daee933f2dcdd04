# SPDX-License-Identifier: MIT
"""start_delay_jitter (issue 27 point 5): `serve` first waits a random time below it, so that a fleet
restarted together does not reach its issuers in the same second; a stop signal during the wait
skips the start (exit 0); commands that print a result do not wait."""

import re
import signal
import time

from keelrun import KeelTestCase, run

DELAY = re.compile(r"Delaying the start by (\S+) \(start_delay_jitter (\S+)\)")


def seconds(text):
    """'1.5s', '250ms', '30.5µs' as seconds."""
    for unit, factor in (("ms", 1e-3), ("µs", 1e-6), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


class StartDelay(KeelTestCase):
    def test_serve_waits_a_random_time_below_the_jitter_before_it_starts(self):
        delays = []
        for _ in range(4):
            t0 = time.monotonic()
            k = self.keel("serve", "--set", "start_delay_jitter=400ms")
            k.ready()
            waited = time.monotonic() - t0
            m = DELAY.search(k.stderr_so_far())
            self.assertIsNotNone(m, k.stderr_so_far())
            self.assertEqual(m.group(2), "400ms")
            delay = seconds(m.group(1))
            self.assertLess(delay, 0.4)
            self.assertGreaterEqual(waited, delay, "READY=1 came after the delay")
            delays.append(delay)
            k.kill(signal.SIGTERM)
            self.assertEqual(k.wait()[0], 0)
        self.assertGreater(len(set(delays)), 1, f"random: {delays}")

    def test_a_signal_during_the_delay_skips_the_start(self):
        for _ in range(20):  # until a delay long enough to signal inside it
            k = self.keel("serve", "--set", "start_delay_jitter=30s")
            deadline = time.monotonic() + 10
            while not DELAY.search(k.stderr_so_far()) and time.monotonic() < deadline:
                time.sleep(0.02)
            if seconds(DELAY.search(k.stderr_so_far()).group(1)) > 3:
                break
            k.kill(signal.SIGKILL)
            k.wait()
        time.sleep(0.2)
        t0 = time.monotonic()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertLess(time.monotonic() - t0, 2, err)
        for label in ("certificate provider", "token provider", "metrics exporter", "health check"):
            self.assertIn(f"Skipped {label} start", err)
        self.assertFalse(any(m.startswith("READY=1") for m in k.messages()))

    def test_without_a_jitter_and_for_other_commands_there_is_no_wait(self):
        k = self.keel("serve")
        k.ready()
        self.assertNotIn("Delaying the start", k.stderr_so_far())
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)
        t0 = time.monotonic()
        status, _, err, _ = run("config", "--check", "--set", "start_delay_jitter=1h")
        self.assertEqual(status, 0, err)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertNotIn("Delaying the start", err)


if __name__ == "__main__":
    import unittest
    unittest.main()
