"""Free loopback ports for the servers the tests start.

Picked below Linux's ephemeral range (32768-60999), from which the kernel takes the local port of
every outgoing connection: a port picked there could be taken by some process's connection to NATS
between being picked and being bound by the server it was meant for.
"""

from __future__ import annotations

import random
import socket

_PICKED = range(20_000, 32_000)
_given: set[int] = set()


def free_port() -> int:
    """A loopback port free a moment ago and not already handed out by this process."""
    for _ in range(64):
        port = random.choice(_PICKED)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
