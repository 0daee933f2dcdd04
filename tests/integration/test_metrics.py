# SPDX-License-Identifier: MIT
"""The metrics service through the real binary: the exposition passes promtool and carries the
framework's metrics; a port in use fails its start and skips the services after it."""

import os
import http.client
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, get, wait_for
from keelrun import KeelTestCase, run

REQUIRED = ("keel_build_info", "keel_lifecycle_event_duration_seconds", "keel_shutdown_duration_seconds",
            "keel_work_in_flight", "keel_work_started_total", "keel_work_failed_total", "keel_work_rejected_total",
            "keel_http_requests_total", "keel_refresh_failures_total", "process_resident_memory_bytes",
            "process_start_time_seconds", "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
            "process_threads")


class Exposition(KeelTestCase):
    def setUp(self):
        self.k = self.keel("serve")
        self.addr = bound_address(self.k, "metrics exporter server")
        self.health = bound_address(self.k, "health check server")

    def tearDown(self):
        self.k.kill(signal.SIGTERM)
        status, _, err = self.k.wait()
        self.assertEqual(status, 0, err)
        self.assertLess(err.index("Stopped health check server"), err.index("Stopped metrics exporter server"),
                        "stop runs in reverse start order")

    def scrape(self):
        status, headers, body = get(self.addr, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return body

    @unittest.skipUnless(shutil.which("promtool"), "promtool (Debian package prometheus) is not installed")
    def test_promtool_accepts_the_exposition(self):
        p = subprocess.run(["promtool", "check", "metrics"], input=self.scrape(), capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_the_framework_metrics_are_there(self):
        body = self.scrape()
        for name in REQUIRED:
            self.assertRegex(body, rf"(?m)^# TYPE {name} ", name)
        self.assertIn('keel_lifecycle_event_duration_seconds{event="start",phase="during"}', body)
        # The ready check's request ends on the server's thread just after its answer is sent, which
        # a loaded machine may delay past READY=1: in flight drops to 0, soon.
        in_flight = r'(?m)^keel_work_in_flight\{component="healthcheck"\} 0$'
        deadline = time.monotonic() + 5
        while not re.search(in_flight, body) and time.monotonic() < deadline:
            time.sleep(0.02)
            body = self.scrape()
        self.assertRegex(body, in_flight)

    def test_requests_are_counted_by_service_and_code(self):
        for _ in range(3):
            self.assertEqual(get(self.health, "/livez")[0], 200)
        self.assertEqual(get(self.health, "/nope")[0], 404)
        # A request is counted once its answer is sent, which the client may read first.
        not_found = r'(?m)^keel_http_requests_total\{service="healthcheck",code="404"\} [1-9]'
        found = r'(?m)^keel_http_requests_total\{service="healthcheck",code="200"\} (\d+)$'

        def counted(body):
            ok = re.search(found, body)
            return ok and int(ok.group(1)) >= 3 and re.search(not_found, body)

        body, deadline = self.scrape(), time.monotonic() + 5
        while not counted(body) and time.monotonic() < deadline:
            time.sleep(0.02)
            body = self.scrape()
        ok = re.search(found, body)
        self.assertIsNotNone(ok, body)
        self.assertGreaterEqual(int(ok.group(1)), 3)
        self.assertRegex(body, not_found)

    def test_request_durations_by_server_and_route_with_bounded_series(self):
        for _ in range(3):
            self.assertEqual(get(self.health, "/livez")[0], 200)
        for i in range(40):
            self.assertEqual(get(self.health, f"/nope-{i}")[0], 404)
        livez = r'(?m)^keel_http_request_duration_seconds_count\{service="healthcheck",route="/livez"\} (\d+)$'
        unmatched = r'(?m)^keel_http_request_duration_seconds_count\{service="healthcheck",route="unmatched"\} (\d+)$'

        def observed(body):
            count, other = re.search(livez, body), re.search(unmatched, body)
            return count and other and int(count.group(1)) >= 3 and int(other.group(1)) >= 40

        # Observed once the answer is handed to the connection: the client may read the last ones first.
        body, deadline = self.scrape(), time.monotonic() + 5
        while not observed(body) and time.monotonic() < deadline:
            time.sleep(0.02)
            body = self.scrape()
        count = re.search(livez, body)
        self.assertIsNotNone(count, body)
        self.assertGreaterEqual(int(count.group(1)), 3)
        self.assertRegex(body, r'(?m)^keel_http_request_duration_seconds_bucket\{service="healthcheck",route="/livez",le="\+Inf"\} [3-9]')
        other = re.search(unmatched, body)
        self.assertIsNotNone(other, body)
        self.assertGreaterEqual(int(other.group(1)), 40, "every 404 in one series")
        routes = set(re.findall(r'keel_http_request_duration_seconds_count\{service="healthcheck",route="([^"]*)"\}', body))
        self.assertLessEqual(len(routes), 18, routes)

    def test_refusals_of_made_up_paths_take_no_series_of_their_own(self):
        for i in range(20):  # 405s: the health check server refuses any POST before its path
            status = http.client.HTTPConnection(*self.health, timeout=5)
            status.request("POST", f"/junk-{i}", body=b"")
            self.assertEqual(status.getresponse().status, 405)
            status.close()
        self.assertEqual(get(self.health, "/healthz")[0], 200)

        def routes():
            return set(re.findall(r'keel_http_request_duration_seconds_count\{service="healthcheck",route="([^"]*)"\}',
                                  self.scrape()))

        # Observed once the answer is handed to the connection: the client may read it first.
        deadline = time.monotonic() + 5
        while "/healthz" not in routes() and time.monotonic() < deadline:
            time.sleep(0.02)
        routes = routes()
        self.assertIn("/healthz", routes, "a served path still gets its series")
        self.assertIn("unmatched", routes)
        self.assertFalse([r for r in routes if r.startswith("/junk")], routes)

    def test_a_refusal_is_unmatched_until_its_path_was_once_served(self):
        def post_livez():
            c = http.client.HTTPConnection(*self.health, timeout=5)
            c.request("POST", "/livez", body=b"")
            self.assertEqual(c.getresponse().status, 405)
            c.close()

        def series(body, route):
            count = re.search(rf'(?m)^keel_http_request_duration_seconds_count\{{service="healthcheck",route="{route}"\}} (\d+)$', body)
            return int(count.group(1)) if count else 0

        post_livez()
        # Observed once the answer is handed to the connection: the client may read it first.
        body = wait_for(lambda: (lambda b: series(b, "unmatched") >= 1 and b)(self.scrape()), 5, "the 405 observed")
        self.assertEqual(series(body, "/livez"), 0, "no series for a path not served yet")
        self.assertEqual(get(self.health, "/livez")[0], 200)
        post_livez()
        wait_for(lambda: series(self.scrape(), "/livez") == 2, 5, "the GET and the second 405 on /livez")

    def request(self, method, path):
        c = http.client.HTTPConnection(*self.addr, timeout=5)
        try:
            c.request(method, path, body=b"" if method in ("POST", "PUT") else None)
            r = c.getresponse()
            return r.status, r.getheader("Allow"), r.read()
        finally:
            c.close()

    def test_only_get_and_head_are_answered(self):
        self.scrape()  # /metrics served once: its refusals are then on its own route
        status, _, body = self.request("HEAD", "/metrics")
        self.assertEqual((status, body), (200, b""))
        for method in ("POST", "PUT", "DELETE"):
            status, allow, body = self.request(method, "/metrics")
            self.assertEqual((status, allow), (405, "GET, HEAD"), method)
            self.assertNotIn(b"keel_build_info", body)
        refused = r'(?m)^keel_http_requests_total\{service="metrics",code="405"\} 3$'
        route = r'(?m)^keel_http_request_duration_seconds_count\{service="metrics",route="/metrics"\} (\d+)$'

        def counted():
            body = self.scrape()
            served = re.search(route, body)
            return re.search(refused, body) and served and int(served.group(1)) >= 5

        # Observed once the answer is handed to the connection: the client may read it first. The
        # route holds the first GET, the HEAD and the three 405s.
        wait_for(counted, 5, "three 405s counted on the route /metrics")

    def test_other_paths_are_404(self):
        self.assertEqual(get(self.addr, "/")[0], 404)


class ShutdownDuration(KeelTestCase):
    """A process cannot be scraped after its own shutdown: the next `serve` exports it."""

    def serve_and_stop(self, state):
        k = self.keel("serve", env={"KEEL_STATE_DIR": state})
        body = get(bound_address(k, "metrics exporter server"), "/metrics")[2]
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return re.search(r"(?m)^keel_shutdown_duration_seconds_count (\d+)$", body), \
            re.search(r"(?m)^keel_shutdown_duration_seconds_sum (\S+)$", body)

    def test_the_last_shutdown_is_observed_once_by_the_next_serve(self):
        state = tempfile.mkdtemp(prefix="keel-state-")
        self.addCleanup(shutil.rmtree, state, True)
        count, _ = self.serve_and_stop(state)
        self.assertEqual(count.group(1), "0", "nothing was recorded before the first life")
        self.assertTrue(os.path.exists(os.path.join(state, "last-shutdown")))
        count, total = self.serve_and_stop(state)
        self.assertEqual(count.group(1), "1", "the first life's shutdown")
        self.assertGreater(float(total.group(1)), 0)
        self.assertLess(float(total.group(1)), 5)
        os.unlink(os.path.join(state, "last-shutdown"))
        with open(os.path.join(state, "last-shutdown"), "w") as f:
            f.write("garbage\n")
        k = self.keel("serve", env={"KEEL_STATE_DIR": state})
        body = get(bound_address(k, "metrics exporter server"), "/metrics")[2]
        self.assertRegex(body, r"(?m)^keel_shutdown_duration_seconds_count 0$")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Failed to read the last shutdown duration", err)

    def test_a_failed_start_and_init_leave_the_last_shutdown_to_the_next_serve(self):
        state = tempfile.mkdtemp(prefix="keel-state-")
        self.addCleanup(shutil.rmtree, state, True)
        record = os.path.join(state, "last-shutdown")
        with open(record, "w") as f:
            f.write("1.500000\n")
        # Under Restart=on-failure: a start that fails after the exporter started, then one that
        # fails before it (its port taken), then `init`.
        env = {"KEEL_STATE_DIR": state}
        status, _, err, _ = run("serve", env=dict(env, KEEL_FAULT="error@in:healthcheck.start"))
        self.assertEqual(status, 1, err)
        self.assertIn("Starting metrics exporter server", err)
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        status, _, err, _ = run("serve", env=dict(env, KEEL_METRICS_ADDRESS="127.0.0.1:%d" % squatter.getsockname()[1]))
        self.assertEqual(status, 1, err)
        status, _, err, _ = run("init", env=env)
        self.assertEqual(status, 0, err)
        self.assertTrue(os.path.exists(record), "kept for a serve that exports it")

        k = self.keel("serve", env=env)
        body = get(bound_address(k, "metrics exporter server"), "/metrics")[2]
        self.assertRegex(body, r"(?m)^keel_shutdown_duration_seconds_count 1$")
        self.assertRegex(body, r"(?m)^keel_shutdown_duration_seconds_sum 1.5$")
        wait_for(lambda: not os.path.exists(record), 5, "the record consumed once ready")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)


class PortInUse(KeelTestCase):
    def test_metrics_port_in_use_skips_the_health_check_and_exits_1(self):
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        status, _, err, msgs = run("serve", env={"KEEL_METRICS_ADDRESS": f"127.0.0.1:{port}"})
        self.assertEqual(status, 1, err)
        self.assertIn("Address already in use", err)
        self.assertIn("Skipped health check start", err)
        self.assertNotIn("Starting health check server", err)
        self.assertIn("Initiating shutdown, cause: start failed", err)
        self.assertFalse(any(m.startswith("READY=1") for m in msgs))


if __name__ == "__main__":
    unittest.main()
