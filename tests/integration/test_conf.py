# SPDX-License-Identifier: MIT
"""The files in conf/ are real configuration: keel accepts them, and the Kubernetes manifest
agrees with keel's defaults and timeouts."""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

from httpclient import get
from keelrun import KeelTestCase, run

try:
    import jwt
except ImportError:  # python3-jwt is Debian's: visible to /usr/bin/python3, not to another interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    import jwt

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


def project_version():
    with open(os.path.join(CONF, "..", "CMakeLists.txt")) as f:
        return re.search(r"project\(keel VERSION (\S+)", f.read()).group(1)


def make_pair(directory):
    """A key and a self-signed certificate as `kubectl create secret tls` would take them."""
    os.makedirs(directory)
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=keel", "-keyout", os.path.join(directory, "tls.key"),
                        "-out", os.path.join(directory, "tls.crt")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


class Kubernetes(KeelTestCase):
    def setUp(self):
        with open(os.path.join(CONF, "kubernetes", "keel.yaml")) as f:
            self.docs = list(yaml.safe_load_all(f))
        self.deployment = self.kind("Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        self.env = {e["name"]: e["value"] for e in self.container["env"]}
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}

    def kind(self, kind):
        return next(d for d in self.docs if d["kind"] == kind)

    def effective(self):
        status, out, err, _ = run("config", env={**self.env, "KEEL_TOKEN_ADDRESS": None, "KEEL_HEALTHCHECK_ADDRESS": None,
                                                 "KEEL_METRICS_ADDRESS": None, "KEEL_STATE_DIR": None})
        self.assertEqual(status, 0, err)
        return {k: v[0] for k, v in config_lines(out).items()}

    def test_the_token_server_is_the_pods_own_and_only_the_keys_are_exposed(self):
        config = self.effective()
        self.assertEqual(config["token.address"], "127.0.0.1:8880", "/token on loopback: the pod's containers only")
        self.assertEqual(config["token.jwks_server"], "true")
        self.assertEqual(int(config["token.jwks_address"].rsplit(":", 1)[1]), self.ports["jwks"])
        self.assertEqual(int(config["metrics.address"].rsplit(":", 1)[1]), self.ports["metrics"])
        self.assertEqual(int(config["healthcheck.address"].rsplit(":", 1)[1]), self.ports["healthcheck"])
        self.assertNotIn(8880, self.ports.values())
        service = self.kind("Service")
        self.assertEqual(service["spec"]["selector"], self.deployment["spec"]["selector"]["matchLabels"])
        exposed = {p["targetPort"] for p in service["spec"]["ports"]}
        self.assertEqual(exposed, {"jwks", "metrics"})
        policy = self.kind("NetworkPolicy")["spec"]
        self.assertEqual(policy["podSelector"]["matchLabels"], self.deployment["spec"]["template"]["metadata"]["labels"])
        self.assertIn("Ingress", policy["policyTypes"])
        allowed = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
        self.assertEqual(allowed, {"jwks", "metrics", "healthcheck"}, "every port the pod serves, and no other")
        self.assertTrue(all(rule.get("ports") for rule in policy["ingress"]), "no rule admits every port")

    def test_a_non_root_read_only_container(self):
        pod, c = self.pod["securityContext"], self.container["securityContext"]
        self.assertTrue(pod["runAsNonRoot"])
        self.assertNotEqual(pod["runAsUser"], 0)
        self.assertEqual(pod["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertFalse(self.pod["automountServiceAccountToken"])
        self.assertTrue(c["readOnlyRootFilesystem"])
        self.assertFalse(c["allowPrivilegeEscalation"])
        self.assertEqual(c["capabilities"]["drop"], ["ALL"])
        mounts = {m["name"]: m for m in self.container["volumeMounts"]}
        config = self.effective()
        self.assertEqual(mounts["state"]["mountPath"], config["state_dir"], "the one place keel writes is a volume")

    def test_the_image_is_what_make_image_builds(self):
        self.assertEqual(self.container["image"], f"keel:{project_version()}")
        self.assertEqual(self.container["imagePullPolicy"], "IfNotPresent", "a local image is not pulled")
        with open(os.path.join(CONF, "..", "Containerfile")) as f:
            containerfile = f.read()
        user = re.findall(r"(?m)^USER (\d+)", containerfile)
        self.assertEqual(user, [str(self.pod["securityContext"]["runAsUser"])], "the image's user is the pod's")

    def test_every_replica_reads_one_identity_from_a_secret(self):
        self.assertGreaterEqual(self.deployment["spec"]["replicas"], 2)
        self.assertEqual(self.env["KEEL_CERTIFICATE_PROVIDER"], "file")
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        mount = next(m for m in self.container["volumeMounts"] if m["name"] == "identity")
        self.assertTrue(mount["readOnly"])
        for key in ("KEEL_CERTIFICATE_KEY_FILE", "KEEL_CERTIFICATE_CERT_FILE"):
            self.assertEqual(os.path.dirname(self.env[key]), mount["mountPath"], key)
        secret = volumes["identity"]["secret"]
        self.assertEqual(secret["defaultMode"], 0o440, "root:fsGroup 0440, which keel accepts for a secret")
        self.assertIn("fsGroup", self.pod["securityContext"])
        with open(os.path.join(CONF, "kubernetes", "keel.yaml")) as f:
            self.assertIn(f"kubectl create secret tls {secret['secretName']} ", f.read(), "how to make it by hand")
        with open(os.path.join(CONF, "kubernetes", "certificate.yaml")) as f:
            cert = next(d for d in yaml.safe_load_all(f) if d["kind"] == "Certificate")
        self.assertEqual(cert["spec"]["secretName"], secret["secretName"])
        delay = seconds(self.env["KEEL_CERTIFICATE_PUBLISH_DELAY"])
        self.assertGreaterEqual(delay, 7 * 60, "above the kubelet's secret propagation (~2m) and JWKS max-age (5m)")

    # ---- two replicas, run as the pod would run them -------------------------------------------------

    def secret_volume(self, root, generation):
        """A secret volume as the kubelet projects it: <gen>/tls.*, ..data -> <gen>, tls.* -> ..data/tls.*;
        root:fsGroup 0440 files when we can chown (root), else our own 0400."""
        gen = os.path.join(root, f"..{generation}")
        if not os.path.exists(gen):
            shutil.copytree(os.path.join(self.dir, generation), gen)
            for name in ("tls.key", "tls.crt"):
                path = os.path.join(gen, name)
                if os.geteuid() == 0:
                    os.chown(path, 0, self.pod["securityContext"]["fsGroup"])
                    os.chmod(path, 0o440)
                else:
                    os.chmod(path, 0o400)
            os.chmod(gen, 0o755)
        tmp = os.path.join(root, "..data_tmp")
        os.symlink(f"..{generation}", tmp)
        os.rename(tmp, os.path.join(root, "..data"))
        for name in ("tls.key", "tls.crt"):
            if not os.path.lexists(os.path.join(root, name)):
                os.symlink(os.path.join("..data", name), os.path.join(root, name))

    def replica(self, name, overrides):
        mount = next(m["mountPath"] for m in self.container["volumeMounts"] if m["name"] == "identity")
        volume = os.path.join(self.dir, f"{name}-identity")
        os.makedirs(volume)
        os.chmod(volume, 0o755)
        self.secret_volume(volume, "gen1")
        state = os.path.join(self.dir, f"{name}-state")
        os.makedirs(state)
        sc = self.pod["securityContext"]
        if os.geteuid() == 0:
            os.chown(state, sc["runAsUser"], sc["runAsGroup"])
        env = {k: v.replace(mount, volume) for k, v in self.env.items()}
        # The container's configuration; what differs is only where things are on this machine
        # (loopback, free ports, directories) and what the test must see (text logs, no delay).
        env.update({"KEEL_STATE_DIR": state, "KEEL_TOKEN_JWKS_ADDRESS": "127.0.0.1:0",
                    "KEEL_DEFAULTS_FILE": "/nonexistent", "KEEL_LOG_FORMAT": "text", "KEEL_SHUTDOWN_DELAY": "0s"}, **overrides)

        def as_the_pod():
            if os.geteuid() == 0:
                os.setgroups([sc["fsGroup"]])
                os.setgid(sc["runAsGroup"])
                os.setuid(sc["runAsUser"])

        k = self.keel("serve", env=env, no_config=True, notify=False, preexec_fn=as_the_pod, cwd="/")
        self.addCleanup(self.stop, k)
        addrs = {}
        for label in ("token provider server", "token keys server"):
            wait_for(lambda: re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", k.stderr_so_far()), 20, label)
            m = re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", k.stderr_so_far())
            addrs[label] = (m.group(1), int(m.group(2)))
        return k, volume, addrs["token provider server"], addrs["token keys server"]

    def stop(self, k):
        if k.proc.poll() is None:
            k.kill(signal.SIGTERM)
            status, _, err = k.wait()
            self.assertEqual(status, 0, err)

    def test_two_replicas_publish_one_jwks_and_verify_each_others_tokens(self):
        self.dir = tempfile.mkdtemp(prefix="keel-k8s-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        make_pair(os.path.join(self.dir, "gen1"))
        make_pair(os.path.join(self.dir, "gen2"))
        # publish_delay cut to 4s from the manifest's minutes, the kubelet's skew to 1s: 3 s for the
        # second replica to read the new key before the first signs with it, on a loaded machine.
        fast = {"KEEL_CERTIFICATE_PUBLISH_DELAY": "4s"}
        a, b = self.replica("a", fast), self.replica("b", fast)
        self.check_agreement(a, b)
        old = kid_of(token(a[2]))
        # A rotation of the Secret reaches the pods a second apart: at no moment does a token of
        # one fail against the keys of the other, until both sign with the new key (20 s at most).
        self.secret_volume(a[1], "gen2")
        rotated = time.monotonic()
        while True:
            if time.monotonic() - rotated > 1.0 and not os.path.exists(os.path.join(b[1], "..gen2")):
                self.secret_volume(b[1], "gen2")
            self.check_agreement(a, b)
            kids = {kid_of(token(a[2])), kid_of(token(b[2]))}
            if os.path.exists(os.path.join(b[1], "..gen2")) and len(kids) == 1 and old not in kids:
                break
            self.assertLess(time.monotonic() - rotated, 20, f"both sign with the new key by now: {kids}, {old} before")
            time.sleep(0.1)
        self.assertEqual(len(jwks(a[3])), 2, "the new key and the previous one")

    def check_agreement(self, a, b):
        for one, other in ((a, b), (b, a)):
            t = token(one[2])
            keys = jwks(other[3])
            self.assertIn(kid_of(t), keys, f"a token of one replica, the keys of the other: {keys}")
            claims = jwt.decode(t, jwt.PyJWK(keys[kid_of(t)]).key, algorithms=["ES256"], audience="sports", issuer="keel")
            self.assertEqual(claims["scope"], "reader")

    def test_its_environment_is_valid_keel_configuration(self):
        status, out, err, _ = run("config", env=self.env)
        self.assertEqual(status, 0, err)
        lines = config_lines(out)
        for name, value in self.env.items():
            key = name[len("KEEL_"):].lower().replace("_", ".", 1)
            self.assertEqual(lines[key], (value.strip('"'), f"env {name}"), key)

    def test_probes_hit_the_health_check_endpoints(self):
        self.assertEqual(self.ports, {"jwks": 8881, "metrics": 9999, "healthcheck": 9998})
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(self.container[probe]["httpGet"]["port"], "healthcheck", probe)
        self.assertEqual(self.container["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "healthcheck"})
        self.assertEqual(self.container["livenessProbe"]["httpGet"], {"path": "/livez", "port": "healthcheck"})
        annotations = self.deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual((annotations["prometheus.io/port"], annotations["prometheus.io/path"]), ("9999", "/metrics"))

    def test_the_grace_period_covers_the_delay_and_the_drain(self):
        budget = seconds(self.env["KEEL_SHUTDOWN_DELAY"]) + seconds(self.env["KEEL_SHUTDOWN_TIMEOUT"])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], budget,
                           "the kubelet must not SIGKILL keel before it drains and exits by itself")


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s")
        time.sleep(0.05)


def token(addr):
    status, _, body = get(addr, "/token", headers={"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"})
    assert status == 200, (status, body)
    return json.loads(body)["access_token"]


def kid_of(t):
    return json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]


def jwks(addr):
    status, _, body = get(addr, "/.well-known/jwks.json")
    assert status == 200, (status, body)
    return {k["kid"]: k for k in json.loads(body)["keys"]}


if __name__ == "__main__":
    unittest.main()
