"""What a local user on a DP host gets from a running standalone DP: public content, and
nothing else. A real `qm dp serve`, enrolled with a real site."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import start_dp, start_site, wait_until

pytestmark = pytest.mark.e2e


def _closed(sock: socket.socket) -> bool:
    try:
        sock.send(b"a")
        sock.setblocking(False)
        try:
            return sock.recv(1024) == b""
        except BlockingIOError:
            return False
        finally:
            sock.setblocking(True)
    except (BrokenPipeError, ConnectionResetError):
        return True


def test_a_dp_keeps_its_credential_and_its_port_from_local_users(tmp_path: Path) -> None:
    site = start_site(tmp_path)
    try:
        dp = start_dp(site, tmp_path, "branch")
        try:
            wait_until(lambda: (dp.home / "dp.json").exists(), "the DP to enroll")
            assert stat.S_IMODE(dp.home.stat().st_mode) == 0o700
            assert stat.S_IMODE((dp.home / "dp.json").stat().st_mode) == 0o600
            for path in ("/dp.json", "/../dp.json", "/%2e%2e/dp.json", "/validation.json"):
                assert httpx.get(f"{dp.url}{path}").status_code == 404, path
            slow = socket.create_connection(("127.0.0.1", dp.port), timeout=30)
            try:
                slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                wait_until(lambda: _closed(slow), "the DP to close a slow connection", 90, 1)
            finally:
                slow.close()
            assert httpx.get(f"{dp.url}/healthz").status_code == 200
        finally:
            dp.stop()
    finally:
        site.stop()
