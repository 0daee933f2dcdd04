# SPDX-License-Identifier: MIT
"""What a slow client may hold (issue 14): a request's head must arrive within
http.request_header_timeout (an idle keep-alive connection waits for its next one no longer), a
body within http.request_body_timeout of its head, a client address holds at most
http.connection_limit_per_client connections, and near the connection limit a new connection
takes the place of the one that has waited longest for a head — so that probes are answered, as
the kubelet's timeoutSeconds: 1 wants, while a thousand slow clients hold every other place."""

import http.client
import re
import resource
import signal
import socket
import time
import unittest

from httpclient import bound_address, get
from keelrun import KeelTestCase


def closed_by_server(sock, trickle=b"", every=0.25, within=5.0):
    """Sends @trickle a byte at a time until the server closes the connection; the seconds it took,
    or None when it was still open after @within."""
    started = time.monotonic()
    sock.settimeout(every)
    i = 0
    while time.monotonic() - started < within:
        try:
            if trickle:
                sock.send(trickle[i % len(trickle):i % len(trickle) + 1])
                i += 1
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    return None


def cuts(metrics, service, reason):
    body = get(metrics, "/metrics")[2]
    m = re.search(rf'(?m)^keel_http_connections_cut_total{{service="{service}",reason="{reason}"}} (\d+)$', body)
    return int(m.group(1)) if m else 0


class Deadlines(KeelTestCase):
    def setUp(self):
        self.k = self.keel("serve", env={"KEEL_HTTP_REQUEST_HEADER_TIMEOUT": "1s", "KEEL_HTTP_REQUEST_BODY_TIMEOUT": "1s",
                                         "KEEL_HTTP_CONNECTION_TIMEOUT": "30s"})
        self.health = bound_address(self.k)
        self.metrics = bound_address(self.k, "metrics exporter server")

    def tearDown(self):
        self.k.kill(signal.SIGTERM)
        status, _, err = self.k.wait()
        self.assertEqual(status, 0, err)

    def connect(self):
        s = socket.create_connection(self.health, timeout=5)
        self.addCleanup(s.close)
        return s

    def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout(self):
        s = self.connect()
        s.sendall(b"GET /livez HTTP/1.1\r\n")
        took = closed_by_server(s, trickle=b"X-Slow: yes\r\n")
        self.assertIsNotNone(took, "a byte every 250 ms kept the connection open past 5 s")
        self.assertGreater(took, 0.5, "not before the timeout")
        self.assertEqual(cuts(self.metrics, "healthcheck", "header_timeout"), 1)

    def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_body_timeout(self):
        s = self.connect()
        s.sendall(b"POST /livez HTTP/1.1\r\nHost: keel\r\nContent-Length: 1000\r\n\r\n")
        self.assertIsNotNone(closed_by_server(s, trickle=b"x"), "the body kept the connection open past 5 s")
        self.assertEqual(cuts(self.metrics, "healthcheck", "body_timeout"), 1)

    def test_an_idle_keep_alive_connection_waits_no_longer_for_its_next_request(self):
        c = http.client.HTTPConnection(*self.health, timeout=5)
        self.addCleanup(c.close)
        c.request("GET", "/livez")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"ok"))
        self.assertIsNotNone(closed_by_server(c.sock), "an idle keep-alive connection outlived the header timeout")
        self.assertEqual(cuts(self.metrics, "healthcheck", "header_timeout"), 1)

    def test_a_prompt_request_is_not_cut(self):
        c = http.client.HTTPConnection(*self.health, timeout=5)
        self.addCleanup(c.close)
        for _ in range(3):
            c.request("GET", "/livez")
            self.assertEqual(c.getresponse().read(), b"ok")
            time.sleep(0.2)  # each next request well within the header timeout (1 s)
        self.assertEqual(cuts(self.metrics, "healthcheck", "header_timeout"), 0)


class PerClient(KeelTestCase):
    def test_a_client_address_holds_at_most_its_limit(self):
        k = self.keel("serve", env={"KEEL_HTTP_CONNECTION_LIMIT_PER_CLIENT": "2"})
        health = bound_address(k)
        # Two kept-alive connections, each shown served; the ready check's own connection may
        # still count for a moment, so one refused then is opened again.
        held, deadline = [], time.monotonic() + 10
        while len(held) < 2 and time.monotonic() < deadline:
            c = http.client.HTTPConnection(*health, timeout=5)
            self.addCleanup(c.close)
            try:
                c.request("GET", "/livez")
                if c.getresponse().read() == b"ok":
                    held.append(c.sock)
                    continue
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        self.assertEqual(len(held), 2, "two connections of one address were not served")
        third = socket.create_connection(health, timeout=5)
        self.addCleanup(third.close)
        self.assertIsNotNone(closed_by_server(third, within=3.0), "a third connection from the same address was kept")
        held[0].close()
        # The server's thread sees that close a moment later: until then a new connection is over
        # the limit and closed.
        status, deadline = None, time.monotonic() + 5
        while status != 200 and time.monotonic() < deadline:
            try:
                status = get(health, "/livez", timeout=2)[0]
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self.assertEqual(status, 200, "a place freed is taken again")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)


class PerClientSaid(KeelTestCase):
    def test_connections_past_the_client_limit_are_counted_and_said_at_most_every_10_s(self):
        # They were closed without a word: an operator saw clients fail and nothing in the log.
        k = self.keel("serve", env={"KEEL_HTTP_CONNECTION_LIMIT_PER_CLIENT": "1"})
        health = bound_address(k)
        metrics = bound_address(k, "metrics exporter server")
        held, deadline = None, time.monotonic() + 10
        while not held and time.monotonic() < deadline:  # the ready check's connection may count a moment
            c = http.client.HTTPConnection(*health, timeout=5)
            self.addCleanup(c.close)
            try:
                c.request("GET", "/livez")
                if c.getresponse().read() == b"ok":
                    held = c
                    continue
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        self.assertIsNotNone(held, "no connection served")
        def counted():
            # The metrics server has the limit too: its previous scrape's connection may not have
            # closed yet on its side when the next one comes.
            for _ in range(50):
                try:
                    return cuts(metrics, "healthcheck", "client_limit")
                except (OSError, http.client.HTTPException):
                    time.sleep(0.1)
            self.fail("no scrape of the metrics server")

        before = counted()
        for _ in range(3):
            s = socket.create_connection(health, timeout=5)
            self.addCleanup(s.close)
            self.assertIsNotNone(closed_by_server(s, within=3.0), "a second connection from the same address was kept")
        self.assertEqual(counted(), before + 3)
        said = re.findall(r"WARN +Closed a connection from 127\.0\.0\.1:\d+ to health check server\[127\.0\.0\.1:\d+\]: its "
                          r"address holds http\.connection_limit_per_client 1 already", k.stderr_so_far())
        self.assertEqual(len(said), 1, k.stderr_so_far())
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)

class SlowClientFlood(KeelTestCase):
    SLOW = 1200
    LIMIT = 1000

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < self.SLOW + 200:
            self.skipTest(f"RLIMIT_NOFILE hard limit {hard} is below the {self.SLOW + 200} descriptors this needs")
        wanted = self.SLOW + 200 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def test_probes_are_answered_while_slow_clients_hold_every_place(self):
        k = self.keel("serve", env={"KEEL_HTTP_CONNECTION_LIMIT": str(self.LIMIT), "KEEL_SHUTDOWN_TIMEOUT": "10s",
                                    "KEEL_HTTP_REQUEST_HEADER_TIMEOUT": "60s"})
        health = bound_address(k)
        metrics = bound_address(k, "metrics exporter server")
        slow = []
        try:
            for _ in range(self.SLOW):  # each sends half a head and nothing more
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(health)
                slow.append(s)
            time.sleep(1.0)
            for s in slow:
                try:
                    s.send(b"GET /livez HTTP/1.1\r\n")
                except OSError:
                    pass  # not accepted yet, or already evicted
            time.sleep(1.0)
            for i in range(20):  # the kubelet: timeoutSeconds 1, a new connection each time
                c = http.client.HTTPConnection(*health, timeout=1.0)
                try:
                    c.request("GET", "/readyz")
                    r = c.getresponse()
                    self.assertEqual((r.status, r.read()), (200, b"ok"), f"probe {i}")
                finally:
                    c.close()
            self.assertGreaterEqual(cuts(metrics, "healthcheck", "evicted"), 20)
            k.kill(signal.SIGTERM)
            status, _, err = k.wait(timeout=30)
            self.assertEqual(status, 0, "the drain is not held up by the slow clients:\n" + err[-2000:])
        finally:
            for s in slow:
                s.close()


if __name__ == "__main__":
    unittest.main()
