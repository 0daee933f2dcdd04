# SPDX-License-Identifier: MIT
"""The token server over TLS with the real binary: `token.tls: self` verifies with the local CA
(openssl s_client and Python's ssl), plain HTTP on the port gets a 400, a connection held across a
certificate rotation keeps its certificate while a new one gets the new certificate, mTLS gives
the handler the client's identity and refuses unknown CAs, `token.tls: files` refuses a key others
can read and reloads its files on SIGHUP, and a stop with an idle TLS connection open drains."""

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, wait_for
from keelrun import FdStore, KeelTestCase

HEADERS = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}


def openssl(*args, cwd=None, stdin=""):
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30, input=stdin)


class TlsTest(KeelTestCase):
    def serve(self, tls_config, extra="", env=None):
        k = self.keel("serve", config=f"token:\n{tls_config}\n{extra}", env=env)
        token = bound_address(k, "token provider server")
        return k, token

    def context(self, k, cert=None, key=None):
        ctx = ssl.create_default_context(cafile=os.path.join(k.tmp, "state", "ca.pem"))
        ctx.check_hostname = False  # the certificate names the host and localhost; the test dials 127.0.0.1
        if cert:
            ctx.load_cert_chain(cert, key)
        return ctx

    def get(self, conn, path="/token"):
        conn.request("GET", path, headers=HEADERS)
        r = conn.getresponse()
        return r.status, r.read().decode()

    def test_self_verifies_with_the_local_ca_and_refuses_plain_http(self):
        k, token = self.serve("  tls: self")
        ca = os.path.join(k.tmp, "state", "ca.pem")
        p = openssl("s_client", "-connect", "%s:%d" % token, "-CAfile", ca, "-verify_return_error", "-brief")
        self.assertIn("Verification: OK", p.stdout + p.stderr)
        conn = http.client.HTTPSConnection(*token, timeout=10, context=self.context(k))
        status, body = self.get(conn)
        self.assertEqual(status, 200, body)
        self.assertIn("access_token", body)
        self.assertEqual(self.get(conn, "/.well-known/jwks.json")[0], 200)
        with socket.create_connection(token, timeout=10) as s, self.context(k).wrap_socket(s) as t:
            # Decrypted heads reach the parser as plain ones do, and are checked the same way.
            t.sendall(b"GET /token HTTP/1.1\r\nHost: localhost\r\nX-Athenz-Domain: sports\r\n"
                      b"X-Athenz-Role: admin\0;evil\r\n\r\n")
            answer = b""
            while not re.search(rb"\r\n\r\n.*\n", answer, re.S) and (chunk := t.recv(4096)):
                answer += chunk
            self.assertRegex(answer, rb"^HTTP/1.1 400 .*\r\n(.*\r\n)*\r\nbad request: a NUL byte in a header field\n$")
        conn.close()
        plain = http.client.HTTPConnection(*token, timeout=10)
        plain.request("GET", "/token", headers=HEADERS)
        r = plain.getresponse()
        self.assertEqual(r.status, 400)
        self.assertIn("HTTPS", r.read().decode())
        plain.close()
        wait_for(lambda: "Serving over TLS with the certificate service's credential" in k.stderr_so_far(), 15, "Serving over TLS with the certificate service's credential")

    def test_plain_http_gets_its_400_and_a_clean_end_not_a_reset(self):
        # The server looked at the first byte only: closed with the request unread, the connection
        # was reset, and a client whose stack drops what it has not read on a reset lost the 400.
        k, token = self.serve("  tls: self")
        for _ in range(3):
            with socket.create_connection(token, timeout=10) as s:
                s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
                answer = b""
                try:
                    while chunk := s.recv(4096):
                        answer += chunk
                except ConnectionResetError:
                    self.fail(f"reset after {answer!r}")
                self.assertRegex(answer, rb"^HTTP/1.1 400 Bad Request\r\n(.*\r\n)*\r\nThis port speaks HTTPS \(TLS\) only.\r\n$")

    def test_a_rotation_keeps_open_connections_on_the_old_certificate(self):
        k, token = self.serve("  tls: self", "certificate:\n  refresh_interval: 2s\n  lifetime: 1h\n")
        ctx = self.context(k)
        held = http.client.HTTPSConnection(*token, timeout=10, context=ctx)
        self.assertEqual(self.get(held)[0], 200)
        old = held.sock.getpeercert(binary_form=True)
        # A connection made after a rotation gets the new certificate: new ones until one does (a
        # rotation may have come before `held`, so a "Refreshed key" line seen says nothing).
        deadline = time.monotonic() + 30
        while True:
            fresh = http.client.HTTPSConnection(*token, timeout=10, context=ctx)
            self.assertEqual(self.get(fresh)[0], 200)
            new = fresh.sock.getpeercert(binary_form=True)
            if new != old:
                break
            fresh.close()
            self.assertLess(time.monotonic(), deadline, "no connection got a new certificate within 30 s")
            time.sleep(0.1)
        self.assertEqual(self.get(held)[0], 200, "the connection made before it still serves")
        self.assertEqual(held.sock.getpeercert(binary_form=True), old, "on the certificate it was made with")
        for c in (held, fresh):
            c.close()
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_mutual_tls_identity_and_unknown_ca(self):
        state = tempfile.mkdtemp(prefix="keel-tls-state-")
        self.addCleanup(shutil.rmtree, state, True)
        config = f"token:\n  tls: self\n  tls_client_ca_file: {state}/ca.pem\n"
        k = self.keel("serve", config=config, env={"KEEL_STATE_DIR": state, "KEEL_LOG_LEVEL": "debug"})
        token = bound_address(k, "token provider server")
        anonymous = http.client.HTTPSConnection(*token, timeout=10, context=self.context_in(state))
        status, body = self.get(anonymous)
        self.assertEqual(status, 401)
        self.assertIn("invalid_client", body)
        self.assertEqual(self.get(anonymous, "/.well-known/jwks.json")[0], 200, "the key set is public")
        anonymous.close()
        # The agent's own certificate is a client certificate of its CA.
        ours = http.client.HTTPSConnection(*token, timeout=10,
                                           context=self.context_in(state, f"{state}/cert.pem", f"{state}/key.pem"))
        status, body = self.get(ours)
        self.assertEqual(status, 200, body)
        ours.close()
        subject = openssl("x509", "-in", f"{state}/cert.pem", "-noout", "-subject", "-nameopt", "RFC2253").stdout.strip()
        cn = subject.split("=", 1)[1]
        wait_for(lambda: re.search(r"GET /token from 127\.0\.0\.1:\d+ \(client " + re.escape(cn) + r"\): 200", k.stderr_so_far()),
                 10, "the client's identity in the request's log line")
        # A certificate of another CA fails the handshake.
        other = tempfile.mkdtemp(prefix="keel-tls-other-")
        self.addCleanup(shutil.rmtree, other, True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "o.key", "-out",
                "o.pem", "-subj", "/CN=intruder", "-days", "1", cwd=other)
        stranger = http.client.HTTPSConnection(*token, timeout=10,
                                               context=self.context_in(state, f"{other}/o.pem", f"{other}/o.key"))
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            self.get(stranger)
        stranger.close()

    def context_in(self, state, cert=None, key=None):
        ctx = ssl.create_default_context(cafile=f"{state}/ca.pem")
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(cert, key)
        return ctx

    def make_pair(self, d, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                "cert.pem", "-subj", f"/CN={cn}", "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1", cwd=d)
        os.chmod(os.path.join(d, "key.pem"), 0o600)

    def test_files_refuse_an_open_key_and_reload_on_sighup(self):
        d = tempfile.mkdtemp(prefix="keel-tls-files-")
        self.addCleanup(shutil.rmtree, d, True)
        self.make_pair(d, "first")
        config = f"  tls: files\n  tls_cert_file: {d}/cert.pem\n  tls_key_file: {d}/key.pem"
        os.chmod(f"{d}/key.pem", 0o644)
        k = self.keel("serve", config=f"token:\n{config}\n")
        status, _, err = k.wait()
        self.assertEqual(status, 1)
        self.assertIn(f"token.tls: cannot serve over TLS: Permissions 0644 for the TLS key '{d}/key.pem' are too open", err)

        os.chmod(f"{d}/key.pem", 0o600)
        k, token = self.serve(config)

        def subject(trusted=None):
            ctx = ssl.create_default_context(cafile=trusted or f"{d}/cert.pem")
            with socket.create_connection(token, timeout=10) as s, ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]

        self.assertEqual(subject(), "first")
        self.make_pair(d, "second")
        k.kill(signal.SIGHUP)
        wait_for(lambda: "Reloaded the TLS certificate" in k.stderr_so_far(), 15, "the reload")
        self.assertEqual(subject(), "second")
        shutil.copy(f"{d}/cert.pem", f"{d}/second.pem")
        with open(f"{d}/cert.pem", "w") as f:
            f.write("not a certificate\n")
        k.kill(signal.SIGHUP)
        wait_for(lambda: "Keeping the previous TLS certificate: Cannot read the TLS certificate" in k.stderr_so_far(), 15,
                 "the refused reload")
        self.assertEqual(subject(f"{d}/second.pem"), "second", "the previous certificate still served")

    def test_metrics_over_tls_and_mutual_tls(self):
        state = tempfile.mkdtemp(prefix="keel-tls-metrics-")
        self.addCleanup(shutil.rmtree, state, True)
        config = f"metrics:\n  tls: self\n  tls_client_ca_file: {state}/ca.pem\n"
        k = self.keel("serve", config=config, env={"KEEL_STATE_DIR": state})
        addr = bound_address(k, "metrics exporter server")
        anonymous = http.client.HTTPSConnection(*addr, timeout=10, context=self.context_in(state))
        anonymous.request("GET", "/metrics")
        r = anonymous.getresponse()
        self.assertEqual(r.status, 401)
        r.read()
        anonymous.close()
        scraper = http.client.HTTPSConnection(*addr, timeout=10,
                                              context=self.context_in(state, f"{state}/cert.pem", f"{state}/key.pem"))
        scraper.request("GET", "/metrics")
        r = scraper.getresponse()
        self.assertEqual(r.status, 200)
        self.assertIn("keel_certificate_expiry_timestamp_seconds", r.read().decode())
        scraper.close()
        wait_for(lambda: "Serving over TLS with the certificate service's credential, client certificates verified by"
                 in k.stderr_so_far(), 15, "the TLS set-up logged")

    def test_stop_with_an_idle_tls_connection_drains(self):
        k, token = self.serve("  tls: self")
        conn = http.client.HTTPSConnection(*token, timeout=10, context=self.context(k))
        self.assertEqual(self.get(conn)[0], 200)
        t0 = time.monotonic()
        k.kill()
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("Stopped token provider server", err)
        conn.close()



class PassedIpv6OnlySocket(KeelTestCase):
    def test_a_tls_server_on_a_passed_ipv6_only_wildcard_socket_is_confirmed_over_ipv6(self):
        # systemd's BindIPv6Only=ipv6-only: the ready check asked https://127.0.0.1, which such a
        # socket never answers, and the start failed after 5 s.
        listener = socket.socket(socket.AF_INET6)
        self.addCleanup(listener.close)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            listener.bind(("::", 0))
        except OSError as e:
            self.skipTest(f"no IPv6 here: {e}")
        listener.listen()
        port = listener.getsockname()[1]
        store = FdStore()
        self.addCleanup(store.close)
        store.kept.append(("token", os.dup(listener.fileno())))
        k = self.keel("serve", config="token:\n  tls: self\n", fdstore=store)
        self.assertIn(f"token provider server[[::]:{port}]", k.ready())
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)

if __name__ == "__main__":
    unittest.main()
