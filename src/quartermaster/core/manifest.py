"""The manifest of a package version: pure data, canonical bytes, package hash, path rules.

The manifest lists every file (path, size, mode, sha256) and, for a large file, its chunks
(offset, length, sha256). Its canonical JSON is what the site signs and what the package hash
is computed over, so a version is immutable by name.
"""

from __future__ import annotations

import itertools
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.chunking import MAX_CHUNKS_PER_FILE, chunk_list_problem
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex, sha256_bytes

MANIFEST_FORMAT = 1  # platform "any" and no links: the bytes every older manifest has
LINKS_FORMAT = 2  # adds "platform" and "links"; written only when a package needs them
CHUNKS_FORMAT = 3  # format 2 plus "chunks" of large files; written only when a file has them
KNOWN_FORMATS = (MANIFEST_FORMAT, LINKS_FORMAT, CHUNKS_FORMAT)
MAX_CHUNKS_PER_MANIFEST = 4 * MAX_CHUNKS_PER_FILE
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


# What a snapshot does with a link whose target is not in the package (an absolute path, out
# of the source folder, or nothing in it): "refuse" the folder (the default: the package would
# not be what the folder shows), or "skip" the link, leaving it out of the package and naming
# it in the job's result. It is never followed.
OUTSIDE_LINKS = ("refuse", "skip")


def check_outside_links(choice: str) -> str:
    if choice not in OUTSIDE_LINKS:
        raise InvalidInput(
            f"outside-links choice {choice!r} is not one of {', '.join(OUTSIDE_LINKS)}",
            "give --outside-links refuse (the default) or skip",
        )
    return choice


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


MAX_LINK_HOPS = 40  # links followed to resolve one link, as Linux's ELOOP limit


def link_problem(
    path: str,
    target: str,
    platform: str,
    names: frozenset[str],
    links: Mapping[str, str] | None = None,
) -> str:
    """Why the link `path` -> `target` may not be in a package of `platform` whose files
    and links are `names` (`links`: each link's target), or "". A link kept must be relative
    and resolve, by its words alone and through the package's own links, to a file, folder or
    link of the package: then the client's file system resolves it to the same place, inside
    the package."""
    return link_check(path, target, platform, names, links)[0]


def link_check(
    path: str,
    target: str,
    platform: str,
    names: frozenset[str],
    links: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """`link_problem`, and whether the problem is that the target is not in the package (an
    absolute path, out of the folder, or nothing of it): such a link may be left out."""
    if platform not in LINK_PLATFORMS:
        return (
            f"is a symbolic link: a package for platform {platform!r} cannot hold links "
            "(Windows clients)",
            False,
        )
    folders = {n.rsplit("/", 1)[0] for n in names if "/" in n}
    folders |= {f.rsplit("/", i)[0] for f in folders for i in range(1, f.count("/") + 1)}
    resolver = _LinkResolver(names, folders, links or {})
    try:
        resolved = resolver.resolve(path.split("/")[:-1], target)
    except _Refused as refused:
        return f"is a symbolic link to {target!r}, {refused.args[0]}", refused.args[1]
    if not resolved:
        return f"is a symbolic link to {target!r}, the package's top folder", False
    inside = "/".join(resolved)
    if inside not in names and inside not in folders:
        return f"is a symbolic link to {target!r}, which is not in the package", True
    return "", False


class _Refused(Exception):
    """(why, whether it is because the target is not in the package)"""


class _LinkResolver:
    """Resolves a link's target word by word as the client's file system will, going through
    the package's own links on the way; refuses anything it cannot place inside."""

    def __init__(self, names: frozenset[str], folders: set[str], links: Mapping[str, str]):
        self.names, self.folders, self.links = names, folders, links
        self.hops = 0

    def resolve(self, folder: list[str], target: str, follow_last: bool = False) -> list[str]:
        """The words of `target` from `folder`; through a link met on the way (and, when
        `follow_last`, the one it ends at: a folder reached through links)."""
        if not target or "\x00" in target:
            raise _Refused("an empty target", False)
        if target.startswith("/"):
            raise _Refused("an absolute path: links must be relative", True)
        parts = target.split("/")
        if any(part in ("", ".") for part in parts):
            raise _Refused("with an empty or '.' component", False)
        climb = len(parts) - len(list(itertools.dropwhile(lambda part: part == "..", parts)))
        if ".." in parts[climb:]:
            raise _Refused("with '..' after a name", False)
        if climb > len(folder):
            raise _Refused("outside the package", True)
        resolved = folder[: len(folder) - climb]
        names = parts[climb:]
        for i, part in enumerate(names):
            resolved.append(part)
            last = i == len(names) - 1
            if last and not follow_last:
                break
            step = "/".join(resolved)
            if step in self.links:  # a folder of the package reached through its link
                self.hops += 1
                if self.hops > MAX_LINK_HOPS:
                    raise _Refused(f"through more than {MAX_LINK_HOPS} links (a loop?)", False)
                resolved = self.resolve(resolved[:-1], self.links[step], follow_last=True)
            elif step in self.names and not last:
                raise _Refused(f"through the file {step!r}", False)
            elif step not in self.folders and step not in self.names:
                raise _Refused("which is not in the package", True)
        return resolved


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
class ChunkEntry:
    """A piece of a large file, stored and moved as a blob of its own."""

    offset: int
    length: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "length": self.length, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any, path: str) -> ChunkEntry:
        if not isinstance(data, dict) or set(data) != {"offset", "length", "sha256"}:
            raise InvalidInput(f"manifest entry {path!r} has a chunk that is not an object")
        offset, length, digest = data["offset"], data["length"], data["sha256"]
        for value in (offset, length):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"manifest entry {path!r} has a chunk with a bad offset")
        if not isinstance(digest, str) or not is_sha256_hex(digest):
            raise InvalidInput(f"manifest entry {path!r} has a chunk with an invalid sha256")
        return cls(offset, length, digest)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mode: int
    sha256: str
    chunks: tuple[ChunkEntry, ...] = ()  # empty: the file is one blob

    def __post_init__(self) -> None:
        if self.chunks:
            problem = chunk_list_problem(self.size, [(c.offset, c.length) for c in self.chunks])
            if problem:
                raise InvalidInput(
                    f"manifest entry {self.path!r} {problem}",
                    "the manifest is damaged or forged; it is refused",
                )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "mode": self.mode,
            "sha256": self.sha256,
        }
        if self.chunks:
            data["chunks"] = [c.to_dict() for c in self.chunks]
        return data

    def blobs(self) -> dict[str, int]:
        """What is stored and moved for this file: its chunks, or the file as one blob."""
        if not self.chunks:
            return {self.sha256: self.size}
        return {c.sha256: c.length for c in self.chunks}

    def same_file(self, other: FileEntry) -> bool:
        """Same path, bytes and mode, however each was cut into chunks."""
        return (self.path, self.size, self.mode, self.sha256) == (
            other.path,
            other.size,
            other.mode,
            other.sha256,
        )

    @classmethod
    def from_dict(
        cls, data: Any, platform: str = DEFAULT_PLATFORM, chunked: bool = False
    ) -> FileEntry:
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
        chunks = _chunks_from(data, path, chunked)
        return cls(path=path, size=size, mode=stat.S_IMODE(mode), sha256=digest, chunks=chunks)


def _chunks_from(data: dict[str, Any], path: str, chunked: bool) -> tuple[ChunkEntry, ...]:
    if "chunks" not in data:
        return ()
    listed = data["chunks"]
    if not chunked:
        raise InvalidInput(f"manifest entry {path!r} has chunks, which its format has not")
    if not isinstance(listed, list) or not listed:
        raise InvalidInput(f"manifest entry {path!r} has an empty or invalid chunk list")
    if len(listed) > MAX_CHUNKS_PER_FILE:  # before reading each one
        raise InvalidInput(
            f"manifest entry {path!r} has {len(listed)} chunks, more than the "
            f"{MAX_CHUNKS_PER_FILE} allowed",
            "the manifest is damaged or forged; it is refused",
        )
    return tuple(ChunkEntry.from_dict(item, path) for item in listed)


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
        targets = {link.path: link.target for link in self.links}
        for link in self.links:
            problem = link_problem(link.path, link.target, self.platform, names, targets)
            if problem:
                raise InvalidInput(f"manifest entry {link.path!r} {problem}")

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def blobs(self) -> dict[str, int]:
        """Distinct blobs (sha256 -> size): whole files, and the chunks of chunked files; one
        download per distinct content."""
        found: dict[str, int] = {}
        for entry in self.files:
            found.update(entry.blobs())
        return found

    def blob_owners(self) -> dict[str, str]:
        """Each blob's place in words, for logs and status messages: the file's path, and
        for a chunk also its number and offset."""
        owners: dict[str, str] = {}
        for entry in reversed(self.files):
            if not entry.chunks:
                owners[entry.sha256] = entry.path
            for index, chunk in enumerate(entry.chunks):
                owners[chunk.sha256] = f"{entry.path} (chunk {index} at byte {chunk.offset})"
        return owners

    @property
    def chunked(self) -> bool:
        return any(entry.chunks for entry in self.files)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "site_code": self.site_code,
            "package_id": self.package_id,
            "source_version": self.source_version,
            "files": [e.to_dict() for e in sorted(self.files, key=lambda e: e.path)],
        }
        if self.platform != DEFAULT_PLATFORM or self.links or self.chunked:
            data["format"] = CHUNKS_FORMAT if self.chunked else LINKS_FORMAT
            data["platform"] = self.platform
            data["links"] = [e.to_dict() for e in sorted(self.links, key=lambda e: e.path)]
        return data

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def package_hash(self) -> str:
        return sha256_bytes(self.canonical_bytes())

    def same_content(self, other: Manifest) -> bool:
        """Same files, links and platform; how large files were cut does not matter."""
        theirs = {e.path: e for e in other.files}
        return (
            len(self.files) == len(other.files)
            and all(e.path in theirs and e.same_file(theirs[e.path]) for e in self.files)
            and set(self.links) == set(other.links)
            and self.platform == other.platform
        )

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("format") not in KNOWN_FORMATS:
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
        if data["format"] in (LINKS_FORMAT, CHUNKS_FORMAT):
            platform, links = data.get("platform"), data.get("links")
            if not isinstance(platform, str) or platform not in PLATFORMS:
                raise InvalidInput("manifest has an unknown platform")
            if not isinstance(links, list):
                raise InvalidInput("manifest has no link list")
        elif "platform" in data or "links" in data:
            raise InvalidInput("a format 1 manifest has no platform or links")
        chunked = data["format"] == CHUNKS_FORMAT
        entries = tuple(FileEntry.from_dict(f, platform, chunked) for f in files)
        _check_chunk_total(entries, chunked)
        link_entries = tuple(LinkEntry.from_dict(link, platform) for link in links)
        if len({e.path for e in entries} | {e.path for e in link_entries}) != len(entries) + len(
            link_entries
        ):
            raise InvalidInput("manifest lists the same path twice")
        return cls(site_code, package_id, version, entries, platform, link_entries)


def _check_chunk_total(entries: tuple[FileEntry, ...], chunked: bool) -> None:
    total = sum(len(e.chunks) for e in entries)
    if total > MAX_CHUNKS_PER_MANIFEST:
        raise InvalidInput(
            f"manifest has {total} chunks, more than the {MAX_CHUNKS_PER_MANIFEST} allowed",
            "the manifest is damaged or forged; it is refused",
        )
    if chunked and not total:
        raise InvalidInput("a format 3 manifest has no chunked file")
