# SPDX-License-Identifier: MIT
"""The files in conf/ are real configuration: keel accepts them, and the Kubernetes manifest
agrees with keel's defaults and timeouts."""

import os
import re
import unittest

import yaml

from keelrun import KeelTestCase, run

CONF = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf"))


def config_lines(out):
    lines = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+): (.*?)\s+# (.*)$", line)
        if m:
            lines[m.group(1)] = (m.group(2), m.group(3))
    return lines


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


class Files(KeelTestCase):
    def test_the_application_file_and_the_dev_profile_load(self):
        status, out, err, _ = run("--config", os.path.join(CONF, "keel.yaml"), "--profile", "dev", "config", no_config=True)
        self.assertEqual(status, 0, err)
        lines = config_lines(out)
        self.assertEqual(lines["log.level"][0], "debug")
        self.assertTrue(lines["log.level"][1].startswith(os.path.join(CONF, "keel.dev.yaml")), lines["log.level"])
        self.assertEqual(lines["healthcheck.verbose"][0], "true")


class Kubernetes(KeelTestCase):
    def setUp(self):
        with open(os.path.join(CONF, "kubernetes", "keel.yaml")) as f:
            docs = list(yaml.safe_load_all(f))
        self.deployment = next(d for d in docs if d["kind"] == "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        self.env = {e["name"]: e["value"] for e in self.container["env"]}

    def test_its_environment_is_valid_keel_configuration(self):
        status, out, err, _ = run("config", env=self.env)
        self.assertEqual(status, 0, err)
        lines = config_lines(out)
        for name, value in self.env.items():
            key = name[len("KEEL_"):].lower().replace("_", ".", 1)
            self.assertEqual(lines[key], (value.strip('"'), f"env {name}"), key)

    def test_probes_hit_the_health_check_endpoints(self):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports, {"token": 8880, "metrics": 9999, "healthcheck": 9998})
        self.assertEqual(self.container["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "healthcheck"})
        self.assertEqual(self.container["livenessProbe"]["httpGet"], {"path": "/livez", "port": "healthcheck"})
        annotations = self.deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual((annotations["prometheus.io/port"], annotations["prometheus.io/path"]), ("9999", "/metrics"))

    def test_the_grace_period_covers_the_delay_and_the_drain(self):
        budget = seconds(self.env["KEEL_SHUTDOWN_DELAY"]) + seconds(self.env["KEEL_SHUTDOWN_TIMEOUT"])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], budget,
                           "the kubelet must not SIGKILL keel before it drains and exits by itself")


if __name__ == "__main__":
    unittest.main()
