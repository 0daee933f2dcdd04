# SPDX-License-Identifier: MIT
"""The certificate service with the real binary: the local CA's certificates verify with the
openssl CLI, the checks at load name the file, the backup rescues a failing provider, refresh
failures keep the process up and are counted, the file provider reloads changed files."""

import base64
import datetime
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, get
from keelrun import KeelTestCase, run


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def metric(addr, name):
    status, _, body = get(addr, "/metrics")
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def wait_until(fn, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def logged_at(err, text):
    """When keel logged its first line holding `text` (seconds since the epoch, from the line's time)."""
    for line in err.splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ", line)
        if m and text in line:
            return datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
    raise AssertionError(f"no line with {text!r} in:\n{err}")


def make_cert(cn, days, ca=False, issuer=None):
    """(key, certificate) for `cn`, signed by `issuer` (key, certificate), else by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[1].subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return key, b.sign(issuer[0] if issuer else key, hashes.SHA256())


def write_certs(path, *certs):
    from cryptography.hazmat.primitives import serialization
    with open(path + ".new", "wb") as f:
        f.write(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    os.rename(path + ".new", path)


def write_pair(key_path, cert_path, key, cert):
    from cryptography.hazmat.primitives import serialization
    fd = os.open(key_path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.rename(key_path + ".new", key_path)
    write_certs(cert_path, cert)


class Base(KeelTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-cert-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def issue(self, name, *sets):
        """Runs the local CA once into self.dir/name and returns that state directory."""
        state = os.path.join(self.dir, name)
        args = ["serve", "--set", f"state_dir={state}"]
        for s in sets:
            args += ["--set", s]
        k = self.keel(*args)
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return state

    def serve_file(self, key, cert, *sets, **kw):
        args = ["serve", "--set", "certificate.provider=file", "--set", f"certificate.key_file={key}",
                "--set", f"certificate.cert_file={cert}", "--set", f"state_dir={self.dir}/run"]
        for s in sets:
            args += ["--set", s]
        return self.keel(*args, **kw)

    def secret_volume(self, a, b):
        """A Kubernetes secret volume holding the pairs of state directories @a and @b, showing @a:
        key.pem -> ..data/key.pem, ..data -> ..2026_a; swap_to() makes an update."""
        vol = os.path.join(self.dir, "secret")
        for name, src in (("..2026_a", a), ("..2026_b", b)):
            os.makedirs(os.path.join(vol, name))
            for f in ("key.pem", "cert.pem"):
                shutil.copy2(os.path.join(src, f), os.path.join(vol, name, f))
        os.symlink("..2026_a", os.path.join(vol, "..data"))
        for f in ("key.pem", "cert.pem"):
            os.symlink(os.path.join("..data", f), os.path.join(vol, f))
        return vol

    @staticmethod
    def swap_to(vol, generation):
        """The kubelet's update: a new ..data symlink renamed over the old one."""
        os.symlink(generation, os.path.join(vol, "..data_tmp"))
        os.rename(os.path.join(vol, "..data_tmp"), os.path.join(vol, "..data"))

    def assertStartFails(self, k, *needles):
        status, _, err = k.wait()
        self.assertEqual(status, 1, err)
        self.assertIn("Error starting certificate provider: ", err)
        for n in needles:
            self.assertIn(n, err)
        return err


class LocalCA(Base):
    def test_issued_certificate_verifies_and_names_the_dns_names(self):
        state = os.path.join(self.dir, "state")
        k = self.keel("serve", "--set", f"state_dir={state}", "--set", "certificate.dns_names=[svc.example, localhost, 127.0.0.1]")
        k.ready()
        ca, cert = os.path.join(state, "ca.pem"), os.path.join(state, "cert.pem")
        rc, out = openssl("verify", "-CAfile", ca, cert)
        self.assertEqual(rc, 0, out)
        self.assertIn(": OK", out)
        rc, out = openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName,extendedKeyUsage")
        self.assertEqual(rc, 0, out)
        self.assertIn("DNS:svc.example", out)
        self.assertIn("DNS:localhost", out)
        self.assertIn("IP Address:127.0.0.1", out)
        self.assertIn("TLS Web Server Authentication", out)
        rc, out = openssl("x509", "-in", ca, "-noout", "-ext", "basicConstraints")
        self.assertIn("CA:TRUE", out)
        modes = {n: stat.S_IMODE(os.stat(os.path.join(state, n)).st_mode) for n in os.listdir(state)}
        self.assertEqual(modes, {"key.pem": 0o600, "cert.pem": 0o644, "ca.key.pem": 0o600, "ca.pem": 0o644,
                                 "pair.pem": 0o600, "layout": 0o644, ".lock": 0o600})
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o700)
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertRegex(err, r"Will refresh key\[" + re.escape(state) + r"/key.pem\], cert\[" + re.escape(state)
                         + r"/cert.pem\] with provider\[local-ca\], backup\[none\] after 2[1-6]h\d+m[\d.]+s")
        self.assertIn("Stopped certificate provider", err)

    def test_a_first_name_longer_than_a_common_name_is_the_critical_subject_alt_name_alone(self):
        name = "a" * 60 + ".svc.cluster.example"  # 80 characters: X.509 caps a common name at 64
        state = self.issue("state", f"certificate.dns_names=[{name}, localhost]")
        cert = os.path.join(state, "cert.pem")
        rc, out = openssl("x509", "-in", cert, "-noout", "-subject", "-ext", "subjectAltName")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("CN", out.splitlines()[0], "no common name it could not hold")
        self.assertIn("X509v3 Subject Alternative Name: critical", out)
        self.assertIn(f"DNS:{name}", out)
        rc, out = openssl("verify", "-CAfile", os.path.join(state, "ca.pem"), cert)
        self.assertEqual(rc, 0, out)

    def test_an_intermediate_as_the_local_ca_reuses_its_pair_at_the_next_start(self):
        from cryptography.hazmat.primitives import serialization
        root_key, root = make_cert("root CA", days=30, ca=True)
        mid_key, mid = make_cert("intermediate CA", days=30, ca=True, issuer=(root_key, root))
        ca_key, ca_cert = os.path.join(self.dir, "mid.key"), os.path.join(self.dir, "mid.pem")
        write_pair(ca_key, ca_cert, mid_key, mid)
        sets = (f"certificate.ca_key_file={ca_key}", f"certificate.ca_cert_file={ca_cert}")
        state = self.issue("state", *sets)
        with open(os.path.join(state, "cert.pem")) as f:
            first = f.read()
        self.assertEqual(first.count("BEGIN CERTIFICATE"), 2, "the leaf, then the intermediate that signed it")
        write_certs(os.path.join(self.dir, "root.pem"), root)
        cert = os.path.join(state, "cert.pem")
        rc, out = openssl("verify", "-CAfile", os.path.join(self.dir, "root.pem"), "-untrusted", cert, cert)
        self.assertEqual(rc, 0, out)
        k = self.keel("serve", "--set", f"state_dir={state}", *[a for s in sets for a in ("--set", s)])
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Reusing key[", err)
        self.assertNotIn("does not verify to the CA", err)
        with open(os.path.join(state, "cert.pem")) as f:
            self.assertEqual(f.read(), first)

    def test_next_start_reuses_a_valid_pair(self):
        state = self.issue("state")
        with open(os.path.join(state, "cert.pem")) as f:
            first = f.read()
        k = self.keel("serve", "--set", f"state_dir={state}")
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Reusing key[", err)
        with open(os.path.join(state, "cert.pem")) as f:
            self.assertEqual(f.read(), first)

    def test_other_dns_names_issue_a_new_certificate(self):
        state = self.issue("state", "certificate.dns_names=[a.example]")
        k = self.keel("serve", "--set", f"state_dir={state}", "--set", "certificate.dns_names=[b.example]")
        k.ready()
        rc, out = openssl("x509", "-in", os.path.join(state, "cert.pem"), "-noout", "-ext", "subjectAltName")
        self.assertIn("DNS:b.example", out)
        self.assertNotIn("DNS:a.example", out)
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("does not name every one of certificate.dns_names; issuing a new one", err)

    def test_rsa_key(self):
        state = self.issue("state", "certificate.key_type=rsa")
        rc, out = openssl("pkey", "-in", os.path.join(state, "key.pem"), "-noout", "-text")
        self.assertIn("2048 bit", out)

    def test_key_readable_by_others_is_refused(self):
        state = self.issue("state")
        key = os.path.join(state, "key.pem")
        os.chmod(key, 0o644)
        k = self.keel("serve", "--set", f"state_dir={state}")
        self.assertStartFails(k, f"Permissions 0644 for '{key}' are too open")

    def test_rotation_publishes_new_keys_and_counts(self):
        state = os.path.join(self.dir, "state")
        k = self.keel("serve", "--set", f"state_dir={state}", "--set", "certificate.refresh_interval=200ms")
        addr = bound_address(k, "metrics exporter server")
        with open(os.path.join(state, "key.pem")) as f:
            first_key = f.read()
        # Refreshes may have run since READY=1: the key read is at most one past those counted now
        # (written, not yet counted), so two more make one written after the read.
        counted = metric(addr, "keel_certificate_refresh_total") or 0
        wait_until(lambda: (metric(addr, "keel_certificate_refresh_total") or 0) >= counted + 2, what="two refreshes")
        self.assertEqual(metric(addr, "keel_certificate_refresh_failures_total"), 0)
        self.assertGreater(metric(addr, "keel_certificate_expiry_timestamp_seconds"), time.time() + 3600)
        rc, out = openssl("verify", "-CAfile", os.path.join(state, "ca.pem"), os.path.join(state, "cert.pem"))
        self.assertEqual(rc, 0, out)
        with open(os.path.join(state, "key.pem")) as f:
            self.assertNotEqual(f.read(), first_key)
        self.assertEqual(sorted(os.listdir(state)), [".lock", "ca.key.pem", "ca.pem", "cert.pem", "key.pem", "layout", "pair.pem"])
        key_cert = ""
        for name in ("key.pem", "cert.pem", "pair.pem"):
            with open(os.path.join(state, name)) as f:
                text = f.read()
            if name != "pair.pem":
                key_cert += text
        self.assertEqual(text, key_cert, "pair.pem is the current key and certificate")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)

    def test_failing_refresh_keeps_serving_and_is_counted(self):
        state = os.path.join(self.dir, "state")
        k = self.keel("serve", "--set", f"state_dir={state}", "--set", "certificate.refresh_interval=20ms",
                      env={"KEEL_FAULT": "error@in:certificate.refresh"})
        addr = bound_address(k, "metrics exporter server")
        health = bound_address(k)
        # 20 ms, then backoff 1 s, 2 s (±10 %): the third failure comes after about 3 s.
        wait_until(lambda: (metric(addr, "keel_certificate_refresh_failures_total") or 0) >= 2, what="two failures")
        self.assertEqual(get(health, "/readyz")[0], 200)
        self.assertIsNone(k.proc.poll())
        started = time.monotonic()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertLess(time.monotonic() - started, 5, "the refresh task did not stop promptly")
        self.assertIn("Failed to refresh the certificate, retrying in about 1s: test error", err)
        self.assertIn("retrying in about 2s", err)

    def test_readyz_stays_ready_near_expiry_and_says_why(self):
        # Valid from 5 minutes ago (clock skew) for 10 s more: under 10 % of its lifetime is left,
        # and the renewal fails. Every replica of a fleet reads the same certificate: failing
        # readiness now would take them all out at once while the key still signs.
        state = os.path.join(self.dir, "state")
        k = self.keel("serve", "--set", f"state_dir={state}", "--set", "certificate.lifetime=10s",
                      env={"KEEL_FAULT": "error@in:certificate.refresh"})
        k.ready()
        addr = bound_address(k)
        for path in ("/readyz?verbose", "/healthz?verbose"):
            status, _, body = get(addr, path)
            self.assertEqual(status, 200, body)
            self.assertRegex(body, r"\[\+\]certificate ok: the certificate expires at \S+Z, within 10% of its lifetime, "
                                   r"and is not renewed yet")
        self.assertNotIn("Health check certificate fails", k.stderr_so_far())


class Lifecycle(Base):
    def test_keys_are_shown_by_keel_config(self):
        status, out, err, _ = run("config")
        self.assertEqual(status, 0, err)
        lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
        self.assertEqual(lines["certificate.provider"], "local-ca   # default")
        self.assertEqual(lines["certificate.refresh_interval"], "24h   # default")
        self.assertEqual(lines["certificate.lifetime"], "72h   # default")
        self.assertEqual(lines["certificate.backup"], "none   # default")
        self.assertEqual(lines["certificate.key_type"], "ec   # default")
        self.assertEqual(lines["certificate.dns_names"], "[]   # default")

    def test_publish_delay_with_another_provider_is_said_to_be_ignored(self):
        status, _, err, _ = run("config", "--check", "--set", "certificate.publish_delay=10s")
        self.assertEqual(status, 0, err)
        self.assertRegex(err, r"WARN.*certificate\.publish_delay \(--set\) applies to certificate\.provider file only; "
                              r"ignored with local-ca")
        status, _, err, _ = run("config", "--check")
        self.assertEqual(status, 0, err)
        self.assertNotIn("publish_delay", err, "the default is no setting")

    def test_error_in_start_skips_the_other_services(self):
        status, _, err, _ = run("serve", env={"KEEL_FAULT": "error@in:certificate.start"})
        self.assertEqual(status, 1, err)
        self.assertIn("Error starting certificate provider: test error", err)
        self.assertIn("Skipped metrics exporter start", err)
        self.assertIn("Skipped health check start", err)

    def test_error_at_the_refresh_spawn_fails_the_start(self):
        status, _, err, _ = run("serve", env={"KEEL_FAULT": "error@before:certificate.spawn.refresh"})
        self.assertEqual(status, 1, err)
        self.assertIn("Error starting certificate provider: Cannot start the refresh task: test error", err)
        self.assertIn("Stopped certificate provider", err)


class FileProvider(Base):
    def test_corrupt_certificate_names_the_file(self):
        state = self.issue("state")
        bad = os.path.join(self.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        k = self.serve_file(os.path.join(state, "key.pem"), bad)
        self.assertStartFails(k, f"'{bad}' is not a PEM certificate")

    def test_expired_certificate_names_the_file(self):
        state = self.issue("state", "certificate.lifetime=1s")
        time.sleep(1.5)
        cert = os.path.join(state, "cert.pem")
        k = self.serve_file(os.path.join(state, "key.pem"), cert)
        self.assertStartFails(k, f"cert[{cert}]: the certificate expired at ")

    def test_certificate_of_another_key_is_refused(self):
        a, b = self.issue("a"), self.issue("b")
        k = self.serve_file(os.path.join(a, "key.pem"), os.path.join(b, "cert.pem"))
        self.assertStartFails(k, "the certificate does not belong to the key")

    def test_chain_must_verify_to_the_given_ca(self):
        a, b = self.issue("a"), self.issue("b")
        k = self.serve_file(os.path.join(a, "key.pem"), os.path.join(a, "cert.pem"),
                            f"certificate.ca_cert_file={b}/ca.pem")
        self.assertStartFails(k, "the certificate does not verify to the CA")

    def test_an_intermediate_is_an_anchor_and_a_new_ca_is_read_at_each_reload(self):
        root_key, root = make_cert("root CA", days=30, ca=True)
        mid_key, mid = make_cert("intermediate CA", days=30, ca=True, issuer=(root_key, root))
        key, cert, ca = (os.path.join(self.dir, n) for n in ("key.pem", "cert.pem", "ca.pem"))
        write_pair(key, cert, *make_cert("localhost", days=10, issuer=(mid_key, mid)))
        write_certs(ca, mid)  # the operator trusts the intermediate, not the root
        k = self.serve_file(key, cert, f"certificate.ca_cert_file={ca}")
        addr = bound_address(k, "metrics exporter server")
        first = metric(addr, "keel_certificate_expiry_timestamp_seconds")
        # A secret volume's CA rotated with its pair: each file replaced by a rename.
        new_root_key, new_root = make_cert("new root CA", days=30, ca=True)
        write_certs(ca, new_root)
        write_pair(key, cert, *make_cert("localhost", days=5, issuer=(new_root_key, new_root)))
        k.kill(signal.SIGHUP)
        wait_until(lambda: metric(addr, "keel_certificate_expiry_timestamp_seconds") < first - 4 * 86400, what="the reload")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertNotIn("does not verify to the CA", err)

    def test_missing_key_file_is_a_configuration_error(self):
        status, _, err, _ = run("serve", "--set", "certificate.provider=file")
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.provider is file: set certificate.key_file and certificate.cert_file", err)

    def test_backup_read_starts_when_the_provider_fails(self):
        a = self.issue("a")
        key, cert = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        shutil.copy2(os.path.join(a, "key.pem"), key)
        shutil.copy2(os.path.join(a, "cert.pem"), cert)
        k = self.serve_file(key, cert, "certificate.backup=write")
        k.ready()
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)
        backup = os.path.join(self.dir, "run", "backup")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(backup, "key.pem")).st_mode), 0o600)

        os.unlink(key)
        without = self.serve_file(key, cert, "certificate.backup=write")
        self.assertStartFails(without, f"Cannot read '{key}'")

        k = self.serve_file(key, cert, "certificate.backup=read+write")
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn(f"Provider file failed (Cannot read '{key}': No such file or directory); starting from the backup", err)

    def test_changed_files_are_reloaded_and_bad_ones_ignored(self):
        # b's certificate expires a day before a's: the expiry metric shows which one is loaded.
        a, b = self.issue("a"), self.issue("b", "certificate.lifetime=48h")
        key, cert = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        shutil.copy2(os.path.join(a, "key.pem"), key)
        shutil.copy2(os.path.join(a, "cert.pem"), cert)
        k = self.serve_file(key, cert)
        addr = bound_address(k, "metrics exporter server")
        first = metric(addr, "keel_certificate_expiry_timestamp_seconds")
        # A corrupt certificate: logged (checked at exit), the current one stays.
        with open(cert + ".new", "w") as f:
            f.write("garbage")
        os.rename(cert + ".new", cert)
        wait_until(lambda: "Failed to reload the changed files" in k.stderr_so_far(), what="the corrupt file refused")
        self.assertEqual(metric(addr, "keel_certificate_expiry_timestamp_seconds"), first)
        # A new pair, each file replaced by rename: reloaded.
        shutil.copy2(os.path.join(b, "key.pem"), key + ".new")
        os.rename(key + ".new", key)
        shutil.copy2(os.path.join(b, "cert.pem"), cert + ".new")
        os.rename(cert + ".new", cert)
        wait_until(lambda: metric(addr, "keel_certificate_expiry_timestamp_seconds") < first - 20 * 3600, what="the reload")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn(f"Failed to reload the changed files, keeping the current certificate: '{cert}' is not a PEM certificate", err)
        self.assertIn(f"Reloaded key[{key}], cert[{cert}]", err)

    def test_kubernetes_secret_volume_update_is_reloaded(self):
        # A secret volume: key.pem -> ..data/key.pem, and an update swaps the ..data symlink.
        a, b = self.issue("a"), self.issue("b", "certificate.lifetime=48h")
        vol = self.secret_volume(a, b)
        k = self.serve_file(os.path.join(vol, "key.pem"), os.path.join(vol, "cert.pem"))
        addr = bound_address(k, "metrics exporter server")
        first = metric(addr, "keel_certificate_expiry_timestamp_seconds")
        self.swap_to(vol, "..2026_b")
        wait_until(lambda: metric(addr, "keel_certificate_expiry_timestamp_seconds") < first - 20 * 3600, what="the reload")

    def test_a_new_key_is_published_for_publish_delay_before_it_signs(self):
        # What makes replicas that share one secret agree: each lists the new key before any signs.
        a, b = self.issue("a"), self.issue("b")
        vol = self.secret_volume(a, b)
        k = self.serve_file(os.path.join(vol, "key.pem"), os.path.join(vol, "cert.pem"), "certificate.publish_delay=3s")
        tokens = bound_address(k, "token provider server")
        headers = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}

        def kids():
            status, _, body = get(tokens, "/.well-known/jwks.json")
            self.assertEqual(status, 200, body)
            return [key["kid"] for key in json.loads(body)["keys"]]

        def signing_kid():
            status, _, body = get(tokens, "/token", headers=headers)
            self.assertEqual(status, 200, body)
            header = json.loads(base64.urlsafe_b64decode(json.loads(body)["access_token"].split(".")[0] + "=="))
            return header["kid"]

        old = signing_kid()
        self.assertEqual(kids(), [old])
        self.swap_to(vol, "..2026_b")
        wait_until(lambda: len(kids()) == 2, what="the new key in JWKS")
        new = next(kid for kid in kids() if kid != old)
        self.assertEqual(signing_kid(), old, "the new key does not sign yet")
        wait_until(lambda: signing_kid() == new, what="signing with the new key")
        self.assertEqual(sorted(kids()), sorted([old, new]), "the old key stays, as the previous one")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        published = logged_at(err, f"Publishing the new key[{new}] from the files; signing with it after 3s")
        signing = logged_at(err, f"Signing with the new key[{new}] from the files after publish_delay")
        # By keel's own clock: not before publish_delay, whatever the test's requests took.
        self.assertGreater(signing - published, 2.9, "not before publish_delay")

    def test_sighup_rereads_the_files_and_a_bad_one_fails_the_refresh(self):
        a = self.issue("a")
        key, cert = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        shutil.copy2(os.path.join(a, "key.pem"), key)
        shutil.copy2(os.path.join(a, "cert.pem"), cert)
        k = self.serve_file(key, cert)
        health = bound_address(k)
        with open(cert, "w") as f:
            f.write("garbage")
        n = len(k.messages())
        k.kill(signal.SIGHUP)
        k.wait_notify("READY=1", start=n)
        self.assertEqual(get(health, "/readyz")[0], 200)
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn(f"Error refreshing certificate provider: '{cert}' is not a PEM certificate", err)
        self.assertIn("Refresh failed, keeping the previous configuration", err)


if __name__ == "__main__":
    unittest.main()
