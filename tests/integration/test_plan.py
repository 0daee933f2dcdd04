# SPDX-License-Identifier: MIT
"""keel plan: every observer a command would run, in the order it would run them, from the real
registration of serve, token and migrate — and nothing run: no state directory, no PID file, no
listener."""

import os
import re
import tempfile
import unittest

from keelrun import KeelTestCase, run


def rows(out):
    """(event, phase, order, observer, plugin, note) of each line after the header."""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["EVENT", "PHASE", "#", "OBSERVER"], lines[0]
    result = []
    for line in lines[1:]:
        m = re.match(r"(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s*(.*)$", line)
        assert m, line
        result.append((m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5), m.group(6)))
    return result


def names(rs, event, phase):
    return [r[3] for r in rs if (r[0], r[1]) == (event, phase)]


class Plan(KeelTestCase):
    def plan(self, *args):
        state = tempfile.mkdtemp(prefix="keel-plan-")
        os.rmdir(state)
        status, out, err, _ = run("--pidfile", state + ".pid", "plan", *args, env={"KEEL_STATE_DIR": state})
        self.assertFalse(os.path.exists(state), "plan creates no state directory")
        self.assertFalse(os.path.exists(state + ".pid"), "plan takes no PID file")
        return status, out, err

    def test_serve_in_the_order_it_would_run(self):
        status, out, err = self.plan()
        self.assertEqual(status, 0, err)
        rs = rows(out)
        self.assertEqual(names(rs, "command", "serve"), ["commands.serve"])
        self.assertEqual(names(rs, "start", "before"), ["pidfile.acquire", "start.delay", "layout.check", "state-dir.acquire"],
                         "the state directory is locked last in start.before")
        self.assertEqual(names(rs, "start", "during"),
                         ["layout.record", "certificate.start", "token.start", "metrics.start", "healthcheck.start"])
        self.assertEqual(names(rs, "stop", "during"), ["healthcheck.stop", "metrics.stop", "token.stop", "certificate.stop"],
                         "stop in reverse")
        self.assertEqual(names(rs, "configure", "before"), ["config.load"])
        for r in rs:
            if r[3] == "token.start":
                self.assertEqual((r[2], r[4], r[5]), (3, "token", "service token"))
        orders = [r[2] for r in rs if (r[0], r[1]) == ("start", "during")]
        self.assertEqual(orders, [1, 2, 3, 4, 5])
        self.assertNotIn("Starting", err, "nothing started")

    def test_config_check_runs_the_services_checks_and_starts_none(self):
        status, out, err = self.plan("config", "--check")
        self.assertEqual(status, 0, err)
        rs = rows(out)
        self.assertEqual(names(rs, "configure", "during"),
                         ["certificate.configure", "token.configure", "metrics.configure"])
        # Core's own checks first (shutdown.delay against shutdown.timeout), then the command's word.
        self.assertEqual(names(rs, "configure", "after"), ["shutdown.check", "commands.config.check"])
        self.assertEqual(names(rs, "start", "during"), ["layout.record"], "no service starts")
        self.assertEqual(names(rs, "ready", "during"), ["health.ready"])

    def test_token_shows_what_its_command_observer_registers(self):
        status, out, err = self.plan("token", "--domain", "sports", "--role", "reader")
        self.assertEqual(status, 0, err)
        rs = rows(out)
        self.assertEqual(names(rs, "start", "during"), ["layout.record", "certificate.start"], "the certificate service only")
        mint = [r for r in rs if r[3] == "token.command.mint"]
        self.assertEqual(len(mint), 1, out)
        self.assertEqual(mint[0][:2], ("start", "after"))
        self.assertEqual(mint[0][5], "registered by token.command.token")

    def test_migrate_and_its_arguments(self):
        status, out, err = self.plan("migrate", "--dry-run")
        self.assertEqual(status, 0, err)
        rs = rows(out)
        self.assertEqual([r[:2] for r in rs if r[3] == "migrate.run"], [("ready", "after")])
        self.assertEqual(names(rs, "start", "during"), ["layout.record"], "no service runs for migrate")
        status, _, err = self.plan("migrate", "--force")
        self.assertEqual(status, 64, err)
        self.assertIn("migrate: unknown argument '--force'", err)

    def test_version_is_planned_not_printed(self):
        status, out, err = self.plan("version")
        self.assertEqual(status, 0, err)
        self.assertNotRegex(out, r"(?m)^keel \d", "the version is not printed")
        self.assertIn("commands.version.print", out)

    def test_a_command_that_holds_nothing_shows_no_lock(self):
        # Only serve and migrate hold the PID file and the state directory; a plan of the others
        # listed pidfile.acquire and state-dir.acquire all the same (issue 26).
        for args in (("version",), ("config", "--check"), ("token", "--domain", "d", "--role", "r")):
            status, out, err = self.plan(*args)
            self.assertEqual(status, 0, err)
            observers = [r[3] for r in rows(out)]
            for lock in ("pidfile.acquire", "pidfile.release", "state-dir.acquire"):
                self.assertNotIn(lock, observers, args)
        for args, locks in ((("serve",), ("pidfile.acquire", "pidfile.release", "state-dir.acquire")),
                            (("migrate",), ("pidfile.acquire", "pidfile.release"))):  # it locks the directory itself
            status, out, err = self.plan(*args)
            self.assertEqual(status, 0, err)
            observers = [r[3] for r in rows(out)]
            for lock in locks:
                self.assertIn(lock, observers, args)

    def test_dot_is_a_graph_of_the_same_observers(self):
        status, out, err = self.plan("--format", "dot", "token", "--domain", "d", "--role", "r")
        self.assertEqual(status, 0, err)
        self.assertTrue(out.startswith('digraph "plan token" {') and out.rstrip().endswith("}"), out)
        nodes = re.findall(r'(n\d+) \[label="([^"]+)"', out)
        labels = [label.split("\\n")[1] for _, label in nodes]
        status, text, _ = self.plan("token", "--domain", "d", "--role", "r")
        self.assertEqual(labels, [r[3] for r in rows(text)])
        self.assertEqual(out.count(" -> "), len(nodes) - 1 + 1, "a chain, and one edge from the registering observer")
        self.assertIn('[style=dotted, label="registers"]', out)

    def test_bad_usage(self):
        for args, message in ((["nosuch"], "unknown command 'nosuch'"), (["plan"], "unknown command 'plan'"),
                              (["--format", "xml"], "--format must be text or dot, not 'xml'")):
            status, _, err = self.plan(*args)
            self.assertEqual(status, 64, err)
            self.assertIn(message, err)


if __name__ == "__main__":
    unittest.main()
