# SPDX-License-Identifier: MIT
"""A program's identity is its own (tests/program/stateless.c): its version beside Keel's, and no
state directory when it says it keeps no state, while the agent keeps its own."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from keelrun import KEEL, KeelTestCase, load_trace, run

STATELESS = os.environ.get("KEEL_STATELESS_BIN") or os.path.join(os.path.dirname(KEEL), "tests", "stateless")


def keel_version():
    out = subprocess.run([KEEL, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    m = re.fullmatch(r"keel (\S+)\n", out)
    if not m:
        raise AssertionError(f"keel --version: {out!r}")
    return m.group(1)


class Version(KeelTestCase):
    def test_a_program_prints_its_version_and_keels(self):
        want = f"stateless 1.2.3 (keel {keel_version()})\n"
        for args in (("version",), ("--version",), ("--log-level", "debug", "version")):
            status, out, err, _ = run(*args, binary=STATELESS)
            self.assertEqual((status, out), (0, want), f"{args}: {err}")

    def test_the_agent_prints_its_version_once(self):
        for args in (("version",), ("--version",)):
            status, out, _, _ = run(*args)
            self.assertEqual(status, 0)
            self.assertRegex(out, r"\Akeel \d+\.\d+\.\d+\n\Z", args)


class Header(KeelTestCase):
    def test_app_h_names_every_standard_command(self):
        # app.h listed serve, config and version, not plan (issue 26).
        header = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "keel", "app.h")
        with open(header) as f:
            text = re.sub(r"\s*\n\s*\*\s*", " ", f.read())
        m = re.search(r"Creates an app named @name .*? the standard commands (.*?)\.", text)
        self.assertIsNotNone(m, "keel_app_new()'s contract names the standard commands")
        named = set(re.findall(r"`(\w+)`", m.group(1)))
        status, out, err, _ = run("--help", binary=STATELESS)
        self.assertEqual(status, 0, err)
        listed = set(re.findall(r"(?m)^  (\w+)\s{2,}", out.split("Options:")[0])) - {"once"}
        self.assertEqual(named, listed)


class Plan(KeelTestCase):
    def test_a_one_shot_command_runs_what_its_plan_lists(self):
        # `once` holds no lock: its plan lists no PID file or state directory, and its run calls
        # exactly what the plan lists, in that order, up to the events it ends before (ready).
        cwd = tempfile.mkdtemp(prefix="keel-identity-")
        self.addCleanup(shutil.rmtree, cwd, True)
        sets = ("--set", "state_dir=state", "--pidfile", os.path.join(cwd, "once.pid"))
        status, out, err, _ = run(*sets, "plan", "once", binary=STATELESS, cwd=cwd)
        self.assertEqual(status, 0, err)
        planned = []
        for line in out.splitlines()[1:]:
            event, phase, _, name = line.split()[:4]
            if event not in ("ready", "refresh"):
                planned.append((event, phase, name))
        self.assertNotIn("pidfile.acquire", [p[2] for p in planned])
        self.assertNotIn("state-dir.acquire", [p[2] for p in planned])

        trace = os.path.join(cwd, "trace.json")
        status, out, err, _ = run(*sets, "--trace", trace, "once", binary=STATELESS, cwd=cwd)
        self.assertEqual((status, out), (0, "once\n"), err)
        self.assertEqual(os.listdir(cwd), ["trace.json"], "no PID file, no state directory")
        ran = [(e["args"]["event"], e["args"]["phase"], e["name"]) for e in load_trace(trace)
               if e.get("cat") == "observer"]
        self.assertEqual(ran, planned)


class StateDirectory(KeelTestCase):
    def workdir(self):
        d = tempfile.mkdtemp(prefix="keel-identity-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_a_program_without_state_serves_and_writes_nothing(self):
        cwd = self.workdir()
        k = self.keel("serve", binary=STATELESS, cwd=cwd)
        k.ready()
        k.kill()
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn("Stateless started, state directory ''", err)
        self.assertEqual(os.listdir(cwd), [], "nothing where it ran")
        self.assertEqual(sorted(os.listdir(k.tmp)), ["keel.yaml", "notify"], "nothing beside its configuration")
        self.assertFalse(os.path.exists("/var/lib/stateless"), "no default directory made")

    def test_its_configuration_may_say_none_or_give_it_one(self):
        status, out, err, _ = run("config", binary=STATELESS)
        self.assertEqual(status, 0, err)
        self.assertIn("state_dir: ''   # default", out)
        status, out, err, _ = run("--set", "state_dir=''", "config", binary=STATELESS)
        self.assertEqual(status, 0, err)
        self.assertIn("state_dir: ''   # --set", out)

        cwd = self.workdir()
        state = os.path.join(cwd, "state")
        k = self.keel("serve", binary=STATELESS, config="state_dir: state\n", cwd=cwd)
        k.ready()
        self.assertTrue(os.path.exists(os.path.join(state, ".lock")), "serve locks the directory it is given")
        k.kill()
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertIn(f"Stateless started, state directory '{state}'", err)
        self.assertTrue(os.path.exists(os.path.join(state, "last-shutdown")), "and keeps the shutdown record there")

    def test_the_agent_still_needs_one(self):
        status, _, err, _ = run("--set", "state_dir=''", "config", "--check")
        self.assertEqual(status, 78, err)
        self.assertIn("invalid path '' for state_dir: expected a non-empty path", err)


if __name__ == "__main__":
    unittest.main()
