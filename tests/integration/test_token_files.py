# SPDX-License-Identifier: MIT
"""Tokens delivered as files (issue 27 point 2): token.targets and token.dir. Each target's file
is written at start, holds the JWT alone (it verifies with the JWKS, for its domain and role), has
token.file_mode and token.file_group, and is written again after each refresh before it expires;
a reader polling it through rotations only ever sees a whole token. Bad settings are refused with
exit 78 and a message naming the key."""

import grp
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time

from httpclient import bound_address, get, metric
from keelrun import KeelTestCase, run

try:
    import jwt
except ImportError:  # python3-jwt is Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    import jwt


def claims(token, keys, audience):
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK({k: v for k, v in keys[kid].items()}).key
    return jwt.decode(token, key, algorithms=["ES256", "RS256"], audience=audience)


class TokenFiles(KeelTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-token-files-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def config(self, extra=""):
        return f"""token:
  targets: ["sports:reader", "media:role.writer"]
  dir: {self.dir}
{extra}"""

    def path(self, domain, role):
        return os.path.join(self.dir, f"{domain}:role.{role}.token")

    def read(self, domain, role):
        with open(self.path(domain, role)) as f:
            return f.read()

    def keys(self, k):
        body = get(bound_address(k, "token provider server"), "/.well-known/jwks.json")[2]
        return {key["kid"]: key for key in json.loads(body)["keys"]}

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def test_each_target_is_written_at_start_as_a_token_that_verifies(self):
        k = self.keel("serve", config=self.config())
        k.ready()
        keys = self.keys(k)
        for domain, role in (("sports", "reader"), ("media", "role.writer")):
            token = self.read(domain, role)
            self.assertEqual(token.count("."), 2, "the JWT alone")
            c = claims(token, keys, domain)
            self.assertEqual(c["scope"], role)
            mode = os.stat(self.path(domain, role)).st_mode
            self.assertEqual(stat.S_IMODE(mode), 0o440)
        self.assertEqual(sorted(os.listdir(self.dir)), ["media:role.role.writer.token", "sports:role.reader.token"],
                         "no temporary file left")
        self.assertIn("Wrote 2 of 2 token files in", self.stop(k))

    def test_a_group_and_a_mode_are_given_to_the_files(self):
        group = grp.getgrnam("nogroup") if "nogroup" in [g.gr_name for g in grp.getgrall()] else grp.getgrgid(65534)
        k = self.keel("serve", config=self.config(f"  file_mode: '0640'\n  file_group: {group.gr_name}\n"))
        k.ready()
        st = os.stat(self.path("sports", "reader"))
        self.assertEqual(st.st_gid, group.gr_gid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.stop(k)

    def test_files_are_written_again_at_each_refresh_and_never_seen_torn(self):
        k = self.keel("serve", config=self.config("  refresh_interval: 1s\n  expiry: 2m\n"))
        k.ready()
        keys = self.keys(k)
        first = self.read("sports", "reader")
        seen, bad, stop = set(), [], threading.Event()

        def reader():
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                token = self.read("sports", "reader")
                try:
                    claims(token, keys, "sports")
                except Exception as e:  # a torn or foreign file
                    bad.append(f"{e}: {token!r}")
                seen.add(token)

        t = threading.Thread(target=reader)
        t.start()
        deadline = time.monotonic() + 15
        while len(seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        t.join()
        self.assertEqual(bad, [])
        self.assertGreaterEqual(len(seen), 4, "a new token in the file after each refresh")
        self.assertNotEqual(self.read("sports", "reader"), first)
        metrics = get(bound_address(k, "metrics exporter server"), "/metrics")[2]
        self.assertRegex(metrics, r'keel_token_files_total\{result="ok"\} ([4-9]|\d\d+)')
        self.assertIn('keel_token_files_total{result="error"} 0', metrics)
        self.stop(k)

    def test_an_exec_hook_is_told_after_each_refresh_that_rewrote_files(self):
        log = os.path.join(self.dir, "..", os.path.basename(self.dir) + ".runs")
        self.addCleanup(lambda: os.path.exists(log) and os.unlink(log))
        # refresh_interval 3s: the start's token is read well before the first refresh rewrites it,
        # as the count of files written (the start's two) shows.
        k = self.keel("serve", config=self.config(f"  refresh_interval: 3s\n  expiry: 2m\n"
                                                  f"  files_exec: [sh, -c, 'cat {self.dir}/sports:role.reader.token >> {log}; echo >> {log}']\n"))
        k.ready()
        start_token = self.read("sports", "reader")
        self.assertEqual(metric(bound_address(k, "metrics exporter server"), "keel_token_files_total", '{result="ok"}'), 2,
                         "the start's token read after a refresh rewrote it")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if os.path.exists(log) and len(open(log).read().split()) >= 2:
                break
            time.sleep(0.05)
        told = open(log).read().split()
        self.assertGreaterEqual(len(told), 2, k.stderr_so_far())
        self.assertNotIn(start_token, told, "the files of the start are not told of")
        self.assertIn("Ran the token.files hook sh: exit status 0", self.stop(k))

    def test_a_directory_that_cannot_be_written_fails_the_start(self):
        missing = os.path.join(self.dir, "missing")
        status, _, err, msgs = run("serve", config=f"token:\n  targets: [sports:reader]\n  dir: {missing}\n")
        self.assertEqual(status, 1, err)
        self.assertIn(f"Failed to write the token of domain[sports] role[reader] to '{missing}': No such file or directory", err)
        self.assertIn(f"Cannot write the token files of token.targets in '{missing}'", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs))

    def test_bad_settings_are_refused_naming_the_key(self):
        cases = [
            ("token:\n  targets: [sports:reader]\n", "token.targets is set: set token.dir too"),
            (f"token:\n  targets: [sports:reader, sports]\n  dir: {self.dir}\n", "token.targets[1]: 'sports' is not domain:role"),
            (f"token:\n  targets: ['sports:rea der']\n  dir: {self.dir}\n",
             "token.targets[0]: the role has a character outside [A-Za-z0-9._:-] at offset 3"),
            (f"token:\n  targets: [sports:reader]\n  dir: {self.dir}\n  file_mode: '0644'\n",
             "token.file_mode 0644 lets others read or write the tokens"),
            (f"token:\n  targets: [sports:reader]\n  dir: {self.dir}\n  file_mode: rw\n", "token.file_mode 'rw' is not an octal mode"),
            (f"token:\n  targets: [sports:reader]\n  dir: {self.dir}\n  file_group: no-such-group-here\n",
             "token.file_group 'no-such-group-here' is no group of this system"),
            (f"token:\n  targets: [sports:reader]\n  dir: {self.dir}\n  refresh_interval: 1h\n  expiry: 1h\n",
             "token.refresh_interval must be shorter than token.expiry less a minute"),
        ]
        for config, message in cases:
            with self.subTest(message):
                status, _, err, _ = run("serve", config=config)
                self.assertEqual(status, 78, err)
                self.assertIn(message, err)
        self.assertEqual(os.listdir(self.dir), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
