# SPDX-License-Identifier: MIT
"""The certificate pair delivered to another program (issue 27 point 2): certificate.out_dir gets
key.pem and cert.pem as links through `current`, swapped to a new directory at each rotation in
one rename. A reader that resolves `current` once always reads a key and a certificate that belong
together, through many rotations; the key has certificate.out_key_mode and the files
certificate.out_group; bad settings are refused with 78, and a directory that cannot be written
fails the start."""

import datetime
import grp
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from httpclient import bound_address, metric, wait_for
from keelrun import KeelTestCase, run


def public(der_or_pem_key):
    return der_or_pem_key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)


def write_self_signed(key, serial, key_path, cert_path):
    """@key and a certificate of it with @serial, each file put in place by one rename."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    for path, data, mode in ((key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()), 0o600),
                             (cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)):
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)


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
        # The shipped unit's UMask=0077 must not take the group's way into the pair's directory.
        old = os.umask(0o077)
        try:
            k = self.keel("serve", "--set", f"certificate.out_dir={self.out}", "--set",
                          f"certificate.out_group={group.gr_name}")
        finally:
            os.umask(old)
        k.ready()
        key, leaf = read_pair(self.out)
        self.assertEqual(public(key), public(leaf))
        self.assertEqual(os.readlink(os.path.join(self.out, "key.pem")), "current/key.pem")
        self.assertEqual(os.readlink(os.path.join(self.out, "cert.pem")), "current/cert.pem")
        real = os.path.realpath(os.path.join(self.out, "current"))
        self.assertTrue(os.path.basename(real).startswith(".pair-"))
        self.assertEqual(stat.S_IMODE(os.stat(real).st_mode), 0o750, "the pair's directory")
        self.assertEqual(os.stat(real).st_gid, group.gr_gid, "the pair's directory")
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
        # Counted just after the swap the reader may already have seen.
        self.assertGreaterEqual(metric(metrics, "keel_certificate_deliveries_total", '{result="ok"}'), len(seen) - 1)
        self.assertEqual(metric(metrics, "keel_certificate_deliveries_total", '{result="error"}'), 0)
        pairs = [n for n in os.listdir(self.out) if n.startswith(".pair-")]
        self.assertLessEqual(len(pairs), 2, "the current pair and the previous one only")
        self.stop(k)

    def test_a_certificate_renewed_for_the_same_key_is_delivered_and_told_of(self):
        files = tempfile.mkdtemp(prefix="keel-files-")
        self.addCleanup(shutil.rmtree, files, True)
        key_path, cert_path, log = (os.path.join(files, n) for n in ("key.pem", "cert.pem", "told"))
        key = ec.generate_private_key(ec.SECP256R1())
        write_self_signed(key, 1, key_path, cert_path)
        k = self.keel("serve", "--set", "certificate.provider=file", "--set", f"certificate.key_file={key_path}",
                      "--set", f"certificate.cert_file={cert_path}", "--set", f"certificate.out_dir={self.out}",
                      "--set", f'certificate.out_exec=[sh, -c, "readlink {self.out}/current >> {log}"]')
        k.ready()
        self.assertEqual(read_pair(self.out)[1].serial_number, 1)
        first = os.readlink(os.path.join(self.out, "current"))
        write_self_signed(key, 2, key_path, cert_path)
        k.kill(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while read_pair(self.out)[1].serial_number != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(read_pair(self.out)[1].serial_number, 2, k.stderr_so_far())
        second = os.readlink(os.path.join(self.out, "current"))
        self.assertNotEqual(first, second, "a pair of its own, swapped in one rename")
        # The hook's shell makes the file before readlink writes its line to it: wait for the line.
        told = lambda: open(log).read() if os.path.exists(log) else ""
        deadline = time.monotonic() + 15
        while not told().endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(told().split(), [second], "the consumer told of the renewed certificate")
        self.assertEqual(sorted(n for n in os.listdir(self.out) if n.startswith(".pair-")), sorted([first, second]))
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


class Hooks(KeelTestCase):
    """The consumer told of each new pair: an exec hook and a signal hook (issue 27 point 3)."""

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="keel-hooks-")
        self.addCleanup(shutil.rmtree, self.out, True)
        self.work = tempfile.mkdtemp(prefix="keel-hooks-work-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def serve(self, *sets):
        args = ["serve", "--set", f"certificate.out_dir={self.out}"]
        for s in sets:
            args += ["--set", s]
        k = self.keel(*args)
        k.ready()
        return k

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def lines(self, name):
        try:
            with open(os.path.join(self.work, name)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_lines(self, name, n, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.lines(name)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.lines(name)

    def test_an_exec_hook_runs_after_each_new_pair_but_not_the_first(self):
        log = os.path.join(self.work, "runs")
        k = self.serve("certificate.refresh_interval=400ms",
                       f'certificate.out_exec=[sh, -c, "readlink {self.out}/current >> {log}; echo told"]')
        # The start's pair by its kid (its directory is .pair-<kid>-…), from the first delivery
        # logged: `current` read now may already lead to a pair of a later refresh.
        kid = wait_for(lambda: re.search(r"Delivered key\[([^]]+)\]", k.stderr_so_far()), 10, "the first delivery").group(1)
        runs = self.wait_lines("runs", 3)
        self.assertGreaterEqual(len(runs), 3, k.stderr_so_far())
        self.assertEqual([r for r in runs if r.startswith(f".pair-{kid}-")], [], "the first pair of the directory is not told of")
        err = self.stop(k)
        self.assertIn("certificate.out hook sh: told", err)
        self.assertIn("Ran the certificate.out hook sh: exit status 0", err)

    def test_a_failing_hook_is_retried_with_a_backoff_and_counted(self):
        count = os.path.join(self.work, "count")
        # Fails its first two runs, then succeeds.
        script = f'echo x >> {count}; [ $(wc -l < {count}) -ge 3 ]'
        k = self.serve("certificate.refresh_interval=3s", f"certificate.out_exec=[sh, -c, '{script}']")
        self.assertGreaterEqual(len(self.wait_lines("count", 3, timeout=30)), 3, k.stderr_so_far())
        metrics = bound_address(k, "metrics exporter server")
        deadline = time.monotonic() + 10
        while (metric(metrics, "keel_hooks_total", '{target="certificate.out",result="ok"}') or 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(metric(metrics, "keel_hooks_total", '{target="certificate.out",result="error"}'), 2)
        self.assertGreaterEqual(metric(metrics, "keel_hooks_total", '{target="certificate.out",result="ok"}'), 1)
        err = self.stop(k)
        self.assertIn("Ran the certificate.out hook sh: exit status 1", err)
        self.assertIn("Will run the certificate.out hooks again in 1s", err)

    def test_a_signal_hook_signals_the_pid_of_the_pidfile(self):
        pidfile, got = os.path.join(self.work, "consumer.pid"), os.path.join(self.work, "hups")
        consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, pidfile, got])
        self.addCleanup(lambda: (consumer.kill(), consumer.wait()))
        deadline = time.monotonic() + 10
        while not os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)
        k = self.serve("certificate.refresh_interval=400ms", "certificate.out_signal=HUP", f"certificate.out_pidfile={pidfile}")
        self.assertGreaterEqual(len(self.wait_lines("hups", 2)), 2, k.stderr_so_far())
        self.assertIn(f"Sent Hangup to PID {consumer.pid} of '{pidfile}' (certificate.out hook)", self.stop(k))

    def test_a_hook_past_its_timeout_is_killed(self):
        k = self.serve("certificate.refresh_interval=500ms", "certificate.out_exec=[sleep, '30']",
                       "certificate.out_hook_timeout=300ms")
        deadline = time.monotonic() + 15
        while "ran past 300ms and was killed" not in k.stderr_so_far() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        err = self.stop(k)
        self.assertLess(time.monotonic() - started, 5, "a stop does not wait for a hook")
        self.assertIn("The certificate.out hook sleep ran past 300ms and was killed", err)

    def test_bad_hook_settings_are_refused_naming_the_key(self):
        for sets, message in (
            ([f"certificate.out_dir={self.out}", "certificate.out_signal=FOO", f"certificate.out_pidfile={self.work}/p"],
             "certificate.out_signal 'FOO' is not one of HUP"),
            ([f"certificate.out_dir={self.out}", "certificate.out_signal=HUP"], "set both certificate.out_signal and certificate.out_pidfile"),
            (["certificate.out_exec=[true]"], "certificate.out_exec or out_signal is set: set certificate.out_dir too"),
            (["token.files_exec=[true]"], "token.files_exec or files_signal is set: set token.targets too"),
        ):
            with self.subTest(message):
                args = ["serve"]
                for s in sets:
                    args += ["--set", s]
                status, _, err, _ = run(*args)
                self.assertEqual(status, 78, err)
                self.assertIn(message, err)


# A consumer that writes its PID to argv[1] and a line to argv[2] at each SIGHUP.
CONSUMER = """
import os, signal, sys, time
def hup(*_):
    with open(sys.argv[2], "a") as f:
        f.write("hup\\n")
signal.signal(signal.SIGHUP, hup)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.1)
"""

if __name__ == "__main__":
    import unittest
    unittest.main()
