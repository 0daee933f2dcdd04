# SPDX-License-Identifier: MIT
"""Steps of the wall clock (issue 25 point 5). keel runs with tests/shim/clockshift.c preloaded,
which moves CLOCK_REALTIME alone by an offset this test writes; the monotonic clock the tasks wait
on is the kernel's. A real step also ends every CLOCK_REALTIME timerfd armed with
TFD_TIMER_CANCEL_ON_SET; the shim cannot do that, so the test does it to keel's timer itself
(pidfd_getfd(2), then an expiry), which is what keel's clock watch reads as a step.

Checked: a step forward past notAfter renews at once (through the watch, through a /readyz probe,
through SIGHUP); a start with the clock behind, then set right, brings the renewal back before
notAfter; a token cached before a step back is minted again; process_start_time_seconds moves
with the clock, as the kernel's btime does."""

import base64
import ctypes
import json
import os
import shutil
import signal
import struct
import tempfile
import time

from httpclient import bound_address, get, metric, wait_for
from keelrun import HERE, KeelTestCase

SHIM = os.environ.get("KEEL_CLOCKSHIFT") or os.path.join(HERE, "..", "..", "build", "tests", "libclockshift.so")
HOUR = 3600
TOKEN_HEADERS = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438
TFD_TIMER_CANCEL_ON_SET_FLAGS = "settime flags: 03"  # TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET

libc = ctypes.CDLL(None, use_errno=True)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]


def clock_watches(pid):
    """keel's descriptors that are CLOCK_REALTIME timerfds armed to be cancelled by a step."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except FileNotFoundError:
            continue
        if "clockid: 0\n" in info and TFD_TIMER_CANCEL_ON_SET_FLAGS in info:
            found.append(int(fd))
    return found


def end_timer(pid, target):
    """What a step does to a TFD_TIMER_CANCEL_ON_SET timer: it ends (here by expiring at once)."""
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    try:
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        try:
            soon = Itimerspec(Timespec(0, 0), Timespec(0, 1))
            if libc.timerfd_settime(fd, 0, ctypes.byref(soon), None) < 0:
                raise OSError(ctypes.get_errno(), "timerfd_settime")
        finally:
            os.close(fd)
    finally:
        os.close(pidfd)


class ClockStep(KeelTestCase):
    def start(self, offset=0, config=""):
        self.assertTrue(os.path.exists(SHIM), f"{SHIM} is built with the tests (tests/CMakeLists.txt)")
        tmp = tempfile.mkdtemp(prefix="keel-clock-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.offset_file = os.path.join(tmp, "clock-offset")
        self.set_offset(offset)
        asan = os.environ.get("ASAN_OPTIONS")
        env = {"LD_PRELOAD": SHIM, "KEEL_CLOCKSHIFT_FILE": self.offset_file,
               # The shim is loaded ahead of ASan's runtime, which it never calls.
               "ASAN_OPTIONS": f"{asan}:verify_asan_link_order=0" if asan else None}
        k = self.keel("serve", config=config, env=env)
        k.ready()
        self.health = bound_address(k, "health check server")
        self.metrics = bound_address(k, "metrics exporter server")
        self.token = bound_address(k, "token provider server")
        return k

    def set_offset(self, seconds):
        self.offset = seconds
        with open(self.offset_file, "wb") as f:
            f.write(struct.pack("<q", seconds))

    def step(self, k, seconds, tell=True):
        """Moves keel's wall clock to `seconds` from the real one; `tell`: as the kernel would."""
        self.set_offset(seconds)
        if tell:
            watches = clock_watches(k.proc.pid)
            self.assertEqual(len(watches), 1, "keel watches the wall clock once")
            end_timer(k.proc.pid, watches[0])

    def keel_now(self):
        return time.time() + self.offset

    def expiry(self):
        return metric(self.metrics, "keel_certificate_expiry_timestamp_seconds")

    def renewal(self):
        return metric(self.metrics, "keel_certificate_renewal_timestamp_seconds")

    def readyz(self):
        return get(self.health, "/readyz?verbose")

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def assert_renewed_after_step(self, k, first_expiry):
        wait_for(lambda: self.expiry() > self.keel_now() + 60 * HOUR, 10, "a certificate valid by the new clock")
        self.assertEqual(self.readyz()[0], 200, self.readyz()[2])
        self.assertGreater(self.expiry(), first_expiry + 90 * HOUR)
        err = self.stop(k)
        self.assertIn("Refreshed key[", err)
        return err

    def test_a_step_forward_past_notafter_renews_at_once(self):
        k = self.start()
        first = self.expiry()
        self.assertGreater(first, time.time() + 70 * HOUR)  # 72h, the local CA's default
        self.step(k, 96 * HOUR)
        err = self.assert_renewed_after_step(k, first)
        self.assertIn("The wall clock was set (now ", err)

    def test_a_probe_that_finds_the_certificate_expired_renews_it(self):
        k = self.start()
        first = self.expiry()
        self.step(k, 96 * HOUR, tell=False)
        status, _, body = self.readyz()
        self.assertEqual(status, 503)
        self.assertIn("expired at", body)
        self.assert_renewed_after_step(k, first)

    def test_a_reload_that_finds_the_certificate_expired_renews_it(self):
        k = self.start()
        first = self.expiry()
        self.step(k, 96 * HOUR, tell=False)
        k.kill(signal.SIGHUP)
        self.assert_renewed_after_step(k, first)

    def test_a_clock_set_right_after_a_start_behind_it_brings_the_renewal_before_notafter(self):
        k = self.start(offset=-60 * HOUR)
        expiry = self.expiry()
        self.assertAlmostEqual(expiry, time.time() + 12 * HOUR, delta=600)  # 72h from a clock 60h behind
        self.step(k, 0)
        # The renewal, seen from the right clock, before notAfter: half the 12h left at most.
        renewal = wait_for(lambda: (lambda r: r if time.time() < r <= time.time() + 6.7 * HOUR else None)(self.renewal()),
                           10, "the renewal scheduled again by the certificate's dates")
        self.assertLess(renewal, expiry)
        self.assertEqual(self.readyz()[0], 200)
        self.stop(k)

    def get_token(self):
        status, _, body = get(self.token, "/token", headers=TOKEN_HEADERS)
        self.assertEqual(status, 200, body)
        return json.loads(body)["access_token"]

    def test_a_token_cached_before_a_step_back_is_minted_again(self):
        k = self.start()
        first = self.get_token()
        self.assertEqual(self.get_token(), first, "cached")
        # Three minutes back: the certificate, valid from five minutes before it was issued, still signs.
        self.step(k, -3 * 60)
        second = self.get_token()
        self.assertNotEqual(second, first)
        self.assertAlmostEqual(iat(second), iat(first) - 3 * 60, delta=5)
        self.assertLessEqual(iat(second), self.keel_now() + 1)
        self.assertEqual(self.get_token(), second, "cached again")
        self.stop(k)

    def test_a_step_back_before_the_certificate_keeps_the_cached_token_served(self):
        k = self.start()
        first = self.get_token()
        # Two hours back, the certificate is not valid yet and cannot sign: the cached token is
        # served while it is valid (hosts with the right time accept it), and /readyz says why.
        self.step(k, -2 * HOUR)
        self.assertEqual(self.get_token(), first)
        status, _, body = self.readyz()
        self.assertEqual(status, 503)
        self.assertIn("is not valid before", body)
        err = self.stop(k)
        self.assertIn("Failed to mint a token for domain[sports] role[reader]: the certificate is not valid before", err)

    def test_the_process_start_time_follows_a_step(self):
        k = self.start()
        started = metric(self.metrics, "process_start_time_seconds")
        self.assertAlmostEqual(started, time.time(), delta=60)
        # As the kernel's btime does, and with it Go's client: the boot, and so the start, moves
        # with the wall clock. The shim's offset alone is enough, nothing waits on the step.
        self.step(k, 5 * HOUR, tell=False)
        self.assertAlmostEqual(metric(self.metrics, "process_start_time_seconds"), started + 5 * HOUR, delta=1)
        self.step(k, -HOUR, tell=False)
        self.assertAlmostEqual(metric(self.metrics, "process_start_time_seconds"), started - HOUR, delta=1)
        self.stop(k)


def iat(jwt):
    claims = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["iat"]


if __name__ == "__main__":
    import unittest
    unittest.main()
