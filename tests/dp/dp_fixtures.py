"""Helpers for DP tests: a real content server in a thread, raw requests, signed packages."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from quartermaster.core.manifest import FileEntry, Manifest
from quartermaster.core.signing import SigningKey
from quartermaster.core.store_layout import blob_path, manifest_path
from quartermaster.dp.content_server import (
    StoreMount,
    bound_port,
    create_content_app,
    start_content_server,
)
from quartermaster.dp.home import DPHome, DPIdentity


@dataclass
class Hit:
    method: str
    path: str
    range: str
    status: int


@dataclass
class ContentServer:
    """The DP content server in a thread of its own, recording every request it answered."""

    mounts: list[StoreMount]
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    ssl_context: ssl.SSLContext | None = None  # serve https with it

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def blob_hits(self, sha256: str) -> list[Hit]:
        return [h for h in self.hits if h.path.endswith(sha256) and h.method == "GET"]

    def start(self) -> ContentServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        app = create_content_app(self.mounts)

        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.hits.append(
                Hit(request.method, request.path, request.headers.get("Range", ""), response.status)
            )

        app.on_response_prepare.append(record)
        runner = await start_content_server(app, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self.port = bound_port(runner)
        self._stopping = asyncio.Event()
        self._started.set()
        await self._stopping.wait()
        await runner.cleanup()


def request(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request: the path goes out exactly as given (no client-side clean-up)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


def put_raw_blob(root: Path, data: bytes, name: str | None = None) -> str:
    """Place bytes in a store under a name (their hash unless given): a library or a bad DP."""
    sha256 = name or hashlib.sha256(data).hexdigest()
    path = blob_path(root, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256


@dataclass
class Package:
    manifest: Manifest
    envelope: bytes

    @property
    def package_hash(self) -> str:
        return self.manifest.package_hash()


def make_package(
    key: SigningKey, files: dict[str, bytes], version: int = 1, library: Path | None = None
) -> Package:
    """A signed package version; with `library`, its blobs and manifest are put there too."""
    entries = tuple(
        FileEntry(path, len(data), 0o644, hashlib.sha256(data).hexdigest())
        for path, data in files.items()
    )
    manifest = Manifest("QM1", "QM100001", version, entries)
    envelope = json.dumps(key.envelope(manifest.to_dict())).encode()
    if library is not None:
        for data in files.values():
            put_raw_blob(library, data)
        path = manifest_path(library, manifest.package_hash())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(envelope)
    return Package(manifest, envelope)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def enrolled_home(root: Path, site_url: str) -> DPHome:
    home = DPHome(root)
    key = SigningKey.generate()
    home.save_identity(
        DPIdentity(
            site_url, "dp2", "qmd_secret", "QM1", (key.public.to_dict(),), "http://127.0.0.1:9000"
        )
    )
    return home


def wait_for_log(home: DPHome, text: str, count: int = 1) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = (
            (home.root / "distmgr.log").read_text() if (home.root / "distmgr.log").exists() else ""
        )
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear {count} times in distmgr.log")


Serve = Callable[..., ContentServer]
