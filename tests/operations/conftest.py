"""Fixtures of the operations tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.setup import init_site
from tests.e2e.site_templates import with_migrated_sqlite
from tests.security.conftest import SiteApi


@pytest.fixture
def site_api(tmp_path: Path) -> Iterator[SiteApi]:
    """An in-process site (its job runner starts at the first job) with an admin, an
    operator and a viewer."""
    root = tmp_path / "site"
    home = init_site(with_migrated_sqlite(root), "QM1", "job tests")
    ctx = SiteContext.open(root)
    http = TestClient(create_app(ctx), client=("127.0.0.1", 50000))
    api = SiteApi(root, ctx, http, {"admin": home.admin_token_path.read_text().strip()})
    for role in ("operator", "viewer"):
        api.tokens[role] = api.add_account(role, role)
    try:
        yield api
    finally:
        ctx.close()
