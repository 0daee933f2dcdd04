# SPDX-License-Identifier: MIT
"""Configuration through the real binary: layers, origins, `keel config`, exit 78 on bad input."""

import os
import re
import shutil
import tempfile
import unittest

from keelrun import KeelTestCase, run


def config_lines(out):
    """`key: value   # origin` lines as {key: (value, origin)}."""
    result = {}
    for line in out.splitlines():
        body, _, origin = line.partition("#")
        key, _, value = body.partition(":")
        result[key.strip()] = (value.strip(), origin.strip())
    return result


class ConfigCommand(KeelTestCase):
    def test_prints_every_key_with_its_origin(self):
        status, out, err, msgs = run("config", "--set", "shutdown.timeout=10s",
                                     config="shutdown:\n  delay: 2s\n",
                                     env={"KEEL_LOG_LEVEL": "debug"})
        self.assertEqual(status, 0, err)
        lines = config_lines(out)
        self.assertEqual(lines["shutdown.timeout"], ("10s", "--set"))
        self.assertEqual(lines["log.level"], ("debug", "env KEEL_LOG_LEVEL"))
        self.assertEqual(lines["shutdown.delay"][0], "2s")
        self.assertRegex(lines["shutdown.delay"][1], r"keel\.yaml:2:\d+$")
        self.assertEqual(lines["pidfile"], ("''", "default"))
        self.assertEqual(lines["state_dir"][1], "env KEEL_STATE_DIR", "the harness gives each run its own")
        self.assertFalse(any(m.startswith("STATUS=Starting services") for m in msgs), "config must not start services")

    def test_keys_print_each_default_as_config_prints_it(self):
        # Durations print one way everywhere: `config` printed shutdown.delay 0 where --keys said 0s.
        status, out, err, _ = run("config", env={"KEEL_STATE_DIR": None})
        self.assertEqual(status, 0, err)
        values = dict(m.groups() for m in re.finditer(r"(?m)^(\S+): (.*)   # default$", out))
        self.assertGreater(len(values), 25)
        status, out, err, _ = run("config", "--keys")
        self.assertEqual(status, 0, err)
        defaults = {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines()}
        self.assertEqual(values, {k: v for k, v in defaults.items() if k in values})
        self.assertEqual(values["shutdown.delay"], "0s")

    def test_set_wins_over_environment_over_file(self):
        status, out, err, _ = run("config", "--set", "shutdown.delay=3s", config="shutdown:\n  delay: 1s\n",
                                  env={"KEEL_SHUTDOWN_DELAY": "2s"})
        self.assertEqual(status, 0, err)
        self.assertEqual(config_lines(out)["shutdown.delay"], ("3s", "--set"))

    def test_set_reads_yaml_lists(self):
        status, out, err, _ = run("config", "--set", "plugins.disabled=[metrics, token]")
        self.assertEqual(status, 0, err)
        self.assertEqual(config_lines(out)["plugins.disabled"], ("[metrics, token]", "--set"))

    def test_a_plugin_that_does_not_exist_cannot_be_disabled(self):
        status, _, err, _ = run("serve", "--set", "plugins.disabled=[metrics, tokn]")
        self.assertEqual(status, 78, err)
        self.assertRegex(err, r"plugins\.disabled\[1\]: no plugin or service is named 'tokn' \(there are [a-z, ]*\btoken\b")

    def test_a_services_own_check_names_where_the_bad_value_came_from(self):
        # As the loader's errors do: the key alone does not say which of six layers to mend.
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "keel.yaml")
        with open(path, "w") as f:
            f.write("plugins:\n  disabled: [metrix]\n")
        status, _, err, _ = run("--config", path, "config", "--check", no_config=True)
        self.assertEqual(status, 78, err)
        self.assertIn(f"{path}:2:13: plugins.disabled[0]: no plugin or service is named 'metrix'", err)
        status, _, err, _ = run("config", "--check", env={"KEEL_SHUTDOWN_DELAY": "40s"})
        self.assertEqual(status, 78, err)
        self.assertIn("env KEEL_SHUTDOWN_DELAY: shutdown.delay (40s) must be shorter than shutdown.timeout (30s)", err)
        status, _, err, _ = run("config", "--check", "--set", "certificate.dns_names=[a, '~']")
        self.assertEqual(status, 78, err)
        self.assertIn("--set: certificate.dns_names: '~' is not a DNS name", err)

    def test_profile_file_overrides_the_application_file(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "keel.yaml"), "w") as f:
            f.write("shutdown:\n  delay: 1s\n")
        with open(os.path.join(d, "keel.dev.yaml"), "w") as f:
            f.write("shutdown:\n  delay: 4s\n")
        status, out, err, _ = run("--config", os.path.join(d, "keel.yaml"), "--profile", "dev", "config", no_config=True)
        self.assertEqual(status, 0, err)
        value, origin = config_lines(out)["shutdown.delay"]
        self.assertEqual(value, "4s")
        self.assertIn("keel.dev.yaml:2:", origin)

    @unittest.skipIf(os.path.exists("/etc/keel/keel.dev.yaml"), "this machine has a dev profile of its own")
    def test_profile_without_config_is_looked_for_in_etc_not_beside_the_defaults(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "keel.dev.yaml"), "w") as f:
            f.write("shutdown:\n  delay: 4s\n")
        status, _, err, _ = run("--profile", "dev", "config", no_config=True,
                                env={"KEEL_DEFAULTS_FILE": os.path.join(d, "defaults.yaml")})
        self.assertEqual(status, 78, err)
        self.assertIn("profile 'dev': /etc/keel/keel.dev.yaml: No such file or directory", err)


class BadConfiguration(KeelTestCase):
    def test_malformed_yaml_names_file_line_and_column_and_exits_78(self):
        status, _, err, msgs = run("serve", config="shutdown:\n  timeout: [30s\n")
        self.assertEqual(status, 78, err)
        self.assertRegex(err, r"keel\.yaml:\d+:\d+: ")
        self.assertFalse(any(m.startswith("READY=1") for m in msgs))

    def test_unknown_key_suggests_the_nearest(self):
        status, _, err, _ = run("serve", config="shutdown:\n  timout: 5s\n")
        self.assertEqual(status, 78, err)
        self.assertIn("keel.yaml:2:3: unknown key 'shutdown.timout'; did you mean 'shutdown.timeout'?", err)

    def test_bad_value_names_key_and_expected_form(self):
        status, _, err, _ = run("serve", config="shutdown:\n  timeout: soon\n")
        self.assertEqual(status, 78, err)
        self.assertIn("keel.yaml:2:12: invalid duration 'soon' for shutdown.timeout", err)

    def test_bad_environment_value(self):
        status, _, err, _ = run("serve", env={"KEEL_SHUTDOWN_TIMEOUT": "-1s"})
        self.assertEqual(status, 78, err)
        self.assertIn("env KEEL_SHUTDOWN_TIMEOUT", err)

    def test_unknown_key_on_the_command_line(self):
        status, _, err, _ = run("serve", "--set", "shutdown.timout=5s")
        self.assertEqual(status, 78, err)
        self.assertIn("did you mean 'shutdown.timeout'?", err)

    def test_dev_null_is_an_empty_config_file_and_other_devices_are_named(self):
        status, out, err, _ = run("config", "-c", "/dev/null", no_config=True)
        self.assertEqual(status, 0, err)
        self.assertEqual(config_lines(out)["shutdown.timeout"], ("30s", "default"))
        status, _, err, _ = run("config", "-c", "/dev/zero", no_config=True)
        self.assertEqual(status, 78, err)
        self.assertIn("/dev/zero: not a regular file", err)

    def test_yaml_tags_str_is_text_and_any_other_is_refused(self):
        status, out, err, _ = run("config", "--set", "pidfile=!!str null")
        self.assertEqual(status, 0, err)
        self.assertRegex(config_lines(out)["pidfile"][0], r"^/.*/null$", "a file named null, not none")
        status, _, err, _ = run("config", config="log:\n  level: !custom debug\n")
        self.assertEqual(status, 78, err)
        self.assertRegex(err, r"keel\.yaml:2:10: unsupported YAML tag '!custom'")

    def test_missing_config_file(self):
        status, _, err, _ = run("--config", "/nonexistent/keel.yaml", "serve", no_config=True)
        self.assertEqual(status, 78, err)
        self.assertIn("/nonexistent/keel.yaml", err)

    def test_every_error_once_and_no_skipped_lines(self):
        status, _, err, _ = run("serve", "--set", "shutdown.delay=x", config=BROKEN, env={"KEEL_LOG_LEVEL": "loud"})
        self.assertEqual(status, 78, err)
        for e in BROKEN_ERRORS:
            self.assertEqual(err.count(e), 1, f"{e!r} not exactly once in:\n{err}")
        self.assertIn("Observer config.load failed: 5 errors in the configuration", err)
        self.assertNotIn("Skipped", err, "a configure skip is a debug line")

    def test_past_100_errors_the_rest_are_counted_not_examined(self):
        # 380,000 unknown keys (4 MiB): each past the hundredth was compared with every known key
        # for a suggestion, 18.8 s in all (issue 25); now it is counted (0.5 s, docs/performance.md).
        config = "".join(f"k{i}: 1\n" for i in range(380000))
        status, _, err, _ = run("serve", config=config, timeout=10)
        self.assertEqual(status, 78, err[-2000:])
        self.assertIn("379900 more errors not shown", err)
        self.assertEqual(err.count("unknown key"), 100)


# Three mistakes in the file, one in the environment, one on the command line.
BROKEN = "token:\n  adress: ':1'\nmetrics:\n  address: 5\nhttp:\n  connection_limit: -3\n"
BROKEN_ERRORS = [
    "keel.yaml:2:3: unknown key 'token.adress'; did you mean 'token.address'?",
    "keel.yaml:4:12: invalid address '5' for metrics.address",
    "keel.yaml:6:21: integer '-3' for http.connection_limit is out of range",
    "env KEEL_LOG_LEVEL: invalid value 'loud' for log.level",
    "--set shutdown.delay=x: invalid duration 'x' for shutdown.delay",
]


class ConfigCheck(KeelTestCase):
    """`keel config --check` / `-t`: every error once, 0 or 78, nothing written, nothing printed."""

    def test_a_good_configuration_exits_0_silently(self):
        for flag in ("--check", "-t"):
            status, out, err, msgs = run("config", flag, "--pidfile", "keel.pid", config="shutdown:\n  delay: 1s\n")
            self.assertEqual((status, out, err), (0, "", ""), flag)
            self.assertFalse(any(m.startswith("READY=1") for m in msgs))

    def test_every_error_of_every_layer_once_and_exit_78(self):
        status, out, err, _ = run("config", "-t", "--set", "shutdown.delay=x", config=BROKEN,
                                  env={"KEEL_LOG_LEVEL": "loud"})
        self.assertEqual(status, 78, err)
        self.assertEqual(out, "")
        for e in BROKEN_ERRORS:
            self.assertEqual(err.count(e), 1, f"{e!r} not exactly once in:\n{err}")
        lines = err.splitlines()
        self.assertEqual(len(lines), len(BROKEN_ERRORS) + 2, "each error, the failure and the exit status:\n" + err)
        self.assertEqual(err.count("5 errors in the configuration"), 1, "the failure once:\n" + err)
        self.assertIn("Exiting with status 78: bad configuration", lines[-1])

    def test_a_service_check_fails_it_too(self):
        status, _, err, _ = run("config", "--check", "--set", "certificate.provider=file")
        self.assertEqual(status, 78, err)
        self.assertIn("certificate.provider is file: set certificate.key_file and certificate.cert_file", err)

    def test_writes_nothing(self):
        run_dir = tempfile.mkdtemp(prefix="keel-check-")
        self.addCleanup(shutil.rmtree, run_dir, True)
        k = self.keel("config", "--check", "--pidfile", os.path.join(run_dir, "keel.pid"), cwd=run_dir,
                      config="shutdown:\n  delay: 1s\n")
        status, _, err = k.wait(30)
        self.assertEqual(status, 0, err)
        self.assertFalse(os.path.exists(k.path("state")), "the state directory was created")
        self.assertEqual(os.listdir(run_dir), [], "the pidfile or another file was written")

    def test_takes_no_other_argument(self):
        status, _, err, _ = run("config", "--check", "extra")
        self.assertEqual(status, 64, err)
        self.assertIn("'config' takes no arguments but --keys or --check (-t), got 'extra'", err)


if __name__ == "__main__":
    unittest.main()
