"""A site with a history to diagnose, written straight into its database (no client runs):
packages, three extra DPs (one served bad bytes, one never enrolled, one still pending),
lab clients (two share a host name), a failed deployment with the program's output, a
phased rollout stopped by its error threshold, one still running, one paused by an
administrator, and hash mismatch reports of today and of last week.

What the site would have done on its own (roll-ups, 3015, phase assignment) is done by the
site's own services, so the pages show what a real site would show."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from quartermaster.core.program import ProgramSpec
from quartermaster.core.status_catalog import CATALOG
from quartermaster.site.applications.records import RevisionRequest, create_application
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import (
    create_app_from_request,
    create_deployment,
    pause_deployment,
    phase_plan,
    reevaluate_rollouts,
)
from quartermaster.site.deployments.phases import assign_phase
from quartermaster.site.distribution.points import add_dp
from quartermaster.site.models import (
    Client,
    DeploymentClient,
    DistributionPoint,
    DPContent,
    ProgramOutput,
    StatusMessageRow,
    utcnow,
)
from quartermaster.site.targeting.membership import add_members, create_collection
from tests.console.conftest import ADMIN_PASSWORD, VIEWER, VIEWER_PASSWORD, Console
from tests.e2e.processes import start_site

OUTPUT = (
    "msiexec /i 7z.msi /qn\n"
    "Error 1603: the installation folder C:\\Program Files\\7-Zip is locked by another process\n"
)
LAB = [f"lab-{n:02d}" for n in range(1, 11)]


@dataclass
class Populated:
    """What the tests look for, by name and ID."""

    packages: dict[str, str] = field(default_factory=dict)  # name -> package ID
    clients: dict[str, str] = field(default_factory=dict)  # host name -> client ID
    twins: list[str] = field(default_factory=list)  # client IDs of the two "kiosk" clients
    failed: str = ""  # a deployment where lab-01 failed with output
    stopped: str = ""  # a phased deployment the error threshold paused
    running: str = ""  # a phased deployment still active
    paused: str = ""  # a deployment an administrator paused
    failed_client: str = ""  # lab-01
    apps: dict[str, str] = field(default_factory=dict)  # name -> application ID
    app_deployment: str = ""  # an install of "7-Zip (app)" with detection evidence


@dataclass
class PopulatedConsole(Console):
    """The console of a running site filled by `populate`."""

    found: Populated = field(default_factory=Populated)


def populated_console(factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    """For a module's `console` fixture: a running site with two accounts and a history."""
    base = factory.mktemp("populated")
    site = start_site(base)
    try:
        site.api("POST", "/api/v1/accounts/admin/password", json={"password": ADMIN_PASSWORD})
        site.api(
            "POST",
            "/api/v1/accounts",
            json={"name": VIEWER, "role": "viewer", "password": VIEWER_PASSWORD},
        )
        yield PopulatedConsole(site, base, populate(site.home, base))
    finally:
        site.stop()


def _client_row(n: int, hostname: str, now: Any) -> dict[str, Any]:
    return {
        "client_id": f"00000000-0000-4000-8000-{n:012d}",
        "secret_hash": f"{n:064x}",
        "hostname": hostname,
        "os": "windows",
        "os_version": "10.0.19045",
        "architecture": "x64",
        "ip_addresses": [f"10.0.0.{n}"],
        "agent_version": "0.1.0",
        "properties": {},
        "approval": "approved",
        "rekey_required": False,
        "registered": now - timedelta(days=30, minutes=n),
        "last_policy_request": now - timedelta(minutes=n),
    }


def _message(
    uid: str, message_id: int, strings: list[str], time: Any, **where: Any
) -> dict[str, Any]:
    entry = CATALOG[message_id]
    return {
        "uid": uid,
        "message_id": message_id,
        "severity": entry.severity.value,
        "component": entry.component,
        "client_id": where.get("client_id"),
        "dp_name": where.get("dp_name", ""),
        "deployment_id": where.get("deployment_id"),
        "package_id": where.get("package_id"),
        "insertion_strings": strings,
        "properties": where.get("properties", {}),
        "text": entry.render(strings),
        "time": time,
        "received": time,
    }


def populate(home: Path, base: Path) -> Populated:
    """Fill the site at `home` (its server may be running); sources go under `base`."""
    found = Populated()
    ctx = SiteContext.open(home)
    try:
        for name in ("7-Zip 23.01", "Notepad++ 8.6", "Firefox ESR 115"):
            source = base / f"src-{name.split()[0]}"
            source.mkdir(parents=True, exist_ok=True)
            (source / "install.sh").write_text(f"echo {name}\n")
            found.packages[name] = packages.create_package(
                ctx, name, str(source), [ProgramSpec(name="Install", command="sh install.sh")]
            )["package_id"]
        _fleet(ctx, found)
        _dps(ctx, found)
        _deployments(ctx, found)
        _applications(ctx, found)
    finally:
        ctx.close()
    return found


def _fleet(ctx: SiteContext, found: Populated) -> None:
    now = utcnow()
    rows = [_client_row(n, host, now) for n, host in enumerate(LAB, start=1)]
    rows += [_client_row(n, "kiosk", now) for n in (91, 92)]
    with ctx.db.session() as session:
        session.execute(insert(Client), rows)
        found.clients = {r["hostname"]: r["client_id"] for r in rows if r["hostname"] != "kiosk"}
        found.twins = [r["client_id"] for r in rows if r["hostname"] == "kiosk"]
        create_collection(session, "Lab")
        add_members(session, "Lab", [found.clients[h] for h in LAB])
    found.failed_client = found.clients["lab-01"]


def _dps(ctx: SiteContext, found: Populated) -> None:
    now = utcnow()
    with ctx.db.session() as session:
        for name in ("dp-bad", "dp-new", "dp-pending"):
            add_dp(session, name, f"http://{name}.example:8080", ["10.0.0.0/24"], False)
        session.flush()
        for name in ("dp-bad", "dp-pending"):
            session.execute(
                update(DistributionPoint)
                .where(DistributionPoint.name == name)
                .values(credential_hash=f"{name:0>64}", last_contact=now)
            )
        bad = session.scalar(select(DistributionPoint.id).where(DistributionPoint.name == "dp-bad"))
        session.execute(
            update(DPContent)
            .where(DPContent.dp_id == bad)
            .values(state="installed", last_validated=now - timedelta(days=2))
        )
    seven_zip = found.packages["7-Zip 23.01"]
    messages = [
        _message(
            f"mismatch-{n}",
            10075,
            [
                "",
                seven_zip,
                "Install",
                "dp-bad",
                "7z.msi",
                f"{n:064x}",
                f"{n:064x}",
                f"{n + 1:064x}",
            ],
            now - timedelta(hours=n + 1),
            client_id=found.clients[f"lab-0{n + 3}"],
            dp_name="dp-bad",
            package_id=seven_zip,
        )
        for n in range(3)
    ]
    messages.append(
        _message(
            "mismatch-last-week",
            10075,
            ["", seven_zip, "Install", "dp-bad", "7z.msi", "a" * 64, "a" * 64, "b" * 64],
            now - timedelta(days=6),
            client_id=found.clients["lab-09"],
            dp_name="dp-bad",
            package_id=seven_zip,
        )
    )
    messages.append(
        _message(
            "revalidate-1",
            2360,
            [seven_zip, "1", "dp-bad", found.clients["lab-03"]],
            now - timedelta(minutes=50),
            client_id=found.clients["lab-03"],
            dp_name="dp-bad",
            package_id=seven_zip,
        )
    )
    with ctx.db.session() as session:
        session.execute(insert(StatusMessageRow), messages)


def _deployments(ctx: SiteContext, found: Populated) -> None:
    now = utcnow()
    code = ctx.site_code
    seven_zip = found.packages["7-Zip 23.01"]
    with ctx.db.session() as session:
        found.failed = create_deployment(session, code, seven_zip, "Install", "Lab")
        plan = phase_plan("30%,100%", 90, 10)
        found.stopped = create_deployment(
            session, code, found.packages["Notepad++ 8.6"], "Install", "Lab", plan=plan
        )
        found.running = create_deployment(
            session,
            code,
            found.packages["Firefox ESR 115"],
            "Install",
            "Lab",
            plan=phase_plan("50%,100%", 90, 50),
        )
        found.paused = create_deployment(session, code, seven_zip, "Install", "Lab")
        pause_deployment(session, found.paused)
    lab01 = found.failed_client
    strings = [found.failed, seven_zip, "Install", "1603"]
    failure = _message(
        "lab-01-failed",
        10006,
        strings,
        now - timedelta(minutes=30),
        client_id=lab01,
        deployment_id=found.failed,
        package_id=seven_zip,
        properties={"has_output": True},
    )
    started = _message(
        "lab-01-started",
        10005,
        strings[:3],
        now - timedelta(minutes=31),
        client_id=lab01,
        deployment_id=found.failed,
        package_id=seven_zip,
    )
    with ctx.db.session() as session:
        session.execute(insert(StatusMessageRow), [started, failure])
        session.execute(
            insert(ProgramOutput),
            [
                {
                    "message_uid": "lab-01-failed",
                    "client_id": lab01,
                    "deployment_id": found.failed,
                    "size": len(OUTPUT.encode()),
                    "truncated": False,
                    "output": OUTPUT,
                    "received": now,
                }
            ],
        )
        _roll(session, found.failed, lab01, "failed", 10006, failure["text"], now)
        _roll(session, found.failed, found.clients["lab-02"], "succeeded", 10008, "ok", now)
        plan = phase_plan("30%,100%", 90, 10)
        assert plan is not None
        first = [c for c in found.clients.values() if assign_phase(found.stopped, c, plan) == 1]
        for client_id in first:
            _roll(session, found.stopped, client_id, "failed", 10006, "exit code 1", now)
        session.flush()
        reevaluate_rollouts(session, [found.stopped])


def _roll(
    session: Any,
    deployment_id: str,
    client_id: str,
    state: str,
    message: int,
    detail: str,
    now: Any,
) -> None:
    session.execute(
        update(DeploymentClient)
        .where(
            DeploymentClient.deployment_id == deployment_id,
            DeploymentClient.client_id == client_id,
        )
        .values(
            state=state,
            source_version=1,
            last_message_id=message,
            last_message_time=now - timedelta(minutes=30),
            detail=detail,
        )
    )


def _applications(ctx: SiteContext, found: Populated) -> None:
    """7-Zip (app) supersedes 7-Zip legacy and depends on VC runtime; one install of it."""
    seven_zip = found.packages["7-Zip 23.01"]
    code = ctx.site_code
    now = utcnow()
    with ctx.db.session() as session:
        for name, rule in (
            ("VC runtime", "file:C:/vc/runtime.dll"),
            ("7-Zip legacy", "file:C:/7zip/7z.exe"),
        ):
            found.apps[name] = create_application(
                session, code, name, RevisionRequest(seven_zip, "Install", [rule])
            )
        found.apps["7-Zip (app)"] = create_application(
            session,
            code,
            "7-Zip (app)",
            RevisionRequest(
                seven_zip,
                "Install",
                ["file:C:/7-Zip/7z.exe"],
                depends=[found.apps["VC runtime"]],
                supersedes=[found.apps["7-Zip legacy"]],
            ),
        )
        session.flush()
        found.app_deployment = create_app_from_request(
            session, code, found.apps["7-Zip (app)"], "Lab"
        )
        session.flush()
        session.execute(
            update(DeploymentClient)
            .where(
                DeploymentClient.deployment_id == found.app_deployment,
                DeploymentClient.client_id == found.clients["lab-02"],
            )
            .values(
                state="installed",
                last_message_time=now,
                last_evaluated=now - timedelta(minutes=5),
                evidence=[
                    {
                        "rule": "file:C:/7-Zip/7z.exe",
                        "result": "present",
                        "saw": "7z.exe, 571 KiB",
                    }
                ],
            )
        )
