# SPDX-License-Identifier: MIT
"""--daemon: detach, and report readiness (or the failure) through the exit status of the
process that was started."""

import os
import shutil
import signal
import socket
import tempfile
import time
import unittest

from httpclient import get
from keelrun import KeelTestCase, load_trace, run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


class Daemon(KeelTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-daemon-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pidfile = os.path.join(self.dir, "keel.pid")
        self.port = free_port()

    def daemon(self, *extra, env=None):
        full = {"KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.port}"}
        full.update(env or {})
        return run("--daemon", "--pidfile", self.pidfile, "serve", *extra, env=full, notify=False)

    def daemon_pid(self):
        # The file exists from its open(2) on; the PID follows its lock a moment later.
        deadline, text = time.monotonic() + 10, ""
        while not text.strip() and time.monotonic() < deadline:
            with open(self.pidfile) as f:
                text = f.read()
            if not text.strip():
                time.sleep(0.01)
        pid = int(text)
        # Never leave a detached process behind, whatever the test does.
        self.addCleanup(lambda: alive(pid) and os.kill(pid, signal.SIGKILL))
        return pid

    def stop(self, pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(alive(pid), "the daemon did not stop on SIGTERM")

    def test_the_parent_exits_0_once_the_daemon_serves(self):
        status, out, err, _ = self.daemon()
        self.assertEqual(status, 0, err)
        self.assertEqual(out + err, "", "a daemon writes nothing on the terminal it left")
        pid = self.daemon_pid()
        # Already serving when the parent exits: readiness came back through the pipe.
        self.assertEqual(get(("127.0.0.1", self.port), "/readyz")[0], 200)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().split(") ")[1].split()
        sid = int(fields[3])
        self.assertNotEqual(sid, pid, "not a session leader: it can never acquire a terminal again")
        self.assertEqual(os.getsid(0) != sid, True, "a session of its own")
        self.assertEqual(os.readlink(f"/proc/{pid}/cwd"), "/")
        self.assertEqual(os.readlink(f"/proc/{pid}/fd/0"), "/dev/null")
        self.stop(pid)
        self.assertFalse(os.path.exists(self.pidfile), "the PID file is removed at finalize")

    def test_a_second_instance_fails_with_the_first_ones_pid(self):
        self.assertEqual(self.daemon()[0], 0)
        pid = self.daemon_pid()
        status, _, err, _ = run("--daemon", "--pidfile", self.pidfile, "serve", notify=False)
        self.assertEqual(status, 1, err)
        self.assertIn(f"another instance is already running (PID {pid})", err)
        self.assertEqual(get(("127.0.0.1", self.port), "/livez")[0], 200, "the first one is untouched")
        self.stop(pid)

    def test_a_failed_start_exits_1_with_the_daemons_error(self):
        status, _, err, _ = self.daemon(env={"KEEL_FAULT": "error@in:healthcheck.start"})
        self.assertEqual(status, 1, err)
        self.assertIn("the daemon failed to start", err)
        self.assertIn("test error", err)
        self.assertFalse(os.path.exists(self.pidfile), "the failed daemon released its PID file")

    def test_a_bad_configuration_is_reported_as_well(self):
        status, _, err, _ = self.daemon("--set", "shutdown.timeout=soon")
        self.assertEqual(status, 78, "the daemon's own status comes back")
        self.assertIn("shutdown.timeout", err)

    def test_a_bad_fault_or_trace_file_is_reported_with_its_own_status(self):
        status, _, err, _ = self.daemon(env={"KEEL_FAULT": "bogus"})
        self.assertEqual(status, 64, err)
        self.assertIn("KEEL_FAULT: missing '@' in 'bogus'", err)
        status, _, err, _ = run("--daemon", "--pidfile", self.pidfile, "--trace", f"{self.dir}/missing/t.json", "serve",
                                env={"KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.port}"}, notify=False)
        self.assertEqual(status, 73, err)
        self.assertIn(f"the daemon failed to start: Failed to open trace file '{self.dir}/missing/t.json': "
                      "No such file or directory", err)
        self.assertFalse(os.path.exists(self.pidfile), "nothing was started")

    def test_relative_paths_mean_what_they_meant_where_it_started(self):
        """The daemon works from "/": --config, --trace, --pidfile and a relative state_dir still
        name files of the directory it was started in."""
        with open(os.path.join(self.dir, "keel.yaml"), "w") as f:
            f.write(f"healthcheck:\n  address: 127.0.0.1:{self.port}\n")
        status, _, err, _ = run("--daemon", "--config", "keel.yaml", "--trace", "trace.json", "--pidfile", "./keel.pid",
                                "serve", no_config=True, notify=False, cwd=self.dir,
                                env={"KEEL_STATE_DIR": "state", "KEEL_HEALTHCHECK_ADDRESS": None})
        self.assertEqual(status, 0, err)
        pid = self.daemon_pid()
        self.assertEqual(get(("127.0.0.1", self.port), "/livez")[0], 200, "the configuration file was read")
        self.assertEqual(os.stat(os.path.join(self.dir, "state")).st_mode & 0o777, 0o700)
        self.stop(pid)
        self.assertTrue(load_trace(os.path.join(self.dir, "trace.json")), "the trace went where it was asked")

    def test_a_relative_defaults_file_is_read_by_the_daemon(self):
        """$KEEL_DEFAULTS_FILE names a file of the starting directory too: a bad key there fails
        the daemon with 78, as it fails the foreground run, instead of being skipped as missing."""
        with open(os.path.join(self.dir, "defaults.yaml"), "w") as f:
            f.write("shutdown:\n  timout: 5s\n")
        env = {"KEEL_DEFAULTS_FILE": "defaults.yaml", "KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.port}"}
        for daemon in ((), ("--daemon",)):
            with self.subTest(daemon=daemon):
                status, _, err, _ = run(*daemon, "--pidfile", self.pidfile, "serve", cwd=self.dir, env=env, notify=False)
                if daemon and status == 0:
                    self.daemon_pid()  # a daemon that did start is killed at the end
                self.assertEqual(status, 78, err)
                self.assertIn("defaults.yaml:2:3: unknown key 'shutdown.timout'", err)
        self.assertFalse(os.path.exists(self.pidfile), "nothing was started")

    def test_a_signal_ends_the_wait_of_the_process_that_was_started(self):
        """^C while the daemon starts ends the wait, as it would end a start in the foreground."""
        k = self.keel("--daemon", "--pidfile", self.pidfile, "serve", notify=False,
                      env={"KEEL_HEALTHCHECK_ADDRESS": f"127.0.0.1:{self.port}",
                           "KEEL_FAULT": "sleep=6000@in:healthcheck.start"})
        deadline = time.monotonic() + 10
        while not os.path.exists(self.pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = self.daemon_pid()  # held from start.before on: the daemon is in its start
        k.kill(signal.SIGINT)
        status, _, _ = k.wait(timeout=4)
        self.assertEqual(status, -signal.SIGINT)
        self.assertTrue(alive(pid), "the daemon goes on with its start")
        self.stop(pid)


if __name__ == "__main__":
    unittest.main()
