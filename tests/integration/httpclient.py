# SPDX-License-Identifier: MIT
"""HTTP helpers for the integration tests: find a server's bound address in READY=1's STATUS=,
and make requests to it (loopback only, bounded timeouts)."""

import http.client
import re


def bound_address(keel, label="health check server"):
    """(host, port) of the server `label` from the STATUS= of READY=1."""
    status = keel.ready()
    m = re.search(re.escape(label) + r"\[([0-9.]+):(\d+)\]", status)
    if not m:
        raise AssertionError(f"no {label} address in {status!r}")
    return m.group(1), int(m.group(2))


def get(address, path, timeout=10.0, headers=None):
    """One GET on a new connection: (status, headers dict lower-cased, body text)."""
    c = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()
