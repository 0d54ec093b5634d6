"""Lay a package version out in a deployment's work folder, fresh for every run.

Files are copied (never linked) from the cache so a program that edits its own files cannot
damage the cache, and each copy is hashed on the way so cache rot is caught before a program
runs. The folder is built beside its final name and renamed into place only when complete.

Folders are 0700 and files keep their modes without group and other write bits
(`mode & 0o755`): a script a program runs later must not be writable by another account
while the first runs as root.

A work folder is a full copy of the package, so it does not outlive its run: client/cleanup.py
removes it after a success and, after a failure, once it is old enough.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from quartermaster.client.cache import ContentCache
from quartermaster.client.home import PRIVATE_FOLDER
from quartermaster.core.errors import HashMismatch
from quartermaster.core.hashing import CHUNK
from quartermaster.core.manifest import Manifest

LAID_OUT_MODE_MASK = 0o755  # no group or other write bits, whatever the source had


def lay_out(manifest: Manifest, cache: ContentCache, work_root: Path, deployment_id: str) -> Path:
    """Return work_root/deployment_id holding exactly the manifest's files with their modes,
    and its links (linux and macos packages) as symbolic links."""
    final = work_root / deployment_id
    building = work_root / f".{deployment_id}.building"
    remove_tree(building)
    work_root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
    building.mkdir(mode=PRIVATE_FOLDER)
    buffer = bytearray(CHUNK)
    for entry in manifest.files:
        target = building.joinpath(*entry.path.split("/"))
        _private_folders(building, target.parent)
        _copy_verified(cache.blob_path(entry.sha256), target, entry.sha256, buffer)
        os.chmod(target, entry.mode & LAID_OUT_MODE_MASK)
    for link in manifest.links:  # verified with the manifest: relative, inside the package
        at = building.joinpath(*link.path.split("/"))
        _private_folders(building, at.parent)
        os.symlink(link.target, at)
    remove_tree(final)
    building.rename(final)
    return final


def _private_folders(top: Path, folder: Path) -> None:
    """Create `folder` and its parents below `top`, each 0700 whatever the umask."""
    if folder == top or folder.is_dir():
        return
    _private_folders(top, folder.parent)
    folder.mkdir(mode=PRIVATE_FOLDER)
    os.chmod(folder, PRIVATE_FOLDER)


def _copy_verified(source: Path, target: Path, sha256: str, buffer: bytearray) -> None:
    view = memoryview(buffer)
    digest = hashlib.sha256()
    with (
        open(source, "rb", buffering=0) as reader,
        open(target, "wb", buffering=0, opener=_private_opener) as writer,
    ):
        while n := reader.readinto(view):  # type: ignore[attr-defined]
            digest.update(view[:n])
            writer.write(view[:n])
    if digest.hexdigest() != sha256:
        raise HashMismatch(
            f"cached blob {source.name}",
            sha256,
            digest.hexdigest(),
            "the cached copy is damaged; it is removed and fetched again",
        )


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def remove_tree(path: Path) -> None:
    """Remove a folder even if a program left read-only folders in it."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        _open_up(path)
        shutil.rmtree(path)


def _open_up(folder: Path) -> None:
    os.chmod(folder, stat.S_IRWXU)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            _open_up(child)
