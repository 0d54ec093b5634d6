"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import SiteServer, start_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    """A real `qm site serve` on 127.0.0.1 with its embedded DP, on the embedded database."""
    server = start_site(tmp_path)
    try:
        yield server
    finally:
        server.stop()
