# SPDX-License-Identifier: MIT
"""A TCP relay on loopback in front of a test's server, to make it slow, silent or down."""

import select
import socket
import threading
import time

RELAY_MAX = 60.0  # seconds a relayed connection may live


class Relay:
    """Accepts on 127.0.0.1:`port` and relays each connection to 127.0.0.1:`target` after `delay`
    seconds of silence (a tarpit); without a target it accepts and never says anything. Shut
    (`open` False), it ends the connections it relays and closes each new one at once, as a server
    that is down does. `accepted` is set at the first connection. close() ends every connection
    and the threads."""

    def __init__(self, target=None, delay=None):
        self.target, self.delay, self.open = target, delay, True
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.stopping = threading.Event()
        self.conns = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            if not self.open:
                c.close()
                continue
            with self.lock:
                self.conns.append(c)
            self.accepted.set()
            if self.target:
                t = threading.Thread(target=self._relay, args=(c,), daemon=True)
                with self.lock:
                    self.threads.append(t)
                t.start()

    def _relay(self, c):
        if self.delay and self.stopping.wait(self.delay):
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        with self.lock:
            self.conns.append(up)
        peer = {c: up, up: c}
        deadline = time.monotonic() + RELAY_MAX
        with c, up:
            while self.open and not self.stopping.is_set() and time.monotonic() < deadline:
                for s in select.select([c, up], [], [], 0.1)[0]:
                    try:
                        data = s.recv(65536)
                        if not data:
                            return
                        peer[s].sendall(data)
                    except OSError:
                        return

    def close(self):
        self.stopping.set()
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(timeout=5)
        with self.lock:
            for c in self.conns:
                c.close()
        self.sock.close()
