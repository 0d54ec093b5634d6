"""Lay a package version out in a deployment's work folder, fresh for every run.

A file is placed without a second copy of its bytes where the file system allows: a
reflink (a copy-on-write clone, fully independent of the cache) or else a hard link to the
cached blob. Only where neither works is it copied. The folder is built beside its final
name and renamed into place only when complete.

A hard link shares its bytes with the cache, so a program that writes into its laid-out
file in place would change the cached blob. A program runs as root (or as the agent's own
account, which owns the cache), so no file mode could stop it; a program run as another
account gets a private copy (run_as.private_copy). What keeps an edit from reaching a run:

- The cache is never trusted for what it held before this run: a blob is linked without
  being read again only if it was downloaded and verified by the same `obtain` call
  (`verified`); every other blob is hashed (read, not written) first, and a blob that no
  longer matches is reported with HashMismatch, removed and fetched again
  (deployment_run.py). So a program that edited its file corrupts nothing a later run
  uses. Whatever else reads the cache (a peer serving it) must hash what it reads too.
- Linked files keep the manifest's mode as a copy does (`mode & 0o755`; it is the blob's
  own mode: one inode), so what a program installs from its folder (`cp -a`) has the
  package's modes, not a read-only variant of them.

A blob listed under two paths with different modes is linked for the first and copied for
the others (an inode has one mode). A copy (or a clone) keeps the manifest's mode without
group and other write bits (`mode & 0o755`), and is hashed while it is copied.

Folders are 0700, and no file is writable by group or other: a script a program runs later
must not be writable by another account while the first runs as root.

A work folder does not outlive its run: client/cleanup.py removes it after a success and,
after a failure, once it is old enough. A blob evicted from the cache while a work folder
still links it stays on disk until that folder goes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quartermaster.client.cache import ContentCache
from quartermaster.client.home import PRIVATE_FOLDER
from quartermaster.core.durable_files import process_umask
from quartermaster.core.errors import HashMismatch
from quartermaster.core.hashing import CHUNK, sha256_file
from quartermaster.core.manifest import Manifest

LAID_OUT_MODE_MASK = 0o755  # no group or other write bits, whatever the source had

FICLONE = 0x40049409  # ioctl of Linux: clone a file's extents (btrfs, xfs, ...)
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP)


def lay_out(
    manifest: Manifest,
    cache: ContentCache,
    work_root: Path,
    deployment_id: str,
    verified: Collection[str] = (),
) -> Path:
    """Return work_root/deployment_id holding exactly the manifest's files with their modes,
    and its links (linux and macos packages) as symbolic links.

    `verified`: blobs the caller downloaded and hashed just now; every other cached blob is
    hashed before it is used (see the module docstring)."""
    final = work_root / deployment_id
    building = work_root / f".{deployment_id}.building"
    remove_tree(building)
    work_root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
    building.mkdir(mode=PRIVATE_FOLDER)
    placer = _Placer(cache, set(verified))
    umask = process_umask()
    # Paths as strings (a manifest path is relative, "/"-separated and checked): building a
    # Path per file cost a 10,000-file lay-out more than its links. `made`: the folders
    # this lay-out created, one mkdir each and no stat per file.
    top = str(building)
    made = {top}
    for entry in manifest.files:
        target = f"{top}/{entry.path}"
        _private_folders(made, target.rpartition("/")[0], umask)
        placer.place(entry.sha256, target, entry.mode)  # a chunked file is held whole too
    for link in manifest.links:  # verified with the manifest: relative, inside the package
        at = f"{top}/{link.path}"
        _private_folders(made, at.rpartition("/")[0], umask)
        os.symlink(link.target, at)
    remove_tree(final)
    building.rename(final)
    return final


class _Placer:
    """Places files of one layout: clone, else link, else copy; each blob checked once."""

    def __init__(self, cache: ContentCache, verified: set[str]) -> None:
        self.cache = cache
        self.verified = verified
        self.linked: dict[str, int] = {}  # blob -> the mode its inode now has
        self.can_clone = hasattr(fcntl, "ioctl")
        self.can_link = True
        self._buffer: bytearray | None = None

    @property
    def buffer(self) -> bytearray:
        if self._buffer is None:
            self._buffer = bytearray(CHUNK)
        return self._buffer

    def place(self, sha256: str, target: str, mode: int) -> None:
        source = self.cache.blob_path(sha256)
        if self.can_clone and self._clone(source, target, sha256):
            os.chmod(target, mode & LAID_OUT_MODE_MASK)
            return
        linked_mode = mode & LAID_OUT_MODE_MASK
        if self.can_link and self.linked.get(sha256, linked_mode) == linked_mode:
            if sha256 not in self.verified:
                _check_cached(source, sha256, self.buffer)
                self.verified.add(sha256)
            if self._link(source, target, linked_mode):
                self.linked[sha256] = linked_mode
                return
        _copy_verified(source, target, sha256, self.buffer)
        os.chmod(target, mode & LAID_OUT_MODE_MASK)

    def _clone(self, source: Path, target: str, sha256: str) -> bool:
        """A copy-on-write clone, checked like a copy unless just verified; False where the
        file system cannot clone (then none of this layout's files is tried again)."""
        if sha256 not in self.verified:
            _check_cached(source, sha256, self.buffer)
            self.verified.add(sha256)
        with open(source, "rb") as reader:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.ioctl(fd, FICLONE, reader.fileno())
            except OSError:
                os.close(fd)
                os.unlink(target)
                self.can_clone = False
                return False
            os.close(fd)
        return True

    def _link(self, source: Path, target: str, mode: int) -> bool:
        try:
            if stat.S_IMODE(os.stat(source).st_mode) != mode:  # a chmod is a journal write
                os.chmod(source, mode)
            os.link(source, target)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self.can_link = False
            return False
        return True


def _check_cached(source: Path, sha256: str, buffer: bytearray) -> None:
    """Hash a cached blob (read only); HashMismatch if it is not what its name says."""
    actual, _size = sha256_file(source, buffer)
    if actual != sha256:
        raise HashMismatch(
            f"cached blob {source.name}",
            sha256,
            actual,
            "the cached copy is damaged; it is removed and fetched again",
        )


def _private_folders(made: set[str], folder: str, umask: int) -> None:
    """Create `folder` and its parents below the layout's top (in `made`), each 0700
    whatever the umask; `made` is what this layout created (a fresh folder holds nothing
    else)."""
    if folder in made:
        return
    _private_folders(made, folder.rpartition("/")[0], umask)
    os.mkdir(folder, PRIVATE_FOLDER)
    if umask & PRIVATE_FOLDER:  # else mkdir made it 0700 already
        os.chmod(folder, PRIVATE_FOLDER)
    made.add(folder)


def _copy_verified(source: Path, target: str, sha256: str, buffer: bytearray) -> None:
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
        _remove_folder(path)
    except PermissionError:
        _open_up(path)
        _remove_folder(path)


REMOVERS = 4  # threads removing a work folder


def _remove_folder(top: Path) -> None:
    """Remove `top` and everything below it, without following symbolic links, the files
    of several folders and then the folders of each depth on a few threads.

    Each unlink and rmdir may wait for the file system's journal: removing a laid-out
    package of 10,000 files in 2,000 folders one name at a time (shutil.rmtree) took 23-30
    s on a busy machine where four threads took 2.3-3.0 s, for the same CPU time. A folder
    is opened with O_NOFOLLOW, so a folder replaced by a symbolic link while this runs
    fails the removal instead of emptying the link's target."""
    levels: list[list[tuple[str, list[str]]]] = []  # per depth: (folder, its other names)
    frontier = [str(top)]
    while frontier:
        level, below = [], []
        for folder in frontier:
            names = []
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        below.append(entry.path)
                    else:
                        names.append(entry.name)
            level.append((folder, names))
        levels.append(level)
        frontier = below
    if sum(len(level) for level in levels) == 1:
        _unlink_names((str(top), levels[0][0][1]))
        os.rmdir(top)
        return
    with ThreadPoolExecutor(REMOVERS, thread_name_prefix="remove") as pool:
        list(pool.map(_unlink_names, [item for level in levels for item in level]))
        for level in reversed(levels):
            list(pool.map(os.rmdir, [folder for folder, _ in level]))


def _unlink_names(item: tuple[str, list[str]]) -> None:
    folder, names = item
    if not names:
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in names:
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _open_up(folder: Path) -> None:
    os.chmod(folder, stat.S_IRWXU)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            _open_up(child)
