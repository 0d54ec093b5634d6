"""SHA-256 over files and streams with one reused buffer (no per-chunk allocation)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

CHUNK = 4 * 1024 * 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def is_sha256_hex(value: str) -> bool:
    return bool(_SHA256_HEX.match(value))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def token_hash(token: str) -> str:
    """How the site stores high-entropy secrets (API tokens, client and DP credentials)."""
    return sha256_bytes(token.encode())


def sha256_file(path: Path, buffer: bytearray | None = None) -> tuple[str, int]:
    """Hash a file; returns (hex digest, size). Pass a buffer to reuse it across files."""
    buf = buffer if buffer is not None else bytearray(CHUNK)
    view = memoryview(buf)
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(view)  # type: ignore[attr-defined]
            if not n:
                break
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size
