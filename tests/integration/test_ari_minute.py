# SPDX-License-Identifier: MIT
"""ACME Renewal Information's one-minute recheck (RFC 9773), against pebble 2.6 on loopback: a SIGHUP
reads a window again only once the last read is a minute old, alone or with certificate.issuers
(then from the CA that issued the certificate). Apart from test_ari so that the two minutes of
waiting run beside its other cases (ctest runs each file as one test)."""

import os
import signal
import time
import unittest

from httpclient import bound_address, wait_for
from pebble import PEBBLE26
from ari import AcmeCase, ari_reads, revoke


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AriMinuteTest(AcmeCase):
    def test_a_sighup_reads_the_window_again_once_a_minute(self):
        pebble = self.pebble()
        k = self.start(pebble)
        k.ready(timeout=60)
        self.wait_window(k, bound_address(k, "metrics exporter server"))
        read = time.monotonic()
        self.assertEqual(revoke(pebble, self.cert_path(), os.path.join(self.state, "key.pem")), 200)
        k.kill(signal.SIGHUP)  # within the minute: the window read stays
        time.sleep(2)
        self.assertNotIn("Refreshed key", k.stderr_so_far())
        time.sleep(max(0.0, read + 62 - time.monotonic()))
        k.kill(signal.SIGHUP)  # a minute on: read again, the window is past, the renewal is now
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 30, "a renewal after the SIGHUP")
        self.assertTrue(any("is a replacement of" in line for line in pebble.log))
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_a_sighup_reads_the_issuing_cas_window_again_once_a_minute(self):
        a = self.pebble()
        k = self.start_issuers([a], [f"acme:{a.directory_url}", "local"])
        k.ready(timeout=60)
        self.wait_window(k, bound_address(k, "metrics exporter server"))
        read = time.monotonic()
        self.assertEqual(revoke(a, self.cert_path(), os.path.join(self.state, "key.pem")), 200)
        time.sleep(max(0.0, read + 62 - time.monotonic()))
        reads = ari_reads(a)
        k.kill(signal.SIGHUP)  # a minute on: read again, the window is past, the renewal is now
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 30, "a renewal after the SIGHUP")
        self.assertGreater(ari_reads(a), reads)
        self.assertTrue(any("is a replacement of" in line for line in a.log))
        k.kill()
        self.assertEqual(k.wait()[0], 0)


if __name__ == "__main__":
    unittest.main()
