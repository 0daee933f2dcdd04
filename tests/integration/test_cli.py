# SPDX-License-Identifier: MIT
"""The command line: help, version, bad usage (exit 64 with a one-line hint), KEEL_FAULT syntax."""

import subprocess
import unittest

from keelrun import KEEL, KeelTestCase, run

HINT = "Try '"


class Usage(KeelTestCase):
    def assertUsageError(self, *args, mention, env=None):
        status, out, err, _ = run(*args, env=env)
        self.assertEqual(status, 64, err)
        self.assertIn(mention, err)
        self.assertIn(HINT, err)
        self.assertEqual(out, "")

    def test_help_lists_the_commands_and_exits_0(self):
        status, out, err, _ = run("--help")
        self.assertEqual(status, 0, err)
        for word in ("Usage:", "serve", "config", "version", "--set", "--trace", "Exit status"):
            self.assertIn(word, out)

    def test_version_command_and_option(self):
        for args in (("version",), ("--version",)):
            status, out, err, _ = run(*args)
            self.assertEqual(status, 0, err)
            self.assertRegex(out, r"^keel \d+\.\d+\.\d+\n$")

    def test_commands_that_print_a_result_log_only_when_asked(self):
        for args in (("version",), ("config",), ("plan",), ("token", "--domain", "d", "--role", "r")):
            with self.subTest(args=args):
                status, out, err, _ = run(*args)
                self.assertEqual(status, 1 if args[0] == "token" else 0, err)
                if args[0] != "token":  # without a serving agent, token says why: an error
                    self.assertEqual(err, "", "quiet: nothing but the result")
                self.assertNotIn(" INFO ", err)
        status, out, err, _ = run("--log-level", "info", "version")
        self.assertIn("INFO  Initiating shutdown, cause: version printed", err)
        status, out, err, _ = run("config", env={"KEEL_LOG_LEVEL": "info"})
        self.assertIn("INFO  Initiating shutdown, cause: configuration printed", err)
        k = self.keel("serve", "--set", "plugins.disabled=[certificate, token, metrics, healthcheck]")
        k.ready()
        k.kill()
        self.assertIn(" INFO ", k.wait()[2], "serve is not quiet")

    def test_unknown_option(self):
        self.assertUsageError("--bogus", mention="--bogus")

    def test_unknown_command(self):
        self.assertUsageError("frobnicate", mention="unknown command 'frobnicate'")

    def test_option_missing_its_argument(self):
        self.assertUsageError("--set", mention="--set")

    def test_set_without_equals(self):
        self.assertUsageError("--set", "shutdown.timeout", mention="--set expects KEY=VALUE")

    def test_output_that_cannot_be_written_is_a_failure(self):
        # A full disk or a closed pipe: exit 1 saying so, never 0 with nothing printed (nor 78).
        for args, what in ((["config"], "the configuration"), (["version"], "the version"), (["--version"], "the version"),
                           (["--help"], "the usage"), (["version", "--version"], "the version")):
            with self.subTest(args):
                with open("/dev/full", "w") as full:
                    p = subprocess.run([KEEL, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=30,
                                       env={"KEEL_DEFAULTS_FILE": "/nonexistent", "KEEL_STATE_DIR": "/nonexistent/state"})
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(f"Failed to print {what}: No space left on device", p.stderr)

    def test_bad_log_level(self):
        self.assertUsageError("--log-level", "loud", mention="unknown level 'loud'")

    def test_log_level_warn_is_warning(self):
        status, out, err, _ = run("--log-level", "warn", "config")
        self.assertEqual(status, 0, err)
        self.assertIn("log.level: warning   # --set", out)

    def test_pidfile_is_a_file_name_not_yaml(self):
        for name, shown in (("/run/keel #1.pid", "'/run/keel #1.pid'"), ("/run/a: b.pid", "'/run/a: b.pid'"),
                            ("/run/~", "/run/~"), ("null", "null")):
            with self.subTest(name):
                status, out, err, _ = run("--pidfile", name, "config")
                self.assertEqual(status, 0, err)
                line = next(l for l in out.splitlines() if l.startswith("pidfile:"))
                self.assertTrue(line.startswith(f"pidfile: {shown}") or (name == "null" and line.endswith("/null   # --set")), line)

    def test_an_empty_profile_is_a_usage_error(self):
        self.assertUsageError("--profile", "", "config", mention="--profile expects a name")

    def test_bad_log_format(self):
        self.assertUsageError("--log-format", "xml", mention="unknown format 'xml'")

    def test_serve_takes_no_arguments(self):
        status, _, err, _ = run("serve", "extra")
        self.assertEqual(status, 64, err)
        self.assertIn("'serve' takes no arguments, got 'extra'", err)

    def test_global_options_may_follow_the_command(self):
        status, out, err, _ = run("config", "--log-level", "debug", "-s", "shutdown.delay=1s")
        self.assertEqual(status, 0, err)
        self.assertIn("shutdown.delay: 1s", out)

    def test_unknown_option_after_the_command_is_the_command_s(self):
        status, _, err, _ = run("serve", "--bogus")
        self.assertEqual(status, 64, err)
        self.assertIn("'serve' takes no arguments, got '--bogus'", err)

    def test_global_option_after_the_command_missing_its_argument(self):
        self.assertUsageError("serve", "--set", mention="option '--set' requires an argument")

    def test_daemon_only_with_serve(self):
        # A one-shot command detached, then exited 1 "before it was ready" with its result lost.
        for command, args in (("config", ("--daemon", "config", "--check")), ("version", ("--daemon", "version")),
                              ("config", ("config", "--daemon")), ("init", ("--daemon", "init"))):
            with self.subTest(args=args):
                self.assertUsageError(*args, mention=f"--daemon runs only with serve: '{command}' does not run the service")

    def test_a_flag_given_a_value_is_refused_before_and_after_the_command(self):
        self.assertUsageError("--daemon=yes", "serve", mention="option '--daemon' doesn't allow an argument")
        self.assertUsageError("serve", "--daemon=yes", mention="option '--daemon=yes' doesn't allow an argument")

    def test_options_are_named_in_full_before_and_after_the_command(self):
        self.assertUsageError("--conf", "/dev/null", "config", mention="unrecognized option '--conf'")
        self.assertUsageError("--pidf=x.pid", "serve", mention="unrecognized option '--pidf=x.pid'")
        status, _, err, _ = run("serve", "--pidf", "x.pid")
        self.assertEqual(status, 64, err)
        self.assertIn("'serve' takes no arguments, got '--pidf'", err)

    def test_malformed_fault_spec_names_the_bad_part(self):
        for spec, part in (("eror@in:metrics.start", "eror"), ("error@during:x", "during"), ("error@in", "error@in"),
                           ("sleep=abc@in:x", "abc")):
            with self.subTest(spec=spec):
                self.assertUsageError("serve", mention=part, env={"KEEL_FAULT": spec})

    def test_log_format_json_writes_json_lines(self):
        import json
        status, _, err, _ = run("--log-format", "json", "serve", env={"KEEL_FAULT": "sigint@before:pidfile.acquire"})
        self.assertEqual(status, 0, err)
        records = [json.loads(line) for line in err.splitlines() if line.strip()]
        self.assertTrue(records)
        skipped = [r for r in records if r["message"] == "Skipped observer pidfile.acquire"]
        self.assertEqual(skipped[0]["event"], "start")
        self.assertEqual(skipped[0]["phase"], "before")
        self.assertEqual(skipped[0]["observer"], "pidfile.acquire")


if __name__ == "__main__":
    unittest.main()
