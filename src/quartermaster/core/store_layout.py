"""The plain folder layout shared by the content library, every DP store and the client cache.

A store is static, content-addressed files, so any web server or object store can serve it:

    content/sha256/<first 2 hex>/<64 hex>     one blob per distinct content
    manifests/<package hash>.json             the signed manifest of one package version
"""

from __future__ import annotations

from pathlib import Path

from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex


def _check(sha256: str) -> str:
    if not is_sha256_hex(sha256):
        raise InvalidInput(f"not a SHA-256 hex digest: {sha256!r}", "use 64 lower-case hex digits")
    return sha256


CONTENT_FOLDER = "content/sha256"  # blobs, in folders named by their first 2 hex


def blob_relpath(sha256: str) -> str:
    _check(sha256)
    return f"{CONTENT_FOLDER}/{sha256[:2]}/{sha256}"


def manifest_relpath(package_hash: str) -> str:
    _check(package_hash)
    return f"manifests/{package_hash}.json"


def blob_path(root: Path, sha256: str) -> Path:
    return root / blob_relpath(sha256)


def manifest_path(root: Path, package_hash: str) -> Path:
    return root / manifest_relpath(package_hash)


def blob_url(base_url: str, sha256: str) -> str:
    return f"{base_url.rstrip('/')}/{blob_relpath(sha256)}"


def manifest_url(base_url: str, package_hash: str) -> str:
    return f"{base_url.rstrip('/')}/{manifest_relpath(package_hash)}"
