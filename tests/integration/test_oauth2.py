# SPDX-License-Identifier: MIT
"""token.provider oauth2 against a real OAuth2 server on loopback (oidc-provider from npm, on
node: tests/oauth2/server.mjs): client_secret_basic and tls_client_auth with the certificate
service's own pair, the cache in front of the issuer, the key set not served, a 401 and an
unreachable issuer failing the start, a slow issuer timing out without holding up other requests,
the issuer down at refresh (the cached token served, failures counted), an expired client
certificate, and the cache kept across a restart (issue 23: a fake service manager's file
descriptor store; no issuer request for a pair that was cached, and a cache kept under another key
or by another build refused)."""

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from httpclient import bound_address, get, metric, wait_for
from keelrun import KEEL, FdStore, KeelTestCase
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
        self.ca_file = os.path.join(tmp, "ca.pem")
        self.marks = 0

    def requests(self):
        """The scope of every token request the issuer was sent so far ("-" for none), in order.
        The log arrives through a pipe: a request of the test's own (scope "mark-N", refused, as
        it has no client credentials) marks the end of what was sent before the call."""
        self.marks += 1
        mark = f"token request scope=mark-{self.marks}\n"
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": f"mark-{self.marks}"}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(self.url, data=body), timeout=10,
                                   context=ssl.create_default_context(cafile=self.ca_file)).close()
        except urllib.error.HTTPError:
            pass
        wait_for(lambda: mark in self.log, 10, f"{mark.strip()!r} in the issuer's log")
        return [line.strip().split("=", 1)[1] for line in self.log[:self.log.index(mark)]
                if line.startswith("token request scope=") and "scope=mark-" not in line]

    def close(self):
        terminate(self.proc)
        self.proc.stdout.close()


class OAuth2Case(KeelTestCase):
    """An issuer and agents that use it; the tests are in the classes below."""

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

    # timeout 10 s: the issuer (node) answers slowly on a loaded machine, and only
    # test_a_slow_issuer_times_out_without_holding_up_other_requests tests a timeout.
    def agent(self, url, auth="client_secret_basic", extra="", env=None, timeout="10s", refresh_interval="1s", **kw):
        config = f"""token:
  provider: oauth2
  refresh_interval: {refresh_interval}
  oauth2:
    token_url: {url}
    client_id: agent
    client_auth: {auth}
    client_secret_file: {self.secret}
    ca_file: {self.tmp}/ca.pem
    timeout: {timeout}
{extra}"""
        return self.keel("serve", config=config, env=env, **kw)

    def token(self, addr):
        return get(addr, "/token", headers=HEADERS)


class OAuth2Test(OAuth2Case):
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

    def test_accesstoken_asks_the_issuer_one_scope_per_role(self):
        """POST /accesstoken (decision 29): a set of roles is one token request whose scope is the
        template once per role; the issuer's lifetime stands, so expiry does not key the cache."""
        issuer = self.issuer([{"client_id": "agent", "client_secret": "s3cret",
                               "scope": "sports:role.reader sports:role.writer"}])
        k = self.agent(issuer.url, refresh_interval="1h")
        addr = bound_address(k, "token provider server")
        metrics = bound_address(k, "metrics exporter server")
        asked = len(issuer.requests())
        answers = []
        for body in ({"domain": "sports", "role": "writer,reader", "expiry": 1800}, {"domain": "sports", "role": "reader,writer"}):
            c = http.client.HTTPConnection(*addr, timeout=10)
            c.request("POST", "/accesstoken", body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            answers.append((r.status, json.loads(r.read())))
            c.close()
        for status, answer in answers:
            self.assertEqual(status, 200, answer)
            self.assertEqual(answer["scope"], "sports:role.reader sports:role.writer")
        self.assertEqual(answers[0][1]["access_token"], answers[1][1]["access_token"], "cached, whatever the expiry")
        self.assertEqual(issuer.requests()[asked:], ["sports:role.reader sports:role.writer"])
        self.assertEqual(metric(metrics, "keel_token_access_requests_total", '{result="ok"}'), 2)

    def test_accesstoken_with_sixteen_long_roles_reaches_the_issuer_whole(self):
        # Decision 29's most: 16 roles; here of 37 bytes, a request body of ~1.3 kB once expanded.
        domain, roles = "domain.shopping.example", [f"role-{i:02d}-" + "r" * 29 for i in range(16)]
        scope = " ".join(f"{domain}:role.{r}" for r in sorted(roles))
        issuer = self.issuer([{"client_id": "agent", "client_secret": "s3cret", "scope": scope}])
        k = self.agent(issuer.url, refresh_interval="1h")
        addr = bound_address(k, "token provider server")
        asked = len(issuer.requests())
        c = http.client.HTTPConnection(*addr, timeout=15)
        c.request("POST", "/accesstoken", body=json.dumps({"domain": domain, "role": ",".join(roles)}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        status, answer = r.status, json.loads(r.read())
        c.close()
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["scope"], " ".join(f"{domain}:role.{r}" for r in sorted(roles)))
        self.assertEqual(issuer.requests()[asked:], [scope])

    def test_token_files_are_written_again_before_the_issuers_short_tokens_end(self):
        # refresh_interval 30m, the issuer's tokens 12 s: each file is written again with a third
        # of its token's life left, not at the next refresh_interval.
        issuer = self.issuer(ttl=12)
        out = os.path.join(self.tmp, "tokens")
        os.mkdir(out, 0o700)
        k = self.agent(issuer.url, refresh_interval="30m", extra=f"  targets: [sports:reader]\n  dir: {out}\n")
        path = os.path.join(out, "sports:role.reader.token")
        wait_for(lambda: os.path.exists(path), 15, "the first token file")
        with open(path) as f:
            first = f.read()
        wait_for(lambda: open(path).read() != first, 20, "the token file written again before its token ends")
        self.assertRegex(k.stderr_so_far(), r"Will refresh tokens after [\d.]+s, before a token file's token has a third of its life left")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)

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
        # Counted after the mint logged its failure: soon after the line.
        wait_for(lambda: (metric(metrics, "keel_token_mints_total", '{result="error"}') or 0) >= 1, 10, "the failure counted")
        status, _, body = self.token(addr)
        self.assertEqual(status, 200, "the last token the issuer gave is still served")
        self.assertTrue(json.loads(body)["access_token"])
        # And a start with it fails.
        k.kill()
        k.wait()
        status, _, err = self.agent(issuer.url, "tls_client_auth", extra).wait()
        self.assertEqual(status, 1)


PAIRS = [("sports", "reader"), ("sports", "writer"), ("weather", "reader")]


def scopes(pairs):
    return sorted(f"{domain}:role.{role}" for domain, role in pairs)


class KeptAcrossRestart(OAuth2Case):
    """The token cache kept in the service manager's file descriptor store across a restart
    (docs/decisions/0020): keel is stopped with SIGTERM, as `systemctl restart` does, and the next
    keel is started with what the first one stored, as systemd passes it (keelrun.FdStore)."""

    def setUp(self):
        super().setUp()
        self.store = FdStore()
        self.addCleanup(self.store.close)

    def issuer_of_pairs(self):
        return self.issuer([{"client_id": "agent", "client_secret": "s3cret", "scope": " ".join(scopes(PAIRS))}])

    def serve(self, issuer, state, binary=None):
        # refresh_interval 1h: no refresh asks the issuer meanwhile. The state directory holds the key.
        return self.agent(issuer.url, refresh_interval="1h", env={"KEEL_STATE_DIR": state}, fdstore=self.store, binary=binary)

    def tokens(self, k, pairs):
        addr = bound_address(k, "token provider server")
        tokens = {}
        for domain, role in pairs:
            status, _, body = get(addr, "/token", headers={"X-Athenz-Domain": domain, "X-Athenz-Role": role})
            self.assertEqual(status, 200, body)
            tokens[(domain, role)] = json.loads(body)["access_token"]
        return tokens

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def asked_since(self, issuer, start):
        """The scopes asked for since request number `start`, the scope-less request of each start aside."""
        return sorted(s for s in issuer.requests()[start:] if s != "-")

    def test_a_restart_serves_the_cached_tokens_without_asking_the_issuer(self):
        issuer = self.issuer_of_pairs()
        state = os.path.join(self.tmp, "state")
        first = self.serve(issuer, state)
        before = self.tokens(first, PAIRS)
        self.assertEqual(self.asked_since(issuer, 0), scopes(PAIRS))
        self.assertRegex(self.stop(first), r"Kept 3 tokens for the next start \(\d+ bytes in [\d.]+ ms\)")
        self.assertEqual(self.store.names(), ["token-cache"])
        asked = len(issuer.requests())
        second = self.serve(issuer, state)
        self.assertEqual(self.tokens(second, PAIRS), before, "the tokens the first keel was given")
        self.assertEqual(issuer.requests()[asked:], ["-"], "no pair was asked for: only the request every start makes")
        self.assertRegex(second.stderr_so_far(),
                         r"Restored 3 tokens kept by the last stop \(0 expired, 0 skipped; \d+ bytes in [\d.]+ ms\)")
        self.assertEqual(self.store.names(), [], "taken, and the store told to forget it")
        metrics = bound_address(second, "metrics exporter server")
        self.assertEqual(metric(metrics, "keel_token_mints_total", '{result="ok"}'), 0)
        self.assertEqual(metric(metrics, "keel_token_cache_hits_total"), 3)
        self.assertEqual(metric(metrics, "keel_token_cache_entries"), 3)
        # A pair that was not cached is asked for, as before.
        self.tokens(second, [("sports", "admin")])
        self.assertEqual(self.asked_since(issuer, asked), ["sports:role.admin"])
        self.assertIn("Kept 4 tokens for the next start", self.stop(second))
        self.assertEqual(self.store.names(), ["token-cache"], "kept again for the next restart")

    def test_a_cache_kept_under_another_key_is_refused_and_the_issuer_asked_again(self):
        issuer = self.issuer_of_pairs()
        first = self.serve(issuer, os.path.join(self.tmp, "a"))
        before = self.tokens(first, PAIRS[:2])
        self.stop(first)
        asked = len(issuer.requests())
        second = self.serve(issuer, os.path.join(self.tmp, "b"))  # another state directory: another key
        after = self.tokens(second, PAIRS[:2])
        self.assertEqual(self.asked_since(issuer, asked), scopes(PAIRS[:2]))
        self.assertNotEqual(after, before)
        self.assertRegex(second.stderr_so_far(), r"(?m)^.* WARN  Refused the tokens kept by the last stop: its HMAC does not "
                         r"verify: saved under another key, or altered; starting with an empty cache")
        self.assertEqual(self.store.names(), [])
        self.stop(second)

    def other_build(self):
        """A copy of keel with another GNU build id: another build, as far as a kept blob can tell."""
        out = subprocess.run(["readelf", "-n", KEEL], check=True, capture_output=True, text=True, timeout=30).stdout
        build_id = bytes.fromhex(re.search(r"Build ID: ([0-9a-f]+)", out).group(1))
        with open(KEEL, "rb") as f:
            data = f.read()
        self.assertEqual(data.count(build_id), 1)
        path = os.path.join(self.tmp, "keel-other-build")
        with open(path, "wb") as f:
            f.write(data.replace(build_id, bytes([build_id[0] ^ 0xff]) + build_id[1:]))
        os.chmod(path, 0o755)
        return path, build_id

    def test_a_cache_kept_by_another_build_is_refused(self):
        other, build_id = self.other_build()
        issuer = self.issuer_of_pairs()
        state = os.path.join(self.tmp, "state")
        first = self.serve(issuer, state, binary=other)
        self.tokens(first, PAIRS[:1])
        self.stop(first)
        asked = len(issuer.requests())
        second = self.serve(issuer, state)
        self.tokens(second, PAIRS[:1])
        self.assertEqual(self.asked_since(issuer, asked), scopes(PAIRS[:1]))
        theirs, ours = bytes([build_id[0] ^ 0xff]) + build_id[1:8], build_id[:8]
        self.assertIn(f"Refused the tokens kept by the last stop: saved by another build of the program (build id "
                      f"{theirs.hex()}…, this one is {ours.hex()}…); starting with an empty cache", second.stderr_so_far())
        self.stop(second)


if __name__ == "__main__":
    unittest.main()
