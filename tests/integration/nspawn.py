# SPDX-License-Identifier: MIT
"""A real systemd for the tests: a Debian 12 root file system, made once by debootstrap and cached
outside the build tree (remade when its package list changes), booted with systemd-nspawn on an
overlay of its own so that every machine starts from the same clean tree. The build is installed
into the overlay as a user would install it (`cmake --install --prefix /usr`); the test drives the
machine from the host with systemctl and journalctl entered into its namespaces (nsenter), and
reaches its listeners on the host's loopback (no private network). Needs root."""

import fcntl
import hashlib
import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

SUITE = "bookworm"
# What keel needs at run time, systemd and D-Bus to boot, procps for the unit's /bin/kill.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "procps", "libssl3", "libcurl3-gnutls", "libyaml-0-2",
            "libjansson4"]
VARIANT = "minbase"
CACHE = os.environ.get("KEEL_ROOTFS_CACHE") or "/var/cache/keel-test"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 60


def why_not():
    """Why no machine can be booted here, or None."""
    if os.geteuid() != 0:
        return "booting a container with systemd-nspawn needs root"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if not shutil.which(tool):
            return f"{tool} is missing: `make deps` installs debootstrap and systemd-container"
    return None


def mirror():
    """The Debian archive this machine's apt uses for SUITE (deb822 or one-line sources)."""
    texts = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError:
            continue
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for m in re.finditer(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.M):
            return m.group(1)
    raise RuntimeError(f"no apt source for Debian {SUITE} on this machine (/etc/apt/sources.list*)")


def rootfs(log=print):
    """The cached root file system's path, made first if missing (one maker at a time)."""
    key = hashlib.sha256(" ".join([SUITE, VARIANT] + sorted(PACKAGES)).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"rootfs-{SUITE}-{key}")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(path, ".keel-complete")):
            return path
        for old in glob.glob(os.path.join(CACHE, "rootfs-*")):  # another package list, or a half-made one
            shutil.rmtree(old, ignore_errors=True)
        started = time.monotonic()
        p = subprocess.run(["debootstrap", f"--variant={VARIANT}", "--include=" + ",".join(PACKAGES), SUITE, path, mirror()],
                           capture_output=True, text=True, timeout=1200)
        if p.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            raise RuntimeError(f"debootstrap failed ({p.returncode}): {p.stdout[-3000:]}{p.stderr[-3000:]}")
        with open(os.path.join(path, ".keel-complete"), "w") as f:
            f.write(" ".join(PACKAGES) + "\n")
        log(f"nspawn: made the root file system {path} in {time.monotonic() - started:.1f} s")
        return path


def _mount_nspawn_run():
    """nspawn as root wants /run/systemd/nspawn writable, which this machine's /run is not always."""
    d = "/run/systemd/nspawn"
    os.makedirs(d, exist_ok=True)
    if not os.path.ismount(d):
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True, capture_output=True, timeout=30)


def _cgroup_roots():
    """Where nspawn keeps a container's processes: the cgroup2 tree and, on a hybrid host, the
    name=systemd v1 one, each at this process's own cgroup there."""
    mounts, own = {}, {}
    with open("/proc/self/mounts") as f:
        for line in f:
            _, where, kind, options = line.split()[:4]
            if kind == "cgroup2":
                mounts["0:"] = where
            elif kind == "cgroup" and "name=systemd" in options.split(","):
                mounts["name=systemd"] = where
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, hierarchy, path = line.rstrip("\n").split(":", 2)
            own["0:" if hierarchy == "" else hierarchy] = path
    return [os.path.join(mounts[k], own[k].lstrip("/")) for k in mounts if k in own]


def _cgroup_procs(directory):
    pids = set()
    for d, _, files in os.walk(directory):
        if "cgroup.procs" in files:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(p) for p in f.read().split())
    return pids


class Machine:
    """One booted machine on an overlay of the cached root file system. `install` runs with the
    overlay's path before the boot (DESTDIR for cmake --install). close() powers it off and
    removes everything."""

    def __init__(self, install=None, log=print):
        self.log = log
        self.lower = rootfs(log)
        self.tmp = tempfile.mkdtemp(prefix="keel-nspawn-", dir="/var/tmp")
        self.root = os.path.join(self.tmp, "root")
        self.name = f"keel-test-{os.getpid()}-{secrets.token_hex(3)}"  # nspawn allows letters, digits, '-' 
        self.proc = self.leader = None
        self.console = None
        # A cgroup of its own in each tree: nspawn keeps its container in a "payload" group beside
        # itself, which two machines (or a leftover one) must not share, and close() kills
        # whatever is left in it.
        self.cgroups = [os.path.join(root, self.name) for root in _cgroup_roots()]
        for d in self.cgroups:
            os.makedirs(d)
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.tmp, d))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lower},upperdir={self.tmp}/upper,workdir={self.tmp}/work", self.root],
                       check=True, capture_output=True, timeout=30)
        try:
            if install:
                install(self.root)
            self._boot()
        except BaseException:
            self.close()
            raise

    def _boot(self):
        _mount_nspawn_run()
        started = time.monotonic()
        self.console = open(os.path.join(self.tmp, "console.log"), "w")
        self.proc = subprocess.Popen(["systemd-nspawn", "-D", self.root, "-b", "--register=no", "--keep-unit", "-M", self.name,
                                      "--link-journal=no", "--console=read-only"],
                                     stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT,
                                     preexec_fn=self._enter_cgroups)
        while self.leader is None:
            if self.proc.poll() is not None or time.monotonic() - started > BOOT_TIMEOUT:
                raise RuntimeError(f"systemd-nspawn did not start a container: {self.console_text()[-3000:]}")
            self.leader = self._init_pid()
            time.sleep(0.02 if self.leader is None else 0)
        # Until the manager has set up /run/systemd and listens on its private socket, systemctl
        # says "offline" or cannot connect: ask again.
        while True:
            left = BOOT_TIMEOUT - (time.monotonic() - started)
            p = self.run("systemctl", "is-system-running", "--wait", timeout=max(left, 1))
            if p.stdout.strip() in ("running", "degraded") or left <= 0:
                break
            time.sleep(0.05)
        self.boot_seconds = time.monotonic() - started
        if p.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"the machine did not boot: {p.stdout}{p.stderr}\n{self.console_text()[-3000:]}")
        self.log(f"nspawn: {self.name} booted in {self.boot_seconds:.2f} s ({p.stdout.strip()})")

    def _init_pid(self):
        """The container's systemd, once nspawn's child has become it (before, entering the
        child's namespaces would be entering the host's)."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "systemd" and os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
                        return int(pid)
            except OSError:
                continue
        return None

    def _enter_cgroups(self):
        for d in self.cgroups:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")

    def console_text(self):
        try:
            with open(os.path.join(self.tmp, "console.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def run(self, *argv, timeout=60, check=False, input=None):
        """A command inside the machine, as root, with its output (CompletedProcess)."""
        p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--"] + list(argv), capture_output=True, text=True,
                           timeout=timeout, env={"PATH": PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
                           input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {p.returncode}: {p.stdout}{p.stderr}")
        return p

    def systemctl(self, *args, timeout=120, check=False):
        return self.run("systemctl", "--no-pager", *args, timeout=timeout, check=check)

    def show(self, unit, *props):
        """{property: value} of `systemctl show`."""
        p = self.systemctl("show", unit, "-p", ",".join(props), check=True)
        return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)

    def journal(self, *args, timeout=60):
        return self.run("journalctl", "--no-pager", *args, timeout=timeout).stdout

    def write(self, path, text, mode=0o644):
        """A file in the machine's tree, through the overlay."""
        full = os.path.join(self.root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def close(self):
        if self.proc and self.proc.poll() is None:
            if self.leader:
                try:
                    self.run("systemctl", "poweroff", "--no-block", timeout=30)
                except (subprocess.TimeoutExpired, OSError):
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._kill_leftovers()
        if self.console:
            self.console.close()
        if os.path.ismount(self.root):
            subprocess.run(["umount", "-l", self.root], capture_output=True, timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _kill_leftovers(self):
        """A container whose nspawn was killed lives on: its processes die with their cgroups."""
        deadline = time.monotonic() + 10
        while any(_cgroup_procs(d) for d in self.cgroups if os.path.isdir(d)) and time.monotonic() < deadline:
            for d in self.cgroups:
                for pid in _cgroup_procs(d) if os.path.isdir(d) else ():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.05)
        for d in self.cgroups:
            for sub, _, _ in sorted(os.walk(d), key=lambda w: -len(w[0])):  # the deepest first
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


if __name__ == "__main__":
    # `python3 nspawn.py rootfs`: make the cached root file system ahead of the tests (make test
    # runs it beside the builds); a test that needs it meanwhile waits on the maker's lock.
    import sys
    if sys.argv[1:] != ["rootfs"]:
        sys.exit("usage: nspawn.py rootfs")
    reason = why_not()
    print(f"nspawn: no root file system made: {reason}" if reason else rootfs())
