# SPDX-License-Identifier: MIT
"""The container image. conf/container/rootfs.sh makes a root file system that holds keel and its
libraries only, and keel runs in it, chrooted as the image's user: serves, answers, drains, exits
0. `make image`'s command (conf/container/image.sh) builds keel:VERSION from it with podman and no
registry; keel then runs from the image's exported file system under systemd-nspawn, and under
`podman run` where crun can start a container (elsewhere that test is skipped, quoting crun)."""

import glob
import http.client
import json
import os
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from httpclient import get
from keelrun import KEEL

SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ROOTFS = os.path.join(SOURCE, "conf", "container", "rootfs.sh")
IMAGE_SH = os.path.join(SOURCE, "conf", "container", "image.sh")
BUILD = os.environ.get("KEEL_BUILD_DIR") or os.path.dirname(os.path.realpath(KEEL))
USER = 65532
# Every listener on loopback and a port of the kernel's choosing, read back from the Ready line;
# the token server serves TLS, so the libssl keel loads at run time must be in the image too.
SERVE_ENV = {"KEEL_HEALTHCHECK_ADDRESS": "127.0.0.1:0", "KEEL_METRICS_ADDRESS": "127.0.0.1:0",
             "KEEL_TOKEN_ADDRESS": "127.0.0.1:0", "KEEL_TOKEN_TLS": "self"}


class Lines:
    """A child's output, read all the time by a thread, so that every wait on it is bounded."""

    def __init__(self, pipe):
        self.lines, self.eof = [], False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe):
        for line in pipe:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        pipe.close()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "".join(self.lines)

    def wait_for(self, needle, timeout):
        """True once the output holds needle; False at its end or after timeout seconds."""
        with self.cond:
            self.cond.wait_for(lambda: self.eof or needle in "".join(self.lines), timeout)
            return needle in "".join(self.lines)

    def wait_eof(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.eof, timeout)


def check_serves(test, out, state_dir):
    """keel, whose output `out` is, becomes ready, is ready on /readyz and issues a token over TLS
    (its local CA is state_dir/ca.pem)."""
    test.assertTrue(out.wait_for("Ready:", 30), out.text())
    addrs = {}
    for label in ("health check server", "token provider server"):
        m = re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", out.text())
        test.assertTrue(m, f"no {label} address in:\n{out.text()}")
        addrs[label] = (m.group(1), int(m.group(2)))
    test.assertEqual(get(addrs["health check server"], "/readyz")[0], 200)
    tls = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.pem"))
    tls.check_hostname = False  # the certificate names the host; the test dials 127.0.0.1
    conn = http.client.HTTPSConnection(*addrs["token provider server"], timeout=10, context=tls)
    try:
        conn.request("GET", "/token", headers={"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"})
        r = conn.getresponse()
        test.assertEqual(r.status, 200, r.read())
    finally:
        conn.close()


def stop(proc):
    """Kills proc (and its process group when it leads one) unless it has exited; reaps it."""
    if proc.poll() is None:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"process {proc.pid} did not exit within 30 s of SIGKILL\n")


@unittest.skipUnless(os.geteuid() == 0, "chroot(2) and mounting /proc need root")
class RootFilesystem(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="keel-image-")
        cls.root = os.path.join(cls.dir, "rootfs")
        # From an install, as image.sh makes it: keel's module is where the installed keel looks.
        stage = os.path.join(cls.dir, "stage")
        p = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, DESTDIR=stage))
        assert p.returncode == 0, p.stderr
        libdir = os.path.dirname(glob.glob(os.path.join(stage, "usr", "lib", "**", "libkeel.so.0"), recursive=True)[0])
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        p = subprocess.run(["sh", ROOTFS, cls.root, os.path.join(stage, "usr", "bin", "keel")], capture_output=True, text=True,
                           timeout=120, env=env)
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
        return subprocess.Popen(argv, env={**base, **(env or {})}, **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                                                     "text": True, **kw})

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
        # The token server serves TLS: libssl, which keel loads at run time, is there.
        k = self.chroot("serve", env={"KEEL_TOKEN_TLS": "self"}, stdout=subprocess.DEVNULL)
        self.addCleanup(stop, k)
        out = Lines(k.stderr)
        check_serves(self, out, os.path.join(self.root, "var/lib/keel"))
        k.send_signal(signal.SIGTERM)
        self.assertEqual(k.wait(timeout=30), 0, out.text())
        out.wait_eof(10)
        self.assertIn("Shutdown completed", out.text())


def image_sh(*args, timeout=120):
    """conf/container/image.sh ARGS: `build BUILD TAG`, or `podman BUILD ...` on the image's store."""
    return subprocess.run([IMAGE_SH, *args], capture_output=True, text=True, timeout=timeout)


def podman(*args, timeout=120):
    return image_sh("podman", BUILD, *args, timeout=timeout)


def version():
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        return re.search(r"project\(keel VERSION (\S+)", f.read()).group(1)


def children(pid):
    """The processes whose parent is pid."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):  # it exited
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the field after the state, past the comm
            found.append(int(entry))
    return found


def nspawn_locks():
    """systemd-nspawn as root needs /run/systemd/nspawn to be a mount of its own on these VMs
    (issue 23). It stays mounted: a tmpfs there is harmless, and another test may be using it."""
    path = "/run/systemd/nspawn"
    if not os.path.ismount(path):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True, capture_output=True, timeout=30)


# What crun answers on a VM without CAP_SYS_RESOURCE and with a cgroup v1/v2 hybrid whose unified
# hierarchy has a controller. Tried there (podman 4.3, crun 1.8.1): podman asks crun for
# RLIMIT_NOFILE 1048576, above the hard limit, so plain `podman run` fails in setrlimit, and so it
# does with `--ulimit host`, `--pids-limit=0` or `--cgroups=disabled`. With limits the process
# holds already (below) the setrlimit calls pass, and crun then refuses the hybrid cgroups,
# --cgroups=disabled too: crun checks the hierarchy before it looks at the cgroup manager.
CRUN_REFUSALS = (r"crun: setrlimit `RLIMIT_\w+`: Operation not permitted", r"crun: cgroups in hybrid mode not supported")


@unittest.skipUnless(os.geteuid() == 0, "podman's vfs store of an image owned by 65532, and systemd-nspawn, need root")
@unittest.skipUnless(shutil.which("podman"), "podman is not installed (make deps installs it)")
class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tag = f"keel:{version()}"
        started = time.monotonic()
        p = image_sh("build", BUILD, cls.tag, timeout=300)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        cls.build_seconds = time.monotonic() - started
        p = podman("image", "inspect", cls.tag, "--format", "json")
        assert p.returncode == 0, p.stderr
        cls.inspect = json.loads(p.stdout)[0]
        sys.stderr.write(f"image {cls.tag}: built in {cls.build_seconds:.1f} s, {cls.inspect['Size']} bytes\n")

    def exported_root(self):
        """A copy of the image's file system (podman export of a container made from it), mode
        0755 so that the image's user reaches its files."""
        tmp = tempfile.mkdtemp(prefix="keel-image-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        p = podman("create", self.tag)
        self.assertEqual(p.returncode, 0, p.stderr)
        container = p.stdout.strip()
        self.addCleanup(podman, "rm", "--force", "--ignore", "--volumes", container)  # and the VOLUME's
        p = podman("export", "--output", os.path.join(tmp, "image.tar"), container)
        self.assertEqual(p.returncode, 0, p.stderr)
        root = os.path.join(tmp, "root")
        os.mkdir(root, 0o755)
        subprocess.run(["tar", "-x", "--numeric-owner", "-f", os.path.join(tmp, "image.tar"), "-C", root], check=True,
                       timeout=120)
        os.unlink(os.path.join(tmp, "image.tar"))
        return root

    def test_it_is_rootfs_sh_output_with_the_containerfiles_settings(self):
        config = self.inspect["Config"]
        self.assertEqual((config["User"], list(config["Volumes"]), sorted(config["ExposedPorts"])),
                         ("65532:65532", ["/var/lib/keel"], ["8881/tcp", "9998/tcp", "9999/tcp"]))
        self.assertEqual((config["Entrypoint"], config["Cmd"]), (["/usr/bin/keel"], ["serve"]))
        self.assertEqual(len(self.inspect["RootFS"]["Layers"]), 1, "FROM scratch: one layer, rootfs.tar")
        root, made = self.exported_root(), os.path.join(BUILD, "image", "rootfs")
        self.assertEqual(tree(root), tree(made))
        with open(os.path.join(root, "usr/bin/keel"), "rb") as a, open(os.path.join(made, "usr/bin/keel"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "the image's keel is the host build's, installed")
        st = os.stat(os.path.join(root, "var/lib/keel"))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (USER, USER, 0o700))

    @unittest.skipUnless(shutil.which("systemd-nspawn"), "systemd-nspawn is not installed (make deps installs it)")
    def test_keel_serves_from_its_file_system_under_nspawn_and_exits_0_on_sigterm(self):
        root = self.exported_root()
        state = tempfile.mkdtemp(prefix="keel-image-state-")
        self.addCleanup(shutil.rmtree, state, ignore_errors=True)
        image_state = os.stat(os.path.join(root, "var/lib/keel"))  # what a runtime gives the VOLUME
        os.chown(state, image_state.st_uid, image_state.st_gid)
        os.chmod(state, image_state.st_mode & 0o7777)
        nspawn_locks()
        n = subprocess.Popen(self.nspawn_argv(root, state), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.addCleanup(stop_nspawn, n)
        out = Lines(n.stdout)
        check_serves(self, out, state)
        keel = [pid for pid in children(n.pid) if comm(pid) == "keel"]
        self.assertEqual(len(keel), 1, f"keel, nspawn's child: {children(n.pid)}")
        self.assertEqual(uid(keel[0]), USER, "keel runs as the image's user")
        os.kill(keel[0], signal.SIGTERM)
        self.assertEqual(n.wait(timeout=60), 0, out.text())  # nspawn exits with its container's status
        out.wait_eof(10)
        self.assertIn("Shutdown completed", out.text())

    def nspawn_argv(self, root, state):
        """Not booted: the image's entrypoint and command as the container's PID 1, as the image's
        user, on a read-only root with the state volume bound, sharing the host's network (keel's
        listeners are on its loopback). The mount points a runtime makes are made here, and nspawn
        resolves --user with getent inside: the host's (it needs only libc, which the image has)."""
        for d in ("proc", "sys", "dev", "run", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        open(os.path.join(root, "usr/bin/getent"), "w").close()
        config = self.inspect["Config"]
        return ["systemd-nspawn", "--quiet", "-D", root, "--register=no", "--keep-unit", "--read-only", "--pipe",
                "--timezone=off", "--resolv-conf=off", "--bind-ro=/usr/bin/getent", f"--bind={state}:/var/lib/keel",
                f"--user={config['User'].split(':')[0]}", *(f"--setenv={k}={v}" for k, v in SERVE_ENV.items()),
                *config["Entrypoint"], *config["Cmd"]]

    def test_keel_serves_under_podman_run_and_exits_0_on_sigterm(self):
        name = f"keel-test-image-{os.getpid()}"
        self.addCleanup(podman, "rm", "--force", "--ignore", "--volumes", name)
        r = subprocess.Popen([IMAGE_SH, "podman", BUILD, "run", "--rm", "--name", name, *podman_run_options(), self.tag],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        self.addCleanup(stop, r)
        out = Lines(r.stdout)
        if not out.wait_for("Ready:", 60):
            self.skip_if_crun_refused(r, out)
        p = podman("inspect", name, "--format", '{{range .Mounts}}{{if eq .Destination "/var/lib/keel"}}{{.Source}}{{end}}{{end}}')
        self.assertEqual(p.returncode, 0, p.stderr)
        check_serves(self, out, p.stdout.strip())
        p = podman("kill", "--signal", "TERM", name)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r.wait(timeout=60), 0, out.text())
        out.wait_eof(10)
        self.assertIn("Shutdown completed", out.text())

    def skip_if_crun_refused(self, run, out):
        """Skips the test, quoting crun, when `podman run` ended with one of CRUN_REFUSALS."""
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return
        out.wait_eof(10)
        refused = [m.group(0).strip() for m in (re.search(rf"(?m)^.*{x}.*$", out.text()) for x in CRUN_REFUSALS) if m]
        if run.returncode != 0 and refused:
            self.skipTest(f"podman run cannot start a container on this machine ({refused[0]}); see CRUN_REFUSALS")


def podman_run_options():
    """The host's network, where the test reaches keel on loopback, a read-only root, the serving
    environment, and resource limits this process holds already (see CRUN_REFUSALS)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    return ["--network=host", "--read-only", f"--ulimit=nofile={soft}:{hard}", f"--ulimit=nproc={nproc}:{nproc}",
            *(f"--env={k}={v}" for k, v in SERVE_ENV.items())]


def stop_nspawn(n):
    """Kills the container's PID 1, whose death ends nspawn, then reaps nspawn: killing nspawn
    alone would leave its container running."""
    if n.poll() is None:
        for pid in children(n.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    stop(n)


def tree(root):
    """Every path under root, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, name), root) for d, dirs, files in os.walk(root) for name in dirs + files)


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def uid(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"(?m)^Uid:\s+(\d+)", f.read()).group(1))


if __name__ == "__main__":
    unittest.main()
