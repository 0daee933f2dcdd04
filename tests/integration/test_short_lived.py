# SPDX-License-Identifier: MIT
"""Short-lived certificates (issue 28 point 3), days of lifetime compressed into seconds: pebble
2.6 issues 30 s and 40 s certificates (as a CA issuing 6-day ones would, at 1:17,000), and keel,
renewing by the CA's renewal window (ARI) or by the certificate's lifetime, keeps a valid pair in
its state directory at every moment it is sampled (every 100 ms for 45 s) and renews neither too
late nor in a storm: at least a third of a lifetime apart, as pebble's 2-day-wide windows around
such certificates would otherwise have it renew at once half of the time."""

import calendar
import os
import threading
import time
import unittest

from cryptography import x509

from httpclient import bound_address, get
from pebble import PEBBLE26
from test_ari import AcmeCase


def validity(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return (calendar.timegm(cert.not_valid_before.utctimetuple()), calendar.timegm(cert.not_valid_after.utctimetuple()),
            cert.serial_number)


class Sampler(threading.Thread):
    """Reads the state directory's certificate every 100 ms; remembers every moment it was not
    valid (a second of slack for pebble's whole-second notBefore) and the serials in order."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.gaps, self.serials, self.samples = path, [], [], 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.1):
            now = time.time()
            nb, na, serial = validity(self.path)
            self.samples += 1
            if not nb - 1 <= now <= na:
                self.gaps.append((now, nb, na))
            if not self.serials or self.serials[-1][0] != serial:
                self.serials.append((serial, now))


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class ShortLived(AcmeCase):
    def run_for(self, lifetime, seconds, extra):
        pebble = self.pebble(certificateValidityPeriod=lifetime)
        k = self.start(pebble, extra)
        k.ready(timeout=60)
        sampler = Sampler(self.cert_path())
        sampler.start()
        time.sleep(seconds)
        sampler.done.set()
        sampler.join(5)
        status, _, body = get(bound_address(k, "health check server"), "/livez")
        self.assertEqual(status, 200, body)
        k.kill()
        status, _, err = k.wait()
        self.assertEqual(status, 0, err[-3000:])
        self.assertGreater(sampler.samples, seconds * 5, "the sampler kept up")
        self.assertEqual(sampler.gaps, [], "moments without a valid certificate")
        renewals = len(sampler.serials) - 1
        # Renewed before each expiry, so at least once a lifetime...
        self.assertGreaterEqual(renewals, int(seconds / lifetime), sampler.serials)
        # ...and never within a third of one: no storm.
        times = [t for _, t in sampler.serials]
        for a, b in zip(times, times[1:]):
            self.assertGreater(b - a, lifetime / 3 - 1.5, f"renewed {b - a:.1f}s after the last one: {sampler.serials}")
        self.assertLessEqual(pebble.issued(), renewals + 2, "every issuance became the current certificate")
        return err

    def test_by_the_renewal_window_30s_certificates_for_45s(self):
        err = self.run_for(30, 45, "  refresh_interval: 1h")
        self.assertIn("The ACME server suggests renewing the certificate between", err)

    def test_by_the_lifetime_40s_certificates_for_45s(self):
        # No ARI: the certificate's own last tenth (4 s here) is where it falls due. The line goes
        # on the acme section, which the configuration ends with.
        self.run_for(40, 45, "    renewal_info: false\n  refresh_interval: 1h")

    def test_a_profile_the_ca_does_not_list_fails_the_start_naming_it(self):
        # Let's Encrypt gives 6-day certificates to orders for its `shortlived` profile; pebble 2.6
        # lists no profiles, so the order is never sent.
        pebble = self.pebble()
        k = self.start(pebble, "    profile: shortlived")
        status, _, err = k.wait(timeout=60)
        self.assertEqual(status, 1, err[-2000:])
        self.assertIn("certificate.acme.profile: the CA at", err)
        self.assertIn("offers no profile 'shortlived' (its directory lists no profiles)", err)
        self.assertEqual(pebble.issued(), 0)


if __name__ == "__main__":
    unittest.main()
