# SPDX-License-Identifier: MIT
"""certificate.issuers (issue 28 point 4, docs/decisions/0035) against two of Debian's pebbles on
loopback: the first CA down, keel issues from the second within the retry budget, counts the
fallback and names both in its log; at the next renewal, the first CA back up, it issues from the
first again; an ACME CA down falls back to the local CA; an unknown entry exits 78 naming it; and
SIGTERM during the first issuer's retries exits 0 at once without asking the next one."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, get, metric, wait_for
from keelrun import KeelTestCase
from pebble import Pebble, free_port
from test_acme import x509  # only the function: its test class, imported, would run here too

# Seconds from SIGTERM to the exit: room for a loaded machine, under the 4 s pause a stop that
# waited it out would take.
SIGNAL_TO_EXIT_MAX = 3.5


class IssuersTest(KeelTestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="keel-issuers-state-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.health_port = free_port()
        # One trust file for every pebble's API: certificate.acme.ca_file is read at each issuance.
        self.ca_file = os.path.join(self.state + "-ca.pem")
        self.addCleanup(lambda: os.path.exists(self.ca_file) and os.unlink(self.ca_file))
        self.pebbles = []

    def pebble(self, port=None):
        p = Pebble(self.health_port, env={"PEBBLE_VA_ALWAYS_VALID": "1"}, port=port)
        self.addCleanup(p.close)
        self.pebbles.append(p)
        self.trust()
        return p

    def trust(self):
        with open(self.ca_file + ".new", "w") as out:
            for p in self.pebbles:
                if p.proc.poll() is None:
                    with open(p.ca_file) as f:
                        out.write(f.read())
        os.replace(self.ca_file + ".new", self.ca_file)

    def start(self, first_url, issuers, extra="", attempts=2):
        config = f"""
certificate:
  issuers: [{", ".join(issuers)}]
  issuer_attempts: {attempts}
  dns_names: [localhost]
{extra}
  acme:
    directory_url: {first_url}
    ca_file: {self.ca_file}
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def path(self, name):
        return os.path.join(self.state, name)

    def test_the_second_ca_issues_while_the_first_is_down_and_the_first_again_once_it_is_back(self):
        down = free_port()  # nothing listens there yet
        first_url = f"https://127.0.0.1:{down}/dir"
        second = self.pebble()
        second_name = f"acme:{second.directory_url}"
        t0 = time.monotonic()
        k = self.start(first_url, ["acme", f"'{second_name}'"], "  refresh_interval: 6s")
        k.ready(timeout=30)
        # The budget: two attempts through the first, 1 s apart, then the second.
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(second.issued(), 1)
        err = k.stderr_so_far()
        self.assertIn(f"Issuer[acme] failed (attempt 2 of 2), falling back to issuer[{second_name}]", err)
        self.assertIn(f"Certificate issued by issuer[{second_name}] (2 of 2 in certificate.issuers)", err)
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(metric(metrics, "keel_certificate_issuer_fallbacks_total", f'{{from="acme",to="{second_name}"}}'), 1)
        self.assertEqual(metric(metrics, "keel_certificate_issuance_attempts_total", '{issuer="acme",result="error"}'), 2)
        self.assertEqual(metric(metrics, "keel_certificate_issuance_attempts_total", f'{{issuer="{second_name}",result="ok"}}'), 1)
        health = bound_address(k)
        status, _, body = get(health, "/readyz?verbose")
        self.assertEqual(status, 200)
        self.assertIn(f"issued by {second_name} (2 of 2", body)
        # The second CA's account is its own, beside the first's at its path of old (its key is
        # made before the directory is asked for).
        accounts = sorted(os.listdir(self.path("acme")))
        self.assertEqual(len(accounts), 2, accounts)
        self.assertRegex(accounts[0], r"^account-[0-9a-f]{16}\.key\.pem$")
        self.assertEqual(accounts[1], "account.key.pem")

        # The first comes up where keel looks for it: the next renewal starts from it again.
        first = self.pebble(port=down)
        wait_for(lambda: first.issued() >= 1, 40, "an issue by the first CA at a renewal")
        wait_for(lambda: "Certificate issued by issuer[acme] (1 of 2" in k.stderr_so_far(), 10, "issued by issuer[acme]")
        self.assertGreaterEqual(metric(metrics, "keel_certificate_issuance_attempts_total", '{issuer="acme",result="ok"}'), 1)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_an_acme_ca_down_falls_back_to_the_local_ca(self):
        first_url = f"https://127.0.0.1:{free_port()}/dir"
        k = self.start(first_url, ["acme", "local"])
        k.ready(timeout=30)
        err = k.stderr_so_far()
        self.assertIn("Issuer[acme] failed (attempt 2 of 2), falling back to issuer[local]", err)
        self.assertIn("Certificate issued by issuer[local] (2 of 2", err)
        self.assertIn("keel", x509(self.path("cert.pem"), "-issuer").lower())
        self.assertTrue(os.path.exists(self.path("ca.pem")))
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(metric(metrics, "keel_certificate_issuer_fallbacks_total", '{from="acme",to="local"}'), 1)
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_the_operators_files_as_the_fallback_are_copied_into_the_state_directory(self):
        files = tempfile.mkdtemp(prefix="keel-issuers-files-")
        self.addCleanup(shutil.rmtree, files, True)
        key, cert = os.path.join(files, "key.pem"), os.path.join(files, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        key, "-out", cert, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2"],
                       check=True, capture_output=True, timeout=30)
        os.chmod(key, 0o600)
        first_url = f"https://127.0.0.1:{free_port()}/dir"
        k = self.start(first_url, ["acme", "file"], f"  key_file: {key}\n  cert_file: {cert}", attempts=1)
        k.ready(timeout=30)
        err = k.stderr_so_far()
        self.assertIn("Issuer[acme] failed (attempt 1 of 1), falling back to issuer[file]", err)
        self.assertIn("Certificate issued by issuer[file] (2 of 2", err)
        self.assertEqual(x509(self.path("cert.pem"), "-serial"), x509(cert, "-serial"))
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_roles_and_a_provider_beside_issuers_are_refused(self):
        k = self.start("https://127.0.0.1:1/dir", ["local"], "  provider: acme")
        status, _, err = k.wait()
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.provider is acme and certificate.issuers is set: list it in issuers instead", err)
        k = self.start("https://127.0.0.1:1/dir", ["local"], f"  roles: ['sports:role.admin']\n  role_dir: {self.state}")
        status, _, err = k.wait()
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.roles needs certificate.provider local-ca, without certificate.issuers", err)

    def test_an_unknown_entry_exits_78_naming_it(self):
        k = self.start("https://127.0.0.1:1/dir", ["acme", "letsencrypt"])
        status, _, err = k.wait()
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.issuers[1]: 'letsencrypt': not acme, acme:URL, local or file", err)
        k = self.start("https://127.0.0.1:1/dir", ["local", "'acme:http://127.0.0.1:1/dir'"])
        status, _, err = k.wait()
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.issuers[1]: 'acme:http://127.0.0.1:1/dir': an ACME directory is an https:// URL", err)

    def test_sigterm_during_the_first_issuers_retries_exits_at_once_without_the_next(self):
        first_url = f"https://127.0.0.1:{free_port()}/dir"
        k = self.start(first_url, ["acme", "local"], attempts=10)
        # After the third failure the pause is 4 s: the stop comes during it.
        wait_for(lambda: "Issuer[acme] failed (attempt 3 of 10)" in k.stderr_so_far(), 20, "the third failed attempt")
        t0 = time.monotonic()
        k.kill()
        status, _, err = k.wait(timeout=10)
        self.assertLess(time.monotonic() - t0, SIGNAL_TO_EXIT_MAX, err)
        self.assertEqual(status, 0, err)
        self.assertNotIn("falling back", err)
        self.assertNotIn("READY=1", k.messages())
        self.assertFalse(os.path.exists(self.path("ca.pem")), "the local CA was never asked")


if __name__ == "__main__":
    unittest.main()
