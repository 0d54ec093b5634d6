"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.nginx_server import Nginx
from tests.e2e.processes import free_port


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    """A stock nginx, started by the test over a store; without nginx installed the test
    fails at once, in one line naming the Debian package."""
    server = Nginx(tmp_path / "nginx", free_port())
    try:
        yield server
    finally:
        server.stop()
