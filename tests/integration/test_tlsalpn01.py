# SPDX-License-Identifier: MIT
"""The tls-alpn-01 responder (services/certificate/acme-tlsalpn01.c, RFC 8737) on loopback, driven
through tests/program/tlsalpn01.c and checked as a CA would connect: OpenSSL's s_client and
Python's ssl, with ALPN acme-tls/1 and the name being validated as SNI. The handshake presents the
validation certificate (SAN the name, critical id-pe-acmeIdentifier holding SHA-256 of the key
authorization), negotiates acme-tls/1 and ends the connection without application data; a
ClientHello without acme-tls/1, or naming something not being validated, fails its handshake."""

import hashlib
import os
import re
import resource
import socket
import ssl
import subprocess
import time
import unittest

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from pebble import terminate

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("KEEL_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
RESPONDER = os.environ.get("KEEL_TLSALPN01_BIN") or os.path.join(BUILD, "tests", "tlsalpn01")
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
NAME = "www.example.test"
KEY_AUTHORIZATION = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
IP_KEY_AUTHORIZATION = "token-of-the-address.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
SANITIZER_STATUS = 86


def stop_responder(proc):
    """Terminates the test program and returns what it logged; its pipes are closed."""
    terminate(proc)
    log = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return log


def extension_value(key_authorization):
    """What id-pe-acmeIdentifier's extnValue holds: the DER of an OCTET STRING of the digest."""
    return b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()


class Responder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen([RESPONDER, "127.0.0.1", "0", NAME, KEY_AUTHORIZATION, "127.0.0.1", IP_KEY_AUTHORIZATION],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline()
        if not line.startswith("ready "):
            terminate(cls.proc)
            raise AssertionError(f"the responder did not start: {line!r} {cls.proc.stderr.read()}")
        cls.port = int(line.split()[1])

    @classmethod
    def tearDownClass(cls):
        terminate(cls.proc)
        cls.log = cls.proc.stderr.read()
        cls.proc.stdout.close()
        cls.proc.stderr.close()
        assert cls.proc.returncode == 0, (cls.proc.returncode, cls.log)

    def connect(self, server_name, alpn=("acme-tls/1",), tls12=False):
        """A handshake as a CA makes it (no verification: the certificate is self-signed); returns
        the wrapped socket, or raises ssl.SSLError."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            return ctx.wrap_socket(sock, server_hostname=server_name)
        except BaseException:
            sock.close()
            raise

    def s_client(self, *args):
        return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-showcerts", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)

    def check_certificate(self, der_or_cert, key_authorization):
        cert = der_or_cert if isinstance(der_or_cert, x509.Certificate) else x509.load_der_x509_certificate(der_or_cert)
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
        self.assertTrue(ext.critical, "id-pe-acmeIdentifier is critical (RFC 8737 §3)")
        self.assertEqual(ext.value.value, extension_value(key_authorization))
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    def test_python_gets_the_validation_certificate_with_acme_tls(self):
        for tls12 in (False, True):
            with self.subTest(tls12=tls12), self.connect(NAME, tls12=tls12) as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "acme-tls/1")
                self.assertEqual(tls.version(), "TLSv1.2" if tls12 else "TLSv1.3")
                san = self.check_certificate(tls.getpeercert(binary_form=True), KEY_AUTHORIZATION)
                self.assertEqual(san.get_values_for_type(x509.DNSName), [NAME])
                self.assertEqual(len(list(san)), 1, "a single name")

    def test_no_application_data_follows_the_handshake(self):
        with self.connect(NAME) as tls:
            try:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the responder may have closed already
            try:
                data = tls.recv(4096)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            self.assertEqual(data, b"", "the connection ends after the handshake")

    def test_s_client_gets_the_certificate_and_acme_tls(self):
        p = self.s_client("-servername", NAME, "-alpn", "acme-tls/1")
        self.assertIn("ALPN protocol: acme-tls/1", p.stdout, p.stdout + p.stderr)
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", p.stdout, re.S)
        self.assertIsNotNone(pem, p.stdout)
        san = self.check_certificate(x509.load_pem_x509_certificate(pem.group(0).encode()), KEY_AUTHORIZATION)
        self.assertEqual(san.get_values_for_type(x509.DNSName), [NAME])

    def test_an_ip_address_is_validated_under_its_reverse_name(self):
        with self.connect("1.0.0.127.in-addr.arpa") as tls:  # RFC 8738 §6
            self.assertEqual(tls.selected_alpn_protocol(), "acme-tls/1")
            san = self.check_certificate(tls.getpeercert(binary_form=True), IP_KEY_AUTHORIZATION)
            self.assertEqual([str(a) for a in san.get_values_for_type(x509.IPAddress)], ["127.0.0.1"])

    def test_without_acme_tls_the_handshake_fails(self):
        for alpn in ((), ("http/1.1",), ("h2", "http/1.1")):
            with self.subTest(alpn=alpn), self.assertRaisesRegex(ssl.SSLError, "(?i)no.application.protocol"):
                self.connect(NAME, alpn=alpn)
        p = self.s_client("-servername", NAME)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no application protocol", p.stdout + p.stderr)
        self.assertNotIn("BEGIN CERTIFICATE", p.stdout, "no certificate for a client without acme-tls/1")

    def test_a_name_not_being_validated_fails_the_handshake(self):
        for name in ("other.example.test", "example.test", "2.0.0.127.in-addr.arpa"):
            with self.subTest(name=name), self.assertRaisesRegex(ssl.SSLError, "(?i)unrecognized.name"):
                self.connect(name)
        p = self.s_client("-servername", "other.example.test", "-alpn", "acme-tls/1")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unrecognized name", p.stdout + p.stderr)
        p = self.s_client("-noservername", "-alpn", "acme-tls/1")
        self.assertNotEqual(p.returncode, 0, "no SNI at all")
        self.assertNotIn("BEGIN CERTIFICATE", p.stdout)

    def test_a_stalled_client_does_not_stop_a_ca(self):
        silent = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(40)]
        try:
            with self.connect(NAME) as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "acme-tls/1")
        finally:
            for s in silent:
                s.close()


class OutOfDescriptors(unittest.TestCase):
    def test_the_listener_rests_instead_of_spinning_and_serves_again(self):
        def few_descriptors():
            resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12))

        proc = subprocess.Popen([RESPONDER, "127.0.0.1", "0", NAME, KEY_AUTHORIZATION], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=few_descriptors)
        try:
            port = int(proc.stdout.readline().split()[1])
            silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
            time.sleep(0.2)
            with open(f"/proc/{proc.pid}/stat") as f:
                before = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
            time.sleep(1)
            with open(f"/proc/{proc.pid}/stat") as f:
                after = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
            self.assertLess(after - before, 20, "CPU ticks in a second out of descriptors: the listener must not spin")
            for s in silent:
                s.close()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.set_alpn_protocols(["acme-tls/1"])
            deadline = time.monotonic() + 10
            while True:  # the silent ones still queued in the backlog take their turn first
                try:
                    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=NAME) as tls:
                        self.assertEqual(tls.selected_alpn_protocol(), "acme-tls/1")
                        break
                except (ssl.SSLError, ConnectionResetError, socket.timeout):
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.1)
        finally:
            log = stop_responder(proc)
        self.assertEqual(proc.returncode, 0, log)


if __name__ == "__main__":
    unittest.main()
