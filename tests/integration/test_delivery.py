# SPDX-License-Identifier: MIT
"""The certificate pair delivered to another program (issue 27 point 2): certificate.out_dir gets
key.pem and cert.pem as links through `current`, swapped to a new directory at each rotation in
one rename. A reader that resolves `current` once always reads a key and a certificate that belong
together, through many rotations; the key has certificate.out_key_mode and the files
certificate.out_group; bad settings are refused with 78, and a directory that cannot be written
fails the start."""

import grp
import os
import shutil
import signal
import stat
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from httpclient import bound_address, metric
from keelrun import KeelTestCase, run


def public(der_or_pem_key):
    return der_or_pem_key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)


def read_pair(directory):
    """(key, leaf) of the pair in `directory`, or raises."""
    with open(os.path.join(directory, "key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(directory, "cert.pem"), "rb") as f:
        leaf = x509.load_pem_x509_certificate(f.read())  # the first: the leaf
    return key, leaf


class Delivery(KeelTestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="keel-out-")
        self.addCleanup(shutil.rmtree, self.out, True)

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def test_the_pair_is_delivered_at_start_with_its_modes_and_group(self):
        group = grp.getgrgid(65534)
        k = self.keel("serve", "--set", f"certificate.out_dir={self.out}", "--set", f"certificate.out_group={group.gr_name}")
        k.ready()
        key, leaf = read_pair(self.out)
        self.assertEqual(public(key), public(leaf))
        self.assertEqual(os.readlink(os.path.join(self.out, "key.pem")), "current/key.pem")
        self.assertEqual(os.readlink(os.path.join(self.out, "cert.pem")), "current/cert.pem")
        real = os.path.realpath(os.path.join(self.out, "current"))
        self.assertTrue(os.path.basename(real).startswith(".pair-"))
        for name, mode in (("key.pem", 0o440), ("cert.pem", 0o444)):
            st = os.stat(os.path.join(real, name))
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, name)
            self.assertEqual(st.st_gid, group.gr_gid, name)
        self.assertEqual(sorted(os.listdir(self.out)), sorted(["key.pem", "cert.pem", "current", os.path.basename(real)]))
        self.assertIn("Delivered key[", self.stop(k))

    def test_a_reader_through_current_always_gets_a_matching_pair_across_rotations(self):
        k = self.keel("serve", "--set", f"certificate.out_dir={self.out}", "--set", "certificate.refresh_interval=200ms")
        k.ready()
        metrics = bound_address(k, "metrics exporter server")
        seen, bad, stop = set(), [], threading.Event()

        def reader():
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    key, leaf = read_pair(os.path.realpath(os.path.join(self.out, "current")))
                    if public(key) != public(leaf):
                        bad.append(f"mismatch at serial {leaf.serial_number}")
                    seen.add(leaf.serial_number)
                except Exception as e:  # a torn file, or a directory gone under the reader
                    bad.append(repr(e))

        t = threading.Thread(target=reader)
        t.start()
        deadline = time.monotonic() + 20
        while len(seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        t.join()
        self.assertEqual(bad, [])
        self.assertGreaterEqual(len(seen), 10, "ten rotations delivered")
        self.assertGreaterEqual(metric(metrics, "keel_certificate_deliveries_total", '{result="ok"}'), 10)
        self.assertEqual(metric(metrics, "keel_certificate_deliveries_total", '{result="error"}'), 0)
        pairs = [n for n in os.listdir(self.out) if n.startswith(".pair-")]
        self.assertLessEqual(len(pairs), 2, "the current pair and the previous one only")
        self.stop(k)

    def test_a_directory_that_cannot_be_written_fails_the_start(self):
        missing = os.path.join(self.out, "missing")
        status, _, err, msgs = run("serve", "--set", f"certificate.out_dir={missing}")
        self.assertEqual(status, 1, err)
        self.assertIn(f"Failed to deliver key[", err)
        self.assertIn(f"cannot make '{missing}/.pair-", err)
        self.assertIn(f"Cannot deliver the pair to certificate.out_dir '{missing}'", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs))

    def test_bad_settings_are_refused_naming_the_key(self):
        for sets, message in (
            (["certificate.out_key_mode=0644"], "certificate.out_key_mode 0644 lets others read or write the private key"),
            (["certificate.out_key_mode=x"], "certificate.out_key_mode 'x' is not an octal mode"),
            (["certificate.out_group=no-such-group-here"], "certificate.out_group 'no-such-group-here' is no group of this system"),
        ):
            with self.subTest(message):
                args = ["serve", "--set", f"certificate.out_dir={self.out}"]
                for s in sets:
                    args += ["--set", s]
                status, _, err, _ = run(*args)
                self.assertEqual(status, 78, err)
                self.assertIn(message, err)
        self.assertEqual(os.listdir(self.out), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
