"""Alembic gives SQLite and PostgreSQL the same schema, and the models need no new migration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from quartermaster.site import db
from quartermaster.site.models import Base
from tests.conftest import ENGINES, fresh_postgres_database


@pytest.fixture(params=ENGINES)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database that `qm site upgrade` brought to the newest migration."""
    if request.param == "sqlite":
        url = db.sqlite_url(tmp_path / "site.db")
        db.upgrade(url)
        engine = db.make_engine(url)
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database() as url:
        db.upgrade(url)
        engine = db.make_engine(url)
        yield engine
        engine.dispose()


def test_models_need_no_new_migration(migrated: Engine) -> None:
    """What `alembic check` does: autogenerate against the migrated database finds nothing."""
    with migrated.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == [], f"the models differ from the migrations: {diffs}"


# Differences made on purpose: a BIGINT key is INTEGER on SQLite, where only INTEGER PRIMARY
# KEY is the auto-incrementing rowid (models.StatusMessageRow.id, `with_variant`).
SQLITE_VARIANTS = {
    ("status_messages", "id"): "BigInteger",
    ("program_outputs", "id"): "BigInteger",
}


def _schema(engine: Engine) -> dict[str, Any]:
    """The engine-neutral shape of a schema: columns, keys, indexes, constraints."""
    inspector = inspect(engine)
    variants = SQLITE_VARIANTS if engine.dialect.name == "sqlite" else {}
    shape: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        columns = {
            c["name"]: (
                c["nullable"],
                variants.get((table, c["name"]), type(c["type"].as_generic()).__name__),
            )
            for c in inspector.get_columns(table)
        }
        shape[table] = {
            "columns": columns,
            "primary_key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return shape


@pytest.mark.postgresql
def test_sqlite_and_postgresql_get_the_same_schema(tmp_path: Path) -> None:
    sqlite_url = db.sqlite_url(tmp_path / "site.db")
    db.upgrade(sqlite_url)
    sqlite_engine = db.make_engine(sqlite_url)
    with fresh_postgres_database() as url:
        db.upgrade(url)
        postgres_engine = db.make_engine(url)
        try:
            assert _schema(sqlite_engine) == _schema(postgres_engine)
        finally:
            postgres_engine.dispose()
            sqlite_engine.dispose()
