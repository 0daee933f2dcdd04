# SPDX-License-Identifier: MIT
"""The tls-alpn-01 responder (tests/program/tlsalpn01.c) validated by a real CA: Debian 13's
pebble 2.6, whose validation authority connects to its tlsPort with the name as SNI and ALPN
acme-tls/1 and checks the certificate (RFC 8737 §3). The responder alone, apart from keel's ACME
client (test_acme_tlsalpn01 runs the whole flow), so the order is placed by the few JWS requests below (RFC 8555 §7), ES256 with a throwaway
account: new account, new order, the authorization, the challenge answered, the authorization
polled until pebble says valid. A DNS name and an IP address (RFC 8738)."""

import base64
import hashlib
import json
import os
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from pebble import PEBBLE26, Pebble, free_port
from test_tlsalpn01 import RESPONDER, stop_responder


def b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class AcmeClient:
    """Just enough of RFC 8555 to have one authorization validated."""

    def __init__(self, pebble):
        self.pebble = pebble
        self.directory = pebble.directory()
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
        self.thumbprint = b64(hashlib.sha256(json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()).digest())
        self.kid = None
        self.nonce = None

    def _new_nonce(self):
        request = urllib.request.Request(self.directory["newNonce"], method="HEAD")
        with urllib.request.urlopen(request, timeout=10, context=self.pebble._context()) as r:
            return r.headers["Replay-Nonce"]

    def post(self, url, payload):
        """A signed POST (payload None: POST-as-GET); the answer's JSON and headers."""
        protected = {"alg": "ES256", "nonce": self.nonce or self._new_nonce(), "url": url}
        protected.update({"kid": self.kid} if self.kid else {"jwk": self.jwk})
        body = {"protected": b64(json.dumps(protected).encode()), "payload": "" if payload is None else b64(json.dumps(payload).encode())}
        r, s = decode_dss_signature(self.key.sign(f"{body['protected']}.{body['payload']}".encode(), ec.ECDSA(hashes.SHA256())))
        body["signature"] = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/jose+json"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.pebble._context()) as resp:
                self.nonce = resp.headers.get("Replay-Nonce")
                return json.loads(resp.read() or b"{}"), resp.headers
        except urllib.error.HTTPError as e:
            self.nonce = e.headers.get("Replay-Nonce")
            raise AssertionError(f"{url}: {e.code} {e.read().decode()}") from None

    def register(self):
        _, headers = self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True})
        self.kid = headers["Location"]

    def tls_alpn_challenge(self, kind, value):
        """The authorization URL and the tls-alpn-01 challenge of a new order for one identifier."""
        order, _ = self.post(self.directory["newOrder"], {"identifiers": [{"type": kind, "value": value}]})
        authz_url = order["authorizations"][0]
        authz, _ = self.post(authz_url, None)
        return authz_url, next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")

    def wait_valid(self, authz_url, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            authz, _ = self.post(authz_url, None)
            if authz["status"] != "pending":
                return authz
            time.sleep(0.2)
        raise AssertionError(f"{authz_url} still pending after {timeout} s")


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class PebbleValidates(unittest.TestCase):
    def setUp(self):
        self.tls_port = free_port()
        self.pebble = Pebble(free_port(), binary=PEBBLE26, config={"tlsPort": self.tls_port})
        self.addCleanup(self.pebble.close)
        self.client = AcmeClient(self.pebble)
        self.client.register()

    def validate(self, kind, value):
        authz_url, challenge = self.client.tls_alpn_challenge(kind, value)
        key_authorization = f"{challenge['token']}.{self.client.thumbprint}"
        # Every address (IPv6 dual-stack): pebble may resolve localhost to ::1 or 127.0.0.1.
        proc = subprocess.Popen([RESPONDER, "", str(self.tls_port), value, key_authorization], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(proc.stdout.readline().startswith("ready "), proc.stderr.read() if proc.poll() is not None else "")
            self.client.post(challenge["url"], {})
            authz = self.client.wait_valid(authz_url)
        finally:
            log = stop_responder(proc)
        self.assertEqual(proc.returncode, 0, log)
        self.assertEqual(authz["status"], "valid", json.dumps(authz) + "".join(self.pebble.log))
        self.assertIn(f"Answered the ACME tls-alpn-01 challenge for {value}", log)

    def test_a_dns_name(self):
        self.validate("dns", "localhost")

    def test_an_ip_address(self):
        self.validate("ip", "127.0.0.1")


if __name__ == "__main__":
    unittest.main()
