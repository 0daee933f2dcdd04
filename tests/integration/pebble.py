# SPDX-License-Identifier: MIT
"""Debian's pebble (an ACME test CA) on loopback for the ACME tests: a TLS certificate for its
own API from a throwaway CA made with the openssl CLI, free ports, the environment knobs pebble
reads (PEBBLE_VA_ALWAYS_VALID, PEBBLE_WFE_NONCEREJECT, …), and a bounded start and stop.

Two pebbles: Debian 12's 2.4 (/usr/bin/pebble, PEBBLE), without renewalInfo, and Debian 13's 2.6
(PEBBLE26, which tests/acme/fetch-pebble puts in the build tree: the ctest fixture pebble26), with
renewalInfo (RFC 9773), tls-alpn-01 and dns-01."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
PEBBLE26 = os.environ.get("KEEL_PEBBLE26", "")


_handed_out = set()


def free_port():
    """A loopback port nothing listens on now, and not one this process was given before: the
    kernel may hand the same free port out twice in a row, and a test that asks for a health check
    port and then a CA's ports must get different ones."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no loopback port this process was not given already, in 100 tries")


def terminate(proc, timeout=10):
    """SIGTERM, then SIGKILL past @timeout seconds; reaps the process either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class Pebble:
    """One pebble. `http_port` is where it connects for http-01 validation (keel's listener)."""

    def __init__(self, http_port, env=None, eab_keys=None, binary=PEBBLE, config=None, args=(), port=None):
        """@binary: PEBBLE or PEBBLE26; @config: more keys of pebble's configuration (2.6:
        certificateValidityPeriod, in seconds); @args: more of its command line ("-dnsserver",
        "127.0.0.1:PORT": the name server it asks for dns-01, and for the addresses of http-01);
        @port: its API's, to bring a CA back where it was."""
        if not binary or not os.access(binary, os.X_OK):
            raise AssertionError(f"no pebble at '{binary}' (pebble 2.6: run tests/acme/fetch-pebble, the ctest fixture pebble26)")
        self.tmp = tempfile.mkdtemp(prefix="keel-pebble-")
        self.port, self.management_port, self.http_port = port or free_port(), free_port(), http_port
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-subj", "/CN=keel test ACME API CA", "-days", "2", cwd=self.tmp)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                "api.csr", "-subj", "/CN=localhost", cwd=self.tmp)
        with open(os.path.join(self.tmp, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
                "-days", "2", "-extfile", "san.ext", cwd=self.tmp)
        self.ca_file = os.path.join(self.tmp, "ca.pem")
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": os.path.join(self.tmp, "cert.pem"), "privateKey": os.path.join(self.tmp, "key.pem"),
            "httpPort": http_port, "tlsPort": free_port(), "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys), "externalAccountMACKeys": eab_keys or {}, **(config or {})}}
        path = os.path.join(self.tmp, "pebble.json")
        with open(path, "w") as f:
            json.dump(config, f)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        full_env.update({"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"})
        full_env.update(env or {})
        self.log = []
        self.proc = subprocess.Popen([binary, "-config", path, *args], env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.directory_url = f"https://127.0.0.1:{self.port}/dir"
        self._wait_up()

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def _context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def _wait_up(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.directory_url, timeout=2, context=self._context()):
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise AssertionError("pebble did not start: " + "".join(self.log))

    def roots_pem(self):
        """The root of the chains pebble issues (a new one each run), from its management API."""
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, timeout=5, context=self._context()) as r:
            return r.read().decode()

    def get(self, url):
        """GET @url of pebble's API (its own TLS): the status, headers and body."""
        with urllib.request.urlopen(url, timeout=5, context=self._context()) as r:
            return r.status, r.headers, r.read()

    def directory(self):
        return json.loads(self.get(self.directory_url)[2])

    def issued(self):
        return sum("Issued certificate serial" in line for line in self.log)

    def close(self):
        terminate(self.proc)
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
