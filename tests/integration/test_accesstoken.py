# SPDX-License-Identifier: MIT
"""POST /accesstoken, the AthenZ SIA sidecar's token API (issue 27 point 4,
/work/shared/peers/athenz-sia-sidecar.yaml, docs/decisions/0029), through the real binary on
loopback: one row per refusal, each a 400 (or the server's own 405, 411, 413) with a JSON error
that names what was wrong, and one row per shape of success, each checked against the token
itself (PyJWT) and against what /token hands out for the same pair."""

import http.client
import json
import re
import signal
import socket
import unittest

from httpclient import bound_address, get
from keelrun import KeelTestCase
from test_token import CERTIFICATE, jwks_keys, metric, verify

JSON = {"Content-Type": "application/json"}


def post(address, body, headers=JSON, method="POST", conn=None):
    """One request with `body` (bytes, str or a JSON value): (status, headers, parsed JSON body)."""
    c = conn or http.client.HTTPConnection(*address, timeout=10)
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    try:
        c.request(method, "/accesstoken", body=body, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        if not conn:
            c.close()


D = {"domain": "sports"}  # with a role: the smallest valid body
DR = {"domain": "sports", "role": "reader"}

# (what, body, headers, status, error, description pattern)
REFUSALS = [
    ("Content-Type text/plain", DR, {"Content-Type": "text/plain"}, 400, "invalid_request",
     r"^Content-Type: must be application/json, not 'text/plain'$"),
    ("Content-Type of a form", "domain=sports", {"Content-Type": "application/x-www-form-urlencoded"}, 400,
     "invalid_request", r"^Content-Type: must be application/json"),
    ("no body", b"", JSON, 400, "invalid_request", r"^body: required"),
    ("not JSON", "{", JSON, 400, "invalid_request", r"^body: not JSON: .* at line 1 column"),
    ("invalid UTF-8", b'{"domain":"\xff"}', JSON, 400, "invalid_request", r"^body: not JSON"),
    ("a NUL in a string", '{"domain":"a\\u0000b","role":"r"}', JSON, 400, "invalid_request", r"^body: not JSON"),
    ("an integer too big for 64 bits", '{"domain":"d","role":"r","expiry":100000000000000000000}', JSON, 400,
     "invalid_request", r"^body: not JSON: too big integer"),
    ("a repeated key", '{"domain":"a","domain":"b","role":"r"}', JSON, 400, "invalid_request",
     r"^body: not JSON: duplicate object key"),
    ("an array", [DR], JSON, 400, "invalid_request", r"^body: must be a JSON object, not an array$"),
    ("a string", "\"sports\"", JSON, 400, "invalid_request", r"^body: must be a JSON object, not a string$"),
    ("null", "null", JSON, 400, "invalid_request", r"^body: must be a JSON object, not null$"),
    ("no domain", {"role": "reader"}, JSON, 400, "invalid_request", r"^domain: required$"),
    ("domain an integer", {"domain": 1, "role": "r"}, JSON, 400, "invalid_request",
     r"^domain: must be a string, not an integer$"),
    ("domain null", {"domain": None, "role": "r"}, JSON, 400, "invalid_request", r"^domain: must be a string, not null$"),
    ("domain empty", {"domain": "", "role": "r"}, JSON, 400, "invalid_request", r"^domain: must not be empty$"),
    ("domain with a space", {"domain": "a b", "role": "r"}, JSON, 400, "invalid_request",
     r"^domain has a character outside \[A-Za-z0-9._:-\] at offset 1$"),
    ("domain too long", {"domain": "d" * 129, "role": "r"}, JSON, 400, "invalid_request",
     r"^domain is longer than 128 bytes$"),
    ("no role", D, JSON, 400, "invalid_request", r"^role: required"),
    ("role empty", {"domain": "sports", "role": ""}, JSON, 400, "invalid_request", r"^role: must not be empty$"),
    ("role a list", {"domain": "sports", "role": ["reader"]}, JSON, 400, "invalid_request",
     r"^role: must be a string, not an array$"),
    ("role with an empty element", {"domain": "sports", "role": "reader,,writer"}, JSON, 400, "invalid_request",
     r"^role: empty element at position 2$"),
    ("role ending in a comma", {"domain": "sports", "role": "reader,"}, JSON, 400, "invalid_request",
     r"^role: empty element at position 2$"),
    ("role starting with a comma", {"domain": "sports", "role": ",reader"}, JSON, 400, "invalid_request",
     r"^role: empty element at position 1$"),
    ("role with a space after a comma", {"domain": "sports", "role": "reader, writer"}, JSON, 400, "invalid_request",
     r"^role: the element at position 2 has a character outside \[A-Za-z0-9._:-\] at offset 0$"),
    ("seventeen roles", {"domain": "sports", "role": ",".join(f"r{i}" for i in range(17))}, JSON, 400,
     "invalid_request", r"^role: more than 16 roles$"),
    ("proxy_for_principal an integer", dict(DR, proxy_for_principal=1), JSON, 400, "invalid_request",
     r"^proxy_for_principal: must be a string, not an integer$"),
    ("proxy_for_principal set", dict(DR, proxy_for_principal="user.joe"), JSON, 400, "invalid_request",
     r"^proxy_for_principal: not supported"),
    ("expiry a string", dict(DR, expiry="1800"), JSON, 400, "invalid_request",
     r"^expiry: must be an integer number of seconds, not a string$"),
    ("expiry a fraction", dict(DR, expiry=1.5), JSON, 400, "invalid_request",
     r"^expiry: must be an integer number of seconds, not a number$"),
    ("expiry true", dict(DR, expiry=True), JSON, 400, "invalid_request",
     r"^expiry: must be an integer number of seconds, not true$"),
    ("expiry negative", dict(DR, expiry=-1), JSON, 400, "invalid_request", r"^expiry: must not be negative"),
    ("a body past 4 KiB", dict(DR, padding="x" * 5000), JSON, 413, "content_too_large", r"larger than this path takes"),
]


@unittest.skipUnless(CERTIFICATE, "the certificate service (certificate.provider) is not in this build")
class AccessToken(KeelTestCase):

    def setUp(self):
        self.k = self.keel("serve")
        self.addr = bound_address(self.k, "token provider server")
        self.metrics = bound_address(self.k, "metrics exporter server")

    def tearDown(self):
        self.k.kill(signal.SIGTERM)
        status, _, err = self.k.wait()
        self.assertEqual(status, 0, err)

    def scrape(self, result):
        return metric(get(self.metrics, "/metrics")[2], "keel_token_access_requests_total", f'{{result="{result}"}}')

    def test_every_refusal_is_json_naming_what_is_wrong(self):
        for what, body, headers, status, error, pattern in REFUSALS:
            with self.subTest(what):
                got, h, answer = post(self.addr, body, headers)
                self.assertEqual(got, status, answer)
                self.assertEqual(h["content-type"], "application/json")
                self.assertEqual(answer["error"], error, answer)
                self.assertRegex(answer["error_description"], pattern)
        self.assertEqual(self.scrape("refused"), sum(1 for r in REFUSALS if r[3] == 400),
                         "each refusal of the handler counted; the server's own 413 is not the handler's")
        self.assertEqual(self.scrape("ok"), 0)

    def test_other_methods_are_405_with_allow(self):
        for method in ("GET", "PUT", "DELETE"):
            with self.subTest(method):
                status, h, answer = post(self.addr, DR if method != "GET" else b"", method=method)
                self.assertEqual(status, 405, answer)
                self.assertEqual(h["allow"], "POST")
                self.assertEqual(answer["error"], "method_not_allowed")

    def test_a_chunked_body_is_411(self):
        with socket.create_connection(self.addr, timeout=10) as s:
            s.sendall(b"POST /accesstoken HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 411 "), data)
        self.assertEqual(json.loads(body)["error"], "length_required")

    def answer(self, body, headers=JSON, conn=None):
        status, h, answer = post(self.addr, body, headers, conn=conn)
        self.assertEqual(status, 200, answer)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(set(answer) - {"scope"}, {"access_token", "token_type", "expires_in"})
        self.assertEqual(answer["token_type"], "Bearer")
        return answer

    def test_success_shapes(self):
        keys, _ = jwks_keys(self.addr)
        # (what, body, headers, scope, the token's scope claim, expires_in range)
        rows = [
            ("one role", DR, JSON, "sports:role.reader", "reader", (3500, 3600)),
            ("the OpenAPI file's example", {"domain": "sports", "role": "reader", "proxy_for_principal": "",
                                             "expiry": 1800}, JSON, "sports:role.reader", "reader", (1700, 1800)),
            ("a set of roles", {"domain": "sports", "role": "writer,reader,writer"}, JSON,
             "sports:role.reader sports:role.writer", "reader writer", (3500, 3600)),
            ("expiry 0 is token.expiry", dict(DR, expiry=0), JSON, "sports:role.reader", "reader", (3500, 3600)),
            ("expiry past token.expiry is capped", dict(DR, expiry=99999), JSON, "sports:role.reader", "reader",
             (3500, 3600)),
            ("expiry under 2 minutes is raised", dict(DR, expiry=30), JSON, "sports:role.reader", "reader", (100, 120)),
            ("a charset parameter", DR, {"Content-Type": "application/json; charset=utf-8"}, "sports:role.reader",
             "reader", (3500, 3600)),
            ("no Content-Type", DR, {}, "sports:role.reader", "reader", (3500, 3600)),
            ("members it does not name", dict(DR, other={"a": 1}), JSON, "sports:role.reader", "reader", (3500, 3600)),
        ]
        for what, body, headers, scope, claim, (low, high) in rows:
            with self.subTest(what):
                answer = self.answer(body, headers)
                self.assertEqual(answer["scope"], scope)
                self.assertTrue(low <= answer["expires_in"] <= high, answer)
                claims = verify(answer["access_token"], keys)
                self.assertEqual((claims["aud"], claims["scope"]), ("sports", claim))
                self.assertTrue(low <= claims["exp"] - claims["iat"] <= high, claims)
        self.assertEqual(self.scrape("ok"), len(rows))

    def test_the_cache_is_the_one_of_token(self):
        one = self.answer(DR)["access_token"]
        status, _, body = get(self.addr, "/token", headers={"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["access_token"], one, "one role at token.expiry: /token's token")
        c = http.client.HTTPConnection(*self.addr, timeout=10)
        self.addCleanup(c.close)
        pair = self.answer({"domain": "sports", "role": "reader,writer"}, conn=c)["access_token"]
        again = self.answer({"domain": "sports", "role": "writer,reader"}, conn=c)["access_token"]
        self.assertEqual(pair, again, "a set of roles in any order is one token, over one kept-alive connection")
        short = self.answer(dict(DR, expiry=1800), conn=c)["access_token"]
        self.assertNotEqual(short, one, "a lifetime of its own is a token of its own")
        self.assertEqual(self.answer(dict(DR, expiry=1800), conn=c)["access_token"], short)
        self.assertIn('keel_token_cache_hits_total', get(self.metrics, "/metrics")[2])


if __name__ == "__main__":
    unittest.main()
