# SPDX-License-Identifier: MIT
"""Shell completion (conf/completion/): bash's and zsh's complete the commands, the options, the
configuration keys for --set and the values of keys that list them, all asked of the binary
itself (--help, config --keys), so that a plugin's commands and keys complete as well."""

import os
import shutil
import subprocess
import unittest

from keelrun import KEEL

HERE = os.path.dirname(os.path.abspath(__file__))
COMPLETION = os.path.join(HERE, "..", "..", "conf", "completion")


def bash(*words):
    """COMPREPLY for the command line `keel WORDS...`, the last word being completed, as bash
    splits it (at '=' too, which is in COMP_WORDBREAKS)."""
    script = (f"source {os.path.join(COMPLETION, 'keel.bash')}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in (os.path.abspath(KEEL),) + words)})\n"
              f"COMP_CWORD={len(words)}\n_keel\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, KEEL_DEFAULTS_FILE="/nonexistent"))
    assert p.returncode == 0, p.stderr
    return [line for line in p.stdout.splitlines() if line]


class Bash(unittest.TestCase):
    def test_commands(self):
        got = bash("")
        for c in ("serve", "config", "version", "plan", "token", "migrate"):
            self.assertIn(c, got)
        self.assertEqual(bash("pl"), ["plan"])
        self.assertIn("migrate", bash("plan", ""), "plan takes a command")

    def test_options_and_their_values(self):
        self.assertEqual(bash("--se"), ["--set"])
        self.assertEqual(sorted(bash("--log-format", "j")), ["journal", "json"])
        self.assertEqual(bash("--log-level", "deb"), ["debug"])
        self.assertEqual(bash("token", "--do"), ["--domain"])
        self.assertEqual(bash("config", "--k"), ["--keys"])
        self.assertEqual(bash("config", "--ch"), ["--check"])
        self.assertEqual(bash("migrate", "--dr"), ["--dry-run"])
        self.assertEqual(sorted(bash("plan", "--format", "")), ["dot", "text"])

    def test_keys_and_values_of_set(self):
        self.assertEqual(bash("--set", "log.le"), ["log.level="])
        self.assertIn("token.address=", bash("--set", "tok"))
        self.assertEqual(bash("--set", "log.level", "=", "de"), ["debug"])
        self.assertEqual(sorted(bash("--set", "healthcheck.verbose", "=", "")), ["false", "true"])
        self.assertEqual(sorted(bash("--set", "certificate.provider", "=", "")), ["acme", "file", "local-ca"])


@unittest.skipUnless(shutil.which("zsh"), "zsh is missing: `make deps` installs it")
class Zsh(unittest.TestCase):
    def zsh(self, body):
        path = os.path.join(COMPLETION, "_keel")
        # The functions without the call that completes: zsh runs it from its completion system.
        script = f"eval \"$(sed '$d' {path})\"\n{body}\n"
        p = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, KEEL_DEFAULTS_FILE="/nonexistent"))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.splitlines()

    def test_the_script_parses(self):
        p = subprocess.run(["zsh", "-n", os.path.join(COMPLETION, "_keel")], capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_the_lists_come_from_the_binary(self):
        keel = os.path.abspath(KEEL)
        commands = self.zsh(f"_keel_commands {keel}")
        self.assertIn("plan:print every observer COMMAND would run, in order, without running it: [--format text|dot] "
                      "[COMMAND [ARGS]]", commands)
        self.assertIn("token.expiry", self.zsh(f"_keel_keys {keel}"))
        self.assertEqual(self.zsh(f"_keel_values {keel} log.format"), ["auto", "text", "json", "journal"])
        self.assertEqual(self.zsh(f"_keel_values {keel} healthcheck.verbose"), ["true", "false"])


if __name__ == "__main__":
    unittest.main()
