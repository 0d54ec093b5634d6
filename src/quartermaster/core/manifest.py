"""The manifest of a package version: pure data, canonical bytes, package hash, path rules.

The manifest lists every file (path, size, mode, sha256). Its canonical JSON is what the
site signs and what the package hash is computed over, so a version is immutable by name.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex, sha256_bytes

MANIFEST_FORMAT = 1
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_WINDOWS_BAD_CHARS = set('<>:"|?*\\') | {chr(c) for c in range(32)}


def check_relpath(path: str) -> str:
    """Refuse a manifest path that could escape a folder or not exist on a Windows client."""
    problem = relpath_problem(path)
    if problem:
        raise InvalidInput(
            f"file path {path!r} {problem}",
            "rename the file so that its path is relative, uses '/' and is valid on Windows",
        )
    return path


def relpath_problem(path: str) -> str:
    if not path:
        return "is empty"
    if "\x00" in path:
        return "contains a NUL character"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "is absolute"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "contains an empty, '.' or '..' component"
        if set(part) & _WINDOWS_BAD_CHARS:
            return "contains a character that is invalid on Windows"
        if part.endswith((" ", ".")):
            return "has a component ending in a space or dot, invalid on Windows"
        if part.split(".")[0].upper() in _WINDOWS_RESERVED:
            return "uses a name reserved on Windows"
    if len(path.encode("utf-8")) > 1024:
        return "is longer than 1024 bytes"
    return ""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mode: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mode": self.mode, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any) -> FileEntry:
        if not isinstance(data, dict):
            raise InvalidInput("manifest file entry is not an object")
        path, size, mode, digest = (data.get(k) for k in ("path", "size", "mode", "sha256"))
        if not isinstance(path, str):
            raise InvalidInput("manifest file entry has no path")
        check_relpath(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"manifest entry {path!r} has an invalid size")
        if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
            raise InvalidInput(f"manifest entry {path!r} has an invalid mode")
        if not isinstance(digest, str) or not is_sha256_hex(digest):
            raise InvalidInput(f"manifest entry {path!r} has an invalid sha256")
        return cls(path=path, size=size, mode=stat.S_IMODE(mode), sha256=digest)


@dataclass(frozen=True)
class Manifest:
    site_code: str
    package_id: str
    source_version: int
    files: tuple[FileEntry, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for entry in self.files:
            folded = entry.path.casefold()
            if folded in seen:
                raise InvalidInput(
                    f"manifest paths {seen[folded]!r} and {entry.path!r} collide",
                    "two files may not differ only by letter case (Windows and macOS clients)",
                )
            seen[folded] = entry.path
        dirs = {p.rsplit("/", 1)[0].casefold() for p in seen.values() if "/" in p}
        for folded, original in seen.items():
            if folded in dirs:
                raise InvalidInput(f"manifest path {original!r} is both a file and a folder")

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def blobs(self) -> dict[str, int]:
        """Distinct blobs (sha256 -> size); one download per distinct content."""
        return {e.sha256: e.size for e in self.files}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "site_code": self.site_code,
            "package_id": self.package_id,
            "source_version": self.source_version,
            "files": [e.to_dict() for e in sorted(self.files, key=lambda e: e.path)],
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def package_hash(self) -> str:
        return sha256_bytes(self.canonical_bytes())

    def same_content(self, other: Manifest) -> bool:
        return {e.path: e for e in self.files} == {e.path: e for e in other.files}

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise InvalidInput("not a Quartermaster manifest of a known format")
        files = data.get("files")
        if not isinstance(files, list):
            raise InvalidInput("manifest has no file list")
        version = data.get("source_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInput("manifest has an invalid source_version")
        site_code, package_id = data.get("site_code"), data.get("package_id")
        if not isinstance(site_code, str) or not isinstance(package_id, str):
            raise InvalidInput("manifest has no site_code or package_id")
        entries = tuple(FileEntry.from_dict(f) for f in files)
        if len({e.path for e in entries}) != len(entries):
            raise InvalidInput("manifest lists the same path twice")
        return cls(site_code, package_id, version, entries)
