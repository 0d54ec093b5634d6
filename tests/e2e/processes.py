"""Real processes for end-to-end tests: `qm` commands, a site server, DPs, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

QM = [sys.executable, "-m", "quartermaster"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free (API and embedded DP)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_qm(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> Result:
    merged = {**os.environ, **(env or {})}
    proc = subprocess.run([*QM, *args], capture_output=True, text=True, env=merged, timeout=timeout)
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"qm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
        )
    return result


def wait_until(predicate: Any, what: str, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll for a condition (never assert on how long it took)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Daemon:
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - the child process keeps it open
        self.proc = subprocess.Popen(
            [*QM, *self.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"{self.args[:2]} exited with {self.proc.returncode}:\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            )


@dataclass
class SiteServer:
    home: Path
    port: int
    daemon: Daemon

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def content_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 1}"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    @property
    def env(self) -> dict[str, str]:
        return {"QM_SITE": self.url, "QM_TOKEN": self.token}

    def qm(self, *args: str, check: bool = True) -> Result:
        return run_qm(*args, env=self.env, check=check)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.url}{path}",
            timeout=60,
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def start(self) -> None:
        self.daemon.start()
        wait_until(lambda: self.daemon.check_alive() or _healthy(self.url), "site API")
        wait_until(lambda: self.daemon.check_alive() or _healthy(self.content_url), "site content")

    def stop(self) -> None:
        self.daemon.stop()


def start_site(base: Path, database: str | None = None, site_code: str = "QM1") -> SiteServer:
    home = base / "site"
    port = free_port_pair()
    init = [
        "site",
        "init",
        "--home",
        str(home),
        "--site-code",
        site_code,
        "--listen",
        f"127.0.0.1:{port}",
    ]
    if database:
        init += ["--database", database]
    run_qm(*init)
    daemon = Daemon(["site", "serve", "--home", str(home)], base / "site-serve.log")
    server = SiteServer(home, port, daemon)
    server.start()
    return server


@dataclass
class DPServer:
    name: str
    home: Path
    port: int
    daemon: Daemon

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> Path:
        return self.home / "store"

    def start(self) -> None:
        self.daemon.start()
        wait_until(lambda: self.daemon.check_alive() or _healthy(self.url), f"DP {self.name}")

    def stop(self) -> None:
        self.daemon.stop()


def start_dp(
    site: SiteServer,
    base: Path,
    name: str,
    boundaries: tuple[str, ...] = (),
    fallback: bool = False,
    public_url: str | None = None,
) -> DPServer:
    """`qm dp add` then `qm dp serve` (polling the site every second), enrolled and running."""
    port = free_port()
    args = ["dp", "add", "--name", name, "--url", public_url or f"http://127.0.0.1:{port}"]
    for boundary in boundaries:
        args += ["--boundary", boundary]
    if fallback:
        args.append("--fallback")
    token = site.qm(*args).stdout.strip()
    home = base / f"dp-{name}"
    serve = [
        "dp",
        "serve",
        "--home",
        str(home),
        "--site",
        site.url,
        "--token",
        token,
        "--listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "1",
    ]
    if public_url:
        serve += ["--url", public_url]
    dp = DPServer(name, home, port, Daemon(serve, base / f"dp-{name}.log"))
    dp.start()
    return dp
