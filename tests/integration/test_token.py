# SPDX-License-Identifier: MIT
"""The token service and `keel token` through the real binary: tokens verify with the keys of
/.well-known/jwks.json (PyJWT, python3-jwt), bad headers get a 400 naming the header, a token
signed before a rotation still verifies through the previous key, a hundred concurrent misses for
one pair mint once, and `keel token` prints a verifiable token without binding a port."""

import concurrent.futures
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from httpclient import bound_address, get
from keelrun import KEEL, KeelTestCase, run

try:
    import jwt
except ImportError:  # python3-jwt is Debian's: visible to /usr/bin/python3, not to another interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    import jwt
from cryptography import x509


def has_certificate_service():
    """The token service signs with the certificate service's key: without it nothing here runs."""
    try:
        out = subprocess.run([KEEL, "config"], capture_output=True, text=True, timeout=30,
                             env={"PATH": os.environ.get("PATH", "")}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "certificate.provider" in out


CERTIFICATE = has_certificate_service()
HEADERS = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}


def metric(body, name, labels=""):
    m = re.search(rf"(?m)^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", body)
    return float(m.group(1)) if m else None


def jwks_keys(addr):
    status, headers, body = get(addr, "/.well-known/jwks.json")
    assert status == 200, (status, body)
    return {k["kid"]: k for k in json.loads(body)["keys"]}, headers


def verify(token, keys, audience="sports"):
    """Verifies like a relying party: the kid picks the key from JWKS, PyJWT checks everything."""
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWK(keys[header["kid"]]).key
    return jwt.decode(token, key, algorithms=[header["alg"]], audience=audience, issuer="keel")


@unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
class TokenServer(KeelTestCase):

    config = ""
    env = None

    def setUp(self):
        self.k = self.keel("serve", config=self.config, env=self.env)
        self.addr = bound_address(self.k, "token provider server")
        self.metrics = bound_address(self.k, "metrics exporter server")
        self.logged = []  # patterns stderr must match, checked once the process has exited
        self.logged_once = []  # patterns stderr must match exactly once

    def tearDown(self):
        self.k.kill(signal.SIGTERM)
        status, _, err = self.k.wait()
        self.assertEqual(status, 0, err)
        self.assertLess(err.index("Stopped token provider server"), err.index("Stopped token provider daemon"),
                        "the server drains before the tasks stop")
        for pattern in self.logged:
            self.assertRegex(err, pattern)
        for pattern in self.logged_once:
            self.assertEqual(len(re.findall(pattern, err)), 1, f"{pattern} once in:\n{err}")

    def wait_metric(self, name, labels, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = metric(self.scrape(), name, labels)
            if value is not None and predicate(value):
                return value
            if time.monotonic() > deadline:
                self.fail(f"{name}{labels} is {value} after {timeout}s")
            time.sleep(0.05)

    def token(self, headers=HEADERS, path="/token"):
        status, h, body = get(self.addr, path, headers=headers)
        self.assertEqual(status, 200, body)
        return json.loads(body), h

    def scrape(self):
        return get(self.metrics, "/metrics")[2]


class Issue(TokenServer):
    def test_a_token_verifies_with_the_published_key(self):
        answer, headers = self.token()
        self.assertEqual(set(answer), {"access_token", "token_type", "expires_in", "scope"})
        self.assertEqual((answer["token_type"], answer["scope"]), ("Bearer", "reader"))
        self.assertTrue(3500 <= answer["expires_in"] <= 3600, answer)
        self.assertEqual(headers["authorization"], "Bearer " + answer["access_token"])
        self.assertRegex(headers["x-request-id"], r"^[0-9a-f]{16}-\d+$")
        keys, _ = jwks_keys(self.addr)
        claims = verify(answer["access_token"], keys)
        self.assertEqual((claims["aud"], claims["scope"], claims["iss"]), ("sports", "reader", "keel"))
        self.assertEqual(claims["nbf"], claims["iat"])
        self.assertLessEqual(claims["exp"] - claims["iat"], 3600)
        self.assertRegex(claims["jti"], r"^[A-Za-z0-9_-]{22}$")
        self.assertTrue(claims["sub"])
        with self.assertRaises(jwt.InvalidAudienceError):
            verify(answer["access_token"], keys, audience="other")

    def test_slash_answers_like_token_and_the_cache_answers_the_second(self):
        first, _ = self.token()
        second, h = self.token(path="/")
        self.assertEqual(first["access_token"], second["access_token"])
        self.assertNotEqual(h["x-request-id"], self.token()[1]["x-request-id"])
        body = self.scrape()
        self.assertGreaterEqual(metric(body, "keel_token_cache_hits_total"), 2)
        self.assertEqual(metric(body, "keel_token_mints_total", '{result="ok"}'), 1)
        self.assertEqual(metric(body, "keel_token_cache_entries"), 1)
        self.assertGreater(metric(body, "keel_token_cache_bytes"), len(first["access_token"]))

    def test_each_pair_has_its_own_token(self):
        a, _ = self.token()
        b, _ = self.token({"X-Athenz-Domain": "sports", "X-Athenz-Role": "writer"})
        self.assertNotEqual(a["access_token"], b["access_token"])
        self.assertEqual(verify(b["access_token"], jwks_keys(self.addr)[0])["scope"], "writer")

    def test_jwks_lets_verifiers_cache_briefly(self):
        keys, headers = jwks_keys(self.addr)
        self.assertEqual(len(keys), 1)
        self.assertEqual(headers["cache-control"], "max-age=300")
        (key,) = keys.values()
        self.assertEqual((key["use"], key["alg"]), ("sig", "ES256"))
        self.assertNotIn("d", key, "a private member leaked")

    def test_missing_or_malformed_headers_are_a_400_naming_the_header(self):
        cases = [({}, "X-Athenz-Domain", "missing header X-Athenz-Domain"),
                 ({"X-Athenz-Domain": "sports"}, "X-Athenz-Role", "missing header X-Athenz-Role"),
                 ({"X-Athenz-Domain": "", "X-Athenz-Role": "r"}, "X-Athenz-Domain", "empty header X-Athenz-Domain"),
                 ({"X-Athenz-Domain": "sports", "X-Athenz-Role": "a/b"}, "X-Athenz-Role", "outside [A-Za-z0-9._:-]"),
                 ({"X-Athenz-Domain": "d" * 129, "X-Athenz-Role": "r"}, "X-Athenz-Domain", "longer than 128 bytes")]
        for headers, name, reason in cases:
            with self.subTest(headers=headers):
                status, h, body = get(self.addr, "/token", headers=headers)
                self.assertEqual(status, 400)
                self.assertEqual(h["content-type"], "application/json")
                answer = json.loads(body)
                self.assertEqual((answer["error"], answer["header"]), ("invalid_request", name))
                self.assertIn(reason, answer["error_description"])
        self.logged.append(r"WARN.*Client error: while handling request with: X-Athenz-Domain\[\] X-Athenz-Role\[\], "
                           r"error\[missing header X-Athenz-Domain\], request\[[0-9a-f]{16}-\d+\] from 127\.0\.0\.1:\d+")
        self.logged.append(r"WARN.*Client error: .*X-Athenz-Role\[a/b\], error\[header X-Athenz-Role has a character outside")

    def test_other_paths_and_methods(self):
        self.assertEqual(get(self.addr, "/nope")[0], 404)
        c = http.client.HTTPConnection(*self.addr, timeout=10)
        try:
            c.request("POST", "/token", body="x", headers=HEADERS)
            self.assertEqual(c.getresponse().status, 405)
        finally:
            c.close()

    def test_a_hundred_concurrent_misses_for_one_pair_mint_once(self):
        headers = {"X-Athenz-Domain": "crowd", "X-Athenz-Role": "reader"}
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            answers = list(pool.map(lambda _: get(self.addr, "/token", headers=headers), range(100)))
        self.assertEqual({a[0] for a in answers}, {200})
        self.assertEqual(len({json.loads(a[2])["access_token"] for a in answers}), 1)
        body = self.scrape()
        self.assertEqual(metric(body, "keel_token_mints_total", '{result="ok"}'), 1)
        self.assertEqual(metric(body, "keel_token_cache_hits_total") + metric(body, "keel_token_cache_misses_total"), 100)

    def test_the_token_health_check_is_listed(self):
        health = bound_address(self.k, "health check server")
        status, _, body = get(health, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertIn("[+]token ok", body)


def raw_request(addr, data, timeout=10.0):
    """Sends `data` (bytes, as written) on a new connection; (status, body) of the answer."""
    with socket.create_connection(addr, timeout=timeout) as c:
        c.sendall(data)
        return Answers(c).next()


class Answers:
    """The answers on socket `c`, one at a time: what follows an answer stays for the next."""

    def __init__(self, c):
        self.c, self.pending = c, b""

    def read(self):
        chunk = self.c.recv(65536)
        self.pending += chunk
        return chunk

    def next(self):
        while b"\r\n\r\n" not in self.pending and self.read():
            pass
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        size = int(length.group(1)) if length else None
        self.pending = rest
        while (size is None or len(self.pending) < size) and self.read():
            pass
        body, self.pending = self.pending[:size], self.pending[len(self.pending) if size is None else size:]
        return int(head.split()[1]), body.decode(errors="replace")


class KeysServer(TokenServer):
    """token.jwks_server: the keys on a listener of their own, which issues nothing."""
    env = {"KEEL_TOKEN_JWKS_SERVER": "true", "KEEL_TOKEN_JWKS_ADDRESS": "127.0.0.1:0"}

    def test_it_publishes_the_token_servers_keys_and_nothing_else(self):
        keys_addr = bound_address(self.k, "token keys server")
        self.assertNotEqual(keys_addr, self.addr)
        answer, _ = self.token()
        keys, headers = jwks_keys(keys_addr)
        self.assertEqual(keys, jwks_keys(self.addr)[0])
        self.assertEqual(headers["content-type"], "application/jwk-set+json")
        self.assertRegex(headers["cache-control"], r"^max-age=\d+$")
        verify(answer["access_token"], keys)
        for path in ("/token", "/", "/.well-known/jwks.json.txt"):
            status, _, body = get(keys_addr, path, headers=HEADERS)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(body)["error_description"], "not found: only /.well-known/jwks.json is served here")
        conn = http.client.HTTPConnection(*keys_addr, timeout=10)
        conn.request("POST", "/.well-known/jwks.json", body=b"")
        self.assertEqual(conn.getresponse().status, 405)
        conn.close()
        self.logged.append(r"Stopped token keys server .*\n(.*\n)*.*Stopped token provider server")


class StrictHeaders(TokenServer):
    """Issue 14's table: what a proxy and we could read differently is refused, not guessed at."""

    CASES = [
        # (what, identity headers as sent, the header the 400 names, what its reason says)
        ("a control byte", b"X-Athenz-Domain: spo\x01rts\r\nX-Athenz-Role: reader\r\n", "X-Athenz-Domain", "control character"),
        ("the domain twice", b"X-Athenz-Domain: sports\r\nX-Athenz-Domain: news\r\nX-Athenz-Role: reader\r\n",
         "X-Athenz-Domain", "repeated"),
        ("the role twice", b"X-Athenz-Domain: sports\r\nX-Athenz-Role: reader\r\nx-athenz-role: admin\r\n",
         "X-Athenz-Role", "repeated"),
    ]

    def test_identity_headers_with_control_bytes_or_repeated_are_400(self):
        for what, headers, header, reason in self.CASES:
            with self.subTest(what):
                status, body = raw_request(self.addr, b"GET /token HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")
                self.assertEqual(status, 400, body)
                answer = json.loads(body)
                self.assertEqual(answer["error"], "invalid_request")
                self.assertEqual(answer["header"], header)
                self.assertIn(reason, answer["error_description"])

    def test_a_nul_in_the_request_target_is_400(self):
        # A decoded %00 would end the path there: /.well-known/jwks.json%00.txt once answered 200.
        for target in (b"/.well-known/jwks.json%00.txt", b"/token%00", b"/.well-known/jwks.json?a=%00"):
            with self.subTest(target):
                status, body = raw_request(self.addr, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
                self.assertEqual((status, body), (400, "bad request: %00 in the request target\n"))
        self.assertEqual(raw_request(self.addr, b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n")[0], 200,
                         "the next request on a new connection is not marked")

    LINE = "bad request: a NUL byte in the request line\n"
    FIELD = "bad request: a NUL byte in a header field\n"
    NUL_CASES = [
        # (what, the request as sent, the answer's body)
        ("in the role", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sports\r\n"
         b"X-Athenz-Role: admin\0;evil\r\n\r\n", FIELD),
        ("in the domain", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sp\0orts\r\n"
         b"X-Athenz-Role: reader\r\n\r\n", FIELD),
        ("at a value's end", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sports\0\r\n"
         b"X-Athenz-Role: reader\r\n\r\n", FIELD),
        ("right after the colon", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain:\0sports\r\n"
         b"X-Athenz-Role: reader\r\n\r\n", FIELD),
        ("in the last header", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sports\r\n"
         b"X-Athenz-Role: reader\r\nUser-Agent: a\0b\r\n\r\n", FIELD),
        ("in Host", b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: local\0host\r\n\r\n", FIELD),
        ("in the path", b"GET /.well-known/jwks.json\0.txt HTTP/1.1\r\nHost: localhost\r\n\r\n", LINE),
        ("in the query", b"GET /.well-known/jwks.json?a\0b HTTP/1.1\r\nHost: localhost\r\n\r\n", LINE),
        ("in the method", b"GE\0T /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n", LINE),
    ]

    def test_a_nul_byte_anywhere_in_the_head_is_400(self):
        # A parser that hands over a value up to a NUL would issue a token for "admin" from "admin\0;evil"
        # (libmicrohttpd 0.9.75 did).
        for what, request, body in self.NUL_CASES:
            with self.subTest(what):
                self.assertEqual(raw_request(self.addr, request), (400, body))

    def test_what_else_is_malformed_in_a_head_is_400(self):
        identity = b"X-Athenz-Domain: sports\r\nX-Athenz-Role: reader\r\n"
        for what, request in (
                ("a NUL in a header's name", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Ath\0enz: x\r\n" + identity),
                ("a folded line", b"GET /token HTTP/1.1\r\nHost: localhost\r\n" + identity + b"X-Note: a\r\n b\r\n"),
                ("an empty header name", b"GET /token HTTP/1.1\r\n: x\r\nHost: localhost\r\n" + identity),
                ("a space in the target", b"GET /to ken HTTP/1.1\r\nHost: localhost\r\n" + identity),
                ("a control byte in the target", b"GET /token\x01 HTTP/1.1\r\nHost: localhost\r\n" + identity)):
            with self.subTest(what):
                self.assertEqual(raw_request(self.addr, request + b"\r\n")[0], 400)

    def test_heads_written_every_allowed_way_are_served(self):
        # What the check must not refuse: no space or several after the colon, tabs, an empty
        # value, trailing whitespace, bare LF line ends (RFC 9112 §2.2), a query.
        for what, request in (
                ("no space after the colon", b"GET /token HTTP/1.1\r\nHost:localhost\r\nX-Athenz-Domain:sports\r\n"
                 b"X-Athenz-Role:reader\r\n\r\n"),
                ("spaces and tabs", b"GET /token HTTP/1.1\r\nHost: \t localhost\r\nX-Athenz-Domain:   sports\r\n"
                 b"X-Athenz-Role:\treader\r\nX-Note: trailing \t \r\n\r\n"),
                ("an empty value", b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Empty:\r\nX-Athenz-Domain: sports\r\n"
                 b"X-Athenz-Role: reader\r\nX-Last:\r\n\r\n"),
                ("bare LF line ends", b"GET /token HTTP/1.1\nHost: localhost\nX-Athenz-Domain: sports\n"
                 b"X-Athenz-Role: reader\n\n"),
                ("LF, then CRLF", b"GET /token HTTP/1.1\r\nHost: localhost\nX-Athenz-Domain: sports\r\n"
                 b"X-Athenz-Role: reader\n\r\n"),
                ("a query", b"GET /token?a=1&b=%41 HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sports\r\n"
                 b"X-Athenz-Role: reader\r\n\r\n"),
                ("cookies and a length", b"GET /token HTTP/1.1\r\nHost: localhost\r\nCookie: a=1; b=2, c\r\n"
                 b"Content-Length: 0\r\nX-Athenz-Domain: sports\r\nX-Athenz-Role: reader\r\n\r\n"),
                ("HTTP/1.0, no headers but ours", b"GET /token HTTP/1.0\r\nX-Athenz-Domain: sports\r\n"
                 b"X-Athenz-Role: reader\r\n\r\n")):
            with self.subTest(what):
                status, body = raw_request(self.addr, request)
                self.assertEqual(status, 200, body)
                claims = jwt.decode(json.loads(body)["access_token"], options={"verify_signature": False})
                self.assertEqual((claims["aud"], claims["scope"]), ("sports", "reader"))

    def test_each_request_of_a_connection_is_checked_on_its_own(self):
        good = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n"
        bad = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nX-A: \0\r\n\r\n"
        with socket.create_connection(self.addr, timeout=10) as c:
            answers = Answers(c)
            for request, status in ((good, 200), (bad, 400), (good, 200), (good + bad + good, 200), (None, 400),
                                    (None, 200)):
                if request:
                    c.sendall(request)
                self.assertEqual(answers.next()[0], status)

    def test_http11_without_host_is_400_and_http10_is_served(self):
        identity = b"X-Athenz-Domain: sports\r\nX-Athenz-Role: reader\r\n"
        status, body = raw_request(self.addr, b"GET /token HTTP/1.1\r\n" + identity + b"\r\n")
        self.assertEqual(status, 400)
        self.assertIn("Host", body)
        status, body = raw_request(self.addr, b"GET /token HTTP/1.0\r\n" + identity + b"\r\n")
        self.assertEqual(status, 200, body)


class RequestLog(TokenServer):
    config = "log:\n  level: debug\n"

    def test_each_request_is_logged_at_debug_level_with_its_id(self):
        c = http.client.HTTPConnection(*self.addr, timeout=10)
        self.addCleanup(c.close)
        for path, headers, code in (("/token", HEADERS, 200), ("/token", {}, 400), ("/nope", {}, 404)):
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, code)
            self.logged.append(rf"(?m)^\S+ DEBUG GET {path} from 127\.0\.0\.1:{c.sock.getsockname()[1]}: "
                               rf"{code} in \d+\.\d{{3}}ms, request\[{re.escape(r.getheader('X-Request-Id'))}\]  "
                               r"\[.*service=token\]$")
            self.logged_once.append(rf"(?m)^\S+ DEBUG .*{re.escape(r.getheader('X-Request-Id'))}")  # not the handler's line too
        c.close()  # now: an idle keep-alive connection would hold the drain for its 1 s

    def test_bytes_a_client_sent_are_logged_escaped(self):
        # Issue 14: the method went to the text log as it came (an ESC byte could drive a terminal).
        for request, logged in ((b"G\x1bET /token HTTP/1.1\r\nHost: localhost\r\n\r\n", r"G\\x1bET /token from "),
                                (b"GET /a\x01b HTTP/1.1\r\nHost: localhost\r\n\r\n", r"GET /a\\x01b from ")):
            status, _ = raw_request(self.addr, request)
            self.assertIn(status, (400, 405))
            self.logged.append(rf"(?m)^\S+ DEBUG {logged}127\.0\.0\.1:\d+: {status} in ")


class Rotation(TokenServer):
    # The certificate service renews every 3 s (±10 %) with a new key: the first rotation comes
    # soon, and the one after it, which would drop the first key from JWKS, seconds later.
    config = "certificate:\n  refresh_interval: 3s\n"

    def kid(self, token):
        return jwt.get_unverified_header(token)["kid"]

    def test_a_token_signed_before_a_rotation_still_verifies(self):
        deadline = time.monotonic() + 30
        while True:
            old, _ = self.token()
            old_kid = self.kid(old["access_token"])
            while True:  # a new key makes the cached token stale: the next request mints with it
                new, _ = self.token()
                if self.kid(new["access_token"]) != old_kid:
                    break
                self.assertLess(time.monotonic(), deadline, "no rotation within 30 s")
                time.sleep(0.05)
            keys, _ = jwks_keys(self.addr)
            # The set is of one rotation after the old token's when a token asked after it still
            # carries the new key. Else a second rotation came first (a loaded machine), which
            # drops the old key as it should: start again from the newest token.
            if self.kid(self.token()[0]["access_token"]) == self.kid(new["access_token"]):
                break
            self.assertLess(time.monotonic(), deadline, "a second rotation before each read of the set")
        self.assertIn(old_kid, keys, "the previous key is still published")
        self.assertEqual(verify(old["access_token"], keys)["scope"], "reader")
        new_kid = self.kid(new["access_token"])
        self.assertIn(new_kid, keys)
        verify(new["access_token"], keys)
        self.logged.append(rf"Signing tokens with key\[{re.escape(new_kid)}\] \(ES256\)")

    def test_a_verifier_that_caches_jwks_knows_each_key_before_a_token_carries_it(self):
        # Halfway to a rotation (1.5 s here) its key is published as the next key. A relying party
        # that re-reads the set only every 0.5 s verifies every token across the rotation from its
        # cached set: no token carries a key its set did not list already.
        # `fetched`: when the request for the set went out, so no later than the set it got.
        fetched = time.monotonic()
        cached = jwks_keys(self.addr)[0]
        previous = self.kid(self.token()[0]["access_token"])
        deadline = time.monotonic() + 15
        while True:
            if time.monotonic() - fetched >= 0.5:
                fetched = time.monotonic()
                cached = jwks_keys(self.addr)[0]
            token = self.token()[0]["access_token"]
            # A next key is published at least 1.35 s before it signs: a set read less than 1.2 s
            # before the token came lists its key. A token after a longer stall (a loaded
            # machine) proves nothing either way: not held against the set, and a rotation seen
            # only through it is not the one checked, the next one is.
            checked = time.monotonic() - fetched < 1.2
            if checked:
                self.assertIn(self.kid(token), cached, "a token signed with a key the set fetched up to 1.2 s earlier lacks")
                self.assertEqual(verify(token, cached)["scope"], "reader")
            if self.kid(token) != previous and checked:
                break
            previous = self.kid(token)
            self.assertLess(time.monotonic(), deadline, "no rotation checked within 15 s")
            time.sleep(0.05)
        # The key of the rotation after it is published halfway to that one too (1.35-1.65 s before
        # it): the set lists it while the current key still signs.
        current, deadline = self.kid(token), time.monotonic() + 10
        while True:
            following = set(jwks_keys(self.addr)[0]) - {previous, current}
            signing = self.kid(self.token()[0]["access_token"])
            if following:
                self.assertEqual(signing, current, f"the next key {following} was published only once it signed")
                break
            self.assertLess(time.monotonic(), deadline, "no next key published for the following rotation")
            time.sleep(0.05)


class Tasks(TokenServer):
    config = "token:\n  refresh_interval: 1s\n  memory_report_interval: 100ms\n"

    def test_refresh_mints_cached_tokens_again_and_memory_is_reported(self):
        first, _ = self.token()
        self.wait_metric("keel_token_refreshes_total", '{result="ok"}', lambda v: v >= 1)
        second, _ = self.token()
        self.assertNotEqual(first["access_token"], second["access_token"])
        self.assertGreaterEqual(metric(self.scrape(), "keel_token_mints_total", '{result="ok"}'), 2)
        self.assertGreater(metric(self.scrape(), "process_resident_memory_bytes"), 1 << 20)
        self.assertNotIn("keel_token_memory_rss_bytes", self.scrape(), "no series repeats process_resident_memory_bytes")
        self.logged += [r"Will refresh tokens after 1s", r"Refreshed 1 tokens, 0 failed",
                        r"Memory: rss\[[0-9.]+MiB\] token cache entries\[1\] bytes\[\d+\]"]


class FailingRefresh(TokenServer):
    config = "token:\n  refresh_interval: 1s\n"
    env = {"KEEL_FAULT": "error@in:token.refresh"}

    def test_a_failing_refresh_keeps_serving_the_valid_token(self):
        first, _ = self.token()
        self.wait_metric("keel_token_refreshes_total", '{result="error"}', lambda v: v >= 2)
        second, _ = self.token()
        self.assertEqual(first["access_token"], second["access_token"])
        self.assertEqual(metric(self.scrape(), "keel_token_refreshes_total", '{result="ok"}'), 0)
        self.logged.append(r"WARN.*Failed to refresh tokens: test error, ignoring")


@unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
class NoKeysServer(KeelTestCase):
    def test_off_by_default(self):
        status, _, err, _ = run("serve", env={"KEEL_FAULT": "sigterm@in:health.ready"})
        self.assertEqual(status, 0, err)
        self.assertIn("Starting token provider server", err)
        self.assertNotIn("token keys server", err)


class NoCredential(KeelTestCase):
    def test_the_token_service_will_not_start_without_a_credential(self):
        status, _, err, _ = run("serve", "--set", "plugins.disabled=[certificate]")
        self.assertEqual(status, 1, err)
        self.assertIn("Error starting token provider: No current credential to sign tokens with", err)
        self.assertIn("Skipped metrics exporter start", err)

    def test_keel_token_fails_clearly_without_a_credential(self):
        status, out, err, _ = run("token", "--set", "plugins.disabled=[certificate]", "--domain", "d", "--role", "r")
        self.assertEqual((status, out), (1, ""), err)
        self.assertIn("Failed to issue a token for domain[d] role[r]: no current credential", err)


class Command(KeelTestCase):
    def test_missing_options_are_usage_errors_naming_them(self):
        for args, option in ((["--role", "r"], "--domain"), (["--domain", "d"], "--role"),
                             (["--domain", "d", "--role", "r", "--format", "xml"], "--format"),
                             (["--domain", "d", "--role", "r", "--bogus"], "--bogus"),
                             (["--domain"], "--domain")):
            with self.subTest(args=args):
                status, out, err, _ = run("token", *args)
                self.assertEqual((status, out), (64, ""), err)
                self.assertIn(option, err)

    def listener(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        self.addCleanup(s.close)
        return f"127.0.0.1:{s.getsockname()[1]}"

    def no_servers(self):
        """Every server's address is a port this test holds: binding any of them would fail."""
        held = self.listener()
        return {f"KEEL_{s}_ADDRESS": held for s in ("TOKEN", "METRICS", "HEALTHCHECK")}

    def test_domain_and_role_follow_the_servers_rules(self):
        for args, reason in ((["--domain", "a b", "--role", "r"], "option --domain has a character outside"),
                             (["--domain", "d", "--role", "r/w"], "option --role has a character outside"),
                             (["--domain", "d" * 129, "--role", "r"], "option --domain is longer than 128 bytes")):
            with self.subTest(args=args):
                status, out, err, _ = run("token", *args)
                self.assertEqual((status, out), (64, ""), err)
                self.assertIn(reason, err)

    def serve_once(self, *settings):
        """Runs `keel serve` with `--set` @settings until ready, then stops it; returns its state
        directory, where it left its key and certificate."""
        args = [a for s in settings for a in ("--set", s)]
        k = self.keel("serve", *args)
        k.ready()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return os.path.join(k.tmp, "state")

    def token_in(self, state, *args, **kw):
        env = dict(self.no_servers(), KEEL_STATE_DIR=state)
        return run("token", *args, "--domain", "sports", "--role", "reader", env=env, **kw)

    @staticmethod
    def listing(state):
        return {name: os.stat(os.path.join(state, name)).st_mtime_ns for name in os.listdir(state)}

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_keel_token_prints_a_verifiable_token_and_binds_nothing(self):
        state = self.serve_once()
        before = self.listing(state)
        status, out, err, _ = self.token_in(state)
        self.assertEqual(status, 0, err)
        self.assertNotIn("Starting", err.replace("Starting certificate", ""))
        token = out.strip()
        self.assertEqual(out.count("\n"), 1)
        self.assertEqual(token.count("."), 2)
        # Signed with the key of the certificate the agent left in its state directory, which
        # the command only read.
        with open(os.path.join(state, "cert.pem"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, cert.public_key(), algorithms=[header["alg"]], audience="sports", issuer="keel")
        self.assertEqual(claims["scope"], "reader")
        self.assertEqual(self.listing(state), before)

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_keel_token_beside_a_serving_agent_takes_nothing_of_it(self):
        """The PID file and the state directory stay the agent's; its rotation in progress (a
        staged temporary file) is left alone; the token verifies with the agent's JWKS."""
        pidfile = os.path.join(tempfile.mkdtemp(prefix="keel-pid-"), "keel.pid")
        self.addCleanup(shutil.rmtree, os.path.dirname(pidfile), True)
        agent = self.keel("serve", "--pidfile", pidfile)
        agent.ready()
        state = os.path.join(agent.tmp, "state")
        staged = os.path.join(state, ".cert.next.pem.tmp-abcdef")
        with open(staged, "w") as f:
            f.write("being written by the agent")
        before = self.listing(state)
        status, out, err, _ = self.token_in(state, "--pidfile", pidfile)
        self.assertEqual(status, 0, err)
        self.assertEqual(self.listing(state), before)
        with open(pidfile) as f:
            self.assertEqual(f.read().strip(), str(agent.proc.pid))
        keys, _ = jwks_keys(bound_address(agent, "token provider server"))
        self.assertEqual(verify(out.strip(), keys)["scope"], "reader")
        os.unlink(staged)
        agent.kill(signal.SIGTERM)
        self.assertEqual(agent.wait()[0], 0)

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_keel_token_without_a_credential_names_the_directory_and_creates_nothing(self):
        state = os.path.join(tempfile.mkdtemp(prefix="keel-state-"), "state")
        self.addCleanup(shutil.rmtree, os.path.dirname(state), True)
        status, out, err, _ = self.token_in(state)
        self.assertEqual((status, out), (1, ""), err)
        self.assertIn(f"No key and certificate in '{state}' yet: `keel serve` creates them", err)
        self.assertFalse(os.path.exists(state))

    def token_and_cert(self, *settings):
        """Runs `keel token` on what `keel serve` with `--set` @settings left; returns the token
        and the certificate it used."""
        state = self.serve_once(*settings)
        status, out, err, _ = self.token_in(state, *[a for s in settings for a in ("--set", s)])
        self.assertEqual(status, 0, err)
        with open(os.path.join(state, "cert.pem"), "rb") as f:
            return out.strip(), x509.load_pem_x509_certificate(f.read())

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_an_rsa_key_signs_rs256(self):
        token, cert = self.token_and_cert("certificate.key_type=rsa")
        header = jwt.get_unverified_header(token)
        self.assertEqual(header["alg"], "RS256")
        jwt.decode(token, cert.public_key(), algorithms=["RS256"], audience="sports", issuer="keel")

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_a_token_never_outlives_the_certificate(self):
        token, cert = self.token_and_cert("certificate.lifetime=30s", "token.expiry=1h")
        claims = jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience="sports", issuer="keel")
        self.assertLessEqual(claims["exp"], int(cert.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()))
        self.assertLessEqual(claims["exp"] - claims["iat"], 30)

    @unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
    def test_keel_token_json_is_the_token_endpoints_answer(self):
        status, out, err, _ = self.token_in(self.serve_once(), "--format=json")
        self.assertEqual(status, 0, err)
        answer = json.loads(out)
        self.assertEqual(set(answer), {"access_token", "token_type", "expires_in", "scope"})
        self.assertEqual((answer["token_type"], answer["scope"]), ("Bearer", "reader"))


if __name__ == "__main__":
    unittest.main()
