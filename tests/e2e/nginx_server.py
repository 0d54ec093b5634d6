"""A stock nginx serving a DP store folder, configured as docs/operations.md says."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.processes import wait_until

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, store: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            CONFIG.format(prefix=self.prefix, server=SERVER.format(store=store, port=self.port))
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"]
        )
        wait_until(lambda: (self.prefix / "nginx.pid").exists(), "nginx to start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
