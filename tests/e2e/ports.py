"""Ports for test servers that no other test, worker or test run can take at the same time.

Binding port 0 and closing the socket (to learn a free port) races: before the server binds
it, a client socket of another test may get it as its ephemeral source port, or another
xdist worker may pick it too. Here ports come from below the kernel's ephemeral range, so no
client socket is ever given one, and each port is reserved with a lock on its byte of one
shared lock file, held until this process exits, so no other process (another xdist worker,
another test run on the same machine) hands it out. A port something else already listens on
is skipped: it must also bind.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

FIRST, LAST = 20000, 32000  # below /proc/sys/net/ipv4/ip_local_port_range (32768-60999)
LOCK_FILE = Path(tempfile.gettempdir()) / "quartermaster-test-ports.lock"

_taken: set[int] = set()
_guard = threading.Lock()
_lock_fd: int | None = None


def _lock_file() -> int:
    global _lock_fd
    if _lock_fd is None:
        _lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    return _lock_fd


def _reserve(port: int) -> bool:
    """Lock the port's byte for this process (POSIX locks: released when the process ends)."""
    if port in _taken:
        return False
    try:
        fcntl.lockf(_lock_file(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    _taken.add(port)
    return True


def _bindable(port: int) -> bool:
    """As the servers bind: SO_REUSEADDR, so a port in TIME_WAIT counts as free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reserve_ports(count: int = 1) -> int:
    """The first of `count` consecutive ports, reserved for this process and free now."""
    with _guard:
        start = random.randrange(FIRST, LAST)
        span = LAST - FIRST
        for step in range(span):
            first = FIRST + (start - FIRST + step) % span
            if first + count > LAST:
                continue
            ports = range(first, first + count)
            if any(port in _taken for port in ports):
                continue
            if all(_reserve(port) for port in ports) and all(_bindable(p) for p in ports):
                return first
        raise RuntimeError(f"no {count} consecutive free ports in {FIRST}-{LAST}")
