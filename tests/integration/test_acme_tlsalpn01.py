# SPDX-License-Identifier: MIT
"""tls-alpn-01 in keel's ACME order flow (RFC 8737; issue 28 point 2) against pebble 2.6, whose
validation authority connects to its tlsPort, here keel's responder
(certificate.acme.tls_alpn01.address) on loopback: an address (RFC 8738) is issued through it, the
responder is gone afterwards, and with its port taken, [tls-alpn-01, http-01] falls back to
http-01 and still issues."""

import socket
import unittest

from httpclient import bound_address, metric
from pebble import PEBBLE26, free_port
from test_ari import AcmeCase


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AcmeTlsAlpn01(AcmeCase):
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


if __name__ == "__main__":
    unittest.main()
