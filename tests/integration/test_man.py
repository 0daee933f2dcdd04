# SPDX-License-Identifier: MIT
"""The manual: keel(1), keel.yaml(5), keel-plugin(7) and the library's section 3, built from
docs/man/*.scd. Each renders without a warning; keel.yaml(5) names every configuration key the
binary knows with its type, default and whether it is live; keel(1) every command and option --help
lists; docs/configuration.md has a row for every key, live as the binary has it; and systemd
accepts the unit's Documentation=man:keel(1). Section 3 has keel(3) and a page
for every installed header (keel-app(3) for <keel/app.h>), whose SYNOPSIS declares every function
of its header and whose NAME lists them, so that apropos and `man keel_app_run` find it; its
EXAMPLE compiles against the headers."""

import glob
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
PAGES.update((os.path.basename(p)[:-len(".scd")], "man3") for p in glob.glob(os.path.join(SOURCE, "docs", "man", "*.3.scd")))
HEADERS = sorted(glob.glob(os.path.join(SOURCE, "include", "keel", "*.h")))


def header_page(header):
    """The section-3 page of a header: keel(3) for the umbrella <keel/keel.h>, keel-app(3) for
    <keel/app.h>; <keel/plugin.h>'s is KEEL_PLUGIN(3), as keel-plugin(3) would hide the tutorial
    keel-plugin(7) from `man keel-plugin` (man-db looks in section 3 before 7)."""
    name = os.path.basename(header)[:-len(".h")]
    return {"keel": "keel.3", "plugin": "KEEL_PLUGIN.3"}.get(name, f"keel-{name}.3")


def functions(header):
    """The functions @header declares: every KEEL_API one (exported by libkeel.so, which
    tests/build/check_symbols.py holds to the headers) and every static inline one."""
    with open(header) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    found = re.findall(r"KEEL_API\s+[^;(]*?\b(keel_\w+)\s*\(", text)
    found += re.findall(r"static\s+inline\s+[^;({]*?\b(keel_\w+)\s*\(", text)
    return found


def source(page):
    with open(os.path.join(SOURCE, "docs", "man", page + ".scd")) as f:
        return f.read()


def section(text, title):
    """The body of section @title of a rendered page, up to the next heading."""
    m = re.search(rf"(?ms)^{title}\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)", text)
    return m.group(1) if m else ""


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
                self.assertEqual(err, "", f"man -l {page}")
                self.assertIn("NAME", out)
                self.assertGreater(len(out.splitlines()), 40)
                p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True, timeout=60)
                self.assertEqual((p.returncode, p.stderr), (0, ""), f"groff warnings for {page}")

    def test_every_header_has_a_page_and_every_page_a_header(self):
        pages = {header_page(h) for h in HEADERS}
        self.assertGreaterEqual(len(pages), 20)
        for page in sorted(pages):
            with self.subTest(page):
                self.assertTrue(page in PAGES, f"docs/man/{page}.scd is missing: every header has a page")
        self.assertEqual({p for p, s in PAGES.items() if s == "man3"} - pages, set(), "a section-3 page for no header")
        overview = rendered("keel.3")[0]
        for page in sorted(pages - {"keel.3"}):
            self.assertTrue(f"{page[:-2]}(3)" in overview, f"keel(3) does not list {page[:-2]}(3)")

    def test_every_function_is_declared_in_its_headers_page(self):
        """A function added to a header without documentation fails here: its page's SYNOPSIS must
        declare it and its NAME list it (lexgrog reads NAME as mandb does for apropos), and
        `man NAME` must find the page."""
        env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
        env["MANPATH"] = os.path.abspath(MAN)
        total = 0
        for header in HEADERS:
            page = header_page(header)
            if page not in PAGES:
                continue  # test_every_header_has_a_page_and_every_page_a_header says so
            synopsis = section(rendered(page)[0], "SYNOPSIS")
            self.assertTrue(f"#include <keel/{os.path.basename(header)}>" in synopsis, f"{page}: SYNOPSIS includes its header")
            path = os.path.join(MAN, "man3", page)
            p = subprocess.run(["lexgrog", path], capture_output=True, text=True, timeout=60)
            names = set(re.findall(r'^\S+: "(\S+) - ', p.stdout, flags=re.M))
            self.assertTrue(page[:-2] in names, f"{page}: NAME, as apropos reads it: {p.stdout[:200]}")
            for function in functions(header):
                total += 1
                with self.subTest(function=function):
                    self.assertIsNotNone(re.search(rf"\b{function}\(", synopsis),
                                         f"docs/man/{page}.scd: its SYNOPSIS does not declare {function}()")
                    self.assertTrue(function in names, f"docs/man/{page}.scd: its NAME does not list {function}")
                    where = subprocess.run(["man", "-w", "3", function], capture_output=True, text=True, env=env, timeout=60)
                    self.assertEqual(where.returncode, 0, f"man 3 {function}: {where.stderr}")
        self.assertGreater(total, 150)

    def test_every_name_is_something_a_header_declares(self):
        declared = set()
        for header in HEADERS:
            with open(header) as f:
                declared |= set(re.findall(r"\b(?:keel|KEEL)_\w+", f.read()))
        for page, where in PAGES.items():
            if where != "man3":
                continue
            line = re.search(r"\n# NAME\n\n([^\n]+) - ", source(page)).group(1)
            for name in (n.strip() for n in line.split(",")[1:]):
                with self.subTest(page=page, name=name):
                    self.assertIn(name, declared, f"{page} lists {name}, which no header declares")

    def test_every_example_compiles(self):
        """The code of each section-3 page's EXAMPLE is a translation unit that compiles against
        the headers without a warning."""
        cflags = subprocess.run(["pkg-config", "--cflags", "libsystemd"], capture_output=True, text=True).stdout.split()
        tmp = tempfile.mkdtemp(prefix="keel-man-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for page, where in sorted(PAGES.items()):
            if where != "man3":
                continue
            with self.subTest(page):
                m = re.search(r"(?ms)^# EXAMPLE\n.*?^```\n(.*?)^```$", source(page))
                self.assertIsNotNone(m, f"{page}: an EXAMPLE with code")
                c = os.path.join(tmp, page + ".c")
                with open(c, "w") as f:
                    f.write(m.group(1))
                p = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(SOURCE, "include"), *cflags,
                                    "-c", "-o", os.devnull, c], capture_output=True, text=True, timeout=120)
                self.assertEqual(p.returncode, 0, f"{page}'s EXAMPLE:\n{p.stderr}")

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

    def test_every_configuration_key_is_in_configuration_md_as_live_as_the_binary_has_it(self):
        status, out, err, _ = run("config", "--keys")
        self.assertEqual(status, 0, err)
        with open(os.path.join(SOURCE, "docs", "configuration.md")) as f:
            rows = re.findall(r"(?m)^\| ((?:`[a-z0-9_.]+`(?:, )?)+) \| [^|]* \| [^|]* \| (yes|no) \|", f.read())
        documented = {key: live for cell, live in rows for key in re.findall(r"`([a-z0-9_.]+)`", cell)}
        keys = [line.split("\t") for line in out.splitlines()]
        self.assertGreater(len(keys), 25)
        for key, _, _, live, _, _ in keys:
            with self.subTest(key):
                self.assertTrue(key in documented, "docs/configuration.md lacks a row '| `KEY` | type | default | yes|no | what |'")
                self.assertEqual(documented[key], "yes" if live == "live" else "no", "the live column")

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
