"""Fixtures for DP tests: real content servers on 127.0.0.1 ephemeral ports, a site key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quartermaster.core.signing import SigningKey
from quartermaster.dp.content_server import StoreMount
from tests.dp.dp_fixtures import ContentServer, Serve


@pytest.fixture
def serve() -> Iterator[Serve]:
    """serve(root or StoreMount, ...) starts a content server; all stop after the test."""
    servers: list[ContentServer] = []

    def start(*mounts: StoreMount | Path) -> ContentServer:
        resolved = [m if isinstance(m, StoreMount) else StoreMount("", m) for m in mounts]
        server = ContentServer(resolved).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def site_key() -> SigningKey:
    return SigningKey.generate()
