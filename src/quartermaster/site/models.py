"""The site database schema (SQLAlchemy 2), one schema for SQLite and PostgreSQL.

Times are stored as timezone-aware UTC. JSON columns hold small lists and settings only;
anything a page filters or sorts on is a real, indexed column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, always returns aware datetimes (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the site database; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    __tablename__ = "site"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_code: Mapped[str] = mapped_column(String(3), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Named counters for IDs (package, deployment) and the policy serial."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Account(Base):
    """A person or script that administers the site; its role decides what it may do.

    Accounts are disabled, never deleted, so the audit log always names a real account.
    """

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # admin | operator | viewer
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)  # argon2id
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed: Mapped[datetime | None] = mapped_column(default=None)


class ApiToken(Base):
    """An API token of an account: only its SHA-256 is stored; its role is the account's."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # a label, e.g. "ci"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ConsoleSessionRecord(Base):
    """A signed-in console session. Only the SHA-256 of its cookie is kept, so a copy of
    the database signs nobody in; sign-out, a password or role change and disabling the
    account delete the rows, and every site process sees that at once."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    started: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column()


class SignInFailure(Base):
    """A failed console sign-in: counted by every site process alike, kept over restarts."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_address_at", "address", "at"),
        Index("ix_sign_in_failures_name_at", "name", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SiteSetting(Base):
    """A site-wide setting, in the database so that every site process sees the same value."""

    __tablename__ = "site_settings"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100), default="")


class AuditEntry(Base):
    """Who changed what: one row per change attempted through the admin API
    (site/identity/audit.py)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_account_time", "account", "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    account: Mapped[str] = mapped_column(String(100))  # account name, or "client <GUID>"
    action: Mapped[str] = mapped_column(String(50), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(30), default="started")
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    source: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Package(Base):
    __tablename__ = "packages"
    package_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    manufacturer: Mapped[str] = mapped_column(String(200), default="")
    version_label: Mapped[str] = mapped_column(String(100), default="")
    source_path: Mapped[str] = mapped_column(Text)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    # Retention: versions kept besides those still in use (None: the site default, 3).
    keep_versions: Mapped[int | None] = mapped_column(Integer, default=None)
    # Links to what is not in the package: "refuse" the folder or "skip" them (core/manifest).
    outside_links: Mapped[str] = mapped_column(String(10), default="refuse")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[PackageVersion]] = relationship(
        back_populates="package", order_by="PackageVersion.source_version"
    )
    programs: Mapped[list[Program]] = relationship(
        back_populates="package", order_by="Program.name"
    )


class PackageVersion(Base):
    __tablename__ = "package_versions"
    __table_args__ = (UniqueConstraint("package_id", "source_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.package_id"), index=True)
    source_version: Mapped[int] = mapped_column(Integer)
    package_hash: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[str] = mapped_column(Text)  # the signed envelope, JSON text
    file_count: Mapped[int] = mapped_column(Integer)
    total_size: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    package: Mapped[Package] = relationship(back_populates="versions")


class PrunedVersion(Base):
    """A version removed by retention (site/content/retention.py). Its blobs stay in the
    library and on DPs for the grace period after `pruned`, for downloads already under way;
    the row stays as the record of what the hash was."""

    __tablename__ = "pruned_versions"
    package_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.package_id"), index=True)
    source_version: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[str] = mapped_column(Text)  # the signed envelope, JSON text
    pruned: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("package_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.package_id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # ProgramSpec.to_dict()

    package: Mapped[Package] = relationship(back_populates="programs")


class Client(Base):
    __tablename__ = "clients"
    # Active clients (approved, asked for policy lately) are counted from this index alone.
    __table_args__ = (Index("ix_clients_approval_policy", "approval", "last_policy_request"),)
    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str] = mapped_column(String(255), index=True)
    os: Mapped[str] = mapped_column(String(50), default="")
    os_version: Mapped[str] = mapped_column(String(100), default="")
    architecture: Mapped[str] = mapped_column(String(50), default="")
    ip_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    agent_version: Mapped[str] = mapped_column(String(50), default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approval: Mapped[str] = mapped_column(String(20), default="approved", index=True)
    # Re-keying (site/targeting/client_access.py): the old secret then only buys a new one, which
    # replaces it the first time the client uses it.
    rekey_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    next_secret_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    # `qm client notify`: every client API answer says "poll now" until the client fetches policy.
    poll_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    registered: Mapped[datetime] = mapped_column(default=utcnow)
    last_policy_request: Mapped[datetime | None] = mapped_column(default=None, index=True)
    last_status_time: Mapped[datetime | None] = mapped_column(default=None)


class Collection(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionMember(Base):
    """Evaluated membership: one row per (collection, client), with why it is a member."""

    __tablename__ = "collection_members"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id"), primary_key=True, index=True
    )
    reason: Mapped[str] = mapped_column(String(200), default="direct")


class CollectionDirect(Base):
    """A client an administrator added by ID; kept apart from the evaluated membership so
    that re-evaluating rules never forgets it (an excluded direct member stays listed here)."""

    __tablename__ = "collection_direct"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id"), primary_key=True, index=True
    )
    added: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionRule(Base):
    """A query rule of a collection in its canonical text (it parses back to the same rule).

    Not unique in the database: a rule may be 4,000 characters, longer than PostgreSQL
    indexes; membership.py refuses a duplicate under its lock."""

    __tablename__ = "collection_rules"  # one text per collection, checked by membership.py
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    added: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionLink(Base):
    """An included or excluded collection; one link per pair, so a collection cannot both
    include and exclude the same other collection."""

    __tablename__ = "collection_links"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), primary_key=True)
    other_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id"), primary_key=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # include | exclude


class MaintenanceWindow(Base):
    """A maintenance window of a collection, in the normalized text policy carries."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (UniqueConstraint("collection_id", "text"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    text: Mapped[str] = mapped_column(String(200))


class Application(Base):
    """Configuration Manager's application: immutable revisions, the newest one in force."""

    __tablename__ = "applications"
    app_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    current_revision: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class ApplicationRevision(Base):
    """One immutable revision: a package version, programs, detection, requirements, run-as
    (`spec`, see site/applications/records.py), and its links to other applications."""

    __tablename__ = "application_revisions"
    __table_args__ = (UniqueConstraint("app_id", "revision"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("applications.app_id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.package_id"), index=True)
    source_version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class ApplicationLink(Base):
    """A dependency (kind "depends") or supersedence (kind "supersedes", mode "upgrade" or
    "uninstall") of one revision on another application."""

    __tablename__ = "application_links"
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("application_revisions.id"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    other_app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.app_id"), primary_key=True, index=True
    )
    mode: Mapped[str] = mapped_column(String(20), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)  # install order of dependencies


class Deployment(Base):
    __tablename__ = "deployments"
    deployment_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    # A package deployment names a package and program; an application deployment names an
    # application and its purpose (install | uninstall) instead.
    package_id: Mapped[str | None] = mapped_column(
        ForeignKey("packages.package_id"), index=True, default=None
    )
    program_name: Mapped[str] = mapped_column(String(100), default="")
    app_id: Mapped[str | None] = mapped_column(
        ForeignKey("applications.app_id"), index=True, default=None
    )
    purpose: Mapped[str | None] = mapped_column(String(20), default=None)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    available: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime | None] = mapped_column(default=None)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    rerun: Mapped[str] = mapped_column(String(20), default="if-failed")
    state: Mapped[str] = mapped_column(String(20), default="active")  # active|paused|cancelled
    created: Mapped[datetime] = mapped_column(default=utcnow)
    override_maintenance: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # A phased rollout: PhasePlan.to_dict(); None runs to the whole collection at once.
    phase_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Between evaluations: {"released": phases released, "accepted_failures": {phase: n}}.
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    collection: Mapped[Collection] = relationship()


class DeploymentClient(Base):
    """The roll-up: each targeted client's state in a deployment, kept up to date on ingest."""

    __tablename__ = "deployment_clients"
    __table_args__ = (Index("ix_deployment_clients_state", "deployment_id", "state"),)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.deployment_id"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id"), primary_key=True, index=True
    )
    state: Mapped[str] = mapped_column(String(30), default="unknown")
    source_version: Mapped[int | None] = mapped_column(Integer, default=None)
    last_message_id: Mapped[int | None] = mapped_column(Integer, default=None)
    last_message_time: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    # Applications: when detection last ran and what each rule saw (its last message's).
    last_evaluated: Mapped[datetime | None] = mapped_column(default=None)
    evidence: Mapped[list[Any] | None] = mapped_column(JSON, default=None)


class StatusMessageRow(Base):
    __tablename__ = "status_messages"
    __table_args__ = (
        Index("ix_status_messages_deployment_time", "deployment_id", "time"),
        Index("ix_status_messages_client_time", "client_id", "time"),
        Index("ix_status_messages_message_time", "message_id", "time"),
        # The status message viewer filters on each of these and sorts by time.
        Index("ix_status_messages_severity_time", "severity", "time"),
        Index("ix_status_messages_package_time", "package_id", "time"),
        Index("ix_status_messages_dp_time", "dp_name", "time"),
        Index("ix_status_messages_component_time", "component", "time"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    message_id: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(20))
    component: Mapped[str] = mapped_column(String(50))
    client_id: Mapped[str | None] = mapped_column(String(36), default=None)
    dp_name: Mapped[str] = mapped_column(String(100), default="")
    deployment_id: Mapped[str | None] = mapped_column(String(8), default=None)
    package_id: Mapped[str | None] = mapped_column(String(8), default=None)
    insertion_strings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[datetime] = mapped_column(index=True)
    received: Mapped[datetime] = mapped_column(default=utcnow)


class ProgramOutput(Base):
    """The last output of a failed program, sent with its status message (10006, 10070).

    Kept apart from the message row so message lists stay small and the total can be
    capped: the oldest rows are deleted first (site/status/program_output.py).
    """

    __tablename__ = "program_outputs"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_uid: Mapped[str] = mapped_column(String(120), unique=True)
    client_id: Mapped[str] = mapped_column(String(36))
    deployment_id: Mapped[str | None] = mapped_column(String(8), default=None)
    size: Mapped[int] = mapped_column(Integer)  # bytes of `output` in UTF-8
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)  # cut to the message cap
    output: Mapped[str] = mapped_column(Text)
    received: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_program_outputs_deployment_client", "deployment_id", "client_id"),)


class DistributionPoint(Base):
    __tablename__ = "distribution_points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    boundaries: Mapped[list[Any]] = mapped_column(JSON, default=list)  # CIDR strings
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    embedded: Mapped[bool] = mapped_column(Boolean, default=False)
    enrollment_token_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    credential_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    state: Mapped[str] = mapped_column(String(20), default="active")  # active|retired
    last_contact: Mapped[datetime | None] = mapped_column(default=None)
    # Disk use of the DP's store as of its last report (None until it reports).
    free_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    used_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Why the DP cannot work, as its host last said (the embedded DP's start-up failure);
    # None while it works. Shown by `qm dp list` and `qm site status`.
    problem: Mapped[str | None] = mapped_column(Text, default=None)
    created: Mapped[datetime] = mapped_column(default=utcnow)


_OPEN_GC = "kind = 'gc' AND state IN ('queued', 'running')"


class Job(Base):
    """Long work done in the background by one site process (site/jobs/): snapshots,
    distribution to DPs, validation, garbage collection. Claimed atomically; a dead owner's
    job is resumed or failed with its reason. At most one garbage collection per target is
    queued or running (the unique partial index), whichever process submits it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_id", "state", "id"),
        Index(
            "ux_jobs_one_open_gc",
            "kind",
            "target",
            unique=True,
            sqlite_where=text(_OPEN_GC),
            postgresql_where=text(_OPEN_GC),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|...
    target: Mapped[str] = mapped_column(String(200), default="")  # package ID, DP name
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(200), default="")  # host:pid:start of its runner
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(BigInteger, default=0)
    files_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    started: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat: Mapped[datetime | None] = mapped_column(default=None)
    finished: Mapped[datetime | None] = mapped_column(default=None)


class PackageDP(Base):
    """Which DPs carry a package (by default every DP carries every package)."""

    __tablename__ = "package_dps"
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.package_id"), primary_key=True)
    dp_id: Mapped[int] = mapped_column(ForeignKey("distribution_points.id"), primary_key=True)


class DPContent(Base):
    """A package version on a DP: pending → distributing → installed | failed |
    validation_failed."""

    __tablename__ = "dp_content"
    dp_id: Mapped[int] = mapped_column(ForeignKey("distribution_points.id"), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("package_versions.id"), primary_key=True, index=True
    )
    state: Mapped[str] = mapped_column(String(30), default="pending")
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated: Mapped[datetime] = mapped_column(default=utcnow)
    last_validated: Mapped[datetime | None] = mapped_column(default=None)
    validate_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class ReleaseApproval(Base):
    """One approver's signature over a release statement (core/trust_roles.py): the site keeps
    it and hands it to clients, which check it themselves against the root's approvers."""

    __tablename__ = "release_approvals"
    __table_args__ = (UniqueConstraint("statement_digest", "keyid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_hash: Mapped[str] = mapped_column(String(64), index=True)
    package_id: Mapped[str] = mapped_column(String(8), index=True)
    source_version: Mapped[int] = mapped_column(Integer)
    app_id: Mapped[str | None] = mapped_column(String(8), default=None, index=True)
    revision: Mapped[int | None] = mapped_column(Integer, default=None)
    statement: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as signed
    statement_digest: Mapped[str] = mapped_column(String(64))
    keyid: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    account: Mapped[str] = mapped_column(String(100), default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class TrustLogEntry(Base):
    """The append-only, hash-chained log of publishes, approvals, deployments and key changes
    (site/identity/trust_log.py). Times and details are stored as the text that was hashed."""

    __tablename__ = "trust_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class Peer(Base):
    """A client that serves its verified cache to its boundary (site/distribution/peers.py):
    its address as the site saw it, the boundary it belongs to, whether it may serve now."""

    __tablename__ = "peers"
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(100))
    boundary: Mapped[str] = mapped_column(String(50), index=True)
    serving: Mapped[bool] = mapped_column(Boolean, default=False)
    # set when another client found bad bytes on it; cleared once it re-validated its cache
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    reported: Mapped[datetime] = mapped_column(default=utcnow)


class PeerHolding(Base):
    """A package version whose every blob a peer holds, verified (as it last reported)."""

    __tablename__ = "peer_holdings"
    client_id: Mapped[str] = mapped_column(ForeignKey("peers.client_id"), primary_key=True)
    package_hash: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PeerFetchLease(Base):
    """The one client of a boundary elected to fetch a version from a DP while the others
    wait for it to hold it; a lease that runs out elects the next client that asks."""

    __tablename__ = "peer_fetch_leases"
    boundary: Mapped[str] = mapped_column(String(50), primary_key=True)
    package_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36))
    expires: Mapped[datetime] = mapped_column()
