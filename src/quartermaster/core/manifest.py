"""The manifest of a package version: pure data, canonical bytes, package hash, path rules.

The manifest lists every file (path, size, mode, sha256). Its canonical JSON is what the
site signs and what the package hash is computed over, so a version is immutable by name.
"""

from __future__ import annotations

import stat
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex, sha256_bytes

MANIFEST_FORMAT = 1  # platform "any" and no links: the bytes every older manifest has
LINKS_FORMAT = 2  # adds "platform" and "links"; written only when a package needs them
PLATFORMS = ("any", "windows", "linux", "macos")
DEFAULT_PLATFORM = "any"  # may reach any client, so Windows file-name rules apply
LINK_PLATFORMS = frozenset({"linux", "macos"})  # clients that lay symbolic links out
_WINDOWS_RULES = frozenset({"any", "windows"})
_CASE_INSENSITIVE = frozenset({"any", "windows", "macos"})
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_WINDOWS_BAD_CHARS = set('<>:"|?*\\') | {chr(c) for c in range(32)}
# Direction controls make a listing lie about a name (`invoice\u202etxt.exe` shows as
# `invoiceexe.txt`); no file of a package needs one.
_DIRECTION_CONTROLS = set("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e") | set(
    "\u2066\u2067\u2068\u2069"
)


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise InvalidInput(
            f"platform {platform!r} is not one of {', '.join(PLATFORMS)}",
            "give --platform any (every client), windows, linux or macos",
        )
    return platform


def check_relpath(path: str, platform: str = DEFAULT_PLATFORM) -> str:
    """Refuse a manifest path that could escape a folder or not exist on the platform's
    clients."""
    problem = relpath_problem(path, platform)
    if problem:
        raise InvalidInput(
            f"file path {path!r} {problem}",
            "rename the file so that its path is relative, uses '/' and is valid on "
            + ("Windows" if platform in _WINDOWS_RULES else platform),
        )
    return path


def relpath_problem(path: str, platform: str = DEFAULT_PLATFORM) -> str:
    """The first rule `path` breaks on `platform`'s clients, or ""."""
    problems = relpath_problems(path, platform)
    return problems[0] if problems else ""


def relpath_problems(path: str, platform: str = DEFAULT_PLATFORM) -> list[str]:
    """Every rule `path` breaks on `platform`'s clients, each in its own words."""
    if not path:
        return ["is empty"]
    if "\x00" in path:
        return ["contains a NUL character"]
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a file name's bytes that are not UTF-8 (surrogateescape)
        return ["is not valid UTF-8"]
    if set(path) & _DIRECTION_CONTROLS:
        return ["contains a right-to-left or other text direction control character"]
    if path.startswith("/"):
        return ["is absolute (starts with '/')"]
    problems: list[str] = []
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        problems.append("contains an empty, '.' or '..' component")
    if platform in _WINDOWS_RULES:
        if len(path) > 2 and path[0].isascii() and path[0].isalpha() and path[1:3] == ":/":
            problems.append(f"is absolute on Windows (drive {path[:2]})")
        bad = sorted({c for part in parts for c in part if c in _WINDOWS_BAD_CHARS})
        if bad:
            shown = " ".join(repr(c) for c in bad)
            problems.append(f"contains {shown}, a character invalid on Windows")
        if any(part.endswith((" ", ".")) and part not in (".", "..") for part in parts):
            problems.append("has a component ending in a space or dot, invalid on Windows")
        reserved = [p for p in parts if p.split(".")[0].upper() in _WINDOWS_RESERVED]
        if reserved:
            problems.append(f"uses the name {reserved[0]!r}, reserved on Windows")
    if len(path.encode("utf-8")) > 1024:
        problems.append("is longer than 1024 bytes")
    return problems


def collision_key(path: str, platform: str) -> str:
    """Two paths with the same key cannot both exist on the platform's clients (letter case
    on Windows and macOS, and Unicode normalization on macOS); on Linux every path is its own."""
    if platform not in _CASE_INSENSITIVE:
        return path
    return unicodedata.normalize("NFC", path).casefold()


def link_problem(path: str, target: str, platform: str, names: frozenset[str]) -> str:
    """Why the link `path` -> `target` may not be in a package of `platform` whose files
    and links are `names`, or "". A link kept must be relative and resolve, by its words
    alone, to a file, folder or link of the package without passing through another link:
    then the client's file system resolves it to the same place, inside the package."""
    if platform not in LINK_PLATFORMS:
        return (
            f"is a symbolic link: a package for platform {platform!r} cannot hold links "
            "(Windows clients)"
        )
    if not target or "\x00" in target:
        return "is a symbolic link with an empty target"
    if target.startswith("/"):
        return f"is a symbolic link to the absolute path {target!r}: links must be relative"
    resolved = path.split("/")[:-1]
    parts = target.split("/")
    climbing = True
    for part in parts:
        if part in ("", "."):
            return f"is a symbolic link to {target!r}, with an empty or '.' component"
        if part == "..":
            if not climbing:
                return f"is a symbolic link to {target!r}, with '..' after a name"
            if not resolved:
                return f"is a symbolic link to {target!r}, outside the package"
            resolved.pop()
        else:
            climbing = False
            resolved.append(part)
    if not resolved:
        return f"is a symbolic link to {target!r}, the package's top folder"
    inside = "/".join(resolved)
    folders = {n.rsplit("/", 1)[0] for n in names if "/" in n}
    folders |= {f.rsplit("/", i)[0] for f in folders for i in range(1, f.count("/") + 1)}
    for i in range(1, len(resolved)):
        step = "/".join(resolved[:i])
        if step in names:
            return f"is a symbolic link to {target!r}, through the link or file {step!r}"
    if inside not in names and inside not in folders:
        return f"is a symbolic link to {target!r}, which is not in the package"
    return ""


@dataclass(frozen=True)
class LinkEntry:
    """A relative symbolic link that stays inside the package (linux and macos packages)."""

    path: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target}

    @classmethod
    def from_dict(cls, data: Any, platform: str) -> LinkEntry:
        if not isinstance(data, dict) or set(data) != {"path", "target"}:
            raise InvalidInput("manifest link entry is not an object with path and target")
        path, target = data["path"], data["target"]
        if not isinstance(path, str) or not isinstance(target, str):
            raise InvalidInput("manifest link entry has no path or target")
        check_relpath(path, platform)
        return cls(path, target)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mode: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mode": self.mode, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any, platform: str = DEFAULT_PLATFORM) -> FileEntry:
        if not isinstance(data, dict):
            raise InvalidInput("manifest file entry is not an object")
        path, size, mode, digest = (data.get(k) for k in ("path", "size", "mode", "sha256"))
        if not isinstance(path, str):
            raise InvalidInput("manifest file entry has no path")
        check_relpath(path, platform)
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
    platform: str = DEFAULT_PLATFORM
    links: tuple[LinkEntry, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_platform(self.platform)
        seen: dict[str, str] = {}
        for path in [e.path for e in self.files] + [link.path for link in self.links]:
            key = collision_key(path, self.platform)
            if key in seen:
                raise InvalidInput(
                    f"manifest paths {seen[key]!r} and {path!r} collide",
                    "two files may not differ only by letter case (Windows and macOS clients)"
                    if self.platform in _CASE_INSENSITIVE
                    else "a path is listed twice",
                )
            seen[key] = path
        dirs = {
            collision_key(p.rsplit("/", i)[0], self.platform)
            for p in seen.values()
            for i in range(1, p.count("/") + 1)
        }
        for key, original in seen.items():
            if key in dirs:
                raise InvalidInput(f"manifest path {original!r} is both a file and a folder")
        names = frozenset(seen.values())
        for link in self.links:
            problem = link_problem(link.path, link.target, self.platform, names)
            if problem:
                raise InvalidInput(f"manifest entry {link.path!r} {problem}")

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def blobs(self) -> dict[str, int]:
        """Distinct blobs (sha256 -> size); one download per distinct content."""
        return {e.sha256: e.size for e in self.files}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "site_code": self.site_code,
            "package_id": self.package_id,
            "source_version": self.source_version,
            "files": [e.to_dict() for e in sorted(self.files, key=lambda e: e.path)],
        }
        if self.platform != DEFAULT_PLATFORM or self.links:
            data["format"] = LINKS_FORMAT
            data["platform"] = self.platform
            data["links"] = [e.to_dict() for e in sorted(self.links, key=lambda e: e.path)]
        return data

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def package_hash(self) -> str:
        return sha256_bytes(self.canonical_bytes())

    def same_content(self, other: Manifest) -> bool:
        return (
            {e.path: e for e in self.files} == {e.path: e for e in other.files}
            and set(self.links) == set(other.links)
            and self.platform == other.platform
        )

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("format") not in (MANIFEST_FORMAT, LINKS_FORMAT):
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
        platform: Any = DEFAULT_PLATFORM
        links: Any = []
        if data["format"] == LINKS_FORMAT:
            platform, links = data.get("platform"), data.get("links")
            if not isinstance(platform, str) or platform not in PLATFORMS:
                raise InvalidInput("manifest has an unknown platform")
            if not isinstance(links, list):
                raise InvalidInput("manifest has no link list")
        elif "platform" in data or "links" in data:
            raise InvalidInput("a format 1 manifest has no platform or links")
        entries = tuple(FileEntry.from_dict(f, platform) for f in files)
        link_entries = tuple(LinkEntry.from_dict(link, platform) for link in links)
        if len({e.path for e in entries} | {e.path for e in link_entries}) != len(entries) + len(
            link_entries
        ):
            raise InvalidInput("manifest lists the same path twice")
        return cls(site_code, package_id, version, entries, platform, link_entries)
