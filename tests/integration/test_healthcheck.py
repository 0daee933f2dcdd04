# SPDX-License-Identifier: MIT
"""The health check service and the HTTP layer under it: probes, readiness around shutdown, a
drain that loses no request, hostile clients, a port already in use."""

import os
import signal
import socket
import threading
import time
import unittest
import http.client

from httpclient import bound_address, get
from keelrun import KeelTestCase, run


class Probes(KeelTestCase):
    def setUp(self):
        self.k = self.keel("serve")
        self.addr = bound_address(self.k)

    def tearDown(self):
        self.k.kill(signal.SIGTERM)
        status, _, err = self.k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Stopped health check server", err)

    def test_kubernetes_probes_answer_ok(self):
        for path in ("/livez", "/readyz", "/healthz"):
            with self.subTest(path=path):
                status, headers, body = get(self.addr, path)
                self.assertEqual((status, body), (200, "ok"))
                self.assertTrue(headers["content-type"].startswith("text/plain"))

    def test_verbose_lists_the_checks(self):
        status, _, body = get(self.addr, "/readyz?verbose")
        self.assertEqual(status, 200)
        self.assertEqual(body, "[+]ping ok\nreadyz check passed\n")

    def test_unknown_path_is_404(self):
        self.assertEqual(get(self.addr, "/nope")[0], 404)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        c = http.client.HTTPConnection(*self.addr, timeout=10)
        self.addCleanup(c.close)
        for _ in range(20):
            c.request("GET", "/livez")
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"ok"))
            self.assertNotEqual(r.getheader("Connection"), "close")
        self.assertIsNotNone(c.sock, "the connection was closed between requests")


class Readiness(KeelTestCase):
    def test_ready_only_between_ready_and_stopping(self):
        k = self.keel("serve", "--set", "shutdown.delay=1s")
        addr = bound_address(k)
        self.assertEqual(get(addr, "/readyz")[0], 200)
        k.kill(signal.SIGTERM)
        k.wait_notify("STOPPING=1")
        # During the shutdown delay the listener is still open and readiness says so.
        status, headers, body = get(addr, "/readyz")
        self.assertEqual((status, body), (503, '{"status":"shutting_down"}'))
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(get(addr, "/livez")[0], 200, "liveness stays up while draining")
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)


class Drain(KeelTestCase):
    N = 200

    def test_held_requests_on_keep_alive_connections_all_complete(self):
        k = self.keel("--log-level", "debug", "serve", "--set", "http.connection_limit=1024",
                      env={"KEEL_FAULT": "sleep=300@in:healthcheck.request"})
        addr = bound_address(k)
        conns = [http.client.HTTPConnection(*addr, timeout=20) for _ in range(self.N)]
        for c in conns:
            self.addCleanup(c.close)
        results = [None] * self.N
        barrier = threading.Barrier(self.N + 1, timeout=20)

        def client(i):
            c = conns[i]
            c.request("GET", "/livez")  # first request: makes the connection a kept-alive one
            r = c.getresponse()
            first = (r.status, r.read())
            barrier.wait()
            c.request("GET", "/livez")  # held 300 ms by the fault; SIGTERM lands meanwhile
            r = c.getresponse()
            results[i] = (first, (r.status, r.read()), r.getheader("Connection"))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.N)]
        for t in threads:
            t.start()
        barrier.wait()
        time.sleep(0.1)
        k.kill(signal.SIGTERM)
        for t in threads:
            t.join(timeout=30)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        for i, res in enumerate(results):
            self.assertIsNotNone(res, f"request {i} never completed; server log:\n{err}")
            first, second, connection = res
            self.assertEqual(first, (200, b"ok"))
            self.assertEqual(second, (200, b"ok"), f"request {i} was lost in the drain")
            self.assertEqual(connection, "close", "answers during a drain end their connection")


class HostileClients(KeelTestCase):
    def test_a_half_sent_request_is_cut_at_the_timeout(self):
        k = self.keel("serve", "--set", "http.connection_timeout=1s")
        addr = bound_address(k)
        s = socket.create_connection(addr, timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /livez HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        self.assertEqual(s.recv(4096), b"", "the server should close a stalled connection")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(get(addr, "/livez")[0], 200, "the server still answers others")
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)

    def test_an_oversized_header_gets_431_or_400_and_the_server_lives(self):
        k = self.keel("serve")
        addr = bound_address(k)
        status = get(addr, "/livez", headers={"X-Big": "a" * (64 * 1024)})[0]
        self.assertIn(status, (431, 400))
        self.assertEqual(get(addr, "/livez")[0], 200)
        k.kill(signal.SIGTERM)
        self.assertEqual(k.wait()[0], 0)


class PortInUse(KeelTestCase):
    def test_start_fails_with_address_in_use_and_exits_1(self):
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        status, _, err, msgs = run("serve", env={"KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{port}"})
        self.assertEqual(status, 1, err)
        self.assertIn("Error starting health check: Failed to bind health check server to '127.0.0.1:"
                      f"{port}': Address already in use", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs))


if __name__ == "__main__":
    unittest.main()
