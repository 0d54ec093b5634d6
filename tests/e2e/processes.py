"""Real processes for end-to-end tests: `qm` commands, a site server, DPs, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.ports import reserve_ports
from tests.e2e.site_templates import migrated_site_home

QM = [sys.executable, "-m", "quartermaster"]


def free_port() -> int:
    """A port for one server, reserved for this test process (tests/e2e/ports.py)."""
    return reserve_ports(1)


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both reserved and free (API and embedded DP)."""
    return reserve_ports(2)


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
    command: list[str] = field(default_factory=lambda: list(QM))  # what `args` are given to
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as handle:  # the child has its own copy; ours closes here
            self.proc = subprocess.Popen(
                [*self.command, *self.args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal its process group (it and anything it started); SIGKILL after 20 s."""
        if self.proc is None or self.proc.returncode is not None:
            return  # never started, or already waited for
        self._signal_group(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()

    def _signal_group(self, sig: int) -> None:
        """Only before the process is waited for: until then its ID cannot name another
        group (an exited, unwaited process keeps its ID)."""
        assert self.proc is not None and self.proc.returncode is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"{self.args[:2]} exited with {self.proc.returncode}:\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            )

    def alive(self) -> bool:
        """True while it runs; a process that ended raises, with the end of its log."""
        self.check_alive()
        return True


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

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until both planes answer; on any failure nothing is left running."""
        self.daemon.start()
        try:
            for url, what in ((self.url, "site API"), (self.content_url, "site content")):
                wait_until(lambda u=url: self.daemon.alive() and _healthy(u), what, timeout)
        except BaseException:
            self.daemon.stop(signal.SIGKILL)
            raise

    def stop(self) -> None:
        self.daemon.stop()


def start_site(
    base: Path,
    database: str | None = None,
    site_code: str = "QM1",
    timeout: float = 60.0,
    config: dict[str, Any] | None = None,
) -> SiteServer:
    """A site made as `qm site init` makes it (in this process, on a migrated database: see
    site_templates.py), with `config` written over its config.json, then `qm site serve`
    until it answers on both ports."""
    home = base / "site"
    port = free_port_pair()
    migrated_site_home(home, database, site_code, f"127.0.0.1:{port}")
    if config:
        path = home / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}, indent=2))
    daemon = Daemon(["site", "serve", "--home", str(home)], base / "site-serve.log")
    server = SiteServer(home, port, daemon)
    server.start(timeout)
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
        """Start and wait until it answers; on any failure nothing is left running."""
        self.daemon.start()
        try:
            wait_until(lambda: self.daemon.alive() and _healthy(self.url), f"DP {self.name}")
        except BaseException:
            self.daemon.stop(signal.SIGKILL)
            raise

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
