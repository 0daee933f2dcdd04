# SPDX-License-Identifier: MIT
"""Keel as others use it: `cmake --install` into a staging directory (DESTDIR), then the programs in
examples/ built out of tree against what was installed — with CMake's find_package(Keel), shared
and static, and with pkg-config and a plain Makefile — and run from the install tree. Each
reaches READY=1, serves its probe, drains on SIGTERM and exits 0, and exits 1 on an injected
start fault. The README's plugin is examples/hello/hello.c, compiled here. examples/pinger is the
daemon of issue 26 in under 150 lines: its own route, task, live key, command, health check and
metric, with libkeel's health check and metrics components."""

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from httpclient import bound_address, get, wait_for
from keelrun import Keel, KeelTestCase

SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("KEEL_BUILD_DIR")
PREFIX = os.environ.get("KEEL_INSTALL_PREFIX", "/usr/local")  # the build's, as ctest passes them
LIBDIR = os.environ.get("KEEL_INSTALL_LIBDIR", "lib")


def sh(*argv, env=None, cwd=None):
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


@unittest.skipUnless(BUILD, "KEEL_BUILD_DIR names the build to install (ctest sets it)")
class Installed(KeelTestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="keel-install-")
        cls.stage = os.path.join(cls.root, "stage")
        sh("cmake", "--install", BUILD, env=dict(os.environ, DESTDIR=cls.stage))
        cls.prefix = cls.stage + PREFIX
        cls.libdir = os.path.join(cls.prefix, LIBDIR)
        cls.env = dict(os.environ, LD_LIBRARY_PATH=cls.libdir)
        cls.bins = {}
        for mode, static in (("cmake-shared", "OFF"), ("cmake-static", "ON")):
            out = os.path.join(cls.root, mode)
            sh("cmake", "-S", os.path.join(SOURCE, "examples"), "-B", out, f"-DCMAKE_PREFIX_PATH={cls.prefix}",
               f"-DKEEL_EXAMPLES_STATIC={static}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo")
            sh("cmake", "--build", out)
            cls.bins[mode] = out
        out = os.path.join(cls.root, "pkg-config")
        os.makedirs(out)
        pc = os.path.join(cls.libdir, "pkgconfig")
        sh("make", "-C", os.path.join(SOURCE, "examples"), f"O={out}",
           f"PKG_CONFIG=pkg-config --define-variable=prefix={cls.prefix}",
           env=dict(os.environ, PKG_CONFIG_PATH=pc))
        cls.bins["pkg-config"] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_the_install_tree_holds_the_framework_and_the_agent(self):
        for f in ("bin/keel", f"{LIBDIR}/libkeel.so.0", f"{LIBDIR}/libkeel.a", f"{LIBDIR}/pkgconfig/keel.pc",
                  "include/keel/keel.h", "include/keel/service.h", f"{LIBDIR}/cmake/Keel/KeelConfig.cmake",
                  "lib/systemd/system/keel.service", "share/doc/keel/examples/keel.yaml",
                  "share/doc/keel/examples/pinger/pinger.c"):
            self.assertTrue(os.path.exists(os.path.join(self.prefix, f)), f)
        headers = sorted(os.path.basename(h) for h in glob.glob(os.path.join(self.prefix, "include/keel/*.h")))
        self.assertEqual(headers, sorted(os.path.basename(h) for h in glob.glob(os.path.join(SOURCE, "include/keel/*.h"))))
        self.assertEqual(os.readlink(os.path.join(self.libdir, "libkeel.so.0")), "libkeel.so.0.1.0")
        with open(os.path.join(self.prefix, "lib/systemd/system/keel.service")) as f:
            unit = f.read()
        self.assertIn(f"ExecStart={PREFIX}/bin/keel serve", unit, "the unit runs the binary installed with it")
        self.assertIn(f"ExecReload={PREFIX}/bin/keel config --check", unit, "and checks a reload with it")

    def test_make_install_with_destdir_installs_the_same(self):
        # The README's way: `make install DESTDIR=… PREFIX=…`, here on the build ctest runs in.
        stage = os.path.join(self.root, "make-stage")
        sh("make", "-C", SOURCE, "install", f"BUILD={BUILD}", f"DESTDIR={stage}", f"PREFIX={PREFIX}")
        installed = lambda root: sorted(os.path.relpath(os.path.join(d, f), root)
                                        for d, _, files in os.walk(root) for f in files)
        self.assertEqual(installed(stage), installed(self.stage), "make install and cmake --install put down the same files")

    def test_the_installed_agent_runs(self):
        status, out, err = self.run_to_end(os.path.join(self.prefix, "bin/keel"), "version")
        self.assertEqual(status, 0, err)
        self.assertRegex(out, r"^keel \d+\.\d+\.\d+\n$")

    def test_the_static_link_keeps_the_standard_observers(self):
        # The standard observers (commands, configuration, pidfile, systemd) are registered by
        # keel_app_run() itself, not through a section a static link would drop.
        qworker = os.path.join(self.bins["cmake-static"], "qworker")
        self.assertNotIn("libkeel", sh("ldd", qworker), "linked with libkeel.a")
        status, out, err = self.run_to_end(qworker, "version")
        # qworker sets no version of its own: Keel's is not shown as its (issue 26).
        self.assertEqual(status, 0, err)
        self.assertRegex(out, r"^qworker \(keel \d+\.\d+\.\d+\)\n$")
        status, out, err = self.run_to_end(qworker, "config", "--set", "queue.poll_interval=250ms")
        self.assertIn("queue.poll_interval: 250ms   # --set", out, err)

    def run_to_end(self, binary, *args):
        k = self.keel(*args, binary=binary, env={"LD_LIBRARY_PATH": self.libdir}, notify=False)
        return k.wait()

    def test_hello_built_every_way_says_hello_and_stops(self):
        for mode, out in self.bins.items():
            with self.subTest(mode):
                k = self.keel(binary=os.path.join(out, "hello"), env={"LD_LIBRARY_PATH": self.libdir,
                                                                       "HELLO_STATE_DIR": os.path.join(self.root, mode + "-hello")})
                k.ready()
                k.kill(signal.SIGTERM)
                status, _, err = k.wait()
                self.assertEqual(status, 0, err)
                self.assertIn("Hello from start", err)

    def qworker(self, mode, spool, *args, env=None):
        full = {"LD_LIBRARY_PATH": self.libdir, "QWORKER_QUEUE_SPOOL_DIR": spool, "QWORKER_QUEUE_ADDRESS": "127.0.0.1:0",
                "QWORKER_QUEUE_POLL_INTERVAL": "20ms", "QWORKER_STATE_DIR": spool + "-state"}
        full.update(env or {})
        return self.keel(*args, binary=os.path.join(self.bins[mode], "qworker"), env=full)

    def test_qworker_serves_drains_and_exits_0_on_sigterm(self):
        for mode in self.bins:
            with self.subTest(mode):
                spool = os.path.join(self.root, mode + "-spool")
                k = self.qworker(mode, spool, env={"KEEL_FAULT": "sleep=700@in:queue.job"})
                probe = bound_address(k, "queue probe")
                self.assertEqual(get(probe, "/healthz")[:1], (200,))
                e = Keel("enqueue", "one", "some work", binary=os.path.join(self.bins[mode], "qworker"), notify=False,
                         env={"LD_LIBRARY_PATH": self.libdir, "QWORKER_QUEUE_SPOOL_DIR": spool,
                              "QWORKER_STATE_DIR": spool + "-state"})
                try:
                    status, out, err = e.wait()
                finally:
                    e.close()
                self.assertEqual((status, out), (0, os.path.join(spool, "new", "one.job") + "\n"), err)
                # The job is held 0.7 s at queue.job: SIGTERM in the middle of it, and the stop
                # waits for it (the drain) before the process exits.
                self.wait_for_in_flight(k)
                k.kill(signal.SIGTERM)
                status, _, err = k.wait()
                self.assertEqual(status, 0, err)
                with open(os.path.join(spool, "done", "one.result")) as f:
                    self.assertRegex(f.read(), r"^some work\ndigest [0-9a-f]{16}\n$")
                self.assertFalse(os.path.exists(os.path.join(spool, "new", "one.job")))
                self.assertNotIn("Skipped", err)

    def wait_for_in_flight(self, k):
        """Until /status says the job is in flight: held at queue.job, not yet done."""
        probe, deadline = bound_address(k, "queue probe"), time.monotonic() + 10
        while '"in_flight":1' not in get(probe, "/status")[2]:
            self.assertLess(time.monotonic(), deadline, "the job never began")
            time.sleep(0.01)

    def test_qworker_exits_1_on_an_injected_start_fault(self):
        for mode in self.bins:
            with self.subTest(mode):
                spool = os.path.join(self.root, mode + "-fault")
                k = self.qworker(mode, spool, env={"KEEL_FAULT": "error@in:queue.start"})
                status, _, err = k.wait()
                self.assertEqual(status, 1, err)
                self.assertIn("Error starting queue worker: test error", err)

    def pinger(self, mode, *args, config=""):
        env = {"LD_LIBRARY_PATH": self.libdir, "PINGER_STATE_DIR": os.path.join(self.root, mode + "-pinger")}
        for key in ("PINGER_ADDRESS", "HEALTHCHECK_ADDRESS", "METRICS_ADDRESS"):
            env["PINGER_" + key] = "127.0.0.1:0"
        return self.keel(*args, binary=os.path.join(self.bins[mode], "pinger"), env=env, config=config)

    def test_pinger_has_a_route_a_task_a_live_key_a_command_a_check_and_a_metric(self):
        with open(os.path.join(SOURCE, "examples", "pinger", "pinger.c")) as f:
            self.assertLess(len(f.readlines()), 150, "the example stays under 150 lines")
        for mode in self.bins:
            with self.subTest(mode):
                k = self.pinger(mode, config="pinger:\n  interval: 1h\n")
                status = bound_address(k, "pinger server")
                health, metrics = bound_address(k, "health check server"), bound_address(k, "metrics exporter server")
                # The heartbeat's task beats once as it starts, on a thread of its own: the server
                # may answer before that thread has run.
                wait_for(lambda: get(status, "/status")[::2] == (200, '{"beats":1}\n'), 5, "one beat, at start")
                code, _, body = get(health, "/readyz?verbose")
                self.assertEqual((code, "[+]heartbeat ok" in body), (200, True), body)
                code, _, body = get(metrics, "/metrics")
                for series in ("pinger_beats_total 1\n", "keel_build_info{", "process_resident_memory_bytes "):
                    self.assertIn(series, body)
                # The live key: a new interval applies on SIGHUP, at once.
                k.write("keel.yaml", "pinger:\n  interval: 20ms\n")
                k.kill(signal.SIGHUP)
                wait_for(lambda: int(re.search(r"\d+", get(status, "/status")[2]).group()) >= 5, 5, "five beats")
                k.kill(signal.SIGTERM)
                status, _, err = k.wait()
                self.assertEqual(status, 0, err)
                self.assertLess(err.index("Stopped health check server"), err.index("Stopped pinger server"), err)

                status, out, err = self.run_to_end(os.path.join(self.bins[mode], "pinger"), "once")
                self.assertEqual(status, 0, err)
                self.assertRegex(out, r"^beat at \d+\n$")
                self.assertNotIn("Starting", err, "no server starts for once")


class Readme(unittest.TestCase):
    def test_the_readme_plugin_is_the_hello_example(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        snippet = re.search(r"```c\n(.*?)```", readme, re.S).group(1)
        with open(os.path.join(SOURCE, "examples", "hello", "hello.c")) as f:
            self.assertIn(snippet, f.read(), "README.md's plugin must be examples/hello/hello.c, compiled by this test")


if __name__ == "__main__":
    unittest.main()
