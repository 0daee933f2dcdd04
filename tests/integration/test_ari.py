# SPDX-License-Identifier: MIT
"""ACME Renewal Information (RFC 9773) against pebble 2.6 on loopback: keel reads the window
pebble suggests for its certificate (the same window the test reads with its own certificate
identifier), renews at a point inside it and not by refresh_interval, and shows the window in the
metrics and /readyz?verbose; a revoked certificate, whose window pebble puts in the past, is
renewed at once by the next start, or by a SIGHUP once the last read is a minute old
(test_ari_minute), and the
order names it in `replaces`; a window past the certificate's last tenth (a short
certificateValidityPeriod) is cut to it. Against Debian 12's pebble 2.4, which has no
renewalInfo, refresh_interval's schedule holds. With certificate.issuers, the window is read from
the pebble that issued the certificate (recorded for the next start) and from no other, and
`replaces` goes to that pebble only; a certificate of the local CA reads none."""

import calendar
import os
import time
import unittest

from httpclient import bound_address, get, metric, wait_for
from pebble import PEBBLE26, free_port
from ari import DAY, AcmeCase, ari_reads, load_cert, revoke


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AriTest(AcmeCase):
    def test_the_window_pebble_suggests_is_followed(self):
        pebble = self.pebble()  # 5 years: a window around 3 years 4 months from now, 2 days wide
        k = self.start(pebble, "  refresh_interval: 1s")  # would renew every second without ARI
        k.ready(timeout=60)
        metrics, health = bound_address(k, "metrics exporter server"), bound_address(k, "health check server")
        start, end = self.wait_window(k, metrics)
        want_start, want_end, retry_after = self.window(pebble)
        self.assertEqual((start, end), (want_start, want_end), "keel's certificate identifier names the same certificate")
        self.assertEqual(end - start, 2 * DAY)
        renewal = wait_for(lambda: metric(metrics, "keel_certificate_renewal_timestamp_seconds") or None, 10, "a renewal time")
        self.assertTrue(start - 1 <= renewal <= end, (start, renewal, end))
        next_check = metric(metrics, "keel_certificate_ari_next_check_timestamp_seconds")
        self.assertEqual(retry_after, 6 * 3600)
        self.assertAlmostEqual(next_check, time.time() + retry_after, delta=60, msg="pebble's Retry-After: 6 h")
        status, _, body = get(health, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertRegex(body, r"\[\+\]certificate ok: renewal window \(ARI\) \S+Z to \S+Z, renewing at \S+Z\n")
        time.sleep(3)
        self.assertNotIn("Refreshed key", k.stderr_so_far(), "refresh_interval gives way to the window")
        self.assertEqual(pebble.issued(), 1)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_a_revoked_certificate_is_renewed_at_the_next_start_replacing_it(self):
        pebble = self.pebble()
        k = self.start(pebble)
        k.ready(timeout=60)
        metrics = bound_address(k, "metrics exporter server")
        self.wait_window(k, metrics)
        k.kill()
        self.assertEqual(k.wait()[0], 0)
        old = load_cert(self.cert_path())
        self.assertEqual(revoke(pebble, self.cert_path(), os.path.join(self.state, "key.pem")), 200)
        start, end, _ = self.window(pebble)
        self.assertLess(end, time.time(), "pebble puts a revoked certificate's window in the past")

        t0 = time.monotonic()
        k = self.start(pebble)
        k.ready(timeout=60)
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 60, "a renewal at once")
        self.assertLess(time.monotonic() - t0, 60)
        self.assertIn(", which is past: at once", k.stderr_so_far())
        new = load_cert(self.cert_path())
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertTrue(any("is a replacement of" in line for line in pebble.log), "the order names the revoked certificate")
        # The new certificate's own window is read, far ahead again.
        metrics = bound_address(k, "metrics exporter server")
        wait_for(lambda: (metric(metrics, "keel_certificate_ari_window_start_seconds") or 0) > time.time() + DAY, 30,
                 "the new certificate's window")
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_a_window_past_the_last_tenth_is_cut_to_it(self):
        # 40 s certificates: pebble's window is 2 days wide around 27 s after issuance; whatever
        # point keel picks, it renews before the last 4 s.
        pebble = self.pebble(certificateValidityPeriod=40)
        k = self.start(pebble, "  refresh_interval: 1h")
        k.ready(timeout=60)
        first = load_cert(self.cert_path())
        metrics = bound_address(k, "metrics exporter server")
        self.wait_window(k, metrics)
        # Scheduled for 4 s before notAfter at the latest (the window reaches a day past it): the
        # time keel renews at, not when the issuance ends, which a loaded machine delays.
        renewal = wait_for(lambda: metric(metrics, "keel_certificate_renewal_timestamp_seconds") or None, 10, "a renewal time")
        not_after = calendar.timegm(first.not_valid_after.utctimetuple())
        self.assertLessEqual(renewal, not_after - 3.9, "renewing in the last tenth at the latest")
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 50, "a renewal within the lifetime")
        self.assertTrue(any("is a replacement of" in line for line in pebble.log))
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_without_renewal_info_refresh_interval_holds(self):
        pebble = self.pebble(binary="/usr/bin/pebble")  # Debian 12's 2.4: no renewalInfo
        self.assertNotIn("renewalInfo", pebble.directory())
        k = self.start(pebble, "  refresh_interval: 2s")
        k.ready(timeout=60)
        wait_for(lambda: "offers no renewal information (RFC 9773): renewing by refresh_interval" in k.stderr_so_far(), 30,
                 "the fallback said")
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 30, "a renewal by refresh_interval")
        metrics, health = bound_address(k, "metrics exporter server"), bound_address(k, "health check server")
        self.assertEqual(metric(metrics, "keel_certificate_ari_window_start_seconds"), 0)
        self.assertEqual(metric(metrics, "keel_certificate_ari_window_end_seconds"), 0)
        self.assertIn("[+]certificate ok\n", get(health, "/readyz?verbose")[2])
        self.assertEqual(k.stderr_so_far().count("offers no renewal information"), 1, "said once, not at every read")
        k.kill()
        self.assertEqual(k.wait()[0], 0)


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AriIssuersTest(AcmeCase):
    """certificate.issuers (decision 35): the window is read from the ACME CA that issued the
    current certificate, and from no other; the order to that CA names it in `replaces`, an order
    to another CA does not; which issuer issued the pair is recorded for the next start."""

    def test_the_window_of_the_issuing_ca_is_followed_and_recorded_for_the_next_start(self):
        a = self.pebble()
        issuers = [f"acme:{a.directory_url}", "local"]
        k = self.start_issuers([a], issuers, "  refresh_interval: 1s")  # would renew every second without ARI
        k.ready(timeout=60)
        metrics, health = bound_address(k, "metrics exporter server"), bound_address(k, "health check server")
        start, end = self.wait_window(k, metrics)
        self.assertEqual((start, end), self.window(a)[:2], "the window pebble suggests for its certificate")
        renewal = wait_for(lambda: metric(metrics, "keel_certificate_renewal_timestamp_seconds") or None, 10, "a renewal time")
        self.assertTrue(start - 1 <= renewal <= end, (start, renewal, end))
        status, _, body = get(health, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertRegex(body, r"\[\+\]certificate ok: renewal window \(ARI\) \S+Z to \S+Z, renewing at \S+Z\n")
        time.sleep(3)
        self.assertNotIn("Refreshed key", k.stderr_so_far(), "refresh_interval gives way to the window")
        self.assertEqual(a.issued(), 1)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

        # The next start reuses the pair and knows from its record that A issued it: A's window,
        # past once A revoked it, renews at once, the order to A replacing it.
        self.assertEqual(revoke(a, self.cert_path(), os.path.join(self.state, "key.pem")), 200)
        t0 = time.monotonic()
        k = self.start_issuers([a], issuers)
        k.ready(timeout=60)
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 60, "a renewal at once")
        self.assertLess(time.monotonic() - t0, 60)
        err = k.stderr_so_far()
        self.assertIn("Reusing key", err)
        self.assertIn(f"The certificate was issued by issuer[acme:{a.directory_url}] (1 of 2 in certificate.issuers), as", err)
        self.assertIn(", which is past: at once", err)
        self.assertTrue(any("is a replacement of" in line for line in a.log), "the order names the revoked certificate")
        self.assertEqual(a.issued(), 2)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_no_renewal_information_is_read_from_a_ca_that_did_not_issue_the_certificate(self):
        down = free_port()  # the first CA: nothing listens there yet
        a_url, b = f"https://127.0.0.1:{down}/dir", self.pebble()
        issuers = [f"acme:{a_url}", f"acme:{b.directory_url}"]
        k = self.start_issuers([b], issuers)
        k.ready(timeout=60)
        self.assertIn(f"Certificate issued by issuer[acme:{b.directory_url}] (2 of 2", k.stderr_so_far())
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(self.wait_window(k, metrics), self.window(b)[:2], "the window of the CA that issued it, B")
        k.kill()
        self.assertEqual(k.wait()[0], 0)

        # A comes up where keel looks for it, B revokes its certificate. The next start reads the
        # window from B (the record says B issued it), past: the renewal, from the first issuer
        # again, goes to A, without `replaces` (B's certificate means nothing to A); then the new
        # certificate's window is read from A, and only then.
        a = self.pebble(port=down)
        self.assertEqual(revoke(b, self.cert_path(), os.path.join(self.state, "key.pem")), 200)
        b_reads = ari_reads(b)
        k = self.start_issuers([a, b], issuers)
        k.ready(timeout=60)
        wait_for(lambda: f"Certificate issued by issuer[acme:{a_url}] (1 of 2" in k.stderr_so_far(), 60, "A's renewal")
        self.assertIn(f"The certificate was issued by issuer[acme:{b.directory_url}] (2 of 2", k.stderr_so_far())
        self.assertGreater(ari_reads(b), b_reads, "the revoked certificate's window is read from B")
        self.assertFalse(any("is a replacement of" in line for line in a.log), "no replaces to A")
        metrics = bound_address(k, "metrics exporter server")
        wait_for(lambda: (metric(metrics, "keel_certificate_ari_window_start_seconds") or 0) > time.time() + DAY, 30,
                 "the new certificate's window")
        self.assertEqual((metric(metrics, "keel_certificate_ari_window_start_seconds"),
                          metric(metrics, "keel_certificate_ari_window_end_seconds")), self.window(a)[:2])
        issued = next(i for i, line in enumerate(a.log) if "Issued certificate serial" in line)
        first_read = next(i for i, line in enumerate(a.log) if "/renewalInfo/" in line)
        self.assertGreater(first_read, issued, "A is asked for no window before it issued the certificate")
        b_reads = ari_reads(b)
        time.sleep(2)
        self.assertEqual(ari_reads(b), b_reads, "B is asked no more")
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_without_a_record_of_the_issuer_no_window_is_read(self):
        # State from before the record (or a crash between the pair and it): no CA is guessed.
        a = self.pebble()
        issuers = [f"acme:{a.directory_url}", "local"]
        k = self.start_issuers([a], issuers)
        k.ready(timeout=60)
        self.wait_window(k, bound_address(k, "metrics exporter server"))
        k.kill()
        self.assertEqual(k.wait()[0], 0)
        os.unlink(os.path.join(self.state, "issuer"))
        reads = ari_reads(a)
        k = self.start_issuers([a], issuers)
        k.ready(timeout=60)
        wait_for(lambda: "Will refresh key" in k.stderr_so_far(), 10, "the schedule")
        self.assertIn("Which issuer of certificate.issuers issued the certificate is not recorded", k.stderr_so_far())
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(metric(metrics, "keel_certificate_ari_window_start_seconds"), 0)
        time.sleep(1)
        self.assertEqual(ari_reads(a), reads)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_a_certificate_of_the_local_ca_reads_no_renewal_information(self):
        a = self.pebble()
        k = self.start_issuers([a], ["local", f"acme:{a.directory_url}"], "  refresh_interval: 2s")
        k.ready(timeout=60)
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 30, "a renewal by refresh_interval")
        metrics, health = bound_address(k, "metrics exporter server"), bound_address(k, "health check server")
        self.assertEqual(metric(metrics, "keel_certificate_ari_window_start_seconds"), 0)
        self.assertEqual(metric(metrics, "keel_certificate_ari_next_check_timestamp_seconds"), 0)
        self.assertIn("[+]certificate ok: issued by local (1 of 2 in certificate.issuers)\n", get(health, "/readyz?verbose")[2])
        self.assertEqual(ari_reads(a), 0)
        self.assertEqual(a.issued(), 0)
        k.kill()
        self.assertEqual(k.wait()[0], 0)


if __name__ == "__main__":
    unittest.main()
