# SPDX-License-Identifier: MIT
"""The manual: keel(1), keel.yaml(5) and keel-plugin(7), built from docs/man/*.scd. Each renders
without a warning; keel.yaml(5) names every configuration key the binary knows with its type,
default and whether it is live; keel(1) every command and option --help lists; and systemd accepts
the unit's Documentation=man:keel(1)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from keelrun import KEEL, run

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..")
MAN = os.environ.get("KEEL_MAN_DIR") or os.path.join(os.path.dirname(KEEL), "man")
PAGES = {"keel.1": "man1", "keel.yaml.5": "man5", "keel-plugin.7": "man7"}


def source(page):
    with open(os.path.join(SOURCE, "docs", "man", page + ".scd")) as f:
        return f.read()


def rendered(page):
    """The page as man(1) shows it, plain text (col -b takes the overstrike bold away)."""
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"}
    env.update(MANWIDTH="100", MANPAGER="cat", PAGER="cat")
    p = subprocess.run(f"man -l {os.path.join(MAN, PAGES[page], page)} | col -bx", shell=True, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


class Manual(unittest.TestCase):
    def test_every_page_renders_without_a_warning(self):
        for page, section in PAGES.items():
            with self.subTest(page):
                path = os.path.join(MAN, section, page)
                self.assertTrue(os.path.exists(path), f"{path}: built by the man target")
                out, err = rendered(page)
                self.assertIn("NAME", out)
                self.assertGreater(len(out.splitlines()), 40)
                p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True, timeout=60)
                self.assertEqual((p.returncode, p.stderr), (0, ""), f"groff warnings for {page}")

    def test_every_configuration_key_is_described_as_the_binary_has_it(self):
        status, out, err, _ = run("config", "--keys")
        self.assertEqual(status, 0, err)
        text = source("keel.yaml.5")
        keys = [line.split("\t") for line in out.splitlines()]
        self.assertGreater(len(keys), 25)
        for key, kind, default, live, env, _ in keys:
            with self.subTest(key):
                m = re.search(r"(?m)^\*" + re.escape(key) + r"\* - _(.+?)_, default \*(.*?)\*, (live|restart)$", text)
                self.assertIsNotNone(m, f"keel.yaml(5) lacks '*{key}* - _type_, default *...*, live|restart'")
                self.assertEqual(m.group(2), default, "the default")
                self.assertEqual(m.group(3), live)
                choices = re.match(r"enum\((.*)\)$", kind)
                if choices:
                    # scdoc needs \_ for an underscore inside _italics_
                    self.assertEqual(m.group(1).replace("\\_", "_"), "one of " + ", ".join(choices.group(1).split("|")))
                else:
                    self.assertEqual(m.group(1), kind)

    def test_every_command_and_option_of_help_is_in_keel_1(self):
        status, out, err, _ = run("--help")
        self.assertEqual(status, 0, err)
        page = rendered("keel.1")[0]
        commands = re.findall(r"(?m)^  (\w+)\s{2,}", out.split("Options:")[0])
        self.assertIn("plan", commands)
        for c in commands:
            self.assertRegex(page, rf"(?m)^\s+{c}\b", f"command {c}")
        options = re.findall(r"(?m)^\s+(?:(-\w), )?(--[\w-]+)", out.split("Options:")[1])
        self.assertGreater(len(options), 8)
        for short, long in options:
            self.assertIn(long, page, f"option {long}")
            if short:
                self.assertRegex(page, rf"{short}, {long}", f"option {short}")

    def test_systemd_accepts_the_documentation_of_the_unit(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze)
        tmp = tempfile.mkdtemp(prefix="keel-man-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(SOURCE, "conf", "keel.service")) as f:
            unit = f.read().replace("=/usr/bin/keel ", f"={os.path.abspath(KEEL)} ")
        self.assertIn("Documentation=man:keel(1)", unit)
        with open(os.path.join(tmp, "keel.service"), "w") as f:
            f.write(unit)
        p = subprocess.run([analyze, "verify", "--man=yes", os.path.join(tmp, "keel.service")], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MANPATH=os.path.abspath(MAN)))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("man keel(1)", p.stderr, p.stderr)


if __name__ == "__main__":
    unittest.main()
