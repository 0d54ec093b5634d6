"""Site homes made as `qm site init` makes them, without running every migration each time.

Migrating an empty SQLite database takes most of `init_site`'s time (about 0.4 s of 0.45 s);
the migrated file is the same for every test. So this process migrates one database once,
and each new site home starts from a copy of it: `init_site` then finds the schema at the
newest migration and does the rest for real (its own signing key, accounts, tokens, the
embedded DP). Tests of migrations themselves start from empty databases, not from here.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_template: Path | None = None
_guard = threading.Lock()


def _migrated_sqlite() -> Path:
    """The migrated SQLite file of this process, made on first use."""
    global _template
    with _guard:
        if _template is None:
            from quartermaster.site import db

            folder = Path(tempfile.mkdtemp(prefix="qm-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            db.upgrade(db.sqlite_url(folder / "site.db"))
            _template = folder / "site.db"
    return _template


def with_migrated_sqlite(root: Path) -> Path:
    """`root` (a site home still to be made) holding a migrated, empty site.db; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_sqlite(), root / "site.db")
    return root


def migrated_site_home(
    root: Path,
    database: str | None = None,
    site_code: str = "QM1",
    listen: str = "127.0.0.1:8440",
    name: str = "Quartermaster site",
    admin_password: str | None = None,
) -> Path:
    """What `qm site init --home ROOT [--database URL] --listen ...` makes. A PostgreSQL
    database from `fresh_postgres_database(migrated=True)` is already at the newest
    migration; any other is migrated here as `qm site init` would."""
    from quartermaster.site.setup import init_site

    if database is None:
        with_migrated_sqlite(root)
    init_site(root, site_code, name, database, listen, admin_password)
    return root
