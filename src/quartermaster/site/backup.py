"""`qm site backup` and `qm site restore`: a site's database, keys and content in one folder.

A backup folder holds any number of complete backups that share one blob store:

    blobs/content/sha256/<2>/<64>   every blob a backup here needs, copied once (incremental)
    backups/<UTC time>/             one complete backup:
        backup.json                 what it holds: site, engine, versions, every blob and size
        database.sqlite | database.pgdump
        home/                       config.json, keys/, admin.token, dp/dp.json (no store)
    latest                          the name of the newest complete backup

Consistency: the database is copied first, as one snapshot (SQLite's online backup API, or
`pg_dump` inside an exported REPEATABLE READ snapshot); the blobs copied are those the
versions *in that copy* use, read from the copy (SQLite) or the same snapshot (PostgreSQL).
A snapshot stores its blobs before it commits its version, so every version in the copy has
its blobs in the library; a version pruned after the copy keeps its blobs for the garbage
collector's grace period (docs/operations.md), long enough to copy them.

Nothing half-done is ever taken for a backup: each backup is written under
`backups/.partial-<time>/`, every file fsynced, then renamed to its name, and only then
does `latest` name it. Blobs are written to a temp file, hashed while copied, fsynced and
renamed. Everything is 0600 in 0700 folders: the backup holds the site's private keys.

A library in an S3 bucket (`qm site init --library s3://…`) is not copied: the backup
records its URL (config.json and backup.json; never a credential) and the blob manifest
(every blob and size the versions use). A restore points the new home at the same bucket and
checks, with the credentials in its environment, that every listed blob is there (by name
and size; the bucket's own durability and versioning are the copy). Back the bucket up with
the object store's tools (versioning, replication) if it must survive its own loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

from quartermaster.core.durable_files import fsync_path, write_atomic
from quartermaster.core.errors import Conflict, HashMismatch, IntegrityError, InvalidInput, NotFound
from quartermaster.core.hashing import CHUNK, is_sha256_hex
from quartermaster.core.manifest import Manifest
from quartermaster.core.store_layout import blob_relpath
from quartermaster.site import db
from quartermaster.site.home import SiteHome, lock_down

FORMAT = 1
SQLITE_FILE = "database.sqlite"
PGDUMP_FILE = "database.pgdump"
PARTIAL = ".partial-"
HOME_FILES = ("config.json", "admin.token", "source-roots", "dp/dp.json", "dp/site-ca.pem")
VERSIONS_QUERY = "SELECT package_id, source_version, package_hash, manifest FROM package_versions"


@dataclass
class BackupResult:
    path: Path
    versions: int
    blobs: int
    blobs_copied: int = 0
    bytes_copied: int = 0
    library_url: str = ""  # a bucket: recorded, not copied

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "versions": self.versions,
            "blobs": self.blobs,
            "blobs_copied": self.blobs_copied,
            "bytes_copied": self.bytes_copied,
            "library_url": self.library_url,
        }


@dataclass
class RestoreResult:
    home: Path
    site_code: str
    backup: str
    versions: int
    blobs_verified: int
    database_url: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "site_code": self.site_code,
            "backup": self.backup,
            "versions": self.versions,
            "blobs_verified": self.blobs_verified,
            "database_url": self.database_url,
        }


# --- backup ---------------------------------------------------------------------------------


def backup_site(home_root: Path, target: Path) -> BackupResult:
    """Make one complete backup of the site in `home_root` under `target`."""
    home = SiteHome(home_root)
    config = home.load_config()
    _private_folder(target)
    os.chmod(target, 0o700)  # also when it existed: it will hold private keys
    _private_folder(target / "backups")
    for stale in (target / "backups").glob(PARTIAL + "*"):  # a backup that was interrupted
        shutil.rmtree(stale, ignore_errors=True)
    name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    partial = target / "backups" / f"{PARTIAL}{name}"
    _private_folder(partial)
    try:
        url = db.normalize_url(config.database_url)
        if url.startswith("sqlite"):
            engine, rows = "sqlite", _backup_sqlite(home.database_path, partial / SQLITE_FILE)
        else:
            engine, rows = "postgresql", _backup_postgres(url, partial / PGDUMP_FILE)
        versions, blobs = _versions_and_blobs(rows)
        _copy_home_files(home, partial / "home")
        result = BackupResult(target / "backups" / name, len(versions), len(blobs))
        if config.library_url:
            result.library_url = config.library_url
            _check_bucket_blobs(config.library_url, blobs, "back up")
        else:
            _copy_blobs(home.library, target / "blobs", blobs, result)
        description = {
            "format": FORMAT,
            "site_code": config.site_code,
            "created": datetime.now(UTC).isoformat(),
            "engine": engine,
            "versions": versions,
            "blobs": blobs,
            "library": config.library_url,
        }
        _write_private(partial / "backup.json", json.dumps(description, indent=1).encode())
        fsync_path(partial)
        os.replace(partial, result.path)
        fsync_path(target / "backups")
        _write_private(target / "latest", name.encode() + b"\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result


def _backup_sqlite(source: Path, dest: Path) -> list[tuple[Any, ...]]:
    """SQLite's online backup API: a consistent copy while the site keeps writing."""
    if not source.is_file():
        raise NotFound(f"the site database {source} does not exist", "check --home")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(dest)) as copy,
    ):
        src.backup(copy)
        rows = copy.execute(VERSIONS_QUERY).fetchall()
    fsync_path(dest)
    return rows


def libpq_url(url: str) -> str:
    """The URL as libpq (pg_dump, pg_restore, psycopg) spells it."""
    return "postgresql://" + url.split("://", 1)[1]


def _backup_postgres(url: str, dest: Path) -> list[tuple[Any, ...]]:
    """`pg_dump` of one exported snapshot, and the versions as that snapshot sees them."""
    import psycopg

    plain = libpq_url(url)
    pg_dump = _pg_program("pg_dump")
    with psycopg.connect(plain) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        if row is None:
            raise IntegrityError("PostgreSQL exported no snapshot for pg_dump")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        done = subprocess.run(
            [pg_dump, "--format=custom", f"--snapshot={row[0]}", f"--file={dest}", plain],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise IntegrityError(
                f"pg_dump failed: {done.stderr.strip()}",
                "check that pg_dump's major version is the server's or newer",
            )
        rows = [tuple(r) for r in conn.execute(VERSIONS_QUERY).fetchall()]
        conn.rollback()
    fsync_path(dest)
    return rows


def _pg_program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise NotFound(
            f"{name} is not installed", "install the PostgreSQL client programs (postgresql-client)"
        )
    return found


def _versions_and_blobs(
    rows: list[tuple[Any, ...]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    versions: list[dict[str, Any]] = []
    blobs: dict[str, int] = {}
    for package_id, source_version, package_hash, manifest in sorted(rows):
        versions.append(
            {
                "package_id": package_id,
                "source_version": source_version,
                "package_hash": package_hash,
            }
        )
        blobs.update(Manifest.from_dict(json.loads(manifest)["signed"]).blobs())
    return versions, dict(sorted(blobs.items()))


def _copy_home_files(home: SiteHome, dest: Path) -> None:
    _private_folder(dest)
    for relpath in HOME_FILES:
        source = home.root / relpath
        if source.is_file():
            _private_folder((dest / relpath).parent)
            _write_private(dest / relpath, source.read_bytes())
    for source in sorted(home.keys.rglob("*")):
        target = dest / "keys" / source.relative_to(home.keys)
        if source.is_dir():
            _private_folder(target)
        elif source.is_file() and not source.name.startswith(".tmp-"):
            _private_folder(target.parent)
            _write_private(target, source.read_bytes())


def _copy_blobs(library: Path, store: Path, blobs: dict[str, int], result: BackupResult) -> None:
    """Copy each blob the backup store lacks, hashing while copying (a bad library blob is
    refused, never backed up as good)."""
    _private_folder(store)
    for sha256, size in blobs.items():
        dest = store / blob_relpath(sha256)
        if dest.is_file() and dest.stat().st_size == size:
            continue
        source = library / blob_relpath(sha256)
        if not source.is_file():
            raise NotFound(
                f"blob {sha256} of a backed-up version is missing from the content library",
                "a prune may have removed it after its grace period; run the backup again",
            )
        _private_folder(dest.parent)
        result.bytes_copied += copy_verified(source, dest, sha256, size)
        result.blobs_copied += 1


def copy_verified(source: Path, dest: Path, sha256: str, size: int, mode: int = 0o600) -> int:
    """Copy `source` to `dest` (temp, fsync, rename) only if its bytes hash to `sha256`."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    tmp = Path(name)
    digest, copied = hashlib.sha256(), 0
    try:
        with open(source, "rb") as reader, os.fdopen(fd, "wb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                copied += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        if digest.hexdigest() != sha256 or copied != size:
            raise HashMismatch(str(source), sha256, digest.hexdigest())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
        fsync_path(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return copied


def _private_folder(path: Path) -> None:
    """`path` and any parent it needs made 0700 (`mkdir -p` would make the parents 0755)."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        _private_folder(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, mode=0o600)


# --- restore --------------------------------------------------------------------------------


def find_backup(source: Path) -> tuple[Path, Path]:
    """(the backup's folder, the blob store): `source` is a backup folder (its `latest`
    backup) or one backup inside it."""
    if (source / "backup.json").is_file():
        return source, source.parent.parent / "blobs"
    latest = source / "latest"
    if not latest.is_file():
        raise NotFound(
            f"{source} holds no complete backup",
            "give the folder `qm site backup --to` wrote, or one backup in its backups/",
        )
    name = latest.read_text().strip()
    folder = source / "backups" / name
    if name.startswith(".") or "/" in name or not (folder / "backup.json").is_file():
        raise IntegrityError(f"{latest} names {name!r}, which is not a complete backup")
    return folder, source / "blobs"


def restore_site(source: Path, home_root: Path, database_url: str | None = None) -> RestoreResult:
    """Bring a site back from a backup into a new, empty home (and, for PostgreSQL, a new,
    empty database). Every blob is re-hashed before anything is written."""
    folder, store = find_backup(source)
    description = _read_description(folder)
    home = SiteHome(home_root)
    if home.root.exists() and any(home.root.iterdir()):
        raise Conflict(
            f"{home.root} is not empty", "restore into a new folder; nothing was changed"
        )
    engine = description["engine"]
    saved = json.loads((folder / "home" / "config.json").read_text())
    if engine == "postgresql" and not database_url:
        raise InvalidInput(
            "this backup is of a PostgreSQL site",
            "pass --database postgresql://USER@HOST:PORT/NEWDB naming a new, empty database",
        )
    if engine == "sqlite" and database_url:
        raise InvalidInput(
            "this backup is of a SQLite site; it is restored into the home's site.db",
            "leave out --database",
        )
    if database_url:
        _check_empty_postgres(db.normalize_url(database_url))
    created = not home.root.exists()
    result = RestoreResult(
        home.root, description["site_code"], folder.name, len(description["versions"]), 0
    )
    try:
        home.root.mkdir(parents=True, exist_ok=True)
        if description.get("library"):
            result.blobs_verified = _check_bucket_blobs(
                description["library"], description["blobs"], "restore"
            )
        else:
            result.blobs_verified = _restore_blobs(store, home.library, description["blobs"])
        _restore_home_files(folder / "home", home)
        for name in ("logs", "dp"):
            (home.root / name).mkdir(exist_ok=True)
        if engine == "sqlite":
            _restore_sqlite(folder / SQLITE_FILE, home.database_path)
            url = db.sqlite_url(home.database_path)
        else:
            url = database_url or ""  # checked above: a PostgreSQL backup needs --database
            _restore_postgres(folder / PGDUMP_FILE, db.normalize_url(url))
        db.upgrade(url)  # a backup of an older release is brought up to date
        _after_restore(url, home, description.get("library") or "")
        saved["database_url"] = url
        result.database_url = url
        lock_down(home)  # the site's user's alone, as `qm site init` leaves it
        # last: a home with config.json is a complete site
        write_atomic(home.config_path, json.dumps(saved, indent=2).encode() + b"\n", mode=0o600)
    except BaseException:
        if created:
            shutil.rmtree(home.root, ignore_errors=True)
        else:
            for child in home.root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return result


def _read_description(folder: Path) -> dict[str, Any]:
    try:
        description: dict[str, Any] = json.loads((folder / "backup.json").read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{folder}/backup.json cannot be read: {exc}") from None
    if description.get("format") != FORMAT or description.get("engine") not in (
        "sqlite",
        "postgresql",
    ):
        raise IntegrityError(
            f"{folder} is not a backup this release can restore",
            "restore it with the release that made it",
        )
    return description


def _restore_blobs(store: Path, library: Path, blobs: dict[str, int]) -> int:
    """Copy every blob into the new library, re-hashed: a damaged backup is refused."""
    for sha256, size in blobs.items():
        if not is_sha256_hex(sha256):
            raise IntegrityError(f"the backup lists {sha256!r}, which is not a SHA-256")
        source = store / blob_relpath(sha256)
        if not source.is_file():
            raise IntegrityError(
                f"blob {sha256} is missing from the backup's blob store {store}",
                "restore from another backup; this one is incomplete",
            )
        dest = library / blob_relpath(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_verified(source, dest, sha256, size, mode=0o644)
        except HashMismatch:
            raise IntegrityError(
                f"blob {sha256} in the backup does not match its hash (damaged)",
                "restore from another backup; nothing was restored",
            ) from None
    (library / "tmp").mkdir(parents=True, exist_ok=True)
    return len(blobs)


def _restore_home_files(saved: Path, home: SiteHome) -> None:
    for source in sorted(saved.rglob("*")):
        relpath = source.relative_to(saved)
        if source.is_dir() or relpath.as_posix() == "config.json":
            continue
        target = home.root / relpath
        for parent in reversed(target.relative_to(home.root).parents[:-1]):
            folder = home.root / parent
            folder.mkdir(mode=0o700, exist_ok=True)
        write_atomic(target, source.read_bytes(), mode=0o600)
    home.keys.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home.keys, 0o700)


def _restore_sqlite(source: Path, dest: Path) -> None:
    with contextlib.closing(sqlite3.connect(source)) as src:
        check = src.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise IntegrityError(f"the backed-up database {source} is damaged: {check}")
        with contextlib.closing(sqlite3.connect(dest)) as copy:
            src.backup(copy)
    fsync_path(dest)


def _check_empty_postgres(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise NotFound(
            f"cannot connect to the database: {' '.join(str(exc).split())}",
            "create it first (createdb NEWDB) and check the URL",
        ) from None
    if row is None or row[0]:
        raise Conflict(
            "the database given with --database is not empty",
            "restore into a new, empty database; nothing was changed",
        )


def _restore_postgres(dump: Path, url: str) -> None:
    done = subprocess.run(
        [
            _pg_program("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={libpq_url(url)}",
            str(dump),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise IntegrityError(f"pg_restore failed: {done.stderr.strip()}")


def _check_bucket_blobs(library_url: str, blobs: dict[str, int], doing: str) -> int:
    """Every blob in the bucket with its size (listed, not re-read): a bucket cannot be
    copied, so a backup and a restore of a bucket library check it is complete instead."""
    from quartermaster.site.library_bucket import BucketStorage, S3Location

    storage = BucketStorage(S3Location.parse(library_url))
    storage.refresh()
    missing = [sha for sha, size in blobs.items() if storage.sizes().get(sha) != size]
    if missing:
        raise IntegrityError(
            f"cannot {doing}: {len(missing)} blobs of the site's versions are missing from "
            f"the content library's bucket {library_url}, e.g. {missing[0]}",
            "restore the bucket's objects (versioning, replication) first; nothing was changed",
        )
    return len(blobs)


def _after_restore(url: str, home: SiteHome, library_url: str = "") -> None:
    """The library gets each signed manifest beside its blobs again (content_library.py);
    the embedded DP's store was not backed up, so it holds nothing yet: it pulls every
    version from the library on its first cycle, and clients are sent to it only after."""
    from quartermaster.site.library_bucket import open_library
    from quartermaster.site.models import DistributionPoint, DPContent

    library = open_library(home.library, library_url)
    database = db.Database(url)
    try:
        with database.session() as session:
            for _, _, package_hash, manifest in session.execute(text(VERSIONS_QUERY)):
                library.write_manifest(package_hash, json.loads(manifest))
            embedded = select(DistributionPoint.id).where(DistributionPoint.embedded.is_(True))
            session.execute(
                update(DPContent)
                .where(DPContent.dp_id.in_(embedded))
                .values(state="pending", bytes_done=0, reason="")
            )
    finally:
        database.dispose()
