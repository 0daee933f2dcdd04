# SPDX-License-Identifier: MIT
"""Role certificates (issue 27 point 2): certificate.roles and certificate.role_dir. The local CA
issues, with each new pair, a certificate of the current key for each domain:role (CN
"<domain>:role.<role>", URI SAN spiffe://<domain>/ra/<role>, clientAuth), written whole to
<role_dir>/<domain>:role.<role>.cert.pem; the providers that cannot issue them are refused with 78
and a message that says why."""

import os
import shutil
import signal
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keelrun import KeelTestCase, run


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class Roles(KeelTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-roles-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state, self.roles = os.path.join(self.tmp, "state"), os.path.join(self.tmp, "roles")
        os.mkdir(self.roles)
        self.env = {"KEEL_STATE_DIR": self.state}
        self.sets = ["--set", "certificate.roles=[sports:reader, media:writer]", "--set", f"certificate.role_dir={self.roles}"]

    def pair_key(self):
        with open(os.path.join(self.state, "key.pem"), "rb") as f:
            return serialization.load_pem_private_key(f.read(), None).public_key()

    def check_role(self, domain, role):
        cert = load_cert(os.path.join(self.roles, f"{domain}:role.{role}.cert.pem"))
        ca = load_cert(os.path.join(self.state, "ca.pem"))
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, f"{domain}:role.{role}")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.UniformResourceIdentifier), [f"spiffe://{domain}/ra/{role}"])
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.CLIENT_AUTH])
        return cert

    def test_init_issues_each_role_for_the_pairs_key(self):
        status, _, err, _ = run("init", *self.sets, env=self.env)
        self.assertEqual(status, 0, err)
        for domain, role in (("sports", "reader"), ("media", "writer")):
            cert = self.check_role(domain, role)
            self.assertEqual(spki(cert.public_key()), spki(self.pair_key()))
        self.assertIn("Issued 2 of 2 role certificates for key[", err)

    def test_a_role_longer_than_a_common_name_is_named_by_its_uri_alone(self):
        domain, role = "sports." + "d" * 40, "reader-" + "r" * 30
        sets = ["--set", f"certificate.roles=[{domain}:{role}]", "--set", f"certificate.role_dir={self.roles}"]
        status, _, err, _ = run("init", *sets, env=self.env)
        self.assertEqual(status, 0, err)
        cert = load_cert(os.path.join(self.roles, f"{domain}:role.{role}.cert.pem"))
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME), [])
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertTrue(san.critical, "an empty subject makes the subjectAltName critical (RFC 5280)")
        self.assertEqual(san.value.get_values_for_type(x509.UniformResourceIdentifier), [f"spiffe://{domain}/ra/{role}"])
        self.assertIn("Issued 1 of 1 role certificates for key[", err)

    def test_each_new_pair_gets_its_role_certificates(self):
        k = self.keel("serve", *self.sets, "--set", "certificate.refresh_interval=300ms", env=self.env)
        k.ready()
        first = spki(self.check_role("sports", "reader").public_key())
        deadline = time.monotonic() + 15
        while spki(self.check_role("sports", "reader").public_key()) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertNotEqual(spki(self.check_role("sports", "reader").public_key()), first, "reissued for the new key")

    def test_what_cannot_issue_role_certificates_is_refused_saying_why(self):
        for sets, message in (
            (["--set", "certificate.provider=acme", "--set", "certificate.acme.directory_url=https://127.0.0.1:1/dir",
              "--set", "certificate.dns_names=[localhost]"],
             "certificate.roles: the acme provider cannot issue role certificates (an ACME CA certifies DNS names only)"),
            (["--set", "certificate.provider=file", "--set", f"certificate.key_file={self.tmp}/k.pem",
              "--set", f"certificate.cert_file={self.tmp}/c.pem"],
             "certificate.roles: the file provider cannot issue role certificates (the files come with no CA key)"),
        ):
            with self.subTest(message):
                status, _, err, _ = run("init", *self.sets, *sets, env=self.env)
                self.assertEqual(status, 78, err)
                self.assertIn(message, err)
        for sets, message in (
            (["--set", "certificate.roles=[sports:reader]"], "certificate.roles is set: set certificate.role_dir too"),
            (["--set", "certificate.roles=[sports]", "--set", f"certificate.role_dir={self.roles}"],
             "certificate.roles[0]: 'sports' is not domain:role"),
            (["--set", "certificate.roles=['a:b/c']", "--set", f"certificate.role_dir={self.roles}"],
             "certificate.roles[0]: 'a:b/c' is not domain:role"),
        ):
            with self.subTest(message):
                status, _, err, _ = run("init", *sets, env=self.env)
                self.assertEqual(status, 78, err)
                self.assertIn(message, err)
        self.assertEqual(os.listdir(self.roles), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
