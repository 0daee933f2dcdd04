# SPDX-License-Identifier: MIT
"""What the ARI suites (test_ari, test_ari_minute) share: pebble 2.6 on loopback, keel issued by
it, the certificate identifier of RFC 9773, a revocation, and the window pebble suggests."""

import base64
import calendar
import json
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from httpclient import metric, wait_for
from keelrun import KeelTestCase
from pebble import PEBBLE26, Pebble, free_port

DAY = 86400


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def cert_id(cert):
    """RFC 9773 §4.1, written apart from keel's C: AKI keyIdentifier "." the serial's DER content."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    n = cert.serial_number
    return b64url(aki) + "." + b64url(n.to_bytes(n.bit_length() // 8 + 1, "big"))


def rfc3339(text):
    """pebble's timestamps (Go's RFC3339Nano, UTC) as seconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z", text)
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))


def revoke(pebble, cert_path, key_path):
    """revokeCert (RFC 8555 §7.6) signed with the certificate's own key (ES256, a jwk header)."""
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    der = load_cert(cert_path).public_bytes(serialization.Encoding.DER)
    directory = pebble.directory()
    nonce = pebble.get(directory["newNonce"])[1]["Replay-Nonce"]
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
    protected = b64url(json.dumps({"alg": "ES256", "jwk": jwk, "nonce": nonce, "url": directory["revokeCert"]}).encode())
    payload = b64url(json.dumps({"certificate": b64url(der)}).encode())
    r, s = decode_dss_signature(key.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    body = json.dumps({"protected": protected, "payload": payload,
                       "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}).encode()
    req = urllib.request.Request(directory["revokeCert"], data=body, headers={"Content-Type": "application/jose+json"})
    with urllib.request.urlopen(req, timeout=5, context=ssl.create_default_context(cafile=pebble.ca_file)) as resp:
        return resp.status


class AcmeCase(KeelTestCase):
    """keel against a pebble of the test's own, its state directory kept apart; no tests of its own."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="keel-ari-state-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.health_port = free_port()

    def pebble(self, binary=PEBBLE26, port=None, **config):
        p = Pebble(self.health_port, env={"PEBBLE_VA_ALWAYS_VALID": "1"}, binary=binary, config=config, port=port)
        self.addCleanup(p.close)
        return p

    def start(self, pebble, extra="", names=("localhost",)):
        config = f"""
certificate:
  provider: acme
  dns_names: [{", ".join(f'"{n}"' for n in names)}]
  acme:
    directory_url: {pebble.directory_url}
    ca_file: {pebble.ca_file}
{extra}
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def start_issuers(self, pebbles, issuers, extra="", attempts=1):
        """keel with certificate.issuers, trusting the API of every pebble given (a new file each time:
        certificate.acme.ca_file is read at each issuance)."""
        ca_file = os.path.join(self.state, "..", os.path.basename(self.state) + "-ca.pem")
        self.addCleanup(lambda: os.path.exists(ca_file) and os.unlink(ca_file))
        with open(ca_file, "w") as out:
            for p in pebbles:
                with open(p.ca_file) as f:
                    out.write(f.read())
        config = f"""
certificate:
  issuers: [{", ".join(f"'{i}'" for i in issuers)}]
  issuer_attempts: {attempts}
  dns_names: [localhost]
  acme:
    ca_file: {ca_file}
{extra}
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def cert_path(self):
        return os.path.join(self.state, "cert.pem")

    def window(self, pebble):
        """The window pebble suggests for the certificate in the state directory, read by the test."""
        url = pebble.directory()["renewalInfo"].rstrip("/") + "/" + cert_id(load_cert(self.cert_path()))
        status, headers, body = pebble.get(url)
        w = json.loads(body)["suggestedWindow"]
        return rfc3339(w["start"]), rfc3339(w["end"]), int(headers["Retry-After"])

    def wait_window(self, k, metrics):
        wait_for(lambda: "The ACME server suggests renewing the certificate between" in k.stderr_so_far(), 30, "a window read")
        return (metric(metrics, "keel_certificate_ari_window_start_seconds"),
                metric(metrics, "keel_certificate_ari_window_end_seconds"))


def ari_reads(pebble):
    """How many renewalInfo requests @pebble has answered (it logs each request's path)."""
    return sum("/renewalInfo/" in line for line in pebble.log)
