# SPDX-License-Identifier: MIT
"""`keel init` (issue 27 point 1): the certificate and token services once. It writes the pair and
every target's token file, binds no port, starts no task, says the metrics exporter and the health
check are disabled, and exits 0; `serve` then reuses the pair it made. A failed ACME issuance is
tried again until init.timeout (exit 1 after it); a stop signal while it retries ends init as a
failure (exit 1); a stop signal before the services start skips them (exit 0). The rows of the
init table in docs/lifecycle.md."""

import os
import re
import shutil
import signal
import tempfile
import time

from keelrun import KeelTestCase, run
from relay import Relay

KID = re.compile(r"Signing tokens with key\[([^]]+)\]")


class Init(KeelTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-init-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state, self.out, self.tokens = (os.path.join(self.tmp, d) for d in ("state", "tls", "tokens"))
        os.mkdir(self.out)
        os.mkdir(self.tokens)
        self.env = {"KEEL_STATE_DIR": self.state}

    def config(self, extra=""):
        return f"""certificate:
  out_dir: {self.out}
token:
  targets: [sports:reader]
  dir: {self.tokens}
{extra}"""

    def acme(self, url, init_timeout="60s", acme_timeout="60s"):
        return f"""init:
  timeout: {init_timeout}
certificate:
  provider: acme
  dns_names: [localhost]
  acme:
    directory_url: {url}
    ca_file: /dev/null
    timeout: {acme_timeout}
"""

    def test_init_writes_the_credentials_binds_nothing_and_serve_reuses_them(self):
        t0 = time.monotonic()
        status, _, err, msgs = run("init", config=self.config(), env=self.env)
        self.assertEqual(status, 0, err)
        self.assertLess(time.monotonic() - t0, 10)
        for path in ("key.pem", "cert.pem"):
            self.assertTrue(os.path.exists(os.path.join(self.out, path)), path)
        self.assertTrue(os.path.exists(os.path.join(self.tokens, "sports:role.reader.token")))
        self.assertNotIn("Starting", err, "no server")
        self.assertNotIn("Will refresh", err, "no task")
        self.assertIn("Metrics exporter disabled in init mode", err)
        self.assertIn("Health check disabled in init mode", err)
        self.assertIn("Initiating shutdown, cause: credentials written", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs), msgs)
        kid = KID.search(err).group(1)
        k = self.keel("serve", config=self.config(), env=self.env)
        k.ready()
        self.assertEqual(KID.search(k.stderr_so_far()).group(1), kid, "serve reuses the pair init made")
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)

    def test_a_fault_in_a_service_start_fails_init(self):
        status, _, err, _ = run("init", config=self.config(), env=dict(self.env, KEEL_FAULT="error@in:certificate.start"))
        self.assertEqual(status, 1, err)
        self.assertFalse(os.path.exists(os.path.join(self.tokens, "sports:role.reader.token")), "the services after it did not run")

    def test_a_configuration_error_is_78(self):
        status, _, err, _ = run("init", config=self.config("  file_mode: '0644'\n"), env=self.env)
        self.assertEqual(status, 78, err)

    def test_an_issuance_that_keeps_failing_is_tried_again_until_init_timeout(self):
        silent = Relay()
        self.addCleanup(silent.close)
        t0 = time.monotonic()
        status, _, err, _ = run("init", config=self.acme(f"https://127.0.0.1:{silent.port}/dir", "4s", "1s"), env=self.env,
                                timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 1, err)
        self.assertGreaterEqual(elapsed, 3, err)
        self.assertLess(elapsed, 20, err)
        self.assertIn("Failed to obtain the certificate, trying again in 1s", err)
        self.assertIn("keel init gave up at init.timeout", err)

    def test_a_stop_while_an_issuance_is_tried_ends_init_as_a_failure(self):
        silent = Relay()
        self.addCleanup(silent.close)
        k = self.keel("init", config=self.acme(f"https://127.0.0.1:{silent.port}/dir"), env=self.env)
        self.assertTrue(silent.accepted.wait(30), k.stderr_so_far())
        time.sleep(0.3)
        t0 = time.monotonic()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait(timeout=60)
        self.assertEqual(status, 1, err)
        # 5 s: room for a loaded machine, well under the 60 s of an issuance waited out.
        self.assertLess(time.monotonic() - t0, 5, err)
        self.assertIn("keel init stopped", err)
        self.assertIn("Skipped token provider start", err)

    def test_a_stop_before_the_services_start_skips_them(self):
        for _ in range(20):  # until a start delay long enough to signal inside it
            k = self.keel("init", "--set", "start_delay_jitter=30s", config=self.config(), env=self.env)
            deadline = time.monotonic() + 10
            while "Delaying the start by" not in k.stderr_so_far() and time.monotonic() < deadline:
                time.sleep(0.02)
            m = re.search(r"Delaying the start by (\d+(?:\.\d+)?)s", k.stderr_so_far())
            if m and float(m.group(1)) > 3:
                break
            k.kill(signal.SIGKILL)
            k.wait()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Skipped certificate provider start", err)
        self.assertIn("Skipped token provider start", err)
        self.assertEqual(os.listdir(self.tokens), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
