# SPDX-License-Identifier: MIT
"""dns-01 in the ACME flow (certificate.acme.challenges, decision 33) against pebble 2.6, which
validates by asking a real knotd on loopback (-dnsserver) for _acme-challenge.NAME TXT, the records
keel adds there by RFC 2136 updates signed with TSIG: an issuance through dns-01 leaves no record
behind (and a renewal from the refresh task does the same); a wrong TSIG secret falls back to the
next configured type, http-01, and still issues; a wildcard name issues through dns-01; a list that
cannot work is refused at start (exit 78) naming why; and a SIGTERM while the name server has not
served the record yet (a slow propagation) exits 0 at once, the record deleted. A SIGTERM while a
renewal (the refresh task) waits for a name server that has gone silent exits 0 at once too: to
the update, with the deletion at the stop given a second; to the query of the propagation wait,
the record deleted."""

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from httpclient import bound_address, metric, wait_for
from keelrun import KeelTestCase
from knot import ZONE, Knot, write_secret
from pebble import PEBBLE26, Pebble, free_port

# Seconds from SIGTERM to the exit: room for a loaded machine (and the deletion's second at a stop),
# under the 10 s of certificate.acme.dns01.timeout that a wait not cut short would take.
SIGNAL_TO_EXIT_MAX = 6.0

# The names keel asks for; A records only: with -dnsserver pebble asks AAAA first for http-01, and
# keel's responder listens on 127.0.0.1.
ACME_ZONE = ZONE + "@ A 127.0.0.1\n"


def sans(path):
    p = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName"], capture_output=True, text=True,
                       timeout=30)
    return p.stdout


class FrontServer:
    """A name server on loopback TCP in front of knotd: each connection carries one message, which
    _reply() answers (None: no answer, the connection held until it closes). A thread a connection,
    so that one held does not keep the next waiting."""

    def __init__(self, knot_port):
        self.knot_port = knot_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    @staticmethod
    def _read(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    @classmethod
    def _message(cls, c):
        return cls._read(c, int.from_bytes(cls._read(c, 2), "big"))

    def _forward(self, msg):
        """knotd's answer to @msg."""
        with socket.create_connection(("127.0.0.1", self.knot_port), timeout=5) as up:
            up.sendall(len(msg).to_bytes(2, "big") + msg)
            return self._message(up)

    def _handle(self, c):
        with c:
            try:
                c.settimeout(5)
                reply = self._reply(self._message(c))
                if reply is None:
                    self.stopping.wait(30)
                else:
                    c.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                pass

    def _serve(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._handle, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def close(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()


def is_update(msg):
    return (msg[2] >> 3) & 0xF == 5


class LaggingServer(FrontServer):
    """A name server whose answers lag its updates: it passes each UPDATE (opcode 5) on to knotd
    and answers every query itself with no record, as a primary would whose served zone is not
    updated yet. `queries` counts the queries."""

    def __init__(self, knot_port):
        self.queries = 0
        super().__init__(knot_port)

    def _reply(self, msg):
        if is_update(msg):
            return self._forward(msg)
        self.queries += 1
        # The question back, a response (QR, AA), NOERROR, no answer: the record is not served yet.
        return msg[:2] + bytes([0x84, 0x00]) + msg[4:6] + bytes(6) + msg[12:]


class SilencingServer(FrontServer):
    """Passes every message on to knotd until told to go silent for updates and queries
    (`silent = "all"`) or queries only (`"queries"`): it then reads the message and never answers,
    holding the connection until it closes. `held` counts the messages left unanswered."""

    def __init__(self, knot_port):
        self.silent, self.held = "", 0
        super().__init__(knot_port)

    def _reply(self, msg):
        if self.silent == "all" or (self.silent == "queries" and not is_update(msg)):
            self.held += 1
            return None
        return self._forward(msg)


@unittest.skipUnless(PEBBLE26, "KEEL_PEBBLE26 is not set: run through ctest (the fixture pebble26 fetches it)")
class AcmeDns01Test(KeelTestCase):
    @classmethod
    def setUpClass(cls):
        cls.knot = Knot(zone=ACME_ZONE)
        cls.secret = os.path.join(cls.knot.tmp, "sha256.secret")
        write_secret(cls.secret, cls.knot.secrets["sha256"])
        cls.wrong_secret = os.path.join(cls.knot.tmp, "wrong.secret")
        write_secret(cls.wrong_secret, base64.b64encode(os.urandom(32)).decode())

    @classmethod
    def tearDownClass(cls):
        cls.knot.stop()

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="keel-acme-dns01-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.health_port = free_port()

    def pebble(self):
        p = Pebble(self.health_port, binary=PEBBLE26, args=("-dnsserver", f"127.0.0.1:{self.knot.port}"))
        self.addCleanup(p.close)
        return p

    def start(self, pebble, names, challenges, secret=None, dns_port=None, extra="", acme_extra=""):
        config = f"""
certificate:
  provider: acme
  dns_names: [{", ".join(f'"{n}"' for n in names)}]
{extra}
  acme:
    directory_url: {pebble.directory_url}
    ca_file: {pebble.ca_file}
    challenges: [{", ".join(challenges)}]
{acme_extra}
    dns01:
      server: 127.0.0.1:{dns_port or self.knot.port}
      zone: example.test
      tsig_name: keel-sha256.
      tsig_secret_file: {secret or self.secret}
      propagation_timeout: 20s
"""
        env = {"KEEL_STATE_DIR": self.state, "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.health_port}",
               "no_proxy": "127.0.0.1,localhost"}
        return self.keel("serve", config=config, env=env)

    def challenge_records(self):
        return [n for n in ("_acme-challenge.example.test.", "_acme-challenge.www.example.test.")
                if self.knot.dig("TXT", n).strip()]

    def test_issue_through_dns01_and_leave_no_record(self):
        pebble = self.pebble()
        # refresh_interval's schedule, not pebble 2.6's renewal window (days away).
        k = self.start(pebble, ["www.example.test"], ["dns-01"], extra="  refresh_interval: 3s",
                       acme_extra="    renewal_info: false")
        k.ready(timeout=60)
        self.assertEqual(pebble.issued(), 1)
        self.assertIn("DNS:www.example.test", sans(os.path.join(self.state, "cert.pem")))
        err = k.stderr_so_far()
        self.assertIn("Presented the ACME dns-01 challenge of www.example.test", err)
        self.assertRegex(err, r"dns-01: Deleted TXT _acme-challenge\.www\.example\.test\. \"\S+\" in zone example\.test\.")
        self.assertEqual(self.challenge_records(), [])
        # A renewal, from the refresh task: through dns-01 again, cleaned up again. One renewal may
        # present no challenge (pebble reuses a valid authorization 1 % of the time, even at
        # PEBBLE_AUTHZREUSE=0): the next one does.
        presented = "Presented the ACME dns-01 challenge of www.example.test"
        wait_for(lambda: k.stderr_so_far().count(presented) >= 2, 60, "a renewal through dns-01")
        wait_for(lambda: "Refreshed key" in k.stderr_so_far().split(presented, 2)[2], 30, "its certificate")
        self.assertGreaterEqual(pebble.issued(), 2)
        metrics = bound_address(k, "metrics exporter server")
        self.assertGreaterEqual(metric(metrics, "keel_certificate_acme_validations_total", '{type="dns-01",result="valid"}'), 2)
        self.assertEqual(metric(metrics, "keel_certificate_acme_validations_total", '{type="http-01",result="valid"}'), 0)
        wait_for(lambda: k.stderr_so_far().count("dns-01: Deleted TXT") >= 2, 15, "the renewal's record deleted")
        self.assertEqual(self.challenge_records(), [])
        k.kill()
        self.assertEqual(k.wait()[0], 0)

    def test_a_refused_update_falls_back_to_http01(self):
        pebble = self.pebble()
        k = self.start(pebble, ["www.example.test"], ["dns-01", "http-01"], secret=self.wrong_secret)
        k.ready(timeout=60)
        self.assertEqual(pebble.issued(), 1)
        err = k.stderr_so_far()
        self.assertRegex(err, r"WARN.*dns-01: 127\.0\.0\.1:\d+ refused to add TXT _acme-challenge\.www\.example\.test\. in zone "
                              r"example\.test\.: NOTAUTH, TSIG error BADSIG .*; falling back to http-01 for www\.example\.test")
        self.assertIn("Presented the ACME http-01 challenge of www.example.test", err)
        self.assertIn("Answering the ACME http-01 challenge", err)
        self.assertNotIn("ignoring", err, "nothing was added, so nothing to delete")
        self.assertEqual(self.challenge_records(), [])
        metrics = bound_address(k, "metrics exporter server")
        self.assertEqual(metric(metrics, "keel_certificate_acme_validations_total", '{type="dns-01",result="error"}'), 1)
        self.assertEqual(metric(metrics, "keel_certificate_acme_validations_total", '{type="http-01",result="valid"}'), 1)

    def test_a_wildcard_issues_through_dns01(self):
        # Two authorizations, one TXT name: each record is deleted alone.
        pebble = self.pebble()
        k = self.start(pebble, ["*.example.test", "example.test"], ["http-01", "dns-01"])
        k.ready(timeout=60)
        self.assertEqual(pebble.issued(), 1)
        names = sans(os.path.join(self.state, "cert.pem"))
        self.assertIn("DNS:*.example.test", names)
        self.assertIn("DNS:example.test", names)
        err = k.stderr_so_far()
        self.assertIn("Presented the ACME dns-01 challenge of *.example.test", err)
        self.assertIn("Presented the ACME http-01 challenge of example.test", err, "http-01 first where it is offered")
        self.assertEqual(self.challenge_records(), [])

    def test_a_list_that_cannot_work_is_refused_at_start(self):
        pebble = self.pebble()
        cases = [
            (["*.example.test"], ["http-01"], {}, r"the wildcard '\*\.example\.test' can only be validated through dns-01"),
            (["127.0.0.1"], ["dns-01"], {"secret": None}, r"the IP address '127\.0\.0\.1' cannot be validated through dns-01"),
            (["www.example.test"], ["dns-01"], {"secret": "/nonexistent/secret"},
             r"certificate\.acme\.dns01\.tsig_secret_file: cannot read '/nonexistent/secret'"),
        ]
        for names, challenges, kw, message in cases:
            status, _, err = self.start(pebble, names, challenges, **kw).wait(timeout=30)
            self.assertEqual(status, 78, err)
            self.assertRegex(err, message)
        self.assertEqual(pebble.issued(), 0)

    def test_sigterm_during_a_slow_propagation_exits_at_once(self):
        lagging = LaggingServer(self.knot.port)
        self.addCleanup(lagging.close)
        pebble = self.pebble()
        k = self.start(pebble, ["www.example.test"], ["dns-01"], dns_port=lagging.port)
        wait_for(lambda: lagging.queries >= 2, 30, "keel waiting for the record to be served")
        self.assertEqual(self.challenge_records(), ["_acme-challenge.www.example.test."], "added, not served yet")
        t0 = time.monotonic()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait(timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 0, err)
        self.assertLess(elapsed, SIGNAL_TO_EXIT_MAX, f"{elapsed:.2f}s from SIGTERM to exit; stderr:\n{err}")
        self.assertRegex(err, r"Cancelled certificate provider start: dns-01: stopped while waiting for 127\.0\.0\.1:\d+ to "
                              r"answer TXT _acme-challenge\.www\.example\.test\.")
        self.assertNotIn("ignoring", err)
        self.assertFalse(any("READY=1" in m for m in k.messages()), k.messages())
        self.assertEqual(self.challenge_records(), [], "the record is deleted at the stop too")
        self.assertEqual(pebble.issued(), 0)
        print(f"\n  SIGTERM to exit: {elapsed * 1000:.0f} ms", flush=True)

    def sigterm_during_a_renewal(self, silent):
        """keel issues through a SilencingServer, which goes @silent before the first renewal; a
        SIGTERM once keel waits for it. Returns the seconds to the exit and keel's stderr."""
        server = SilencingServer(self.knot.port)
        self.addCleanup(server.close)
        pebble = self.pebble()
        # certificate.acme.dns01.timeout stays at its 10 s: each exchange would wait that long.
        k = self.start(pebble, ["www.example.test"], ["dns-01"], dns_port=server.port, extra="  refresh_interval: 2s",
                       acme_extra="    renewal_info: false")
        k.ready(timeout=60)
        self.assertEqual(pebble.issued(), 1)
        server.silent = silent
        wait_for(lambda: server.held >= 1, 30, "the renewal waiting for the silent name server")
        time.sleep(0.3)  # well inside the exchange
        # A renewal before the silence may have needed no challenge and been issued: pebble reuses
        # a valid authorization one time in a hundred even at PEBBLE_AUTHZREUSE=0 (wfe.go:
        # `rand.Intn(100) > authzReusePercent`). The renewal the stop ends is the one waiting.
        issued = pebble.issued()
        t0 = time.monotonic()
        k.kill(signal.SIGTERM)
        status, _, err = k.wait(timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 0, err)
        self.assertLess(elapsed, SIGNAL_TO_EXIT_MAX, f"{elapsed:.2f}s from SIGTERM to exit; stderr:\n{err}")
        self.assertNotIn("Refreshed key", err[err.index("Received signal"):])
        self.assertNotIn("Failed to refresh", err, "a renewal the stop cut short is no failure")
        self.assertEqual(pebble.issued(), issued)
        print(f"\n  SIGTERM to exit ({silent} silent): {elapsed * 1000:.0f} ms", flush=True)
        return elapsed, err

    def test_sigterm_while_a_renewal_waits_for_a_silent_update_exits_at_once(self):
        elapsed, err = self.sigterm_during_a_renewal("all")
        self.assertRegex(err, r"INFO .*Cancelled the certificate refresh at the stop: dns-01: cannot add TXT "
                              r"_acme-challenge\.www\.example\.test\. in zone example\.test\. at 127\.0\.0\.1:\d+: stopped")
        # The update may have been applied unanswered: its deletion is tried, for a second only.
        self.assertRegex(err, r"dns-01: cannot delete TXT _acme-challenge\.www\.example\.test\. in zone example\.test\. at "
                              r"127\.0\.0\.1:\d+: no reply within 1s \(the bound of a deletion at a stop\), ignoring")
        self.assertGreater(elapsed, 0.9, "the deletion had its second")
        self.assertEqual(self.challenge_records(), [], "the silent server passed nothing on")

    def test_sigterm_while_a_renewal_waits_for_the_record_to_be_served_exits_at_once(self):
        elapsed, err = self.sigterm_during_a_renewal("queries")
        self.assertRegex(err, r"INFO .*Cancelled the certificate refresh at the stop: dns-01: stopped while waiting for "
                              r"127\.0\.0\.1:\d+ to answer TXT _acme-challenge\.www\.example\.test\.")
        self.assertEqual(err.count("dns-01: Deleted TXT"), 2, "the renewal's record deleted at the stop too")
        self.assertNotIn("ignoring", err)
        self.assertEqual(self.challenge_records(), [])


if __name__ == "__main__":
    unittest.main()
