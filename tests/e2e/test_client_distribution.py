"""The client-only distribution (packages/client) in an empty virtual environment.

It is installed with pip from the repository, must not bring the site's web framework,
database or rule compiler, and must do a whole deployment against a real site on its own:
register, poll, download through a proxy, run the program and report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ON_SQLITE
from tests.e2e.processes import SiteServer
from tests.e2e.scenario import create_package, deploy_to, make_source, messages
from tests.e2e.tinyproxy import running_tinyproxy, use_proxies

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SITE_ONLY = (
    "quartermaster.site",
    "quartermaster.dp",
    "quartermaster.console",
    "quartermaster.cli.main",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "aiohttp",
    "lark",
    "jinja2",
)


def installed_client(venv: Path) -> Path:
    """A fresh venv with only quartermaster-client (and its dependencies) in it."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT / "packages" / "client")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr
    return venv / "bin"


@ON_SQLITE
def test_the_client_distribution_alone_does_a_deployment_through_a_proxy(
    site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = installed_client(tmp_path / "venv")
    python = str(bin_dir / "python")
    for module in SITE_ONLY:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True)
        assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr, module
    listed = subprocess.run(
        [str(bin_dir / "pip"), "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    assert "quartermaster-client==" in listed and "quartermaster==" not in listed
    for unwanted in ("fastapi", "sqlalchemy", "aiohttp", "lark", "uvicorn"):
        assert f"{unwanted}==" not in listed, unwanted

    home, marker = tmp_path / "client", tmp_path / "installed" / "hello.txt"
    qm_client = str(bin_dir / "qm-client")
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url)

        def client(*args: str) -> str:
            done = subprocess.run([qm_client, *args], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return done.stdout

        client_id = client("register", "--home", str(home), "--site", site.url).strip()
        package_id = create_package(site, make_source(tmp_path / "src", marker))
        deployment_id = deploy_to(site, package_id, [client_id], "Lab")
        client("run", "--home", str(home), "--once")
        content = f"http://127.0.0.1:{site.port + 1}/content/"
        # the download went through the proxy: small blobs in a pack, or one blob by GET
        assert proxy.count(f"POST {content}pack") + proxy.count(f"GET {content}sha256/") >= 1
        assert proxy.count(f"GET {site.url}/api/client/v1/policy ") >= 1
    use_proxies(monkeypatch)  # the admin commands below go direct again
    assert marker.read_text() == "published bytes\n"
    ids = [m["message_id"] for m in messages(site, deployment=deployment_id)]
    assert ids[-1] == 10008 and 10036 in ids
    listed_clients = site.qm("client", "list", "--json").json()["clients"]
    assert [c["client_id"] for c in listed_clients] == [client_id]
