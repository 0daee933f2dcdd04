# SPDX-License-Identifier: MIT
"""The dns-01 solver (services/certificate/acme-dns01.c) against Debian's knotd on loopback: a
throwaway zone example.test. that two TSIG keys (hmac-sha256, hmac-sha512) may update, driven
through tests/program/dns01.c. The record appears to kdig after present and is gone after
cleanup; a wrong secret, a zone the server does not serve and a server that never answers each
fail with an error that says so, within the bound."""

import base64
import os
import socket
import subprocess
import time
import unittest

from knot import Knot, txt_value, write_secret
from pebble import free_port

DNS01 = os.environ.get("KEEL_DNS01_BIN", "")


class Dns01Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not DNS01:
            raise unittest.SkipTest("KEEL_DNS01_BIN is not set: run through ctest")
        cls.knot = Knot()
        cls.secret_files = {}
        for alg, secret in cls.knot.secrets.items():
            cls.secret_files[alg] = os.path.join(cls.knot.tmp, f"{alg}.secret")
            write_secret(cls.secret_files[alg], secret)
        cls.wrong_secret = os.path.join(cls.knot.tmp, "wrong.secret")
        write_secret(cls.wrong_secret, base64.b64encode(os.urandom(32)).decode())

    @classmethod
    def tearDownClass(cls):
        cls.knot.stop()

    def solve(self, op, domain, key_authorization, zone="example.test", alg="sha256", secret=None, port=None,
              timeout_ms=5000, propagation_ms=5000):
        args = [DNS01, op, "127.0.0.1", str(port or self.knot.port), zone, f"keel-{alg}.", f"hmac-{alg}",
                secret or self.secret_files[alg], str(timeout_ms), str(propagation_ms), domain, key_authorization]
        start = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout.strip(), r.stderr.strip(), time.monotonic() - start

    def txt(self, name):
        return sorted(line.strip('"') for line in self.knot.dig("TXT", name).split())

    def test_present_then_cleanup(self):
        status, out, err, _ = self.solve("present", "www.example.test", "token-1.thumbprint")
        self.assertEqual(status, 0, err)
        self.assertEqual(out, txt_value("token-1.thumbprint"))
        self.assertEqual(self.txt("_acme-challenge.www.example.test."), [out])
        status, _, err, _ = self.solve("cleanup", "www.example.test", "token-1.thumbprint")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.txt("_acme-challenge.www.example.test."), [])

    def test_cleanup_deletes_that_record_only(self):
        # Two authorizations of one name (a wildcard and its base): each has its own record.
        self.assertEqual(self.solve("present", "*.example.test", "token-a.thumbprint")[0], 0)
        self.assertEqual(self.solve("present", "example.test", "token-b.thumbprint")[0], 0)
        self.assertEqual(self.txt("_acme-challenge.example.test."),
                         sorted([txt_value("token-a.thumbprint"), txt_value("token-b.thumbprint")]))
        status, _, err, _ = self.solve("cleanup", "*.example.test", "token-a.thumbprint")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.txt("_acme-challenge.example.test."), [txt_value("token-b.thumbprint")])
        self.assertEqual(self.solve("cleanup", "example.test", "token-b.thumbprint")[0], 0)
        # Deleting what is not there is no error: a retried cleanup.
        self.assertEqual(self.solve("cleanup", "example.test", "token-b.thumbprint")[0], 0)
        self.assertEqual(self.txt("_acme-challenge.example.test."), [])

    def test_hmac_sha512_and_the_zone_found_by_soa(self):
        status, out, err, _ = self.solve("present", "deep.www.example.test", "token-5.thumbprint", zone="", alg="sha512")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.txt("_acme-challenge.deep.www.example.test."), [out])
        status, _, err, _ = self.solve("cleanup", "deep.www.example.test", "token-5.thumbprint", zone="", alg="sha512")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.txt("_acme-challenge.deep.www.example.test."), [])

    def test_a_wrong_secret_is_refused_with_badsig(self):
        status, _, err, _ = self.solve("present", "www.example.test", "token-w.thumbprint", secret=self.wrong_secret)
        self.assertEqual(status, 1)
        for word in (f"127.0.0.1:{self.knot.port}", "_acme-challenge.www.example.test.", "example.test.", "NOTAUTH",
                     "BADSIG", "keel-sha256."):
            self.assertIn(word, err)
        self.assertEqual(self.txt("_acme-challenge.www.example.test."), [])

    def test_a_zone_the_server_does_not_serve_is_refused(self):
        status, _, err, _ = self.solve("present", "www.other.test", "token-z.thumbprint", zone="other.test")
        self.assertEqual(status, 1)
        self.assertRegex(err, r"refused to add TXT _acme-challenge\.www\.other\.test\. in zone other\.test\.: (NOTAUTH|REFUSED)")
        self.assertIn(f"127.0.0.1:{self.knot.port}", err)

    def test_a_server_that_never_answers_times_out_within_the_bound(self):
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)  # the kernel accepts the connection; nobody ever reads or answers
            port = silent.getsockname()[1]
            status, _, err, elapsed = self.solve("present", "www.example.test", "token-t.thumbprint", port=port,
                                                 timeout_ms=500)
        self.assertEqual(status, 1)
        self.assertIn(f"at 127.0.0.1:{port}: no reply within 500ms", err)
        self.assertLess(elapsed, 5)

    def test_no_server_is_an_error_at_once(self):
        status, _, err, elapsed = self.solve("present", "www.example.test", "token-r.thumbprint", port=free_port())
        self.assertEqual(status, 1)
        self.assertIn("Connection refused", err)
        self.assertLess(elapsed, 5)


if __name__ == "__main__":
    unittest.main()
