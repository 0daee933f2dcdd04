# SPDX-License-Identifier: MIT
"""token.provider oauth2 against a real OAuth2 server on loopback (oidc-provider from npm, on
node: tests/oauth2/server.mjs): client_secret_basic and tls_client_auth with the certificate
service's own pair, the cache in front of the issuer, the key set not served, a 401 and an
unreachable issuer failing the start, a slow issuer timing out without holding up other requests,
the issuer down at refresh (the cached token served, failures counted) and an expired client
certificate."""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from httpclient import bound_address, get, metric, wait_for
from keelrun import KeelTestCase
from pebble import free_port, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "oauth2", "server.mjs")
HEADERS = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(path, 0o600)


def write_cert(path, cert):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def issue(ca_key, ca_name, cn, lifetime, sans=None, is_ca=False, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + lifetime)
         .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key or key, hashes.SHA256())


class Issuer:
    """One oidc-provider; `clients` as server.mjs reads them."""

    def __init__(self, tmp, ca_key, ca_cert, clients, ttl=300, delay_ms=0, port=None):
        self.port = port or free_port()
        key, cert = issue(ca_key, ca_cert.subject, "127.0.0.1", datetime.timedelta(hours=1),
                          [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))])
        write_key(os.path.join(tmp, "issuer.key"), key)
        write_cert(os.path.join(tmp, "issuer.pem"), cert)
        config = {"port": self.port, "cert": os.path.join(tmp, "issuer.pem"), "key": os.path.join(tmp, "issuer.key"),
                  "client_ca": os.path.join(tmp, "ca.pem"), "clients": clients, "ttl": ttl, "delay_ms": delay_ms}
        path = os.path.join(tmp, f"issuer-{self.port}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.proc = subprocess.Popen(["node", SERVER, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = []
        line = self.proc.stdout.readline()
        deadline = time.monotonic() + 30
        while line and not line.startswith("listening") and time.monotonic() < deadline:
            self.log.append(line)
            line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            self.close()
            raise AssertionError("the OAuth2 server did not start: " + "".join(self.log))
        self.reader = threading.Thread(target=lambda: [self.log.append(x) for x in self.proc.stdout], daemon=True)
        self.reader.start()
        self.url = f"https://127.0.0.1:{self.port}/token"

    def close(self):
        terminate(self.proc)
        self.proc.stdout.close()


class OAuth2Test(KeelTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-oauth2-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ca_key, self.ca = issue(None, None, "keel test OAuth2 CA", datetime.timedelta(days=1), is_ca=True)
        write_cert(os.path.join(self.tmp, "ca.pem"), self.ca)
        self.secret = os.path.join(self.tmp, "secret")
        with open(self.secret, "w") as f:
            f.write("s3cret\n")
        os.chmod(self.secret, 0o600)

    def issuer(self, clients=None, **kw):
        clients = clients or [{"client_id": "agent", "client_secret": "s3cret", "scope": "sports:role.reader"}]
        i = Issuer(self.tmp, self.ca_key, self.ca, clients, **kw)
        self.addCleanup(i.close)
        return i

    def agent(self, url, auth="client_secret_basic", extra="", env=None, timeout="1s"):
        config = f"""token:
  provider: oauth2
  refresh_interval: 1s
  oauth2:
    token_url: {url}
    client_id: agent
    client_auth: {auth}
    client_secret_file: {self.secret}
    ca_file: {self.tmp}/ca.pem
    timeout: {timeout}
{extra}"""
        return self.keel("serve", config=config, env=env)

    def token(self, addr):
        return get(addr, "/token", headers=HEADERS)

    def test_client_secret_basic_cached_and_no_key_set(self):
        issuer = self.issuer()
        k = self.agent(issuer.url)
        addr = bound_address(k, "token provider server")
        status, _, body = self.token(addr)
        self.assertEqual(status, 200, body)
        first = json.loads(body)
        self.assertEqual(first["token_type"], "Bearer")
        self.assertEqual(json.loads(self.token(addr)[2])["access_token"], first["access_token"], "the issuer's token is cached")
        status, _, body = get(addr, "/.well-known/jwks.json")
        self.assertEqual(status, 404)
        self.assertIn("tokens are the issuer's", body)
        wait_for(lambda: f"Getting tokens from {issuer.url} as client agent (client_secret_basic)" in k.stderr_so_far(), 15, f"Getting tokens from {issuer.url} as client agent (client_secret_basic)")

    def test_a_refused_client_and_an_open_secret_fail_the_start(self):
        issuer = self.issuer([{"client_id": "agent", "client_secret": "other", "scope": "sports:role.reader"}])
        status, _, err = self.agent(issuer.url).wait()
        self.assertEqual(status, 1)
        self.assertRegex(err, r"Cannot get a token from the OAuth2 issuer https://127\.0\.0\.1:\d+/token: HTTP 401 invalid_client")
        os.chmod(self.secret, 0o644)
        status, _, err = self.agent(issuer.url).wait()
        self.assertEqual(status, 1)
        self.assertIn(f"Permissions 0644 for token.oauth2.client_secret_file '{self.secret}' are too open", err)

    def test_an_issuer_down_at_start_fails_it(self):
        status, _, err = self.agent(f"https://127.0.0.1:{free_port()}/token").wait()
        self.assertEqual(status, 1)
        self.assertRegex(err, r"Cannot get a token from the OAuth2 issuer .*: .*(onnect|refused)")

    def test_a_slow_issuer_times_out_without_holding_up_other_requests(self):
        issuer = self.issuer(delay_ms=5000)
        k = self.agent(issuer.url, timeout="3s")
        addr = bound_address(k, "token provider server")
        result = {}
        t = threading.Thread(target=lambda: result.update(r=self.token(addr)))
        t.start()
        time.sleep(0.2)
        status, _, _ = get(addr, "/nope")
        self.assertEqual(status, 404)
        self.assertTrue(t.is_alive(), "answered while the token request still waits on the issuer")
        t.join(timeout=15)
        self.assertEqual(result["r"][0], 503, result["r"])
        self.assertIn("temporarily_unavailable", result["r"][2])
        # The log line is written before the answer, but reaches this process through another pipe.
        wait_for(lambda: re.search(r"Failed to get a token for domain\[sports\] role\[reader\] from .*: .*(timed out|[Tt]imeout)",
                                   k.stderr_so_far()), 10, "the timeout logged")

    def test_the_issuer_down_at_refresh_serves_the_cached_token(self):
        issuer = self.issuer()
        k = self.agent(issuer.url)
        addr = bound_address(k, "token provider server")
        metrics = bound_address(k, "metrics exporter server")
        status, _, body = self.token(addr)
        self.assertEqual(status, 200)
        issuer.close()
        wait_for(lambda: (metric(metrics, "keel_token_mints_total", '{result="error"}') or 0) >= 2, 15, "failed re-mints")
        status, _, again = self.token(addr)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(again)["access_token"], json.loads(body)["access_token"], "still the cached token")
        wait_for(lambda: "Refreshed" in k.stderr_so_far(), 15, "Refreshed")
        wait_for(lambda: re.search(r"Refreshed \d+ tokens, [1-9]\d* failed \(still served while valid\)", k.stderr_so_far()), 15, r"Refreshed \d+ tokens, [1-9]\d* failed \(still served while valid\)")

    def pair(self, cn, lifetime):
        key, cert = issue(self.ca_key, self.ca.subject, cn, lifetime, [x509.DNSName("localhost")])
        d = tempfile.mkdtemp(prefix="keel-oauth2-pair-", dir=self.tmp)
        write_key(os.path.join(d, "key.pem"), key)
        write_cert(os.path.join(d, "cert.pem"), cert)
        return d

    def test_tls_client_auth_with_the_certificate_service_pair_then_expired(self):
        issuer = self.issuer([{"client_id": "agent", "subject_dn": "CN=keel-agent", "scope": "sports:role.reader"}])
        d = self.pair("keel-agent", datetime.timedelta(seconds=12))
        extra = f"certificate:\n  provider: file\n  key_file: {d}/key.pem\n  cert_file: {d}/cert.pem\n"
        k = self.agent(issuer.url, "tls_client_auth", extra)
        addr = bound_address(k, "token provider server")
        metrics = bound_address(k, "metrics exporter server")
        status, _, body = self.token(addr)
        self.assertEqual(status, 200, body)
        wait_for(lambda: "as client agent (tls_client_auth)" in k.stderr_so_far(), 15, "as client agent (tls_client_auth)")
        # Once the certificate expired, the issuer refuses it: re-mints fail, the token stays served.
        wait_for(lambda: re.search(r"Failed to get a token for domain\[sports\] role\[reader\] from .*: HTTP 401 invalid_client",
                                   k.stderr_so_far()), 40, "the expired certificate refused")
        self.assertGreaterEqual(metric(metrics, "keel_token_mints_total", '{result="error"}'), 1)
        status, _, body = self.token(addr)
        self.assertEqual(status, 200, "the last token the issuer gave is still served")
        self.assertTrue(json.loads(body)["access_token"])
        # And a start with it fails.
        k.kill()
        k.wait()
        status, _, err = self.agent(issuer.url, "tls_client_auth", extra).wait()
        self.assertEqual(status, 1)


if __name__ == "__main__":
    unittest.main()
