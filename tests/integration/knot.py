# SPDX-License-Identifier: MIT
"""Debian's knotd on loopback for the dns-01 tests (test_dns01, test_acme_dns01): a throwaway zone
example.test. that two TSIG keys (hmac-sha256, hmac-sha512) may update, in a temporary directory,
as the user running the tests; and kdig to look at what it serves."""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

from pebble import free_port, terminate

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KDIG = shutil.which("kdig") or "/usr/bin/kdig"

ZONE = """$ORIGIN example.test.
$TTL 60
@ SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@ NS ns
ns A 127.0.0.1
www A 127.0.0.1
"""


def txt_value(key_authorization):
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def write_secret(path, secret):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


class Knot:
    """One knotd in a temporary directory, as the user running the tests, on 127.0.0.1:port (UDP
    and TCP). @zone: the zone file of example.test. (ZONE by default)."""

    def __init__(self, zone=ZONE):
        self.tmp = tempfile.mkdtemp(prefix="keel-knot-")
        self.port = free_port()
        self.secrets = {"sha256": base64.b64encode(os.urandom(32)).decode(),
                        "sha512": base64.b64encode(os.urandom(64)).decode()}
        with open(os.path.join(self.tmp, "example.test.zone"), "w") as f:
            f.write(zone)
        with open(os.path.join(self.tmp, "knot.conf"), "w") as f:
            f.write(f"""server:
    rundir: "{self.tmp}"
    listen: 127.0.0.1@{self.port}
log:
  - target: stderr
    any: info
database:
    storage: "{self.tmp}"
key:
  - id: keel-sha256.
    algorithm: hmac-sha256
    secret: {self.secrets["sha256"]}
  - id: keel-sha512.
    algorithm: hmac-sha512
    secret: {self.secrets["sha512"]}
acl:
  - id: update
    key: [keel-sha256., keel-sha512.]
    action: update
template:
  - id: default
    storage: "{self.tmp}"
    file: "%s.zone"
zone:
  - domain: example.test.
    acl: update
""")
        self.log = open(os.path.join(self.tmp, "knotd.log"), "w")
        self.proc = subprocess.Popen([KNOTD, "-c", os.path.join(self.tmp, "knot.conf"), "-s",
                                      os.path.join(self.tmp, "knot.sock")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while "1 3600" not in self.dig("SOA", "example.test."):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("knotd did not start: " + self.read_log())
            time.sleep(0.1)

    def dig(self, rtype, name):
        r = subprocess.run([KDIG, f"@127.0.0.1", "-p", str(self.port), "+tcp", "+short", "+time=2", "+retry=0", rtype, name],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def read_log(self):
        with open(os.path.join(self.tmp, "knotd.log")) as f:
            return f.read()

    def stop(self):
        terminate(self.proc)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
