"""Building blocks of end-to-end scenarios: packages, clients and deployments via `qm`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.processes import SiteServer, run_qm, wait_until


def make_source(
    folder: Path,
    target: Path,
    payload: str = "published bytes\n",
    exit_code: int = 0,
    extra: str = "",
) -> Path:
    """A package source whose program copies payload.txt to `target`, then exits."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payload.txt").write_text(payload)
    (folder / "install.sh").write_text(
        f"set -e\n{extra}\nmkdir -p '{target.parent}'\n"
        f"cp payload.txt '{target}'\nexit {exit_code}\n"
    )
    return folder


def create_package(
    site: SiteServer, source: Path, name: str = "Demo", command: str = "sh install.sh"
) -> str:
    package_id = site.qm(
        "package",
        "create",
        "--name",
        name,
        "--source",
        str(source),
        "--program",
        f"Install={command}",
    ).stdout.strip()
    wait_installed(site, package_id)
    return package_id


def package_dp_states(site: SiteServer, package_id: str) -> dict[tuple[str, int], str]:
    data = site.api("GET", f"/api/v1/packages/{package_id}")
    return {(d["dp"], d["source_version"]): d["state"] for d in data["distribution"]}


def wait_dp_state(
    site: SiteServer,
    package_id: str,
    dp: str = "site",
    version: int | None = None,
    state: str = "installed",
) -> None:
    def done() -> bool:
        wanted = version or site.api("GET", f"/api/v1/packages/{package_id}")["source_version"]
        return package_dp_states(site, package_id).get((dp, wanted)) == state

    wait_until(done, f"{package_id} {state} on DP {dp}")


def wait_installed(
    site: SiteServer, package_id: str, dp: str = "site", version: int | None = None
) -> None:
    wait_dp_state(site, package_id, dp, version)


def register_client(site: SiteServer, home: Path, hostname: str = "lab-01") -> str:
    return run_qm(
        "client", "register", "--home", str(home), "--site", site.url, "--hostname", hostname
    ).stdout.strip()


def deploy_to(
    site: SiteServer,
    package_id: str,
    client_ids: list[str],
    collection: str,
    program: str = "Install",
    *options: str,
) -> str:
    site.qm("collection", "create", collection)
    for client_id in client_ids:
        site.qm("collection", "add", collection, client_id)
    return site.qm(
        "deploy",
        "create",
        "--package",
        package_id,
        "--program",
        program,
        "--collection",
        collection,
        *options,
    ).stdout.strip()


def run_client(home: Path) -> None:
    run_qm("client", "run", "--home", str(home), "--once")


def messages(site: SiteServer, **filters: str) -> list[dict[str, Any]]:
    args: list[str] = []
    for key, value in filters.items():
        args += [f"--{key.replace('_', '-')}", value]
    rows: list[dict[str, Any]] = site.qm(
        "status", "messages", *args, "--limit", "1000", "--json"
    ).json()["messages"]
    return sorted(rows, key=lambda m: (m["time"], m["id"]))


def message_ids(site: SiteServer, **filters: str) -> list[int]:
    return [m["message_id"] for m in messages(site, **filters)]


def deployment_status(site: SiteServer, deployment_id: str) -> dict[str, Any]:
    status: dict[str, Any] = site.qm("deploy", "status", deployment_id, "--json").json()
    return status
