# SPDX-License-Identifier: MIT
"""The ACME certificate provider against Debian's pebble on loopback: a first certificate with
real http-01 validation answered by a responder of our own before the health check starts, the
renewal answered by a handler mounted on the running health check server, reuse at the next
start, pebble's injected nonce rejections retried (RS256 account), and a validation that fails:
a clear error, the old certificate kept and /readyz still ready; with no certificate, start fails."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, get, metric, wait_for
from keelrun import KeelTestCase
from pebble import Pebble, free_port


def x509(path, *args):
    p = subprocess.run(["openssl", "x509", "-in", path, "-noout", *args], capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


class AcmeTest(KeelTestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="keel-acme-state-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.health_port = free_port()

    def pebble(self, eab_keys=None, **env):
        p = Pebble(self.health_port, env=env, eab_keys=eab_keys)
        self.addCleanup(p.close)
        return p

    def start(self, pebble, extra="", health_port=None):
        config = f"""
certificate:
  provider: acme
  dns_names: [localhost]
  acme:
    directory_url: {pebble.directory_url}
    ca_file: {pebble.ca_file}
    email: ops@example.com
{extra}
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{health_port or self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def path(self, name):
        return os.path.join(self.state, name)

    def test_issue_with_http01_then_renew_on_the_health_check_server_then_reuse(self):
        pebble = self.pebble()
        k = self.start(pebble, "  refresh_interval: 4s")
        status = k.ready(timeout=60)
        serial = x509(self.path("cert.pem"), "-serial")  # at once: a renewal comes 4 s on
        self.assertNotIn("ACME http-01 responder", status, "the first issuance's own responder is gone before READY=1")
        health = bound_address(k, "health check server")
        self.assertEqual(health[1], self.health_port)
        self.assertEqual(pebble.issued(), 1)
        issuer = x509(self.path("cert.pem"), "-issuer")
        self.assertIn("Pebble Intermediate CA", issuer)
        self.assertIn("DNS:localhost", x509(self.path("cert.pem"), "-ext", "subjectAltName"))
        for name in ("key.pem", "acme/account.key.pem"):
            self.assertEqual(stat.S_IMODE(os.stat(self.path(name)).st_mode), 0o600, name)
        # The chain verifies to the root pebble made for this run.
        roots = os.path.join(self.state, "..", os.path.basename(self.state) + "-roots.pem")
        with open(roots, "w") as f:
            f.write(pebble.roots_pem())
        self.addCleanup(os.unlink, roots)
        p = subprocess.run(["openssl", "verify", "-CAfile", roots, "-untrusted", self.path("cert.pem"), self.path("cert.pem")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: "Answering the ACME http-01 challenge" in k.stderr_so_far(), 15, "Answering the ACME http-01 challenge")

        # The renewal: validated through the health check server, which keeps answering probes.
        wait_for(lambda: "Refreshed key" in k.stderr_so_far(), 60, "a renewal")
        self.assertEqual(pebble.issued(), 2)
        self.assertNotEqual(x509(self.path("cert.pem"), "-serial"), serial)
        wait_for(lambda: re.search(r"Answering the ACME http-01 challenge \S+ to 127\.0\.0\.1:\d+  \[service=certificate\]", k.stderr_so_far()), 15, r"Answering the ACME http-01 challenge \S+ to 127\.0\.0\.1:\d+  \[service=certificate\]")
        self.assertEqual(get(health, "/readyz")[0], 200)
        self.assertEqual(get(health, "/.well-known/acme-challenge/unknown")[0], 404)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

        # The next start reuses the pair: no order.
        k2 = self.start(pebble)
        k2.ready(timeout=30)
        wait_for(lambda: "Reusing key" in k2.stderr_so_far(), 15, "Reusing key")
        self.assertEqual(pebble.issued(), 2)

    def test_nonce_rejections_are_retried_with_an_rs256_account(self):
        pebble = self.pebble(PEBBLE_WFE_NONCEREJECT="40", PEBBLE_VA_ALWAYS_VALID="1")
        # Renewing every second: a start alone signs ~7 requests, none of them rejected 2.8 % of
        # the time; a few renewals make a rejection certain.
        k = self.start(pebble, "    account_key_type: rsa\n  refresh_interval: 1s")
        k.ready(timeout=60)
        self.assertGreaterEqual(pebble.issued(), 1)
        with open(self.path("acme/account.key.pem")) as f:
            self.assertIn("BEGIN PRIVATE KEY", f.read())
        key = subprocess.run(["openssl", "pkey", "-in", self.path("acme/account.key.pem"), "-noout", "-text"],
                             capture_output=True, text=True, timeout=30).stdout
        self.assertIn("2048 bit", key)
        metrics = bound_address(k, "metrics exporter server")
        wait_for(lambda: (metric(metrics, "keel_certificate_acme_errors_total", '{type="badNonce"}') or 0) > 0, 60,
                 "a rejected nonce (40 % are) retried")
        wait_for(lambda: pebble.issued() >= 2, 60, "a renewal through the rejections")

    def test_a_failed_validation_keeps_the_old_certificate(self):
        good = self.pebble(PEBBLE_VA_ALWAYS_VALID="1")
        k = self.start(good)
        k.ready(timeout=60)
        k.kill()
        self.assertEqual(k.wait()[0], 0)
        old = x509(self.path("cert.pem"), "-serial")

        # pebble validates on a port where nothing listens.
        bad = Pebble(free_port())
        self.addCleanup(bad.close)
        k = self.start(bad, "  refresh_interval: 1s")
        k.ready(timeout=30)
        err = wait_for(lambda: re.search(r"Failed to refresh the certificate, retrying in about \S+: ACME: the http-01 validation of "
                                         r"localhost failed \(authorization invalid\): urn:ietf:params:acme:error:connection: .+",
                                         k.stderr_so_far()), 60, "a failed renewal")
        self.assertTrue(err)
        self.assertEqual(x509(self.path("cert.pem"), "-serial"), old, "the old pair stays")
        health = bound_address(k, "health check server")
        self.assertEqual(get(health, "/readyz")[0], 200, "still ready while the old certificate is valid")
        metrics = bound_address(k, "metrics exporter server")
        self.assertGreaterEqual(metric(metrics, "keel_certificate_refresh_failures_total"), 1)
        self.assertGreaterEqual(metric(metrics, "keel_certificate_acme_errors_total", '{type="connection"}'), 1)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

        # Without a certificate to fall back on, start fails and says why.
        shutil.rmtree(self.state)
        os.mkdir(self.state)
        k = self.start(bad)
        status, _, err = k.wait(timeout=60)
        self.assertEqual(status, 1, err)
        self.assertRegex(err, r"Error starting certificate provider: ACME: the http-01 validation of localhost failed \(authorization invalid\): "
                         r"urn:ietf:params:acme:error:connection: .*connection refused")
        self.assertNotIn("READY=1", "".join(k.messages()))

    def test_external_account_binding(self):
        key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
        pebble = self.pebble(eab_keys={"kid-1": key}, PEBBLE_VA_ALWAYS_VALID="1")
        status, _, err = self.start(pebble).wait(timeout=60)
        self.assertEqual(status, 1)
        self.assertIn("urn:ietf:params:acme:error:externalAccountRequired", err)
        key_file = os.path.join(self.state, "..", os.path.basename(self.state) + "-eab")
        with open(key_file, "w") as f:
            f.write(key + "\n")
        self.addCleanup(os.unlink, key_file)
        os.chmod(key_file, 0o644)
        eab = f"    eab_kid: kid-1\n    eab_hmac_key_file: {key_file}"
        status, _, err = self.start(pebble, eab).wait(timeout=60)
        self.assertEqual(status, 1)
        self.assertIn("Permissions 0644 for certificate.acme.eab_hmac_key_file", err)
        os.chmod(key_file, 0o600)
        k = self.start(pebble, eab)
        k.ready(timeout=60)
        self.assertEqual(pebble.issued(), 1)

    def test_an_unreachable_ca_fails_start_naming_it(self):
        k = self.start(type("P", (), {"directory_url": f"https://127.0.0.1:{free_port()}/dir", "ca_file": "/dev/null"})(),
                       "    timeout: 5s")
        status, _, err = k.wait(timeout=60)
        self.assertEqual(status, 1, err)
        self.assertRegex(err, r"ACME directory: https://127\.0\.0\.1:\d+/dir: .*(onnect|refused)")


if __name__ == "__main__":
    unittest.main()
