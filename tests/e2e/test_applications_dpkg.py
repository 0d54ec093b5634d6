"""Real Debian packages through Quartermaster applications: `dpkg-deb --build` makes a
library and two versions of a tool that depends on it; deployments install, repair, upgrade
by supersedence and uninstall them with the real dpkg of this machine, and after every step
`dpkg-query` must agree with the compliance the site shows.

The packages are named qm-test-<random>-...; they are purged afterwards, also on failure.
This machine's dpkg lets one process write at a time (`dpkg -r` while another dpkg runs
exits 2), so this is the suite's only test that writes to it, and it runs once, on one engine.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deployment_status,
    message_ids,
    messages,
    register_client,
    run_client,
)
from tests.required_programs import program

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


@dataclass(frozen=True)
class Names:
    lib: str
    tool: str


@pytest.fixture
def names() -> Iterator[Names]:
    tag = secrets.token_hex(3)
    found = Names(f"qm-test-{tag}-lib", f"qm-test-{tag}-tool")
    try:
        yield found
    finally:
        subprocess.run(["dpkg", "--purge", found.tool, found.lib], capture_output=True, check=False)


def build_deb(folder: Path, name: str, version: str, depends: str = "") -> Path:
    root = folder / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Quartermaster tests <tests@example.invalid>\n"
        f"Description: Quartermaster test package\n"
    )
    if depends:
        control += f"Depends: {depends}\n"
    (root / "DEBIAN" / "control").write_text(control)
    share = root / "usr" / "share" / name
    share.mkdir(parents=True)
    (share / "VERSION").write_text(f"{version}\n")
    deb = folder / f"{name}_{version}_all.deb"
    subprocess.run(
        [program("dpkg-deb"), "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def package_source(folder: Path, deb: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "package.deb").write_bytes(deb.read_bytes())
    (folder / "install.sh").write_text("dpkg -i package.deb\n")
    (folder / "remove.sh").write_text(f"dpkg -r {name}\n")
    return folder


def installed(name: str) -> str | None:
    """The version dpkg says is installed, or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Version}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    status, _, version = done.stdout.partition("\t")
    return version if done.returncode == 0 and status.startswith("ii") else None


def _package(site: SiteServer, source: Path, name: str) -> str:
    package_id = create_package(site, source, name)
    site.qm("program", "add", package_id, "--name", "Remove", "--command", "sh remove.sh")
    return package_id


def _compliance(site: SiteServer, deployment_id: str) -> dict[str, int]:
    return dict(deployment_status(site, deployment_id)["compliance"])


def test_install_repair_upgrade_and_uninstall_with_the_real_dpkg(
    site: SiteServer, tmp_path: Path, names: Names
) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    lib_deb = build_deb(debs, names.lib, "1.0-1")
    tool1_deb = build_deb(debs, names.tool, "1.0-1", depends=names.lib)
    tool2_deb = build_deb(debs, names.tool, "2.0-1", depends=f"{names.lib} (>= 1.0)")
    lib_pkg = _package(site, package_source(tmp_path / "lib", lib_deb, names.lib), "Lib")
    tool1_pkg = _package(site, package_source(tmp_path / "t1", tool1_deb, names.tool), "Tool 1")
    tool2_pkg = _package(site, package_source(tmp_path / "t2", tool2_deb, names.tool), "Tool 2")

    def app(name: str, package: str, *args: str) -> str:
        return site.qm(
            "app",
            "create",
            "--name",
            name,
            "--package",
            package,
            "--install",
            "Install",
            "--uninstall",
            "Remove",
            *args,
        ).stdout.strip()

    bad = site.qm(
        "app",
        "create",
        "--name",
        "Bad",
        "--package",
        lib_pkg,
        "--install",
        "Install",
        "--detect",
        f"dpkg:{names.lib}=>1.0",
        check=False,
    )
    assert bad.code == 1 and "column" in bad.stderr and "=>" in bad.stderr
    lib = app("Lib", lib_pkg, "--detect", f"dpkg:{names.lib}")
    tool1 = app("Tool 1", tool1_pkg, "--detect", f"dpkg:{names.tool}>=1.0", "--depends", lib)
    tool2 = app(
        "Tool 2",
        tool2_pkg,
        "--detect",
        f"dpkg:{names.tool}>=2.0",
        "--supersedes",
        f"{tool1}=upgrade",
    )
    home = tmp_path / "client"
    client_id = register_client(site, home)
    site.qm("collection", "create", "Lab")
    site.qm("collection", "add", "Lab", client_id)

    # Install: the library first (a dependency), then the tool.
    first = site.qm("deploy", "create", "--app", tool1, "--collection", "Lab").stdout.strip()
    run_client(home)
    assert installed(names.lib) == "1.0-1", (home / "logs/appenforce.log").read_text()
    assert installed(names.tool) == "1.0-1", [
        (m["message_id"], m["text"]) for m in messages(site, deployment=first)
    ]
    assert _compliance(site, first)["installed"] == 1
    row = deployment_status(site, first)["clients"][0]
    assert row["evidence"] == [
        {"rule": f"dpkg:{names.tool}>=1.0", "result": "present", "saw": "version 1.0-1 installed"}
    ]
    assert row["last_evaluated"]

    # Drift: removed behind the agent's back, reinstalled at the next evaluation.
    subprocess.run(["dpkg", "-r", names.tool], check=True, capture_output=True)
    assert installed(names.tool) is None
    run_client(home)
    assert installed(names.tool) == "1.0-1"
    assert 1100 in message_ids(site, deployment=first)
    assert _compliance(site, first)["installed"] == 1

    # Upgrade by supersedence: the new version replaces the old in place.
    second = site.qm("deploy", "create", "--app", tool2, "--collection", "Lab").stdout.strip()
    run_client(home)
    assert installed(names.tool) == "2.0-1"
    assert _compliance(site, second)["installed"] == 1
    assert _compliance(site, first)["installed"] == 1  # 2.0 satisfies Tool 1's >= 1.0

    # Uninstall: only because it is detected, and done only when detection says absent.
    site.qm("deploy", "cancel", first)
    site.qm("deploy", "cancel", second)
    third = site.qm(
        "deploy", "create", "--app", tool2, "--collection", "Lab", "--purpose", "uninstall"
    ).stdout.strip()
    run_client(home)
    assert installed(names.tool) is None and installed(names.lib) == "1.0-1"
    compliance = _compliance(site, third)
    assert compliance["not_installed"] == 1 and compliance["compliant"] == 1
    by_app = site.qm("app", "status", tool2, "--json").json()
    assert by_app["counts"]["not_installed"] == 1

    local = run_qm("client", "status", "--home", str(home), "--json").json()
    states = {a["app_id"]: a["state"] for a in local["applications"]}
    assert states[tool2] == "not installed" and states[lib] == "installed"
