# SPDX-License-Identifier: MIT
"""certificate.acme.profile (draft-ietf-acme-profiles) against a CA that lists profiles: Debian
forky's pebble (2.7 or later, fetched by the ctest fixture pebble-forky), configured with Let's
Encrypt's two, `default` (90 days) and `shortlived` (6 days). The profile ordered decides the
certificate's validity, and a profile the CA does not list fails the start naming those it does,
before any order is sent. (An order without a profile gets one at random from pebble, "in true
pebble chaos fashion", where Let's Encrypt gives its default: nothing to check there.)"""

import os
import shutil
import tempfile
import unittest

from keelrun import KeelTestCase
from pebble import Pebble, free_port
from test_ari import load_cert  # only the function: a test class imported would run here too

PEBBLE_FORKY = os.environ.get("KEEL_PEBBLE_FORKY", "")
DAY = 86400
# Let's Encrypt's profiles as pebble's own example configuration writes them.
PROFILES = {"default": {"description": "The profile you know and love", "validityPeriod": 90 * DAY},
            "shortlived": {"description": "A short-lived cert profile", "validityPeriod": 6 * DAY}}


def lifetime(cert):
    # Debian 12's cryptography (38) has the naive properties only; later ones deprecate them.
    after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
    before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before
    return (after - before).total_seconds()


@unittest.skipUnless(PEBBLE_FORKY, "KEEL_PEBBLE_FORKY is not set: run through ctest (the fixture pebble-forky fetches it)")
class AcmeProfileTest(KeelTestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="keel-profile-state-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.health_port = free_port()
        self.pebble = Pebble(self.health_port, env={"PEBBLE_VA_ALWAYS_VALID": "1"}, binary=PEBBLE_FORKY,
                             config={"profiles": PROFILES})
        self.addCleanup(self.pebble.close)

    def start(self, profile):
        config = f"""
certificate:
  provider: acme
  dns_names: [localhost]
  acme:
    directory_url: {self.pebble.directory_url}
    ca_file: {self.pebble.ca_file}
    profile: '{profile}'
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def issue(self, profile):
        """The certificate keel starts with when it orders @profile."""
        k = self.start(profile)
        k.ready(timeout=60)
        k.kill()
        self.assertEqual(k.wait()[0], 0)
        self.assertEqual(self.pebble.issued(), 1)
        return load_cert(os.path.join(self.state, "cert.pem"))

    def test_the_directory_lists_the_profiles(self):
        self.assertEqual(sorted(self.pebble.directory()["meta"]["profiles"]), ["default", "shortlived"])

    def test_shortlived_gives_a_6_day_certificate(self):
        self.assertAlmostEqual(lifetime(self.issue("shortlived")), 6 * DAY, delta=120)

    def test_default_named_gives_a_90_day_certificate(self):
        self.assertAlmostEqual(lifetime(self.issue("default")), 90 * DAY, delta=120)

    def test_a_profile_the_ca_does_not_list_fails_the_start_naming_those_it_does(self):
        k = self.start("tlsserver")
        status, _, err = k.wait(timeout=60)
        self.assertEqual(status, 1, err)
        self.assertIn(f"certificate.acme.profile: the CA at {self.pebble.directory_url} offers no profile 'tlsserver'", err)
        self.assertRegex(err, r"\(it offers: (default, shortlived|shortlived, default)\)")
        self.assertEqual(self.pebble.issued(), 0)
        self.assertFalse(any("order-plz" in line for line in self.pebble.log), "no order is sent")


if __name__ == "__main__":
    unittest.main()
