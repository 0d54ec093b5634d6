"""Application records: create, revise, show and list; every revision is immutable.

A revision copies what it names at the time it is made: the package version (content),
the install and uninstall programs' specs, and the detection rules in canonical text. So
editing a package's program later never changes what a revision installs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.detection_rules import Detection, ManifestRule, detection
from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.ids import check_object_id, normalize_object_id, object_id
from quartermaster.core.program import ProgramSpec, check_run_as
from quartermaster.site.applications.graph import check_no_cycle
from quartermaster.site.collection_rules import parse_rule
from quartermaster.site.content.packages import get_package
from quartermaster.site.db import next_counter
from quartermaster.site.identity import trust_log
from quartermaster.site.models import (
    Application,
    ApplicationLink,
    ApplicationRevision,
    PackageVersion,
    Program,
    utcnow,
)
from quartermaster.site.policy_serial import bump_policy_serial

APPLICATION_ID_START = 0x40000  # after packages (1...) and deployments (0x20000...)
DEFAULT_REEVALUATE = 86400  # seconds: daily, as Configuration Manager's default cycle
SUPERSEDE_MODES = ("upgrade", "uninstall")


@dataclass
class RevisionRequest:
    """What an administrator gives for a new application or revision."""

    package_id: str
    install: str
    detect: list[str]
    detect_any: bool = False
    uninstall: str | None = None
    depends: list[str] = field(default_factory=list)
    supersedes: list[str] = field(default_factory=list)  # APPID or APPID=upgrade|uninstall
    run_as: str = "system"
    requirements: dict[str, Any] | None = None  # replaces the install program's
    require: str | None = None  # a collection-style rule over what the client reports
    source_version: int | None = None  # default: the package's current version
    reevaluate: int = DEFAULT_REEVALUATE


def create_application(
    session: Session, site_code: str, name: str, request: RevisionRequest
) -> str:
    """A new application with revision 1; returns its ID."""
    if not name.strip() or len(name) > 200:
        raise InvalidInput("an application needs a name of 1 to 200 characters")
    app_id = object_id(site_code, next_counter(session, "application", APPLICATION_ID_START))
    session.add(Application(app_id=app_id, name=name.strip(), current_revision=0))
    session.flush()
    _add_revision(session, get_application(session, app_id, lock=True), request)
    return app_id


def revise_application(session: Session, app_id: str, request: RevisionRequest) -> int:
    """A new revision, in force from now on; returns its number."""
    application = get_application(session, app_id, lock=True)
    return _add_revision(session, application, request)


def get_application(session: Session, app_id: str, lock: bool = False) -> Application:
    app_id = check_object_id(app_id, "application ID")
    query = select(Application).where(Application.app_id == app_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    application = session.scalar(query)
    if application is None:
        raise NotFound(f"application {app_id} does not exist", "list them with `qm app list`")
    return application


def current_revision(session: Session, application: Application) -> ApplicationRevision:
    revision = session.scalar(
        select(ApplicationRevision).where(
            ApplicationRevision.app_id == application.app_id,
            ApplicationRevision.revision == application.current_revision,
        )
    )
    if revision is None:  # revisions are never deleted: a damaged database
        raise NotFound(
            f"application {application.app_id} lacks its revision {application.current_revision}",
            "restore the site database from a backup",
        )
    return revision


def _add_revision(session: Session, application: Application, request: RevisionRequest) -> int:
    rules = detection(request.detect, "any" if request.detect_any else "all")
    version = _package_version(session, request)
    if any(isinstance(r, ManifestRule) for r in rules.rules) and not version.manifest:
        raise InvalidInput("the package version has no manifest")  # never: versions have one
    links = _links(session, application.app_id, request)
    check_no_cycle(session, application.app_id, [(kind, other) for kind, other, _, _ in links])
    number = application.current_revision + 1
    revision = ApplicationRevision(
        app_id=application.app_id,
        revision=number,
        package_id=version.package_id,
        source_version=version.source_version,
        spec=_spec(session, application.name, request, rules),
    )
    session.add(revision)
    session.flush()
    session.add_all(
        ApplicationLink(
            revision_id=revision.id, kind=kind, other_app_id=other, mode=mode, position=position
        )
        for kind, other, mode, position in links
    )
    application.current_revision = number
    application.updated = utcnow()
    trust_log.append(
        session,
        "application.revision",
        f"{application.app_id} {number}",
        {"package_hash": version.package_hash, "spec": revision.spec},
    )
    bump_policy_serial(session)  # deployments of it carry the new revision
    return number


def _package_version(session: Session, request: RevisionRequest) -> PackageVersion:
    package = get_package(session, request.package_id)
    wanted = request.source_version or package.current_version
    version = session.scalar(
        select(PackageVersion).where(
            PackageVersion.package_id == package.package_id,
            PackageVersion.source_version == wanted,
        )
    )
    if version is None:
        raise NotFound(
            f"package {package.package_id} has no version {wanted}",
            f"see its versions with `qm package show {package.package_id}`",
        )
    return version


def _program(session: Session, package_id: str, name: str, run_as: str) -> dict[str, Any]:
    row = session.scalar(
        select(Program).where(Program.package_id == package_id, Program.name == name)
    )
    if row is None:
        raise NotFound(
            f"package {package_id} has no program {name!r}",
            f"add it with `qm program add {package_id} --name {name} --command ...`",
        )
    spec = ProgramSpec.from_dict({**row.spec, "run_context": run_as})
    return spec.to_dict()


def _spec(
    session: Session, name: str, request: RevisionRequest, rules: Detection
) -> dict[str, Any]:
    run_as = check_run_as(request.run_as)
    if not 300 <= request.reevaluate <= 30 * 86400:
        raise InvalidInput("the re-evaluation cycle must be 5 minutes to 30 days")
    install = _program(session, request.package_id, request.install, run_as)
    if request.requirements is not None:
        install = ProgramSpec.from_dict({**install, "requirements": request.requirements}).to_dict()
    uninstall = (
        _program(session, request.package_id, request.uninstall, run_as)
        if request.uninstall
        else None
    )
    spec: dict[str, Any] = {
        "name": name,
        "install": install,
        "uninstall": uninstall,
        "detection": rules.to_dict(),
        "run_as": run_as,
        "reevaluate": request.reevaluate,
    }
    if request.require is not None:
        spec["require"] = str(parse_rule(request.require))  # refused with the column
    return spec


def _links(
    session: Session, app_id: str, request: RevisionRequest
) -> list[tuple[str, str, str, int]]:
    """(kind, other application, mode, position) of the request, each checked to exist."""
    links: list[tuple[str, str, str, int]] = []
    for position, other in enumerate(request.depends):
        links.append(("depends", _other(session, app_id, other), "", position))
    for position, text in enumerate(request.supersedes):
        other, _, mode = text.partition("=")
        mode = mode or "upgrade"
        if mode not in SUPERSEDE_MODES:
            raise InvalidInput(
                f"supersedence {text!r}: {mode!r} is not upgrade or uninstall",
                "write --supersedes APPID=upgrade or APPID=uninstall",
            )
        links.append(("supersedes", _other(session, app_id, other), mode, position))
    seen = {(kind, other) for kind, other, _, _ in links}
    if len(seen) != len(links):
        raise InvalidInput("an application is named twice in --depends or --supersedes")
    return links


def _other(session: Session, app_id: str, other: str) -> str:
    other = normalize_object_id(other)
    if other == app_id:
        raise Conflict(
            f"application {app_id} cannot depend on or supersede itself ({app_id} → {app_id})"
        )
    return get_application(session, other).app_id


# --------------------------------------------------------------------------- views


def revision_view(session: Session, revision: ApplicationRevision) -> dict[str, Any]:
    links = session.scalars(
        select(ApplicationLink)
        .where(ApplicationLink.revision_id == revision.id)
        .order_by(ApplicationLink.kind, ApplicationLink.position)
    ).all()
    return {
        "revision": revision.revision,
        "package_id": revision.package_id,
        "source_version": revision.source_version,
        "install": revision.spec["install"]["name"],
        "uninstall": (revision.spec.get("uninstall") or {}).get("name"),
        "detection": revision.spec["detection"],
        "run_as": revision.spec["run_as"],
        "requirements": revision.spec["install"].get("requirements") or {},
        "require": revision.spec.get("require"),
        "reevaluate": revision.spec["reevaluate"],
        "depends": [link.other_app_id for link in links if link.kind == "depends"],
        "supersedes": [
            {"app_id": link.other_app_id, "mode": link.mode}
            for link in links
            if link.kind == "supersedes"
        ],
        "created": revision.created.isoformat(),
    }


def show_application(session: Session, app_id: str) -> dict[str, Any]:
    application = get_application(session, app_id)
    revisions = session.scalars(
        select(ApplicationRevision)
        .where(ApplicationRevision.app_id == app_id)
        .order_by(ApplicationRevision.revision)
    ).all()
    return {
        "app_id": application.app_id,
        "name": application.name,
        "current_revision": application.current_revision,
        "created": application.created.isoformat(),
        "revisions": [revision_view(session, r) for r in revisions],
    }


def list_applications(session: Session, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Application, ApplicationRevision)
        .join(
            ApplicationRevision,
            (ApplicationRevision.app_id == Application.app_id)
            & (ApplicationRevision.revision == Application.current_revision),
        )
        .order_by(Application.app_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {
            "app_id": a.app_id,
            "name": a.name,
            "current_revision": a.current_revision,
            "package_id": r.package_id,
            "source_version": r.source_version,
            "detection": r.spec["detection"],
            "run_as": r.spec["run_as"],
        }
        for a, r in rows
    ]
