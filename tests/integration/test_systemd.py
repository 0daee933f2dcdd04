# SPDX-License-Identifier: MIT
"""keel under a real systemd (Debian 12's 252, booted with systemd-nspawn: nspawn.py): the shipped
units installed by `cmake --install --prefix /usr` and enabled as docs/operations.md says; start,
reload, stop, socket activation, restarts under load, the watchdog, the state directory, the
journal and the sandbox's rating, each checked against what systemd itself reports."""

import collections
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from httpclient import get
import nspawn
import test_oauth2

BUILD = os.environ.get("KEEL_BUILD_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HEALTH, METRICS, TOKEN = ("127.0.0.1", 9998), ("127.0.0.1", 9999), ("127.0.0.1", 8880)
ATHENZ = {"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"}
UNITS = ["keel-token.socket", "keel-metrics.socket", "keel-healthcheck.socket", "keel.service"]


def install(root):
    """The build, installed into the machine as a packager would: DESTDIR, prefix /usr."""
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], env=dict(os.environ, DESTDIR=root),
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"cmake --install failed: {p.stdout}{p.stderr}")


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def answers(address, path="/livez", headers=None):
    try:
        return get(address, path, timeout=2, headers=headers)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


@unittest.skipIf(nspawn.why_not(), nspawn.why_not() or "")
class SystemdTestCase(unittest.TestCase):
    """A machine booted for each test, the build installed, keel enabled and started."""

    def setUp(self):
        self.m = nspawn.Machine(install=self.prepare)
        self.addCleanup(self.m.close)
        self.addCleanup(self.keep_journal_on_failure)
        self.m.run("journalctl", "--update-catalog", check=True)  # what a package's postinst does
        self.m.systemctl("enable", "--now", *UNITS, check=True)
        wait_until(lambda: answers(HEALTH, "/readyz"), 30, "keel ready")

    def prepare(self, root):
        install(root)

    def keep_journal_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        failed = outcome and any(error for _, error in getattr(outcome, "errors", []) if error)
        if failed or (outcome and not outcome.success):
            print(self.m.journal("-u", "keel.service", "-n", "60")[-6000:])

    def props(self, *names):
        return self.m.show("keel.service", *names)

    def keel_journal(self, *args):
        return self.m.journal("-u", "keel.service", "-o", "cat", *args)


class Start(SystemdTestCase):
    def test_the_unit_is_active_with_ready_status(self):
        p = self.props("ActiveState", "SubState", "StatusText", "NRestarts", "Type", "MainPID")
        self.assertEqual((p["ActiveState"], p["SubState"], p["NRestarts"]), ("active", "running", "0"))
        self.assertTrue(p["StatusText"].startswith("Ready: "), p["StatusText"])
        self.assertIn("health check server[[::]:9998]", p["StatusText"])
        self.assertEqual(get(HEALTH, "/readyz")[0], 200)
        status, _, body = get(TOKEN, "/token", headers=ATHENZ)
        self.assertEqual(status, 200, body)
        # The units' ListenStream= ports are the defaults' own: nothing to warn of.
        self.assertNotIn("but the socket systemd passed", self.keel_journal())

    def test_the_open_file_limit_is_raised_under_the_sandbox(self):
        # systemd's soft limit is 1024; the hard one is its 524288, or what the host allows it.
        pid = self.props("MainPID")["MainPID"]
        limits = self.m.run("cat", f"/proc/{pid}/limits", check=True).stdout
        soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()
        self.assertEqual(soft, hard, limits)
        self.assertGreater(int(hard), 1024)
        self.assertRegex(self.keel_journal(), rf"Raised the open file limit from 1024 to {hard}: room for about \d+ connections")


class Descriptors(SystemdTestCase):
    def test_1040_idle_connections_leave_probes_answered(self):
        # What systemd's soft limit of 1024 used to stop: 520 idle connections on each of two
        # servers, well under http.connection_limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        idle = []
        self.addCleanup(lambda: [c.close() for c in idle])
        for address in (METRICS, HEALTH):
            idle += [socket.create_connection(address, timeout=5) for _ in range(520)]
        for _ in range(9):
            started = time.monotonic()
            self.assertEqual(get(HEALTH, "/livez", timeout=1)[0], 200)
            self.assertLess(time.monotonic() - started, 1.0)
        self.assertNotIn("Cannot accept connections", self.keel_journal())


class Reload(SystemdTestCase):
    def test_a_good_configuration_is_reloaded_and_in_force(self):
        pid = self.props("MainPID")["MainPID"]
        self.assertNotIn("checks", get(HEALTH, "/readyz")[2])
        self.m.write("/etc/keel/keel.yaml", "healthcheck:\n  verbose: true\n")
        self.m.systemctl("reload", "keel.service", check=True)
        p = self.props("ActiveState", "SubState", "StatusText", "MainPID")
        self.assertEqual((p["ActiveState"], p["SubState"], p["MainPID"]), ("active", "running", pid))
        self.assertTrue(p["StatusText"].startswith("Ready: "), p["StatusText"])
        status, _, body = get(HEALTH, "/readyz")
        self.assertEqual(status, 200)
        self.assertIn("[+]", body, "healthcheck.verbose is in force: " + body)
        # systemd saw RELOADING=1 then READY=1: the reload job ended with the service running.
        journal = self.m.journal("-u", "keel.service", "-o", "cat")
        self.assertIn("Reloading keel.service", journal)
        self.assertIn("Reloaded keel.service", journal)
        self.assertIn("Reloaded", self.keel_journal())

    def test_a_broken_configuration_fails_the_reload_and_the_old_one_stays(self):
        pid = self.props("MainPID")["MainPID"]
        self.m.write("/etc/keel/keel.yaml", "healthcheck:\n  verbose: maybe\nhttp:\n  connection_limit: 0\n")
        p = self.m.systemctl("reload", "keel.service")
        self.assertNotEqual(p.returncode, 0, "systemctl reload fails")
        journal = self.keel_journal()
        self.assertIn("/etc/keel/keel.yaml:2:12", journal, "every error, with where it is")
        self.assertIn("/etc/keel/keel.yaml:4:21", journal)
        p = self.props("ActiveState", "SubState", "MainPID", "StatusText")
        self.assertEqual((p["ActiveState"], p["SubState"], p["MainPID"]), ("active", "running", pid))
        self.assertTrue(p["StatusText"].startswith("Ready: "), p["StatusText"])
        status, _, body = get(HEALTH, "/readyz")
        self.assertEqual((status, "[+]" in body), (200, False), "the running configuration stays")


class ReloadNotifications(SystemdTestCase):
    def prepare(self, root):
        install(root)
        # A refresh that takes a second: long enough to see the state systemd puts keel in.
        nspawn_dropin(root, "fault.conf", "[Service]\nEnvironment=KEEL_FAULT=sleep=1000@before:config.reload\n")

    def test_a_sighup_is_reloading_then_ready_to_systemd(self):
        # No ExecReload= here: only keel's own RELOADING=1 can put the unit in "reload".
        self.m.systemctl("kill", "--kill-who=main", "--signal=HUP", "keel.service", check=True)
        seen = [wait_until(lambda: self.props("SubState")["SubState"] == "reload" and "reload", 5, "RELOADING=1")]
        seen.append(wait_until(lambda: self.props("SubState")["SubState"] == "running" and "running", 10, "READY=1"))
        self.assertEqual(seen, ["reload", "running"])
        self.assertTrue(self.props("StatusText")["StatusText"].startswith("Ready: "))
        records = [json.loads(line) for line in self.m.journal("-u", "keel.service", "_COMM=keel", "-o", "json").splitlines()]
        self.assertEqual([r["MESSAGE_ID"] for r in records if r.get("MESSAGE", "").startswith("Reloaded")],
                         ["7d0e9e78d55e4ddeb51792d26c80e703"])


class Stop(SystemdTestCase):
    def prepare(self, root):
        install(root)
        # Every /livez is held 1.5 s at the server, so that the stop finds requests in flight.
        nspawn_dropin(root, "fault.conf", "[Service]\nEnvironment=KEEL_FAULT=sleep=1500@before:healthcheck.request\n")

    def test_stop_answers_every_request_in_flight_and_exits_0(self):
        results = []

        def held():
            try:
                results.append(get(HEALTH, "/livez", timeout=20)[0])
            except (OSError, http.client.HTTPException) as e:
                results.append(repr(e))

        threads = [threading.Thread(target=held) for _ in range(8)]
        for t in threads:
            t.start()
        # All 8 taken by the server (in flight), held by the fault, before the stop.
        deadline = time.monotonic() + 10
        while not re.search(r'(?m)^keel_work_in_flight\{component="healthcheck"\} 8$', get(METRICS, "/metrics")[2]):
            self.assertLess(time.monotonic(), deadline, "8 requests in flight within 10 s")
            time.sleep(0.02)
        self.m.systemctl("stop", "keel.service", check=True)
        for t in threads:
            t.join(30)
        self.assertEqual(results, [200] * 8)
        p = self.props("ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
        self.assertEqual((p["ActiveState"], p["Result"], p["ExecMainStatus"]), ("inactive", "success", "0"))
        self.assertIn("Shutdown completed", self.keel_journal())


class Load:
    """Four plain clients that never retry, as the issue's load: on /healthz and on /token (a
    cached token), each on a new connection per request and on one kept-alive connection. A
    request fails on any error or any status but 200; each failure is kept with its cause."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok, self.failed = 0, []
        self.threads = [threading.Thread(target=self.loop, args=(address, path, headers, keep), daemon=True)
                        for address, path, headers in ((HEALTH, "/healthz", None), (TOKEN, "/token", ATHENZ))
                        for keep in (False, True)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def loop(self, address, path, headers, keep):
        conn = None
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*address, timeout=10)
                conn.request("GET", path, headers=headers or {})
                r = conn.getresponse()
                body = r.read()
                result = None if r.status == 200 else f"{r.status} {body[:200]!r}"
                if not keep or r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                result = f"{type(e).__name__}: {e} ({'kept-alive' if keep else 'new'} connection, {path})"
                conn.close()
                conn = None
            with self.lock:
                if result is None:
                    self.ok += 1
                else:
                    self.failed.append(result)


class Restart(SystemdTestCase):
    def test_five_restarts_under_load_fail_no_request(self):
        status, _, body = get(TOKEN, "/token", headers=ATHENZ)
        self.assertEqual(status, 200, body)
        pids = {self.props("MainPID")["MainPID"]}
        with Load() as load:
            time.sleep(1)
            for _ in range(5):
                self.m.systemctl("restart", "keel.service", check=True)
                pids.add(self.props("MainPID")["MainPID"])
                # systemd refuses a sixth start within 10 s (StartLimitBurst=5): the initial
                # start and five restarts are spread over more than that.
                time.sleep(2.5)
        self.assertEqual(len(pids), 6, "five restarts, five new processes")
        self.assertGreater(load.ok, 1000)
        kinds = collections.Counter(load.failed)
        self.assertEqual(load.failed, [], f"{len(load.failed)} of {load.ok + len(load.failed)} requests failed: {kinds}")
        self.assertEqual(self.props("NRestarts", "ActiveState")["ActiveState"], "active")


class SocketActivation(SystemdTestCase):
    def test_the_first_connection_starts_keel_and_is_answered(self):
        self.m.systemctl("stop", "keel.service", check=True)
        self.assertEqual(self.props("ActiveState")["ActiveState"], "inactive")
        # The sockets stay: a client's connection waits in their backlog while systemd starts keel.
        status, _, body = get(HEALTH, "/livez", timeout=30)
        self.assertEqual((status, body), (200, "ok"))
        p = self.props("ActiveState", "StatusText")
        self.assertEqual(p["ActiveState"], "active")
        self.assertIn("(socket activation)", self.keel_journal())

    def test_stop_then_start_under_load_refuses_no_connection(self):
        with Load() as load:
            time.sleep(1)
            self.m.systemctl("stop", "keel.service", check=True)
            time.sleep(0.5)
            self.m.systemctl("start", "keel.service", check=True)
            time.sleep(1)
        self.assertGreater(load.ok, 100)
        self.assertEqual(load.failed, [], collections.Counter(load.failed))


class Watchdog(SystemdTestCase):
    def prepare(self, root):
        install(root)
        # A refresh that sleeps a minute on the main thread hangs the loop that sends WATCHDOG=1.
        nspawn_dropin(root, "watchdog.conf",
                      "[Service]\nWatchdogSec=2s\nEnvironment=KEEL_FAULT=sleep=60000@before:config.reload\n")

    def test_a_hung_main_loop_is_killed_with_sigabrt_and_restarted(self):
        pid = self.props("MainPID")["MainPID"]
        self.m.systemctl("kill", "--kill-who=main", "--signal=HUP", "keel.service", check=True)
        wait_until(lambda: self.props("NRestarts")["NRestarts"] == "1", 20, "systemd restarts keel")
        journal = self.m.journal("-u", "keel.service", "-o", "cat")
        self.assertIn("Watchdog timeout (limit 2s)!", journal)
        self.assertRegex(journal, rf"Killing process {pid} \(keel\) with signal SIGABRT")
        self.assertRegex(journal, r"Main process exited, code=(dumped|killed), status=6/ABRT")
        wait_until(lambda: answers(HEALTH, "/readyz"), 30, "the new keel ready")
        self.assertNotEqual(self.props("MainPID")["MainPID"], pid)


class StateDirectory(SystemdTestCase):
    def test_the_dynamic_users_state_survives_restarts_with_the_same_key(self):
        def kid():
            status, _, body = get(TOKEN, "/.well-known/jwks.json")
            self.assertEqual(status, 200, body)
            return sorted(k["kid"] for k in json.loads(body)["keys"])

        before = kid()
        self.m.systemctl("restart", "keel.service", check=True)
        wait_until(lambda: answers(HEALTH, "/readyz"), 30, "keel ready again")
        self.assertEqual(kid(), before)
        journal = self.keel_journal()
        self.assertEqual(journal.count("Created the local CA key"), 1, "the CA was made once: " + journal)
        p = self.m.run("stat", "-c", "%U %a", "/var/lib/private/keel", check=True)
        self.assertEqual(p.stdout.split()[1], "700")


class DeliveryUnderTheSandbox(SystemdTestCase):
    """The paths operations.md names for other programs, /run/keel/tls and /run/keel/tokens, are
    writable under ProtectSystem=strict (RuntimeDirectory=) and outlast a restart; the drop-in it
    gives for a consumer of another group (here www-data, as nginx runs on Debian) makes the key
    that group's."""

    def prepare(self, root):
        install(root)
        os.makedirs(os.path.join(root, "etc/keel"), exist_ok=True)
        with open(os.path.join(root, "etc/keel/keel.yaml"), "w") as f:
            f.write("certificate:\n  out_dir: /run/keel/tls\n  out_group: www-data\n  refresh_interval: 2s\n"
                    "token:\n  dir: /run/keel/tokens\n  targets: [\"sports:reader\"]\n")
        # The consumer's own path unit: what it starts on each new pair stands in for
        # `systemctl reload nginx` (this machine has no nginx).
        units = os.path.join(root, "etc/systemd/system")
        with open(os.path.join(units, "consumer-reload.path"), "w") as f:
            f.write("[Path]\nPathChanged=/run/keel/tls\n[Install]\nWantedBy=multi-user.target\n")
        with open(os.path.join(units, "consumer-reload.service"), "w") as f:
            f.write("[Service]\nType=oneshot\nExecStart=/bin/sh -c 'readlink /run/keel/tls/current >> /run/reloads'\n")
        nspawn_dropin(root, "consumer.conf",
                      "[Service]\nPrivateUsers=no\nSupplementaryGroups=www-data\nSystemCallFilter=@chown\n")

    def test_the_pair_and_the_tokens_are_delivered_under_run_keel_and_kept_across_a_restart(self):
        files = ["/run/keel/tls/cert.pem", "/run/keel/tls/key.pem", "/run/keel/tokens/sports:role.reader.token"]
        self.m.run("test", "-s", files[0], "-a", "-s", files[1], "-a", "-s", files[2], check=True)
        p = self.m.run("stat", "-L", "-c", "%G %a", files[1], check=True)
        self.assertEqual(p.stdout.split(), ["www-data", "440"])
        p = self.m.run("stat", "-L", "-c", "%G %a", "/run/keel/tls/current", check=True)
        self.assertEqual(p.stdout.split(), ["www-data", "750"], "the group's way in, past UMask=0077")
        self.m.systemctl("enable", "--now", "consumer-reload.path", check=True)
        wait_until(lambda: len(set(self.m.run("cat", "/run/reloads").stdout.split())) >= 2, 20,
                   "two rotations told to the consumer's path unit")
        self.m.systemctl("stop", "keel.service", check=True)
        self.m.run("test", "-s", files[0], "-a", "-s", files[2], check=True)  # kept for the consumer
        self.m.systemctl("start", "keel.service", check=True)
        wait_until(lambda: answers(HEALTH, "/readyz"), 30, "keel ready again")


class TokenCacheAcrossRestart(SystemdTestCase):
    """The OAuth2 issuer's tokens kept in systemd's file descriptor store across `systemctl
    restart`: the issuer (oidc-provider, test_oauth2's) runs on the host's loopback, which the
    machine shares; its client secret reaches the dynamic user through LoadCredential=."""

    def prepare(self, root):
        install(root)
        self.tmp = tempfile.mkdtemp(prefix="keel-systemd-oauth2-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        ca_key, ca = test_oauth2.issue(None, None, "keel test OAuth2 CA", datetime.timedelta(days=1), is_ca=True)
        test_oauth2.write_cert(os.path.join(self.tmp, "ca.pem"), ca)
        clients = [{"client_id": "agent", "client_secret": "s3cret", "scope": " ".join(test_oauth2.scopes(test_oauth2.PAIRS))}]
        self.issuer = test_oauth2.Issuer(self.tmp, ca_key, ca, clients)
        self.addCleanup(self.issuer.close)
        os.makedirs(os.path.join(root, "etc/keel"), exist_ok=True)
        shutil.copy(os.path.join(self.tmp, "ca.pem"), os.path.join(root, "etc/keel/oauth2-ca.pem"))
        secret = os.path.join(root, "etc/keel/oauth2-secret")
        with open(secret, "w") as f:
            f.write("s3cret\n")
        os.chmod(secret, 0o600)
        with open(os.path.join(root, "etc/keel/keel.yaml"), "w") as f:
            f.write(f"""token:
  provider: oauth2
  refresh_interval: 1h
  oauth2:
    token_url: {self.issuer.url}
    client_id: agent
    client_auth: client_secret_basic
    client_secret_file: /run/credentials/keel.service/oauth2-secret
    ca_file: /etc/keel/oauth2-ca.pem
""")
        nspawn_dropin(root, "oauth2.conf", "[Service]\nLoadCredential=oauth2-secret:/etc/keel/oauth2-secret\n")

    def tokens(self):
        out = {}
        for domain, role in test_oauth2.PAIRS:
            status, _, body = get(TOKEN, "/token", headers={"X-Athenz-Domain": domain, "X-Athenz-Role": role})
            self.assertEqual(status, 200, body)
            out[(domain, role)] = json.loads(body)["access_token"]
        return out

    def test_a_restart_serves_the_cached_tokens_without_asking_the_issuer(self):
        before = self.tokens()
        asked = len(self.issuer.requests())
        self.m.systemctl("restart", "keel.service", check=True)
        wait_until(lambda: answers(HEALTH, "/readyz"), 30, "keel ready again")
        self.assertEqual(self.tokens(), before, "the tokens the first keel was given")
        self.assertEqual([s for s in self.issuer.requests()[asked:] if s != "-"], [], "no pair was asked for again")
        journal = self.keel_journal()
        self.assertRegex(journal, r"Kept 3 tokens for the next start")
        self.assertRegex(journal, r"Restored 3 tokens kept by the last stop \(0 expired, 0 skipped")
        # A stop for good empties the store: the next start asks the issuer again.
        self.m.systemctl("stop", "keel.service", check=True)
        self.m.systemctl("start", "keel.service", check=True)
        asked = len(self.issuer.requests())
        self.assertEqual(self.tokens().keys(), before.keys())
        self.assertEqual(sorted(s for s in self.issuer.requests()[asked:] if s != "-"), test_oauth2.scopes(test_oauth2.PAIRS))


class Journal(SystemdTestCase):
    def test_records_carry_keel_fields_and_message_ids_and_the_catalog_explains(self):
        records = [json.loads(line) for line in self.m.journal("-u", "keel.service", "_COMM=keel", "-o", "json").splitlines()]
        ready = [r for r in records if r.get("MESSAGE", "").startswith("Ready: ")]
        self.assertEqual(len(ready), 1, records)
        self.assertEqual(ready[0].get("MESSAGE_ID"), "6fe7ba6ccb85474496f85eb399b752c9")
        starting = [r for r in records if r.get("MESSAGE", "").startswith("Starting health check server")]
        self.assertEqual(len(starting), 1, records)
        fields = {k: v for k, v in starting[0].items() if k.startswith("KEEL_")}
        self.assertEqual(fields, {"KEEL_EVENT": "start", "KEEL_PHASE": "during", "KEEL_OBSERVER": "healthcheck.start",
                                  "KEEL_SERVICE": "healthcheck"})
        explained = self.m.journal("-u", "keel.service", "-x", "-o", "short")
        self.assertRegex(explained, r"░░ Subject: keel is ready")

    def test_systemd_analyze_security_rates_the_unit_2_or_lower(self):
        p = self.m.run("systemd-analyze", "security", "--no-pager", "keel.service", check=True)
        m = re.search(r"Overall exposure level for keel\.service: (\d+\.\d+)", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        self.assertLessEqual(float(m.group(1)), 2.0, p.stdout)


def nspawn_dropin(root, name, text):
    d = os.path.join(root, "etc/systemd/system/keel.service.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


if __name__ == "__main__":
    unittest.main()
