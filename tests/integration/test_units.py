# SPDX-License-Identifier: MIT
"""conf/keel.service and its socket units: systemd accepts them, the sandbox rates 2.0 or lower,
and what they promise matches what keel does (names of passed sockets, exit statuses, timeouts)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from keelrun import KEEL, run

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf")
UNITS = ["keel.service", "keel-token.socket", "keel-metrics.socket", "keel-healthcheck.socket", "keel-acme-tls-alpn.socket"]
ANALYZE = shutil.which("systemd-analyze")


def settings(name):
    """The unit's settings as {key: [values]} (every section)."""
    result = {}
    with open(os.path.join(CONF, name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                result.setdefault(key, []).append(value)
    return result


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|min|h)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[m.group(2)]


class Analyze(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(ANALYZE, "systemd-analyze is missing: `make deps` installs the Debian package systemd")

    def test_verify_accepts_the_units(self):
        # The one change: ExecStart= and ExecReload= name the binary under test, which verify
        # wants to exist.
        tmp = tempfile.mkdtemp(prefix="keel-units-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for name in UNITS:
            with open(os.path.join(CONF, name)) as f:
                text = re.sub(r"^(Exec\w+=)/usr/bin/keel ", rf"\g<1>{os.path.abspath(KEEL)} ", f.read(), flags=re.M)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        p = subprocess.run([ANALYZE, "verify", "--man=no"] + [os.path.join(tmp, n) for n in UNITS],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr.strip(), "", "no warnings either")

    def test_the_sandbox_rates_2_or_lower(self):
        p = subprocess.run([ANALYZE, "security", "--offline=yes", os.path.join(CONF, "keel.service")],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for keel\.service: (\d+\.\d+)", p.stdout)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, p.stdout)


class Promises(unittest.TestCase):
    def test_the_service_is_type_notify_with_reload_watchdog_and_state(self):
        s = settings("keel.service")
        self.assertEqual(s["Type"], ["notify"])
        self.assertEqual(s["ExecStart"], ["/usr/bin/keel serve"])
        self.assertEqual(s["ExecReload"], ["/usr/bin/keel config --check", "/bin/kill -HUP $MAINPID"],
                         "a broken configuration fails `systemctl reload` before any SIGHUP")
        self.assertIn("WatchdogSec", s)
        self.assertEqual(s["StateDirectory"], ["keel"])
        self.assertEqual(s["RestartPreventExitStatus"], ["64 78"], "bad usage and bad configuration do not heal")
        for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp"):
            self.assertIn(key, s)

    def test_stop_timeout_is_above_keels_own(self):
        status, out, err, _ = run("config")
        self.assertEqual(status, 0, err)
        timeout = next(line.split()[1] for line in out.splitlines() if line.startswith("shutdown.timeout:"))
        self.assertGreater(seconds(settings("keel.service")["TimeoutStopSec"][0]), seconds(timeout),
                           "systemd must not kill keel before keel reports what is stuck and exits 2")

    def test_state_directory_and_addresses_are_keels_defaults(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        env["KEEL_DEFAULTS_FILE"] = "/nonexistent"
        p = subprocess.run([KEEL, "config"], capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        defaults = {line.split(":", 1)[0]: line.split(":", 1)[1].split("#")[0].strip()
                    for line in p.stdout.splitlines() if ":" in line}
        self.assertEqual(defaults["state_dir"], "/var/lib/keel", "StateDirectory=keel is /var/lib/keel")
        for name in ("token", "metrics", "healthcheck"):
            if f"{name}.address" in defaults:
                listen = settings(f"keel-{name}.socket")["ListenStream"][0]
                self.assertEqual(defaults[f"{name}.address"].lstrip(":"), listen, name)

    def test_socket_names_and_addresses_match_the_services(self):
        services = settings("keel.service")["Sockets"][0].split()
        for name, address in (("token", "127.0.0.1:8880"), ("metrics", "9999"), ("healthcheck", "9998")):
            unit = f"keel-{name}.socket"
            self.assertIn(unit, services)
            s = settings(unit)
            self.assertEqual(s["FileDescriptorName"], [name], "keel takes a passed socket by its service's name")
            self.assertEqual(s["Service"], ["keel.service"])
            self.assertEqual(s["ListenStream"], [address], "the same default as the service's address key")

    def test_the_tls_alpn_01_socket_is_opt_in_and_named_as_the_responder_takes_it(self):
        s = settings("keel-acme-tls-alpn.socket")
        # test_acme_tlsalpn01 passes a socket of this name and sees the responder take it.
        self.assertEqual(s["FileDescriptorName"], ["acme-tls-alpn"])
        self.assertEqual(s["Service"], ["keel.service"])
        self.assertEqual(s["ListenStream"], ["443"], "certificate.acme.tls_alpn01.address's default, :443")
        self.assertNotIn("keel-acme-tls-alpn.socket", settings("keel.service")["Sockets"][0].split(),
                         "port 443 opens only for whoever enables the socket")


if __name__ == "__main__":
    unittest.main()
