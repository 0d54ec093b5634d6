"""Deployments (the old advertisements): schedules, pause and cancel, phased rollouts, status.

The pure rules live elsewhere and are only applied here: times and their order in
``core.schedule``, the rollout in ``site.phases``. A phased rollout is re-evaluated whenever
its counts can have moved (status messages arrive, members join or leave) and when it is
paused or resumed; a released phase or an automatic pause changes policy, so it bumps the
serial and raises a site status message.

Phase counts are taken over the collection's *current* members: a client that left the
collection keeps its row in the roll-up (and its history), but no longer counts for or
against a phase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.ids import DEPLOYMENT_ID_START, check_object_id, object_id
from quartermaster.core.schedule import (
    Rerun,
    check_times,
    parse_rerun,
    parse_time,
    window_time_text,
    window_wait_text,
)
from quartermaster.core.status_catalog import COMPLIANT, ClientState
from quartermaster.site.applications.records import current_revision, get_application
from quartermaster.site.content.packages import get_package
from quartermaster.site.db import next_counter
from quartermaster.site.deployments.phases import (
    DEFAULT_ERROR_THRESHOLD,
    DEFAULT_SUCCESS_THRESHOLD,
    PhaseCounts,
    PhasePlan,
    RolloutControl,
    RolloutState,
    assign_phase,
    count_phases,
    parse_phases,
    resume,
    rollout_state,
)
from quartermaster.site.identity import trust_log
from quartermaster.site.lookups import get_collection
from quartermaster.site.models import (
    Client,
    CollectionMember,
    Deployment,
    DeploymentClient,
    Program,
    StatusMessageRow,
    utcnow,
)
from quartermaster.site.policy_serial import bump_policy_serial
from quartermaster.site.status.program_output import find_client, last_output
from quartermaster.site.status.site_messages import raise_status

RERUN = tuple(r.value for r in Rerun)

# Site status messages of deployments (core/status_catalog.py).
MSG_PAUSED, MSG_RESUMED, MSG_CANCELLED = 3011, 3012, 3013
MSG_PHASE_RELEASED, MSG_AUTO_PAUSED = 3014, 3015


# --------------------------------------------------------------------------- creating


def parse_schedule(
    available: str | None, deadline: str | None, expires: str | None, now: datetime
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The administrator's times (``now``, ``+2h``, ISO 8601 with a zone) as UTC."""

    def one(value: str | None, what: str) -> datetime | None:
        return parse_time(value, now, what) if value else None

    return one(available, "available time"), one(deadline, "deadline"), one(expires, "expiry")


def phase_plan(
    phases: str | None, success_threshold: int | None = None, error_threshold: int | None = None
) -> PhasePlan | None:
    """The rollout as an administrator gives it: ``5%,25%,100%`` and optional thresholds."""
    if phases is None:
        if success_threshold is not None or error_threshold is not None:
            raise InvalidInput(
                "thresholds belong to a phased rollout", "add --phases, e.g. --phases 5%,25%,100%"
            )
        return None
    return parse_phases(
        phases,
        DEFAULT_SUCCESS_THRESHOLD if success_threshold is None else success_threshold,
        DEFAULT_ERROR_THRESHOLD if error_threshold is None else error_threshold,
    )


def create_from_request(
    session: Session,
    site_code: str,
    package_id: str,
    program: str,
    collection: str,
    *,
    available: str | None = None,
    deadline: str | None = None,
    expires: str | None = None,
    rerun: str = "if-failed",
    override_maintenance: bool = False,
    phases: str | None = None,
    success_threshold: int | None = None,
    error_threshold: int | None = None,
) -> str:
    """A deployment from what an administrator typed (the REST API and the console):
    times as ``now``, ``+2h`` or ISO 8601 with a zone, phases as ``5%,25%,100%``."""
    now = utcnow()
    start, due, end = parse_schedule(available, deadline, expires, now)
    plan = phase_plan(phases, success_threshold, error_threshold)
    return create_deployment(
        session,
        site_code,
        package_id,
        program,
        collection,
        available=start,
        deadline=due,
        expires=end,
        rerun=rerun,
        override_maintenance=override_maintenance,
        plan=plan,
        now=now,
    )


def create_deployment(
    session: Session,
    site_code: str,
    package_id: str,
    program: str,
    collection: str,
    *,
    available: datetime | None = None,
    deadline: datetime | None = None,
    expires: datetime | None = None,
    rerun: str = "if-failed",
    override_maintenance: bool = False,
    plan: PhasePlan | None = None,
    now: datetime | None = None,
) -> str:
    """Deploy a program to a collection; returns the deployment ID.

    Without an available time or a deadline it is mandatory now (as before schedules
    existed); with an available time but no deadline it is available only.
    """
    package = get_package(session, package_id)
    if (
        session.scalar(
            select(Program).where(Program.package_id == package.package_id, Program.name == program)
        )
        is None
    ):
        raise NotFound(
            f"package {package_id} has no program {program!r}",
            f"add it with `qm program add {package_id} --name ... --command ...`",
        )
    return _insert(
        session,
        site_code,
        {"package_id": package.package_id, "program_name": program},
        collection,
        available=available,
        deadline=deadline,
        expires=expires,
        rerun=rerun,
        override_maintenance=override_maintenance,
        plan=plan,
        now=now,
    )


PURPOSES = ("install", "uninstall")


def create_app_from_request(
    session: Session,
    site_code: str,
    app_id: str,
    collection: str,
    *,
    purpose: str = "install",
    available: str | None = None,
    deadline: str | None = None,
    expires: str | None = None,
    rerun: str = "if-failed",
    override_maintenance: bool = False,
    phases: str | None = None,
    success_threshold: int | None = None,
    error_threshold: int | None = None,
) -> str:
    """Deploy an application (its current revision, and the newer ones as they come) to a
    collection, to install it or to uninstall it; the same schedules, windows, phases and
    rerun rules as a program. Phases advance on compliance (what detection says)."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose {purpose!r} is not install or uninstall")
    application = get_application(session, app_id)
    if purpose == "uninstall" and not current_revision(session, application).spec.get("uninstall"):
        raise InvalidInput(
            f"application {app_id} has no uninstall program",
            f"add one with `qm app revise {app_id} ... --uninstall PROGRAM`",
        )
    now = utcnow()
    start, due, end = parse_schedule(available, deadline, expires, now)
    return _insert(
        session,
        site_code,
        {"app_id": application.app_id, "purpose": purpose},
        collection,
        available=start,
        deadline=due,
        expires=end,
        rerun=rerun,
        override_maintenance=override_maintenance,
        plan=phase_plan(phases, success_threshold, error_threshold),
        now=now,
    )


def _insert(
    session: Session,
    site_code: str,
    what: dict[str, Any],
    collection: str,
    *,
    available: datetime | None,
    deadline: datetime | None,
    expires: datetime | None,
    rerun: str,
    override_maintenance: bool,
    plan: PhasePlan | None,
    now: datetime | None,
) -> str:
    target = get_collection(session, collection)
    rule = parse_rerun(rerun)
    now = (now or utcnow()).replace(microsecond=0)
    if available is None:
        available = now if deadline is None else min(now, deadline)
        deadline = available if deadline is None else deadline
    check_times(available, deadline, expires)
    deployment_id = object_id(site_code, next_counter(session, "deployment", DEPLOYMENT_ID_START))
    deployment = Deployment(
        deployment_id=deployment_id,
        **what,
        collection_id=target.id,
        available=available,
        deadline=deadline,
        expires=expires,
        rerun=rule.value,
        override_maintenance=override_maintenance,
        phase_plan=plan.to_dict() if plan else None,
        rollout=_stored_control(RolloutControl()) if plan else None,
    )
    session.add(deployment)
    session.flush()
    members = session.scalars(
        select(CollectionMember.client_id).where(CollectionMember.collection_id == target.id)
    ).all()
    session.add_all(DeploymentClient(deployment_id=deployment_id, client_id=c) for c in members)
    session.flush()
    if plan is not None:
        _evaluate(session, deployment)  # empty first phases count as complete
    trust_log.append(
        session,
        "deployment.create",
        deployment_id,
        {
            **{k: v for k, v in what.items() if v is not None},
            "collection": target.name,
            "available": available.isoformat(),
            "deadline": deadline.isoformat() if deadline else None,
            "expires": expires.isoformat() if expires else None,
            "rerun": rule.value,
        },
    )
    bump_policy_serial(session)
    return deployment_id


def get_deployment(session: Session, deployment_id: str, lock: bool = False) -> Deployment:
    """The deployment; ``lock`` holds its row (PostgreSQL) so rollout decisions serialize."""
    deployment_id = check_object_id(deployment_id, "deployment ID")
    query = select(Deployment).where(Deployment.deployment_id == deployment_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    deployment = session.scalar(query)
    if deployment is None:
        raise NotFound(
            f"deployment {deployment_id} does not exist", "list them with `qm deploy list`"
        )
    return deployment


# --------------------------------------------------------------------------- rescheduling


def reschedule_deployment(
    session: Session,
    deployment_id: str,
    *,
    available: str | None = None,
    deadline: str | None = None,
    expires: str | None = None,
    now: datetime | None = None,
) -> None:
    """New times for a deployment; ``none`` clears a deadline or an expiry.

    A new deadline is a new cycle for the rerun rule (docs/deployments.md, "Rerun rules"):
    under ``always`` and ``if-failed`` clients that ran before it run again at it.
    """
    if available is None and deadline is None and expires is None:
        raise InvalidInput("nothing to change", "give --available, --deadline or --expires")
    deployment = get_deployment(session, deployment_id, lock=True)
    _refuse_cancelled(deployment, "rescheduled")
    now = (now or utcnow()).replace(microsecond=0)

    def moment(
        value: str | None, current: datetime | None, what: str, clearable: bool
    ) -> datetime | None:
        if value is None:
            return current
        if clearable and value.strip().lower() == "none":
            return None
        return parse_time(value, now, what)

    start = moment(available, deployment.available, "available time", False) or deployment.available
    due = moment(deadline, deployment.deadline, "deadline", True)
    end = moment(expires, deployment.expires, "expiry", True)
    check_times(start, due, end)
    deployment.available, deployment.deadline, deployment.expires = start, due, end
    trust_log.append(
        session,
        "deployment.reschedule",
        deployment_id,
        {
            k: v.isoformat() if v else None
            for k, v in (("available", start), ("deadline", due), ("expires", end))
        },
    )
    bump_policy_serial(session)


# --------------------------------------------------------------------------- pause, resume, cancel


def pause_deployment(session: Session, deployment_id: str) -> None:
    """Clients hold off (policy says "paused") and no further phase is released."""
    deployment = get_deployment(session, deployment_id, lock=True)
    _refuse_cancelled(deployment, "paused")
    if deployment.state == "paused":
        return
    deployment.state = "paused"
    trust_log.append(session, "deployment.pause", deployment_id, {})
    _site_message(session, MSG_PAUSED, deployment_id)
    bump_policy_serial(session)


def resume_deployment(session: Session, deployment_id: str) -> None:
    """Continue where it stopped, accepting the failures counted so far."""
    deployment = get_deployment(session, deployment_id, lock=True)
    _refuse_cancelled(deployment, "resumed")
    if deployment.state == "active":
        return
    plan = _plan(deployment)
    accepted = 0
    if plan is not None:
        control = resume(plan, _counts(session, deployment, plan), _control(deployment))
        deployment.rollout = _stored_control(control)
        accepted = sum(control.accepted_failures.values())
    deployment.state = "active"
    trust_log.append(session, "deployment.resume", deployment_id, {})
    _site_message(session, MSG_RESUMED, deployment_id, accepted)
    if plan is not None:
        session.flush()
        _evaluate(session, deployment)
    bump_policy_serial(session)


def cancel_deployment(session: Session, deployment_id: str) -> None:
    """End it for good: it leaves every client's policy and cannot be resumed."""
    deployment = get_deployment(session, deployment_id, lock=True)
    if deployment.state == "cancelled":
        return
    deployment.state = "cancelled"
    trust_log.append(session, "deployment.cancel", deployment_id, {})
    _site_message(session, MSG_CANCELLED, deployment_id)
    bump_policy_serial(session)


def _refuse_cancelled(deployment: Deployment, what: str) -> None:
    if deployment.state == "cancelled":
        raise Conflict(
            f"deployment {deployment.deployment_id} is cancelled and cannot be {what}",
            "create a new deployment with `qm deploy create`",
        )


# --------------------------------------------------------------------------- phased rollouts


def reevaluate_rollouts(session: Session, deployment_ids: Iterable[str | None]) -> None:
    """Release phases and pause on errors after counts moved; call after status ingest.

    Takes the deployment IDs of the messages just rolled up; IDs that are unknown or not
    phased are ignored, so callers need not filter.
    """
    wanted = sorted({d for d in deployment_ids if d})
    # Only phased deployments are locked: every status batch passes here, and a row lock on
    # a deployment without phases would make all of its clients' batches wait in line.
    # (No phases is stored as JSON null, which SQL's IS NOT NULL does not see: test here.)
    rows = (
        session.execute(
            select(Deployment.deployment_id, Deployment.phase_plan).where(
                Deployment.deployment_id.in_(wanted)
            )
        ).all()
        if wanted
        else []
    )
    phased = {deployment_id for deployment_id, plan in rows if plan}
    for deployment_id in (d for d in wanted if d in phased):
        deployment = session.scalar(
            select(Deployment)
            .where(Deployment.deployment_id == deployment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if (
            deployment is not None
            and deployment.phase_plan is not None
            and deployment.state == "active"
        ):
            _evaluate(session, deployment)


def _evaluate(session: Session, deployment: Deployment) -> RolloutState:
    plan = _plan(deployment)
    if plan is None:
        raise ValueError(f"deployment {deployment.deployment_id} has no phases to evaluate")
    control = _control(deployment)
    counts = _counts(session, deployment, plan)
    state = rollout_state(plan, counts, control)
    after = state.control(control)
    changed = False
    for number in range(control.released + 1, after.released + 1):
        _site_message(
            session,
            MSG_PHASE_RELEASED,
            deployment.deployment_id,
            number,
            len(plan.phases),
            _release_reason(counts, control, number - 1),
        )
        changed = True
    if after.released != control.released:
        deployment.rollout = _stored_control(after)
    if state.auto_paused:
        deployment.state = "paused"
        _site_message(
            session,
            MSG_AUTO_PAUSED,
            deployment.deployment_id,
            f"{state.failed}/{state.targeted}",
            plan.error_threshold,
        )
        changed = True
    if changed:
        bump_policy_serial(session)
    return state


def _release_reason(
    counts: Mapping[int, PhaseCounts], control: RolloutControl, previous: int
) -> str:
    phase = counts.get(previous, PhaseCounts())
    targeted = phase.targeted - min(control.accepted_failures.get(previous, 0), phase.targeted)
    if targeted <= 0:
        return f"phase {previous} has no clients to wait for"
    return f"phase {previous}: {phase.succeeded} of {targeted} clients succeeded"


def _plan(deployment: Deployment) -> PhasePlan | None:
    return PhasePlan.from_dict(deployment.phase_plan) if deployment.phase_plan else None


def _control(deployment: Deployment) -> RolloutControl:
    return RolloutControl.from_dict({**(deployment.rollout or {}), "state": deployment.state})


def _stored_control(control: RolloutControl) -> dict[str, Any]:
    """The state lives in Deployment.state; the rest of the control in Deployment.rollout."""
    data = control.to_dict()
    del data["state"]
    return data


def _member_states(session: Session, deployment: Deployment) -> list[tuple[str, str]]:
    """(client, roll-up state) of the collection's current members."""
    rows = session.execute(
        select(CollectionMember.client_id, DeploymentClient.state)
        .outerjoin(
            DeploymentClient,
            and_(
                DeploymentClient.deployment_id == deployment.deployment_id,
                DeploymentClient.client_id == CollectionMember.client_id,
            ),
        )
        .where(CollectionMember.collection_id == deployment.collection_id)
    )
    return [(client_id, state or ClientState.UNKNOWN.value) for client_id, state in rows]


def _counts(session: Session, deployment: Deployment, plan: PhasePlan) -> dict[int, PhaseCounts]:
    """Per-phase counts; for an application, succeeded means compliant (detection agrees)."""
    states = _member_states(session, deployment)
    if deployment.purpose:
        compliant = COMPLIANT[deployment.purpose]
        states = [(c, _as_compliance(s, compliant)) for c, s in states]
    return count_phases(plan, deployment.deployment_id, states)


def _as_compliance(state: str, compliant: str) -> str:
    """An application client counts as succeeded only when compliant: a program that
    merely exited 0 is still in progress until detection agrees."""
    if state == compliant:
        return "succeeded"
    return "in_progress" if state == "succeeded" else state


def _site_message(session: Session, message_id: int, deployment_id: str, *strings: Any) -> None:
    raise_status(session, message_id, deployment_id, *strings, deployment_id=deployment_id)


# --------------------------------------------------------------------------- views


def deployment_summary(deployment: Deployment) -> dict[str, Any]:
    return {
        "deployment_id": deployment.deployment_id,
        "package_id": deployment.package_id,
        "program": deployment.program_name,
        "app_id": deployment.app_id,
        "purpose": deployment.purpose,
        "collection_id": deployment.collection_id,
        "collection": deployment.collection.name,
        "available": deployment.available.isoformat(),
        "deadline": _iso(deployment.deadline),
        "expires": _iso(deployment.expires),
        "rerun": deployment.rerun,
        "state": deployment.state,
        "override_maintenance": deployment.override_maintenance,
        "phases": deployment.phase_plan,
        "created": deployment.created.isoformat(),
    }


def list_deployments(session: Session, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    query = (
        select(Deployment)
        .options(selectinload(Deployment.collection))
        .order_by(Deployment.deployment_id)
        .limit(limit)
        .offset(offset)
    )
    return [deployment_summary(d) for d in session.scalars(query)]


def deployment_status(
    session: Session,
    deployment_id: str,
    limit: int = 1000,
    offset: int = 0,
    state: str | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """Counts over every client ever targeted, each client's row, and the rollout. With
    `client` (an ID or a host name) only that client's row, with its program's last output."""
    deployment = get_deployment(session, deployment_id)
    deployment_id = deployment.deployment_id  # as stored, whatever the case asked for
    counts = {s.value: 0 for s in ClientState}
    for value, count in session.execute(
        select(DeploymentClient.state, func.count())
        .where(DeploymentClient.deployment_id == deployment_id)
        .group_by(DeploymentClient.state)
    ):
        counts[value] = count
    query = (
        select(DeploymentClient, Client.hostname)
        .join(Client, Client.client_id == DeploymentClient.client_id)
        .where(DeploymentClient.deployment_id == deployment_id)
        .order_by(Client.hostname)
        .limit(limit)
        .offset(offset)
    )
    if state:
        query = query.where(DeploymentClient.state == state)
    client_id = None
    if client is not None:
        client_id = find_client(session, client)
        if client_id is None:
            raise NotFound(f"no client {client!r}", "give a client ID or a host name")
        query = query.where(DeploymentClient.client_id == client_id)
    plan = _plan(deployment)
    rows: list[dict[str, Any]] = [
        {
            "client_id": row.client_id,
            "hostname": hostname,
            "state": row.state,
            "source_version": row.source_version,
            "last_message_id": row.last_message_id,
            "last_message_time": _iso(row.last_message_time),
            "detail": row.detail,
            "phase": assign_phase(deployment_id, row.client_id, plan) if plan else None,
            "last_evaluated": _iso(row.last_evaluated),
            "evidence": row.evidence,
        }
        for row, hostname in session.execute(query)
    ]
    for row in rows:
        if row["state"] == ClientState.IN_PROGRESS and row["last_message_id"] == WINDOW_WAIT:
            row["waiting"] = _window_wait(str(row["detail"] or ""))
    if client_id is not None:
        for row in rows:
            row["last_output"] = last_output(session, deployment_id, client_id)
    rollout = _rollout_view(session, deployment, plan) if plan else None
    reason = rollout["reason"] if rollout else _STATE_REASONS[deployment.state]
    return {
        **deployment_summary(deployment),
        "targeted": sum(counts.values()),
        "counts": counts,
        "compliance": _compliance(deployment, counts),
        "state_reason": reason,
        "rollout": rollout,
        "waiting_for_window": _waiting_for_window(session, deployment_id),
        "content_sources": content_sources(session, deployment_id),
        "clients": rows,
    }


DOWNLOADED = 10036  # "content downloaded": its properties split the bytes by source
SOURCES = ("peer", "boundary", "fallback")


def content_sources(session: Session, deployment_id: str) -> dict[str, int]:
    """Bytes the clients of a deployment downloaded, by source: peers of their boundary, DPs
    of their boundary, fallback DPs (Configuration Manager's "client data sources")."""
    totals = dict.fromkeys(SOURCES, 0)
    for properties in session.scalars(
        select(StatusMessageRow.properties).where(
            StatusMessageRow.deployment_id == deployment_id,
            StatusMessageRow.message_id == DOWNLOADED,
        )
    ):
        for source in SOURCES:
            value = (properties or {}).get(f"bytes_{source}")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                totals[source] += value
    return totals


WINDOW_WAIT = 10060  # "waiting for a maintenance window; next opens at %4."
_OPENS = re.compile(r"next opens at (\S+)\.$")


def _window_opens(detail: str | None) -> str | None:
    found = _OPENS.search(detail or "")
    return window_time_text(found.group(1)) if found else None


def _window_wait(detail: str | None) -> str:
    return window_wait_text(_window_opens(detail))


def _waiting_for_window(session: Session, deployment_id: str) -> dict[str, Any] | None:
    """How many clients hold a mandatory run for a maintenance window, and the soonest one
    opens: shown with the counts, where in_progress alone would not say why."""
    details = session.scalars(
        select(DeploymentClient.detail).where(
            DeploymentClient.deployment_id == deployment_id,
            DeploymentClient.state == ClientState.IN_PROGRESS,
            DeploymentClient.last_message_id == WINDOW_WAIT,
        )
    ).all()
    if not details:
        return None
    opens = sorted(filter(None, map(_window_opens, details)))
    return {"clients": len(details), "opens": opens[0] if opens else None}


#: Up to this many matching clients a page sorts them by hostname; above it, the page walks
#: clients in hostname order (their index) and probes the roll-up for each, so its first
#: rows come at once instead of after sorting 100,000 rows.
_SORT_AT_MOST = 5000


def client_page(
    session: Session,
    deployment_id: str,
    *,
    state: str | None = None,
    limit: int = 50,
    after: str | None = None,
    before: str | None = None,
    matching: int | None = None,
) -> list[dict[str, Any]]:
    """A page of a deployment's clients in (hostname, client ID) order: the rows after the
    client `after`, or the rows just before the client `before` (keyset paging, so a page
    deep in 100,000 clients costs what the first does). `matching` is how many clients the
    filter selects, when the caller counted them already."""
    deployment = get_deployment(session, deployment_id)
    wanted = [DeploymentClient.deployment_id == deployment_id]
    if state:
        wanted.append(DeploymentClient.state == state)
    if matching is None:
        matching = (
            session.scalar(select(func.count()).select_from(DeploymentClient).where(*wanted)) or 0
        )
    if matching > _SORT_AT_MOST:
        query = select(Client.client_id).where(
            exists().where(DeploymentClient.client_id == Client.client_id, *wanted)
        )
    else:
        query = (
            select(Client.client_id)
            .join(DeploymentClient, DeploymentClient.client_id == Client.client_id)
            .where(*wanted)
        )
    backwards = before is not None and after is None
    cursor = before if backwards else after
    host = (
        session.scalar(select(Client.hostname).where(Client.client_id == cursor))
        if cursor
        else None
    )
    if cursor and host is not None and backwards:
        query = query.where(
            Client.hostname <= host, or_(Client.hostname < host, Client.client_id < cursor)
        )
    elif cursor and host is not None:
        query = query.where(
            Client.hostname >= host, or_(Client.hostname > host, Client.client_id > cursor)
        )
    order = (
        (Client.hostname.desc(), Client.client_id.desc())
        if backwards
        else (Client.hostname, Client.client_id)
    )
    ids = list(session.scalars(query.order_by(*order).limit(limit)))
    if backwards:
        ids.reverse()
    found = {
        row.client_id: (row, hostname)
        for row, hostname in session.execute(
            select(DeploymentClient, Client.hostname)
            .join(Client, Client.client_id == DeploymentClient.client_id)
            .where(
                DeploymentClient.deployment_id == deployment_id, DeploymentClient.client_id.in_(ids)
            )
        )
    }
    plan = _plan(deployment)
    return [
        {
            "client_id": row.client_id,
            "hostname": hostname,
            "state": row.state,
            "source_version": row.source_version,
            "last_message_id": row.last_message_id,
            "last_message_time": _iso(row.last_message_time),
            "detail": row.detail,
            "phase": assign_phase(deployment_id, row.client_id, plan) if plan else None,
        }
        for row, hostname in (found[c] for c in ids)
    ]


def _compliance(deployment: Deployment, counts: dict[str, int]) -> dict[str, Any] | None:
    """An application deployment's clients by what detection says, and how many comply."""
    if not deployment.purpose:
        return None
    unknown = counts["unknown"] + counts["in_progress"] + counts["succeeded"]
    return {
        "installed": counts["installed"],
        "not_installed": counts["not_installed"],
        "failed": counts["failed"],
        "requirements_not_met": counts["requirements_not_met"],
        "unknown": unknown,
        "compliant": counts[COMPLIANT[deployment.purpose]],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


_STATE_REASONS = {
    "active": "",
    "paused": "paused by an administrator",
    "cancelled": "cancelled by an administrator",
}


def _rollout_view(session: Session, deployment: Deployment, plan: PhasePlan) -> dict[str, Any]:
    control = _control(deployment)
    counts = _counts(session, deployment, plan)
    state = rollout_state(plan, counts, control)
    phases = [
        {
            "phase": n,
            "percent": percent,
            "targeted": counts[n].targeted,
            "succeeded": counts[n].succeeded,
            "failed": counts[n].failed,
            "accepted_failures": control.accepted_failures.get(n, 0),
            "released": n <= control.released,
        }
        for n, percent in enumerate(plan.phases, start=1)
    ]
    return {
        "phases": phases,
        "success_threshold": plan.success_threshold,
        "error_threshold": plan.error_threshold,
        "released": control.released,
        "paused": state.paused,
        "cancelled": state.cancelled,
        "reason": state.reason,
        "failed": state.failed,
        "counted": state.targeted,
    }
