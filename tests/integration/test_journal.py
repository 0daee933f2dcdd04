# SPDX-License-Identifier: MIT
"""journald's native protocol, as keel writes it to a test journal socket (KEEL_JOURNAL_SOCKET):
every record carries MESSAGE, PRIORITY, CODE_FILE (relative to the source root), CODE_LINE,
CODE_FUNC, and KEEL_EVENT/PHASE/OBSERVER/SERVICE/REQUEST_ID where they are known; the lifecycle's
messages carry MESSAGE_IDs that conf/keel.catalog explains; an errno failure carries ERRNO;
fields of any length and any bytes arrive whole (a record too large for a datagram as a memfd);
and the JSON and text formats stay valid and lossless with the same bytes."""

import array
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

from httpclient import bound_address, get
from keelrun import KeelTestCase, run

SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
IDS = {
    "starting": "1052e29176b54768a0288c49dce70895", "ready": "6fe7ba6ccb85474496f85eb399b752c9",
    "reloaded": "7d0e9e78d55e4ddeb51792d26c80e703", "reload_failed": "cae5ee4e00ba4229a20548a0773f3b40",
    "stopping": "a53d579f69564c0a8fc4a170ec98848a", "forced": "f0980b3bf2d0409ba4871e23b9cdf48e",
    "exited": "02d048f96c22482b9dc524b5c32c2855",
}


def parse(data):
    """A native-protocol record: {name: bytes}."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:
            name = line
            size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            value = data[nl + 9:nl + 9 + size]
            assert data[nl + 9 + size:nl + 10 + size] == b"\n", "a length-prefixed value ends with a newline"
            i = nl + 10 + size
        fields[name.decode()] = value
    return fields


class Journal:
    """The journal's socket: a datagram socket that takes records and memfds passed with them."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "journal")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(self.path)
        self.records, self.memfds = [], 0
        self.settled = 0  # the last of settle()'s datagrams the reader took
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
            except OSError:
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = array.array("i", payload[:4])[0]
                    with os.fdopen(fd, "rb") as f:
                        f.seek(0)  # the sender's offset: the descriptor is shared
                        data = f.read()
                    self.memfds += 1
            if data.startswith(b"KEEL_TEST_SETTLED="):
                with self.cond:
                    self.settled = int(data.split(b"=", 1)[1])
                    self.cond.notify_all()
            elif data:
                self.records.append(parse(data))

    def settle(self, timeout=10):
        """Once keel has exited: every record it sent has been taken. The socket's queue is in
        order, so a datagram of the test's own, sent now, comes after the last of them."""
        with self.cond:
            mark = self.settled + 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(b"KEEL_TEST_SETTLED=%d" % mark, self.path)
        with self.cond:
            if not self.cond.wait_for(lambda: self.settled >= mark, timeout):
                raise AssertionError(f"the journal's reader did not take its mark within {timeout}s")

    def close(self):
        self.sock.close()

    def find(self, pattern):
        return [r for r in self.records if re.search(pattern, r.get("MESSAGE", b"").decode(errors="replace"))]


class NativeProtocol(KeelTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-journal-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.journal = Journal(self.dir)
        self.addCleanup(self.journal.close)
        self.env = {"KEEL_JOURNAL_SOCKET": self.journal.path}

    def test_a_served_life_with_its_fields_and_message_ids(self):
        k = self.keel("--log-format", "journal", "--log-level", "debug", env=self.env)
        token = bound_address(k, "token provider server")
        status, headers, _ = get(token, "/token", headers={"X-Athenz-Domain": "sports", "X-Athenz-Role": "reader"})
        self.assertEqual(status, 200)
        k.kill(signal.SIGHUP)
        k.wait_notify("READY=1", start=len(k.messages()))
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.journal.settle()
        records = self.journal.records
        self.assertGreater(len(records), 10)
        for r in records:
            for f in ("MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"):
                self.assertIn(f, r, r)
            self.assertEqual(r["SYSLOG_IDENTIFIER"], b"keel")
            code_file = r["CODE_FILE"].decode()
            self.assertFalse(code_file.startswith("/"), f"CODE_FILE is relative to the source root: {code_file}")
            self.assertTrue(os.path.exists(os.path.join(SOURCE, code_file)), code_file)
            self.assertTrue(r["CODE_LINE"].isdigit())
        by_id = {}
        for r in records:
            if "MESSAGE_ID" in r:
                by_id.setdefault(r["MESSAGE_ID"].decode(), []).append(r)
        for name in ("starting", "ready", "reloaded", "stopping", "exited"):
            self.assertIn(IDS[name], by_id, f"no {name} message")
        self.assertRegex(by_id[IDS["ready"]][0]["MESSAGE"].decode(), r"^Ready: token provider server\[")
        self.assertEqual(by_id[IDS["stopping"]][0]["KEEL_CAUSE"], b"signal")
        self.assertEqual(by_id[IDS["exited"]][0]["EXIT_STATUS"], b"0")
        self.assertEqual(by_id[IDS["exited"]][0]["PRIORITY"], b"6")
        start = self.journal.find(r"^Starting token provider server\[")[0]
        self.assertEqual((start["KEEL_EVENT"], start["KEEL_PHASE"], start["KEEL_OBSERVER"], start["KEEL_SERVICE"]),
                         (b"start", b"during", b"token.start", b"token"))
        request = [r for r in self.journal.find(r"^GET /token from ") if r.get("KEEL_SERVICE") == b"token"]
        self.assertTrue(request, "the request's debug line")
        self.assertEqual(request[0]["KEEL_REQUEST_ID"].decode(), headers["x-request-id"])

    def test_a_failure_with_an_errno_carries_it(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            status, _, err, _ = run("--log-format", "journal", env=dict(self.env, KEEL_METRICS_ADDRESS=f"127.0.0.1:{port}"))
        self.assertEqual(status, 1, err)
        self.journal.settle()
        failed = self.journal.find(r"^Error starting metrics exporter: ")
        self.assertTrue(failed, [r["MESSAGE"] for r in self.journal.records])
        self.assertEqual(failed[0]["ERRNO"], b"98", "EADDRINUSE")
        self.assertEqual(failed[0]["PRIORITY"], b"3")
        exited = [r for r in self.journal.records if r.get("MESSAGE_ID") == IDS["exited"].encode()]
        self.assertEqual(exited[0]["EXIT_STATUS"], b"1")

    def test_every_record_that_names_an_errno_carries_it(self):
        # A state directory that is a file: the failure, its observer line and the exit line all
        # say "Not a directory" (or "File exists"); each record that does must carry ERRNO.
        blocker = os.path.join(self.dir, "state")
        open(blocker, "w").close()
        status, _, err, _ = run("--log-format", "journal", env=dict(self.env, KEEL_STATE_DIR=os.path.join(blocker, "sub")))
        self.assertEqual(status, 1, err)
        self.journal.settle()
        texts = {os.strerror(e): e for e in range(1, 134)}
        named = [(r, e) for r in self.journal.records for t, e in texts.items() if t in r.get("MESSAGE", b"").decode(errors="replace")]
        self.assertTrue(named, [r["MESSAGE"] for r in self.journal.records])
        for r, e in named:
            self.assertEqual(r.get("ERRNO"), str(e).encode(), r["MESSAGE"])

    def test_a_stop_past_its_timeout_is_the_forced_message(self):
        # 200 ms: past the 100 ms budget, and 0.9 s before the forced exit (the budget and a second),
        # room for the rest of the stop on a loaded machine.
        status, _, err, _ = run("--log-format", "journal", "--set", "shutdown.timeout=100ms",
                                env=dict(self.env, KEEL_FAULT="sigterm@in:health.ready,sleep=200@in:healthcheck.stop"))
        self.assertEqual(status, 2, err)
        self.journal.settle()
        forced = [r for r in self.journal.records if r.get("MESSAGE_ID") == IDS["forced"].encode()]
        self.assertEqual(len(forced), 1, [r["MESSAGE"] for r in self.journal.records])
        self.assertRegex(forced[0]["MESSAGE"].decode(), r"^Shutdown took \d+\.\d+s, more than shutdown.timeout")

    def test_long_and_binary_values_arrive_whole(self):
        # A value of 300 000 characters in a file under a directory whose name is not UTF-8: the
        # error names both, 300 kB in one record (past a datagram: a memfd), bytes as they are.
        d = os.path.join(self.dir.encode(), b"conf-\xff")
        os.mkdir(d)
        path = os.path.join(d, b"keel.yaml")
        key = "k" * 300000
        with open(path, "wb") as f:
            f.write(f"log.level: {key}\n".encode())
        status, _, err, _ = run("--log-format", "journal", "--config", os.fsdecode(path), no_config=True, env=self.env)
        self.assertEqual(status, 78, err)
        self.journal.settle()
        bad = [r for r in self.journal.find(r"^Observer config.load failed: ") if key.encode() in r["MESSAGE"]]
        self.assertEqual(len(bad), 1, "the whole value in one record, not cut at 512 or 4096 bytes")
        self.assertIn(b"conf-\xff/keel.yaml", bad[0]["MESSAGE"], "the path's bytes as they are")
        self.assertGreater(len(bad[0]["MESSAGE"]), 300000)
        self.assertGreaterEqual(self.journal.memfds, 1, "too large for one datagram")

    def test_json_and_text_escape_what_is_not_utf8_and_cut_nothing(self):
        d = os.path.join(self.dir.encode(), b"conf-\xff")
        os.mkdir(d)
        path = os.path.join(d, b"keel.yaml")
        with open(path, "wb") as f:
            f.write(b"log:\n  levle: debug\n")
        status, _, err, _ = run("--log-format", "json", "--config", os.fsdecode(path), no_config=True)
        self.assertEqual(status, 78, err)
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line parses
        msgs = [line["message"] for line in lines if "levle" in line["message"]]
        self.assertTrue(msgs, err)
        self.assertIn("conf-\\xff/keel.yaml", msgs[0], "the byte, escaped")
        status, _, err, _ = run("--log-format", "text", "--config", os.fsdecode(path), no_config=True)
        self.assertIn("conf-\\xff/keel.yaml", err)
        status, _, err, _ = run("--log-format", "json", "--set", "x" * 20000 + "=1")
        self.assertEqual(status, 78, err)
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]
        self.assertTrue(any("x" * 20000 in line["message"] for line in lines), "a 20 kB message whole in JSON")


class Catalog(unittest.TestCase):
    def test_the_catalog_explains_every_message_id(self):
        root = tempfile.mkdtemp(prefix="keel-catalog-")
        self.addCleanup(shutil.rmtree, root, True)
        os.makedirs(os.path.join(root, "usr/lib/systemd/catalog"))
        os.makedirs(os.path.join(root, "var/lib/systemd/catalog"))
        shutil.copy(os.path.join(SOURCE, "conf", "keel.catalog"), os.path.join(root, "usr/lib/systemd/catalog"))
        p = subprocess.run(["journalctl", f"--root={root}", "--update-catalog"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.strip(), "", "journalctl reads the catalog without a complaint")
        p = subprocess.run(["journalctl", f"--root={root}", "--list-catalog"], capture_output=True, text=True, timeout=60)
        listed = dict(line.split(" ", 1) for line in p.stdout.splitlines() if line.strip())
        for name, mid in IDS.items():
            self.assertIn(mid, listed, name)
        with open(os.path.join(SOURCE, "core", "telemetry", "log-internal.h")) as f:
            declared = set(re.findall(r'#define KEEL_MESSAGE_\w+\s+"([0-9a-f]{32})"', f.read()))
        self.assertEqual(declared, set(IDS.values()), "the test knows every id the code sends")


if __name__ == "__main__":
    unittest.main()
