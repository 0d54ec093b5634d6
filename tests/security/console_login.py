"""Signing in to the console of a real site process the way a browser does, over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.processes import Daemon, SiteServer, free_port_pair
from tests.e2e.site_templates import migrated_site_home

PASSWORD = "correct horse battery staple"
COOKIE = "qm_console"


def site_with_password(base: Path, *serve_args: str) -> SiteServer:
    """A site whose `admin` has PASSWORD, served by `qm site serve` (not yet started)."""
    home, port = base / "site", free_port_pair()
    migrated_site_home(home, listen=f"127.0.0.1:{port}", admin_password=PASSWORD)
    args = ["site", "serve", "--home", str(home), *serve_args]
    return SiteServer(home, port, Daemon(args, base / "site-serve.log"))


def second_process(site: SiteServer, base: Path) -> SiteServer:
    """Another `qm site serve` of the same home, on ports of its own."""
    port = free_port_pair()
    args = ["site", "serve", "--home", str(site.home), "--listen", f"127.0.0.1:{port}"]
    args += ["--content-listen", f"127.0.0.1:{port + 1}"]
    return SiteServer(site.home, port, Daemon(args, base / f"site-serve-{port}.log"))


def browser(site: SiteServer, address: str = "127.0.0.1", **headers: str) -> httpx.Client:
    """A browser on `address` (any 127.x.y.z reaches the site on 127.0.0.1)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(
        base_url=site.url, follow_redirects=False, timeout=30, transport=transport, headers=headers
    )


def csrf(page: str) -> str:
    found = re.search(r'name="csrf[-_]token" (?:value|content)="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def try_sign_in(client: httpx.Client, name: str, password: str) -> int:
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"csrf_token": csrf(form.text), "username": name, "password": password},
    )
    return answer.status_code


def sign_in(site: SiteServer, name: str = "admin", password: str = PASSWORD) -> httpx.Client:
    client = browser(site)
    assert try_sign_in(client, name, password) == 303
    assert client.get("/console/").status_code == 200
    return client
