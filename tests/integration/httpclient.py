# SPDX-License-Identifier: MIT
"""HTTP helpers for the integration tests: find a server's bound address in READY=1's STATUS=,
and make requests to it (loopback only, bounded timeouts)."""

import http.client
import re
import signal
import time


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


def wait_in_flight(keel, component, timeout=10.0):
    """Waits until the metrics say a request of `component` is in flight: a request sent is not
    yet one the server took, and a signal before that would find nothing to wait for."""
    metrics = bound_address(keel, "metrics exporter server")
    pattern = rf'(?m)^keel_work_in_flight\{{component="{component}"\}} [1-9]'
    deadline = time.monotonic() + timeout
    while not re.search(pattern, get(metrics, "/metrics")[2]):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {component} request in flight within {timeout}s")
        time.sleep(0.01)


def sigterm_under_a_held_request(keel, address, path="/livez", component="healthcheck"):
    """Sends a GET (held by a KEEL_FAULT sleep at the server), SIGTERM once the server has taken
    it, and waits for the exit: (status, stderr, the connection, whose answer the caller may
    still read)."""
    held = http.client.HTTPConnection(*address, timeout=20)
    held.request("GET", path)
    wait_in_flight(keel, component)
    keel.kill(signal.SIGTERM)
    status, _, err = keel.wait()
    return status, err, held


def metric(addr, name, labels=""):
    """The value of one series of /metrics at `addr` (`labels` as written: '{type="x"}'), or None."""
    body = get(addr, "/metrics")[2]
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def wait_for(fn, timeout, what):
    """fn()'s first true value, polled every 50 ms for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")
