# SPDX-License-Identifier: MIT
"""tls-alpn-01 in keel's ACME order flow (RFC 8737; issue 28 point 2) against pebble 2.6, whose
validation authority connects to its tlsPort, here keel's responder
(certificate.acme.tls_alpn01.address) on loopback: an address (RFC 8738) is issued through it, the
responder is gone afterwards, and with its port taken, [tls-alpn-01, http-01] falls back to
http-01 and still issues. Under systemd the responder takes the socket passed as acme-tls-alpn
(conf/keel-acme-tls-alpn.socket) instead of binding."""

import os
import socket
import unittest

from httpclient import bound_address, metric
from keelrun import FdStore
from pebble import PEBBLE26, free_port
from test_ari import AcmeCase


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AcmeTlsAlpn01(AcmeCase):
    fdstore = None  # what systemd passes, when a test sets it

    def keel(self, *args, **kw):
        return super().keel(*args, fdstore=self.fdstore, **kw)

    def start_with(self, challenges, tls_port):
        pebble = self.pebble(tlsPort=tls_port)
        extra = f"    challenges: [{', '.join(challenges)}]\n    tls_alpn01:\n      address: 127.0.0.1:{tls_port}"
        return pebble, self.start(pebble, extra, names=["127.0.0.1"])

    def test_an_address_is_issued_through_tls_alpn_01(self):
        tls_port = free_port()
        pebble, k = self.start_with(["tls-alpn-01"], tls_port)
        k.ready(timeout=60)
        err = k.stderr_so_far()
        self.assertIn("Presented the ACME tls-alpn-01 challenge of", err)
        self.assertEqual(pebble.issued(), 1)
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(metric(metrics, 'keel_certificate_acme_validations_total{type="tls-alpn-01",result="valid"}'), 1)
        with socket.socket() as s:  # the responder lived only for the validation
            self.assertNotEqual(s.connect_ex(("127.0.0.1", tls_port)), 0, "nothing listens on the responder's port")
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_with_its_port_taken_it_falls_back_to_http_01(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            pebble, k = self.start_with(["tls-alpn-01", "http-01"], taken.getsockname()[1])
            k.ready(timeout=60)
            err = k.stderr_so_far()
            self.assertIn("falling back to http-01", err)
            self.assertIn("Presented the ACME http-01 challenge of", err)
            self.assertEqual(pebble.issued(), 1)
            k.kill()
            self.assertEqual(k.wait()[0], 0)

    def test_the_socket_passed_as_acme_tls_alpn_is_taken_instead_of_binding(self):
        passed = socket.socket()
        self.addCleanup(passed.close)
        passed.bind(("127.0.0.1", 0))
        passed.listen()
        self.fdstore = FdStore()
        self.addCleanup(self.fdstore.close)
        self.fdstore.kept.append(("acme-tls-alpn", os.dup(passed.fileno())))
        with socket.socket() as taken:  # the configured address: binding it would fail
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            pebble = self.pebble(tlsPort=passed.getsockname()[1])
            extra = f"    challenges: [tls-alpn-01]\n    tls_alpn01:\n      address: 127.0.0.1:{taken.getsockname()[1]}"
            k = self.start(pebble, extra, names=["127.0.0.1"])
            k.ready(timeout=60)
        err = k.stderr_so_far()
        address = passed.getsockname()
        self.assertIn(f"Answering ACME tls-alpn-01 challenges on port {address[1]} (socket activation)", err)
        self.assertIn("Presented the ACME tls-alpn-01 challenge of", err)
        self.assertEqual(pebble.issued(), 1)
        passed.close()  # keel holds the socket alone now, as systemd's would be
        self.fdstore.close()
        with socket.socket() as s:  # the responder closed its copy: the socket passed still listens
            s.settimeout(5)
            self.assertEqual(s.connect_ex(address), 0)
        k.kill()
        self.assertEqual(k.wait()[0], 0)


if __name__ == "__main__":
    unittest.main()
