# SPDX-License-Identifier: MIT
"""A real consumer (issue 27 point 3): Debian's nginx serves TLS from the pair keel delivers to
certificate.out_dir, and keel's signal hook reloads it (SIGHUP to the master's pidfile) after each
new pair. Twenty rotations under load from wrk (a new TLS connection per request): no request
fails, and `openssl s_client` sees each new certificate's serial within a second of its delivery."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from cryptography import x509

from keelrun import KeelTestCase

ROTATIONS = 20
SEEN_WITHIN = 1.0  # seconds from a delivery to nginx serving it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serial_of(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).serial_number


def served_serial(port):
    """The serial of the certificate nginx presents now, through openssl s_client; None if none."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost"],
                       input=b"", capture_output=True, timeout=10)
    m = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", p.stdout, re.S)
    return x509.load_pem_x509_certificate(m.group(0)).serial_number if m else None


class NginxReloadedBySignalHook(KeelTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-nginx-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.out = os.path.join(self.tmp, "tls")
        os.mkdir(self.out)
        self.port = free_port()

    def start_nginx(self):
        t = self.tmp
        conf = os.path.join(t, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {t}/nginx.pid; error_log {t}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t};
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {self.out}/cert.pem;
    ssl_certificate_key {self.out}/key.pem;
    location / {{ return 200 "ok"; }}
  }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", conf, "-e", f"{t}/error.log"])
        self.addCleanup(lambda: (nginx.poll() is None and nginx.send_signal(signal.SIGQUIT), nginx.wait(timeout=10)))
        deadline = time.monotonic() + 10
        while served_serial(self.port) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return nginx

    def test_twenty_rotations_under_load_lose_no_request(self):
        # keel first (nginx reads the pair it delivers), with a rotation every 1.5 s.
        k = self.keel("serve", "--set", f"certificate.out_dir={self.out}", "--set", "certificate.refresh_interval=1500ms",
                      "--set", "certificate.out_signal=HUP", "--set", f"certificate.out_pidfile={self.tmp}/nginx.pid")
        k.ready()
        nginx = self.start_nginx()
        self.assertEqual(served_serial(self.port), serial_of(f"{self.out}/cert.pem"))

        load = {}
        seconds = int(ROTATIONS * 1.5 * 1.5) + 5

        def run_wrk():
            load["out"] = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", "-H", "Connection: close",
                                          f"https://127.0.0.1:{self.port}/"], capture_output=True, text=True).stdout

        wrk = threading.Thread(target=run_wrk)
        wrk.start()
        delays, current = [], os.readlink(f"{self.out}/current")
        deadline = time.monotonic() + seconds - 3
        while len(delays) < ROTATIONS and time.monotonic() < deadline:
            now = os.readlink(f"{self.out}/current")
            if now == current:
                time.sleep(0.01)
                continue
            current, delivered = now, time.monotonic()
            want = serial_of(f"{self.out}/{now}/cert.pem")
            while served_serial(self.port) != want and time.monotonic() - delivered < 5:
                time.sleep(0.02)
            delays.append(time.monotonic() - delivered)
        wrk.join()
        out = load.get("out", "")

        self.assertGreaterEqual(len(delays), ROTATIONS, k.stderr_so_far())
        self.assertLessEqual(max(delays), SEEN_WITHIN, f"seconds from each delivery to nginx serving it: {delays}")
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        self.assertGreater(requests, 100, out)
        self.assertNotIn("Socket errors", out)
        self.assertNotIn("Non-2xx", out)
        self.assertIsNone(nginx.poll(), "nginx still serves")
        k.kill(signal.SIGTERM)
        status, _, err = k.wait()
        self.assertEqual(status, 0, err)
        self.assertGreaterEqual(err.count("(certificate.out hook)"), ROTATIONS)
        print(f"\n  {requests} requests, {len(delays)} rotations, delivery to nginx serving it: "
              f"max {max(delays) * 1000:.0f} ms, median {sorted(delays)[len(delays) // 2] * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    import unittest
    unittest.main()
