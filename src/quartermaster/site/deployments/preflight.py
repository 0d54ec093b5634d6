"""What a new deployment would do, said before it is created and again when it is.

The console shows this as the summary an administrator confirms ("Install of 7-Zip 23.01
to 212 clients in All workstations, mandatory now, content installed on 2 of 3 DPs"); the
REST API returns its warnings with the created deployment, and `qm deploy create` prints
them on stderr. The warnings name what hurts a rollout without refusing it:

- the content is not yet installed on any DP that serves the targets (the active DPs whose
  boundary holds a member's address, and the fallback DPs), so every client waits;
- a phase holds no client (phases are drawn by a hash of the deployment ID and the client
  ID, so 34 %,100 % over 3 clients can leave phase 1 empty and reach everyone at once);
- the collection has no members yet.

`check_fields` tells the console which field of the form a mistake belongs to, so the form
keeps every value and shows the error next to the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.ids import DEPLOYMENT_ID_START, object_id
from quartermaster.core.schedule import check_times, parse_time
from quartermaster.site.content.packages import get_package
from quartermaster.site.db import read_counter
from quartermaster.site.deployments.deployments import get_deployment, phase_plan
from quartermaster.site.deployments.phases import PhasePlan, phase_sizes
from quartermaster.site.lookups import get_collection
from quartermaster.site.models import (
    Client,
    CollectionMember,
    DistributionPoint,
    DPContent,
    PackageVersion,
    Program,
    utcnow,
)

NOT_DISTRIBUTED = "not_distributed"


@dataclass(frozen=True)
class DPState:
    """One DP that serves the targets, and its copy of the package's current version."""

    dp: str
    state: str
    why: str  # "boundary" (holds a member's address) or "fallback"


@dataclass(frozen=True)
class PhaseSize:
    phase: int
    percent: int
    clients: int


@dataclass
class Preflight:
    """A deployment as it would be created; `sentence` is the line an administrator confirms."""

    package_id: str
    package_name: str
    version_label: str
    source_version: int
    program: str
    collection: str
    members: int
    schedule: str
    dps: list[DPState]
    phases: list[PhaseSize]
    warnings: list[str] = field(default_factory=list)

    @property
    def installed(self) -> int:
        return sum(1 for d in self.dps if d.state == "installed")

    @property
    def content(self) -> str:
        if not self.dps:
            return "no DP serves its clients"
        return f"content installed on {self.installed} of {len(self.dps)} DPs"

    @property
    def sentence(self) -> str:
        name = f"{self.package_name} {self.version_label}".strip()
        clients = f"{self.members} client{'' if self.members == 1 else 's'}"
        return (
            f"{self.program} of {name} to {clients} in {self.collection}, "
            f"{self.schedule}, {self.content}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.sentence,
            "members": self.members,
            "schedule": self.schedule,
            "dps": [d.__dict__ for d in self.dps],
            "phases": [p.__dict__ for p in self.phases],
            "warnings": self.warnings,
        }


def preflight(
    session: Session,
    site_code: str,
    package_id: str,
    program: str,
    collection: str,
    *,
    available: datetime | None = None,
    deadline: datetime | None = None,
    plan: PhasePlan | None = None,
    deployment_id: str | None = None,
    now: datetime | None = None,
) -> Preflight:
    """The summary and warnings of deploying `program` of `package_id` to `collection`.

    Without `deployment_id` (before creating) the phase sizes are drawn for the ID the next
    deployment will get; the created deployment's own check names its real ID."""
    now = now or utcnow()
    package = get_package(session, package_id)
    target = get_collection(session, collection)
    members = list(
        session.scalars(
            select(CollectionMember.client_id).where(CollectionMember.collection_id == target.id)
        )
    )
    version = session.scalar(
        select(PackageVersion).where(
            PackageVersion.package_id == package.package_id,
            PackageVersion.source_version == package.current_version,
        )
    )
    dps = _serving_dps(session, target.id, version.id if version else None)
    deployment_id = deployment_id or _next_deployment_id(session, site_code)
    phases = _phase_sizes(deployment_id, members, plan)
    result = Preflight(
        package_id=package.package_id,
        package_name=package.name,
        version_label=package.version_label,
        source_version=package.current_version,
        program=program,
        collection=target.name,
        members=len(members),
        schedule=describe_schedule(available, deadline, now),
        dps=dps,
        phases=phases,
    )
    result.warnings = _warnings(result)
    return result


def of_deployment(session: Session, site_code: str, deployment_id: str) -> Preflight:
    """The same check for a created deployment of a program, with its real ID and phases."""
    created = get_deployment(session, deployment_id)
    if created.package_id is None:
        raise InvalidInput(f"deployment {deployment_id} deploys an application, not a program")
    return preflight(
        session,
        site_code,
        created.package_id,
        created.program_name,
        created.collection.name,
        available=created.available,
        deadline=created.deadline,
        plan=PhasePlan.from_dict(created.phase_plan) if created.phase_plan else None,
        deployment_id=created.deployment_id,
        now=created.created,
    )


def describe_schedule(available: datetime | None, deadline: datetime | None, now: datetime) -> str:
    """ "mandatory now", "available now, mandatory at 2026-12-01 22:00 UTC", ... (the rule of
    `create_deployment`: no times is mandatory now; an available time alone is optional)."""

    def when(moment: datetime) -> str:
        return "now" if moment <= now + timedelta(minutes=1) else f"at {_utc(moment)}"

    if deadline is None:
        if available is None:
            return "mandatory now"
        start = "now" if when(available) == "now" else f"from {_utc(available)}"
        return f"available {start}, not mandatory"
    due = when(deadline)
    available = now if available is None else available  # as create_deployment does
    if available >= deadline:
        return f"mandatory {due}"
    start = "now" if when(available) == "now" else f"from {_utc(available)}"
    return f"available {start}, mandatory {due}"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _next_deployment_id(session: Session, site_code: str) -> str:
    last = read_counter(session, "deployment")
    return object_id(site_code, last + 1 if last else DEPLOYMENT_ID_START)


def _phase_sizes(deployment_id: str, members: list[str], plan: PhasePlan | None) -> list[PhaseSize]:
    if plan is None:
        return []
    sizes = phase_sizes(deployment_id, members, plan)
    return [
        PhaseSize(number, percent, sizes[number - 1])
        for number, percent in enumerate(plan.phases, start=1)
    ]


def _serving_dps(session: Session, collection_id: int, version_id: int | None) -> list[DPState]:
    """Active DPs whose boundary holds a member's address, then the fallback DPs, each with
    its copy of the version. Members' addresses are read only while some boundary DP is
    not yet known to serve one of them (a site of fallback DPs reads none)."""
    states: dict[int, str] = {}
    if version_id is not None:
        states = {
            dp_id: state
            for dp_id, state in session.execute(
                select(DPContent.dp_id, DPContent.state).where(DPContent.version_id == version_id)
            )
        }
    active = list(
        session.scalars(
            select(DistributionPoint)
            .where(DistributionPoint.state == "active")
            .order_by(DistributionPoint.name)
        )
    )
    near = _near(session, collection_id, [dp for dp in active if dp.boundaries])
    return [
        DPState(dp.name, states.get(dp.id, NOT_DISTRIBUTED), "boundary")
        for dp in active
        if dp.id in near
    ] + [
        DPState(dp.name, states.get(dp.id, NOT_DISTRIBUTED), "fallback")
        for dp in active
        if dp.fallback and dp.id not in near
    ]


def _near(session: Session, collection_id: int, bounded: list[DistributionPoint]) -> set[int]:
    """The IDs of `bounded` DPs whose boundary holds some member's address."""
    networks = {dp.id: _networks(dp.boundaries) for dp in bounded}
    found: set[int] = set()
    if not networks:
        return found
    query = (
        select(Client.ip_addresses)
        .join(CollectionMember, CollectionMember.client_id == Client.client_id)
        .where(CollectionMember.collection_id == collection_id)
        .execution_options(yield_per=5000)
    )
    for (ips,) in session.execute(query):
        for address in _addresses(ips or []):
            found |= {i for i, nets in networks.items() if _within(address, nets)}
        if len(found) == len(networks):
            break
    return found


def _networks(boundaries: list[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for boundary in boundaries:
        try:
            found.append(ipaddress.ip_network(str(boundary), strict=False))
        except ValueError:
            continue
    return found


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _addresses(values: list[Any]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_address(str(value)))
        except ValueError:
            continue
    return found


def _warnings(result: Preflight) -> list[str]:
    warnings = []
    if result.members == 0:
        warnings.append(
            f"collection {result.collection!r} has no members yet: nobody receives the "
            "deployment until clients join it"
        )
    if not result.dps:
        warnings.append(
            f"no DP serves the clients of {result.collection!r}: no active DP's boundary "
            "holds their addresses and there is no fallback DP, so they cannot download "
            f"{result.package_id}"
        )
    elif result.installed == 0:
        where = ", ".join(f"{d.dp}: {d.state.replace('_', ' ')}" for d in result.dps)
        warnings.append(
            f"the content of {result.package_id} version {result.source_version} is not yet "
            f"installed on any DP that serves the clients of {result.collection!r} ({where}): "
            "clients wait until a DP has it"
        )
    empty = [p for p in result.phases if p.clients == 0]
    if empty and result.members:
        sizes = ", ".join(f"phase {p.phase} ({p.percent}%): {p.clients}" for p in result.phases)
        warnings.append(
            f"{_phase_names(empty)} would hold no client of {result.members} ({sizes}); an "
            "empty phase counts as complete, so the next phase starts at once: give fewer "
            "phases or larger first percentages"
        )
    return warnings


def _phase_names(empty: list[PhaseSize]) -> str:
    numbers = [str(p.phase) for p in empty]
    if len(numbers) == 1:
        return f"phase {numbers[0]}"
    return f"phases {', '.join(numbers[:-1])} and {numbers[-1]}"


# --------------------------------------------------------------------------- the form


def check_fields(
    session: Session,
    values: dict[str, str],
    now: datetime | None = None,
) -> dict[str, str]:
    """Each field's mistake (field name → what is wrong and what to do), checked one field
    at a time so the console can show every error next to its field at once."""
    now = now or utcnow()
    errors: dict[str, str] = {}
    times: dict[str, datetime | None] = {}
    for name, what in (
        ("available", "available time"),
        ("deadline", "deadline"),
        ("expires", "expiry"),
    ):
        text = values.get(name, "")
        times[name] = (
            _checked(errors, name, lambda t=text, w=what: parse_time(t, now, w)) if text else None
        )
    if not errors:
        start = times["available"] or (
            now if times["deadline"] is None else min(now, times["deadline"])
        )
        _checked(
            errors, "deadline", lambda: check_times(start, times["deadline"], times["expires"])
        )
    _checked(
        errors,
        "phases",
        lambda: phase_plan(
            values.get("phases") or None,
            _threshold(values.get("success_threshold")),
            _threshold(values.get("error_threshold")),
        ),
    )
    if not values.get("collection"):
        errors["collection"] = "choose the collection to deploy to"
    else:
        _checked(errors, "collection", lambda: get_collection(session, values["collection"]))
    package_id, program = values.get("package_id", ""), values.get("program", "")
    found = _checked(errors, "program", lambda: get_package(session, package_id))
    if found is not None and (
        session.scalar(
            select(Program.name).where(
                Program.package_id == found.package_id, Program.name == program
            )
        )
        is None
    ):
        errors["program"] = f"package {package_id} has no program {program!r}"
    return errors


def _threshold(value: str | None) -> int | None:
    if not value:
        return None
    if not value.strip().isdigit():
        raise InvalidInput(f"the threshold {value!r} is not a whole percentage", "give 0 to 100")
    return int(value)


def _checked(errors: dict[str, str], name: str, check: Any) -> Any:
    try:
        return check()
    except QMError as exc:
        errors[name] = f"{exc.message}: {exc.hint}" if exc.hint else exc.message
        return None
