# SPDX-License-Identifier: MIT
"""Runs the real keel binary for the integration tests: a private temporary directory, a fake
service manager (an AF_UNIX datagram socket as NOTIFY_SOCKET), bounded waits, and a check that
no sanitizer reported anything. Every process started is killed and reaped in close()."""

import codecs
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
KEEL = os.environ.get("KEEL_BIN") or os.path.join(HERE, "..", "..", "build", "keel")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")
SANITIZER_STATUS = 86  # tests/CMakeLists.txt gives sanitizer reports this exit status
FDS_MAX = 16  # descriptors taken from one notification
MARK = "KEEL_TEST_SETTLED="  # a datagram of the test's own on the notification socket (Keel.settle)


def _fields(msg):
    """The NAME=value lines of a notification, as a dict."""
    return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)


class FdStore:
    """A service manager's file descriptor store, as systemd keeps it across `systemctl restart`:
    a Keel given it keeps what its keel sends with FDSTORE=1 (the descriptor, over SCM_RIGHTS)
    under its FDNAME=, drops what FDSTOREREMOVE=1 names, and starts its keel with what the store
    holds, as systemd passes it: from fd 3 on, named in LISTEN_FDNAMES, LISTEN_FDS and LISTEN_PID
    set (by a launcher that then becomes keel). close() closes what is left."""

    # Runs in the child: the passed descriptors to 3, 4, …, the variables set, then exec of keel.
    LAUNCHER = """import fcntl, os, sys
n = int(sys.argv[1])
fds, names, argv = [int(x) for x in sys.argv[2:2 + n]], sys.argv[2 + n:2 + 2 * n], sys.argv[2 + 2 * n:]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]  # out of the way of 3, 4, …
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
env = dict(os.environ, LISTEN_FDS=str(n), LISTEN_FDNAMES=":".join(names), LISTEN_PID=str(os.getpid()))
os.execve(argv[0], argv, env)
"""

    def __init__(self):
        self.lock = threading.Lock()
        self.kept = []  # (name, fd), oldest first

    def take(self, msg, fds):
        """One notification with the descriptors that came with it; returns those not kept."""
        fields = _fields(msg)
        with self.lock:
            if fields.get("FDSTOREREMOVE") == "1":
                for name, fd in [k for k in self.kept if k[0] == fields.get("FDNAME")]:
                    os.close(fd)
                    self.kept.remove((name, fd))
            if fields.get("FDSTORE") == "1":
                self.kept += [(fields.get("FDNAME", "stored"), fd) for fd in fds]
                return []
        return fds

    def names(self):
        with self.lock:
            return [name for name, _ in self.kept]

    def launch(self, argv):
        """(argv, pass_fds) that start `argv` with what the store holds."""
        with self.lock:
            kept = list(self.kept)
        if not kept:
            return argv, ()
        fds = [fd for _, fd in kept]
        return ([sys.executable, "-c", self.LAUNCHER, str(len(kept))] + [str(fd) for fd in fds] + [n for n, _ in kept] + argv,
                tuple(fds))

    def close(self):
        with self.lock:
            for _, fd in self.kept:
                os.close(fd)
            self.kept = []


class Keel:
    """One run of keel (or of another program built on Keel: `binary`). Arguments go after the
    binary; the run gets an empty --config file unless `config` (YAML text) or `no_config` says
    otherwise; `preexec_fn` runs in the child before the exec (resource limits)."""

    def __init__(self, *args, env=None, config="", no_config=False, notify=True, cwd=None, preexec_fn=None, binary=None,
                 fdstore=None):
        self.tmp = tempfile.mkdtemp(prefix="keel-it-")
        self.fdstore = fdstore  # an FdStore (needs notify): what keel keeps across a restart
        self.notifications = []  # (monotonic seconds, message)
        self.cond = threading.Condition()
        self.marks = self.marked = 0  # settle()'s datagrams: the last sent, the last the reader took
        self.sock = None
        self.reader = None
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
        full_env["KEEL_DEFAULTS_FILE"] = os.path.join(self.tmp, "no-defaults.yaml")
        # Every listener on loopback and a free port: tests run in parallel, and never touch
        # anything but this machine's loopback.
        for service in ("HEALTHCHECK", "METRICS", "TOKEN"):
            full_env[f"KEEL_{service}_ADDRESS"] = "127.0.0.1:0"
        # Keys, certificates and records of a run stay in the run's own directory.
        full_env["KEEL_STATE_DIR"] = os.path.join(self.tmp, "state")
        if notify:
            self.notify_path = os.path.join(self.tmp, "notify")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.sock.bind(self.notify_path)
            full_env["NOTIFY_SOCKET"] = self.notify_path
            # Like systemd, read all the time: the socket queues only 10 datagrams and
            # sd_notify() blocks when the queue is full.
            self.reader = threading.Thread(target=self._read_notifications, daemon=True)
            self.reader.start()
        full_env.update(env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}  # None: unset it
        argv = [binary or KEEL]
        if not no_config:
            self.config_path = self.write("keel.yaml", config)
            argv += ["--config", self.config_path]
        argv += list(args)
        argv, pass_fds = fdstore.launch(argv) if fdstore else (argv, ())
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd, preexec_fn=preexec_fn, pass_fds=pass_fds)
        self.stdout = self.stderr = None
        # Read both pipes all the time, as journald would: a full 64 KiB pipe blocks the writer,
        # and a test that reads only at exit would see a server frozen in write(2).
        self._out, self._err = [], []
        self.pipe_readers = [threading.Thread(target=self._drain_pipe, args=(pipe, sink), daemon=True)
                             for pipe, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self.pipe_readers:
            t.start()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    @staticmethod
    def _drain_pipe(pipe, sink):
        # read1: whatever has arrived, so stderr_so_far() sees a line as soon as it is written.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in iter(lambda: pipe.buffer.read1(65536), b""):
            sink.append(decoder.decode(chunk))
        sink.append(decoder.decode(b"", final=True))

    def _read_notifications(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 4096, FDS_MAX, socket.MSG_CMSG_CLOEXEC)
            except OSError:
                return
            if not data:
                for fd in fds:
                    os.close(fd)
                return
            msg = data.decode()
            if msg.startswith(MARK):
                for fd in fds:
                    os.close(fd)
                with self.cond:
                    self.marked = int(msg[len(MARK):])
                    self.cond.notify_all()
                continue
            # As systemd does: a descriptor that is not stored is closed (that answers BARRIER=1).
            for fd in self.fdstore.take(msg, fds) if self.fdstore else fds:
                os.close(fd)
            with self.cond:
                self.notifications.append((time.monotonic(), msg))
                self.cond.notify_all()

    def settle(self, timeout=10.0):
        """Once keel has exited: every notification it sent has been read. The socket's queue is
        in order, so a datagram of the test's own, sent now, comes after the last of them."""
        if not self.sock:
            return
        with self.cond:
            self.marks += 1
            mark = self.marks
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(timeout)  # sendto() blocks while the queue is full, until the reader takes some
            s.sendto(f"{MARK}{mark}".encode(), self.notify_path)
        with self.cond:
            if not self.cond.wait_for(lambda: self.marked >= mark, timeout):
                raise AssertionError(f"the notification reader did not take its mark within {timeout}s")

    def _find(self, prefix, start=0):
        for _, msg in self.notifications[start:]:
            if any(line.startswith(prefix) for line in msg.split("\n")):
                return msg
        return None

    def wait_notify(self, prefix, timeout=15.0, start=0):
        """Waits for a notification (from index `start` on) with a line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                msg = self._find(prefix, start)
                if msg is not None:
                    return msg
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self.cond.wait(min(left, 0.05))
        if self.proc.poll() is not None:  # what it sent last may not have been read yet
            self.settle()
            with self.cond:
                msg = self._find(prefix, start)
            if msg is not None:
                return msg
        raise AssertionError(f"no {prefix!r} notification within {timeout}s; got {self.messages()}; "
                             f"stderr so far: {self._stderr_now()}")

    def _stderr_now(self):
        return self.stderr_so_far() if self.proc.poll() is None else self.wait()[2]

    def ready(self, timeout=15.0):
        return self.wait_notify("READY=1", timeout)

    def kill(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        """Waits for the exit; returns (status, stdout, stderr). Fails if a sanitizer spoke."""
        if self.stdout is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._collect()
                raise AssertionError(f"keel did not exit within {timeout}s; stderr: {self.stderr}")
            self._collect()
            self.settle()  # the reader takes what the process sent last
            for mark in SANITIZER_MARKS:
                if mark in self.stderr:
                    raise AssertionError(f"sanitizer report in stderr:\n{self.stderr}")
            if self.proc.returncode == SANITIZER_STATUS:
                raise AssertionError(f"sanitizer exit status; stderr:\n{self.stderr}")
        return self.proc.returncode, self.stdout, self.stderr

    def _join_pipes(self):
        for t in self.pipe_readers:
            t.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if not any(t.is_alive() for t in self.pipe_readers):
                pipe.close()

    def _collect(self):
        self._join_pipes()
        self.stdout, self.stderr = "".join(self._out), "".join(self._err)

    def stderr_so_far(self):
        return "".join(self._err)

    def messages(self):
        with self.cond:
            return [m for _, m in self.notifications]

    def close(self):
        # Under `make coverage` a run the test left running is stopped with SIGTERM first: gcov
        # writes its counts at exit, and a SIGKILLed process would count for nothing.
        if self.proc.poll() is None and os.environ.get("KEEL_TEST_STOP") == "term":
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._join_pipes()
        if self.sock:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.reader.join(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run(*args, timeout=30.0, **kw):
    """Runs keel to its end; returns (status, stdout, stderr, notifications)."""
    k = Keel(*args, **kw)
    try:
        status, out, err = k.wait(timeout)
        return status, out, err, k.messages()
    finally:
        k.close()


def load_trace(path):
    with open(path) as f:
        return json.load(f)["traceEvents"]


class KeelTestCase(unittest.TestCase):
    """Closes every Keel started through self.keel() even when a test fails."""

    def keel(self, *args, **kw):
        k = Keel(*args, **kw)
        self.addCleanup(k.close)
        return k

    def assertInOrder(self, items, wanted):
        """Each of `wanted` is a prefix of some item, in this order."""
        i = 0
        for w in wanted:
            while i < len(items) and not items[i].startswith(w):
                i += 1
            self.assertLess(i, len(items), f"{w!r} missing or out of order in {items}")
            i += 1
