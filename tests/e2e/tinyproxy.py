"""A real forward proxy for tests: Debian's tinyproxy on 127.0.0.1, with its own config and log.

`deny=True` makes it refuse every client (403 to a request, a failed CONNECT), as a proxy
that does not let this computer out would.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.processes import free_port, wait_until
from tests.required_programs import program

CONFIG = """Port {port}
Listen 127.0.0.1
Timeout 60
MaxClients 50
LogFile "{log}"
LogLevel Info
{rule}
"""


@dataclass
class Tinyproxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines it received, e.g. "CONNECT 127.0.0.1:8441 HTTP/1.1"."""
        marker = "Request (file descriptor"
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line.split("): ", 1)[1] for line in lines if marker in line and "): " in line]

    def connects_to(self, port: int) -> int:
        """Tunnels opened to 127.0.0.1:port (https through the proxy)."""
        return self.count(f"CONNECT 127.0.0.1:{port} ")

    def gets_from(self, port: int, path_prefix: str = "/") -> int:
        """Plain-http GETs it passed on to 127.0.0.1:port under `path_prefix`."""
        return self.count(f"GET http://127.0.0.1:{port}{path_prefix}")

    def count(self, request_prefix: str) -> int:
        return sum(r.startswith(request_prefix) for r in self.requests())


def tinyproxy_binary() -> str:
    return program("tinyproxy")


@contextmanager
def running_tinyproxy(folder: Path, *, deny: bool = False) -> Iterator[Tinyproxy]:
    """tinyproxy in the foreground on a free 127.0.0.1 port; stopped on leaving."""
    binary = tinyproxy_binary()
    folder.mkdir(parents=True, exist_ok=True)
    proxy = Tinyproxy(free_port(), folder / "tinyproxy.log")
    conf = folder / "tinyproxy.conf"
    rule = "Deny 127.0.0.1" if deny else "Allow 127.0.0.1"
    conf.write_text(CONFIG.format(port=proxy.port, log=proxy.log, rule=rule))
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _listening(proxy.port, proc), "tinyproxy to listen")
        yield proxy
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"tinyproxy exited with {proc.returncode}; see its log")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def use_proxies(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Exactly these proxy variables, spelled as given, in this process and the processes it
    starts; every other spelling is removed (one leaking in from the test's environment would
    change which proxy is used)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
