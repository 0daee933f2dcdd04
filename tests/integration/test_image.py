# SPDX-License-Identifier: MIT
"""The container image: conf/container/rootfs.sh makes a root file system that holds keel and its
libraries only, and keel runs in it, chrooted as the image's user, as the Containerfile's scratch
stage would run it: serves, answers, drains, exits 0. `make image` itself runs where podman or
docker works; elsewhere that test is skipped, saying why."""

import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import unittest

from httpclient import get
from keelrun import KEEL

SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ROOTFS = os.path.join(SOURCE, "conf", "container", "rootfs.sh")
USER = 65532


def container_tool():
    """podman or docker when one answers, else (None, why)."""
    for tool in ("podman", "docker"):
        path = shutil.which(tool)
        if not path:
            continue
        p = subprocess.run([path, "info"], capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            return path, None
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"{tool} is installed but `{tool} info` fails: {last}"
    return None, "neither podman nor docker is installed"


@unittest.skipUnless(os.geteuid() == 0, "chroot(2) and mounting /proc need root")
class RootFilesystem(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="keel-image-")
        cls.root = os.path.join(cls.dir, "rootfs")
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(os.path.realpath(KEEL)))
        p = subprocess.run(["sh", ROOTFS, cls.root, KEEL], capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr
        cls.proc = os.path.join(cls.root, "proc")

    @classmethod
    def tearDownClass(cls):
        if os.path.ismount(cls.proc):
            subprocess.run(["umount", cls.proc], timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def chroot(self, *args, env=None, **kw):
        chroot = shutil.which("chroot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        argv = [chroot, f"--userspec={USER}:{USER}", self.root, "/usr/bin/keel", *args]
        base = {"PATH": "/usr/bin", "KEEL_HEALTHCHECK_ADDRESS": "127.0.0.1:0", "KEEL_METRICS_ADDRESS": "127.0.0.1:0",
                "KEEL_TOKEN_ADDRESS": "127.0.0.1:0"}
        return subprocess.Popen(argv, env={**base, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **kw)

    def mount_proc(self):
        """What the container runtime gives every container: /proc, until the test ends."""
        os.makedirs(self.proc, exist_ok=True)
        p = subprocess.run(["mount", "-t", "proc", "proc", self.proc], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            self.skipTest(f"cannot mount /proc in the root file system: {p.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", self.proc], timeout=30)

    def test_it_holds_the_binary_its_libraries_and_nothing_else(self):
        files = sorted(os.path.relpath(os.path.join(d, f), self.root) for d, _, fs in os.walk(self.root) for f in fs)
        self.assertIn("usr/bin/keel", files)
        self.assertFalse([f for f in files if f.startswith(("bin/", "usr/bin/")) and f != "usr/bin/keel"], "no other program")
        libs = [f for f in files if ".so" in f]
        self.assertTrue(any("libcurl" in f for f in libs), "the libcurl keel loads at run time")
        self.assertIn("libssl.so.3", [os.path.basename(f) for f in libs], "the libssl keel loads for TLS")
        self.assertTrue(any(os.path.basename(f).startswith("ld-linux") for f in libs), "the dynamic loader")
        other = [f for f in files if ".so" not in f and f != "usr/bin/keel"]
        self.assertEqual(sorted(other), ["etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl/certs/ca-certificates.crt"])
        st = os.stat(os.path.join(self.root, "var/lib/keel"))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (USER, 0o700))

    def test_without_proc_only_the_process_metrics_are_lost(self):
        self.assertFalse(os.path.ismount(self.proc))
        p = self.chroot("version")
        out, err = p.communicate(timeout=30)
        self.assertEqual((p.returncode, out.split()[0]), (0, "keel"), err)
        warning = "Failed to read /proc/self, process metrics are not exported: No such file or directory, ignoring"
        self.assertEqual(err.count(warning), 1, err)

    def test_keel_serves_in_it_as_its_user_and_drains(self):
        self.mount_proc()
        p = self.chroot("version")
        out, err = p.communicate(timeout=30)
        self.assertEqual((p.returncode, out.split()[0]), (0, "keel"), err)
        k = self.chroot("serve", env={"KEEL_TOKEN_TLS": "self"})  # libssl, loaded at run time, is there
        try:
            deadline, err = time.monotonic() + 20, ""
            addrs = {}
            while time.monotonic() < deadline and "Ready:" not in err:
                line = k.stderr.readline()
                if not line:
                    break
                err += line
            self.assertIn("Ready:", err)
            for label in ("health check server", "token provider server"):
                m = re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", err)
                addrs[label] = (m.group(1), int(m.group(2)))
            self.assertEqual(get(addrs["health check server"], "/readyz")[0], 200)
            tls = ssl.create_default_context(cafile=os.path.join(self.root, "var/lib/keel/ca.pem"))
            tls.check_hostname = False  # the certificate names the host; the test dials 127.0.0.1
            conn = http.client.HTTPSConnection(*addrs["token provider server"], timeout=10, context=tls)
            conn.request("GET", "/token", headers={"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"})
            r = conn.getresponse()
            self.assertEqual(r.status, 200, r.read())
            conn.close()
            k.send_signal(signal.SIGTERM)
            rest, tail = k.communicate(timeout=30)
            self.assertEqual(k.returncode, 0, err + tail)
            self.assertIn("Shutdown completed", tail)
        finally:
            if k.poll() is None:
                k.kill()
                k.communicate(timeout=30)


class Image(unittest.TestCase):
    def test_make_image_builds_it(self):
        tool, why = container_tool()
        if not tool:
            self.skipTest(f"make image not run: {why}")
        p = subprocess.run(["make", "-C", SOURCE, "image", f"CONTAINER={tool}"], capture_output=True, text=True, timeout=1800)
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-4000:])
        with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
            version = re.search(r"project\(keel VERSION (\S+)", f.read()).group(1)
        p = subprocess.run([tool, "run", "--rm", "--read-only", f"keel:{version}", "version"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), f"keel {version}")


if __name__ == "__main__":
    unittest.main()
