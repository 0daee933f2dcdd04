# SPDX-License-Identifier: MIT
"""SIGHUP re-reads every configuration layer: what can change live changes, what needs a
restart is refused with a message while the rest applies, and a refresh that fails keeps the
old configuration in force and the servers serving."""

import json
import re
import signal
import time

from httpclient import bound_address, get, sigterm_under_a_held_request
from keelrun import KeelTestCase, run


class Refresh(KeelTestCase):
    def start(self, config):
        k = self.keel("serve", config=config)
        k.ready()
        self.health = bound_address(k, "health check server")
        self.metrics = bound_address(k, "metrics exporter server")
        return k

    def reload(self, k, config):
        k.write("keel.yaml", config)
        before = len(k.messages())
        k.kill(signal.SIGHUP)
        k.wait_notify("RELOADING=1", start=before)
        return k.wait_notify("READY=1", start=before + 1)

    def wait_log(self, k, text, timeout=10):
        deadline = time.monotonic() + timeout
        while text not in k.stderr_so_far() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn(text, k.stderr_so_far())

    def refresh_failures(self):
        body = get(self.metrics, "/metrics")[2]
        return int(re.search(r"(?m)^keel_refresh_failures_total (\d+)$", body).group(1))

    def stop(self, k):
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        return err

    def test_a_live_key_changes_and_a_restart_key_is_refused_while_the_rest_applies(self):
        k = self.start("log:\n  level: info\n")
        self.reload(k, "log:\n  level: debug\nhttp:\n  connection_limit: 10\n")
        self.wait_log(k, "Changing http.connection_limit needs a restart; keeping the running value")
        # The live key took effect: requests are logged at debug level from now on.
        self.assertEqual(get(self.health, "/livez")[0], 200)
        self.wait_log(k, "GET /livez from 127.0.0.1")
        self.assertEqual(self.refresh_failures(), 0)
        self.stop(k)

    def test_a_shutdown_delay_not_shorter_than_the_timeout_is_refused_at_start_and_cut_after_a_reload(self):
        status, _, err, _ = run("serve", "--set", "shutdown.delay=3s", "--set", "shutdown.timeout=1s")
        self.assertEqual(status, 78, err)
        self.assertIn("shutdown.delay (3s) must be shorter than shutdown.timeout (1s), the budget of the whole stop", err)
        k = self.start("shutdown:\n  timeout: 2s\n")
        self.reload(k, "shutdown:\n  timeout: 2s\n  delay: 5s\n")
        self.wait_log(k, "shutdown.delay (5s) is not shorter than shutdown.timeout (2s), the budget of the whole stop: a stop "
                         "will delay 1s")
        # Exit 0: not forced (the 5 s delay would overrun the 2 s budget); no bound on the wall time
        # of the stop, which a loaded machine stretches: the delay used is the one logged.
        err = self.stop(k)
        self.assertIn("Delaying shutdown for 1.000s", err)

    def test_health_verbosity_changes_live(self):
        k = self.start("")
        self.assertEqual(get(self.health, "/healthz")[2], "ok")
        self.reload(k, "healthcheck:\n  verbose: true\n")
        body = get(self.health, "/healthz")[2]
        self.assertIn("[+]ping ok", body)
        self.assertIn("healthz check passed", body)
        self.stop(k)

    def test_refresh_intervals_and_token_expiry_change_live(self):
        k = self.keel("serve", config="")
        k.ready()
        token = bound_address(k, "token provider server")
        self.wait_log(k, "Will refresh tokens after 30m0s")
        self.reload(k, "token:\n  refresh_interval: 60s\n  expiry: 5m\ncertificate:\n  refresh_interval: 1s\n")
        # The tasks woke and scheduled again with the new intervals, without waiting out the old ones:
        # what is left of the new interval since the task last scheduled.
        self.wait_log(k, "(refresh_interval 1m0s, counted from the last refresh)")
        left = re.search(r"Will refresh tokens after ([\d.]+)s \(refresh_interval 1m0s", k.stderr_so_far())
        self.assertIsNotNone(left, k.stderr_so_far())
        self.assertLess(float(left.group(1)), 60)
        self.wait_log(k, "Refreshed key[")
        status, headers, body = get(token, "/token", headers={"X-Athenz-Domain": "live", "X-Athenz-Role": "reload"})
        self.assertEqual(status, 200, body)
        self.assertIn(json.loads(body)["expires_in"], range(290, 301), "a token minted after the reload lives 5m")
        status, headers, _ = get(token, "/.well-known/jwks.json")
        self.assertEqual(headers["cache-control"], "max-age=10", "a sixth of the new refresh interval")
        self.stop(k)

    def test_a_shorter_refresh_interval_already_past_since_the_last_refresh_refreshes_at_once(self):
        config = "token:\n  refresh_interval: {}\n  memory_report_interval: 1h\ncertificate:\n  refresh_interval: {}\n"
        k = self.keel("serve", config=config.format("1h", "1h"))
        k.ready()
        self.wait_log(k, "Will refresh tokens after 1h0m0s")
        self.wait_log(k, "Memory: rss[")
        time.sleep(1.5)  # longer than the new interval: both refreshes are due when it applies
        mark = len(k.stderr_so_far())
        self.reload(k, config.format("1s", "1s"))
        self.wait_log(k, "Refreshed 0 tokens, 0 failed")
        self.wait_log(k, "Refreshed key[")
        since = k.stderr_so_far()[mark:]
        # The first schedule after the reload: at once, not a whole new interval from now.
        self.assertEqual(re.search(r"Will refresh tokens after (\S+)", since).group(1), "0s", since)
        self.assertEqual(re.search(r"Will refresh key\[.*\] after (\S+)", since).group(1), "0s", since)
        self.assertIn("after 0s (refresh_interval 1s, counted from the last refresh)", since)
        # The wake is for the refresh tasks: the memory reporter still reported only at start.
        self.assertEqual(k.stderr_so_far().count("Memory: rss["), 1, k.stderr_so_far())
        self.stop(k)

    def test_a_bad_file_keeps_the_old_configuration_and_the_servers_serving(self):
        k = self.start("shutdown:\n  delay: 0s\n")
        before = len(k.messages())
        k.write("keel.yaml", "shutdown:\n  delay: [not a duration\n")
        k.kill(signal.SIGHUP)
        k.wait_notify("RELOADING=1", start=before)
        # Still ready: the failed refresh ends with READY=1 and the old configuration.
        k.wait_notify("READY=1", start=before + 1)
        self.wait_log(k, "keel.yaml:3:1: did not find expected")
        self.wait_log(k, "Refresh failed, keeping the previous configuration")
        self.assertEqual(get(self.health, "/readyz")[0], 200)
        self.assertEqual(self.refresh_failures(), 1)
        self.reload(k, "shutdown:\n  delay: 0s\n")  # and a good file later applies again
        self.assertEqual(self.refresh_failures(), 1)
        self.stop(k)

    def test_a_service_refresh_that_fails_puts_the_previous_configuration_back_everywhere(self):
        # healthcheck.refresh is the last service refresh: the reload, the certificate, token and
        # metrics refreshes took the new values before it failed, and must give them all back.
        k = self.keel("serve", config="log:\n  level: info\n", env={"KEEL_FAULT": "error@in:healthcheck.refresh"})
        k.ready()
        self.health = bound_address(k, "health check server")
        self.metrics = bound_address(k, "metrics exporter server")
        token = bound_address(k, "token provider server")
        self.reload(k, "log:\n  level: debug\ntoken:\n  expiry: 5m\nshutdown:\n  delay: 1500ms\n")
        self.wait_log(k, "Put back the previous configuration (3 values)")
        self.wait_log(k, "Refresh failed, keeping the previous configuration (1 failures so far)")
        self.assertEqual(self.refresh_failures(), 1)
        status, _, body = get(token, "/token", headers={"X-Athenz-Domain": "back", "X-Athenz-Role": "again"})
        self.assertEqual(status, 200, body)
        self.assertIn(json.loads(body)["expires_in"], range(3590, 3601), "the token service took token.expiry back")
        self.assertEqual(get(self.health, "/livez")[0], 200)
        # No bound on the wall time of the stop: a delay of 1.5 s would have logged "Delaying shutdown".
        err = self.stop(k)
        self.assertNotIn("GET /livez from", err, "log.level is info again")
        self.assertNotIn("Delaying shutdown", err, "shutdown.delay is 0 again")

    def test_the_log_format_changes_live(self):
        k = self.start("")
        self.reload(k, "log:\n  format: json\n")
        err = self.stop(k)
        lines = err.splitlines()
        first_json = next((i for i, line in enumerate(lines) if line.startswith("{")), len(lines))
        self.assertLess(first_json, len(lines), "no JSON line after the reload")
        self.assertIn("Ready: ", "\n".join(lines[:first_json]), "text until the reload")
        after = [json.loads(line) for line in lines[first_json:]]  # every later line is one JSON object
        self.assertEqual(after[-1]["message"], "Shutdown completed", err)
        self.assertIn("Stopped health check server", [r["message"] for r in after])

    def test_a_shorter_shutdown_timeout_applies_to_the_next_stop(self):
        # Each request held 2.5 s (the ready check's too: it waits for the slow answer, inside its
        # 5 s): past the 300 ms budget with room for the wait for the request and the signal.
        k = self.keel("serve", config="", env={"KEEL_FAULT": "sleep=2500@in:healthcheck.request"})
        addr = bound_address(k)
        self.reload(k, "shutdown:\n  timeout: 300ms\n")
        status, err, held = sigterm_under_a_held_request(k, addr)
        self.addCleanup(held.close)
        self.assertEqual(status, 2, err)
        self.assertIn("Stopping health check server past the shutdown timeout", err)

    def test_a_new_health_check_address_is_refused_and_the_server_keeps_its_own(self):
        # The address from the file, not from KEEL_HEALTHCHECK_ADDRESS, which would outrank it.
        k = self.keel("serve", config="healthcheck:\n  address: 127.0.0.1:0\n", env={"KEEL_HEALTHCHECK_ADDRESS": None})
        self.health = bound_address(k, "health check server")
        self.metrics = bound_address(k, "metrics exporter server")
        ready = self.reload(k, "healthcheck:\n  address: 127.0.0.1:1\n  verbose: true\n")
        self.wait_log(k, "Changing healthcheck.address needs a restart; keeping the running value")
        self.assertIn("health check server[%s:%d]" % self.health, ready)
        status, _, body = get(self.health, "/livez")
        self.assertEqual(status, 200)
        self.assertIn("livez check passed", body, "the rest of the file applied")
        self.assertEqual(self.refresh_failures(), 0)
        self.stop(k)
