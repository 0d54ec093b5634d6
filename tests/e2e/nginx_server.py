"""A stock nginx serving a DP store folder, configured as docs/operations.md says."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.processes import wait_until
from tests.required_programs import program

CONFIG = """
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
{server}
}}
"""

SERVER = """    server {{
        listen 127.0.0.1:{port};
        root {store};
        sendfile on;
        tcp_nopush on;
        default_type application/octet-stream;
        location ~ "^/content/sha256/[0-9a-f]{{2}}/[0-9a-f]{{64}}$" {{
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location ~ "^/manifests/[0-9a-f]{{64}}\\.json$" {{
            default_type application/json;
        }}
        location / {{ return 404; }}
    }}"""


@dataclass
class Nginx:
    prefix: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    binary: str = field(init=False)

    def __post_init__(self) -> None:
        self.binary = program("nginx")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, store: Path) -> None:
        """Start in the foreground of its own process group; on failure nothing is left."""
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            CONFIG.format(prefix=self.prefix, server=SERVER.format(store=store, port=self.port))
        )
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
            start_new_session=True,
        )
        try:
            wait_until(self._started, "nginx to start")
        except BaseException:
            self.stop()
            raise

    def _started(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:  # waited for: stop() has nothing left to do
            error_log = self.prefix / "error.log"
            raise AssertionError(
                f"nginx exited with {self.proc.returncode}: "
                + (error_log.read_text()[-2000:] if error_log.exists() else "")
            )
        return (self.prefix / "nginx.pid").exists()

    def stop(self) -> None:
        """SIGTERM to the master and its workers (one process group); SIGKILL after 20 s."""
        if self.proc is None or self.proc.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # not yet waited for: the ID is still its own
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
                return
