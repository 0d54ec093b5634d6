"""The content library: the only place that ever reads a package's live source folder.

A snapshot walks the source once, hashes each file while copying it into the library (one
read), and stores each distinct content once under its SHA-256. Everything downstream (DPs,
clients) receives bytes by hash from here, which is what makes KB 907979 impossible.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.durable_files import fsync_dir, write_atomic
from quartermaster.core.errors import SourceError
from quartermaster.core.hashing import CHUNK
from quartermaster.core.manifest import FileEntry, relpath_problem
from quartermaster.core.store_layout import blob_path, manifest_path


@dataclass
class Snapshot:
    files: list[FileEntry]
    new_bytes: int  # bytes of content the library did not hold before


class ContentLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def blob_path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def write_manifest(self, package_hash: str, envelope: dict[str, Any]) -> None:
        """Keep each signed manifest beside its blobs, so the library is a complete store."""
        write_atomic(manifest_path(self.root, package_hash), canonical_json(envelope))

    def snapshot(self, source: Path) -> Snapshot:
        """Hash and store every file of `source`; refuse anything that is not a plain file."""
        source = check_source_folder(source)
        self.tmp.mkdir(parents=True, exist_ok=True)
        buffer = bytearray(CHUNK)
        files: list[FileEntry] = []
        new_bytes = 0
        for relpath, path in walk_source(source):
            entry, stored = self._store_file(relpath, path, buffer)
            files.append(entry)
            new_bytes += stored
        return Snapshot(files, new_bytes)

    def _store_file(self, relpath: str, path: Path, buffer: bytearray) -> tuple[FileEntry, int]:
        view = memoryview(buffer)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="snap-")
        try:
            with open(path, "rb", buffering=0) as src, os.fdopen(fd, "wb", buffering=0) as dst:
                before = os.fstat(src.fileno())
                size = 0
                while n := src.readinto(view):  # type: ignore[attr-defined]
                    chunk = view[:n]
                    digest.update(chunk)
                    dst.write(chunk)
                    size += n
                after = os.fstat(src.fileno())
                if (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, size):
                    raise SourceError(f"{path} changed while it was being read",
                                      "wait until the source folder is quiet, then retry")
                sha = digest.hexdigest()
                final = self.blob_path(sha)
                stored = 0
                if not final.exists():
                    os.fsync(dst.fileno())
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp_name, final)
                    fsync_dir(final.parent)
                    stored = size
            mode = stat.S_IMODE(before.st_mode) & 0o777
            return FileEntry(relpath, size, mode, sha), stored
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def check_source_folder(source: Path) -> Path:
    if not source.is_absolute():
        raise SourceError(f"source path {str(source)!r} is not absolute",
                          "give the full path of the folder as the site server sees it")
    if not source.exists():
        raise SourceError(f"source folder {source} does not exist",
                          "check the path; it is read by the site server, on its host")
    if source.is_symlink() or not source.is_dir():
        raise SourceError(f"source {source} is not a folder",
                          "give the folder that holds the files")
    return source


def walk_source(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under root as (relative POSIX path, path), sorted, or a SourceError.

    The whole tree is checked before a single byte is stored, so a refused source leaves
    nothing in the content library.
    """
    found: list[tuple[str, Path]] = []
    folded: dict[str, str] = {}  # casefolded path -> path, files and folders alike
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            raise SourceError(f"cannot read folder {folder}",
                              "give the site server read access") from None
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            problem = relpath_problem(rel)
            if problem:
                raise SourceError(f"source file {rel!r} {problem}",
                                  "rename it so that it is valid on every client")
            if entry.is_symlink():
                raise SourceError(f"source entry {rel!r} is a symbolic link",
                                  "replace the link with the file it points to")
            other = folded.setdefault(rel.casefold(), rel)
            if other != rel:
                raise SourceError(f"source entries {other!r} and {rel!r} differ only by letter "
                                  "case", "rename one: Windows and macOS clients cannot hold "
                                  "both")
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                if entry.stat(follow_symlinks=False).st_nlink > 1:
                    raise SourceError(f"source file {rel!r} is a hard link (it has other names, "
                                      "possibly outside the source folder)",
                                      "replace it with a copy: `cp --remove-destination` or "
                                      "copy it in again")
                found.append((rel, Path(entry.path)))
            else:
                raise SourceError(f"source entry {rel!r} is not a regular file (device, pipe "
                                  "or socket)", "remove it from the source folder")
    found.sort()
    return found
