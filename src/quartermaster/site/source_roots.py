"""Where package sources may come from: folders that someone with a shell on the site host
named, never anything an API caller chooses.

The site process can read its own secrets (admin.token, keys/, the embedded DP's
credential) and every file its user can read. A package source is published to every DP
and readable there without a credential, so an operator who could name any folder could
publish any of them. The roots are the file `source-roots` in the site home (one absolute
folder a line; `#` starts a comment), kept with `qm site source-roots` on the site host.
A site home without the file allows the system's temporary folder (`$TMPDIR`, else /tmp),
which is what the README's tour uses.

Whatever the roots say, a source is refused when it is, contains or lies inside a site
home, a distribution point home or a client home on this host: their files are secrets.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput, SourceError
from quartermaster.site.home import SiteHome

ROOTS_FILE = "source-roots"


def default_roots() -> list[Path]:
    return [Path(tempfile.gettempdir()).resolve()]


def roots_path(home: SiteHome) -> Path:
    return home.root / ROOTS_FILE


def read_roots(home: SiteHome) -> list[Path]:
    """The configured roots, or the default when the site home has no `source-roots` file."""
    try:
        text = roots_path(home).read_text(encoding="utf-8")
    except FileNotFoundError:
        return default_roots()
    roots = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            roots.append(Path(os.path.realpath(line)))
    return roots


def write_roots(home: SiteHome, roots: Iterable[Path]) -> list[Path]:
    """Replace the roots (a local command on the site host; there is no API for it)."""
    checked: list[Path] = []
    for root in roots:
        if not root.is_absolute():
            raise InvalidInput(f"source root {str(root)!r} is not absolute", "give a full path")
        real = Path(os.path.realpath(root))
        refuse_homes(home, real, containing=False)  # a root may hold a home: walks refuse it
        if real not in checked:
            checked.append(real)
    lines = [
        "# Folders package sources may come from, one a line (qm site source-roots).",
        *(str(root) for root in checked),
    ]
    write_atomic(roots_path(home), ("\n".join(lines) + "\n").encode(), mode=0o600)
    return checked


def check_source(home: SiteHome, real: Path) -> None:
    """Refuse a source folder (its real path, links resolved) outside the roots or touching
    a Quartermaster home; the walk then refuses any home found below it."""
    refuse_homes(home, real)
    roots = read_roots(home)
    if not any(real.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none"
        raise SourceError(
            f"source folder {str(real)!r} is outside the site's source roots ({allowed})",
            f"copy it under a source root, or on the site host run "
            f"`qm site source-roots --home {home.root} --add FOLDER`",
        )


def refuse_homes(home: SiteHome, real: Path, containing: bool = True) -> None:
    """Refuse `real` when it is or is inside this site's home or any folder that looks like
    a Quartermaster home, or (`containing`) when it contains this site's home."""
    own = [home.root]
    if home.database_path.parent != home.root:
        own.append(home.database_path.parent)
    for folder in own:
        if real.is_relative_to(folder) or (containing and folder.is_relative_to(real)):
            raise _home_refused(real, folder, "the site home")
    for folder in (real, *real.parents):
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue
        kind = home_kind(folder, names)
        if kind:
            raise _home_refused(real, folder, kind)


def home_kind(folder: Path, names: set[str]) -> str:
    """What Quartermaster home `folder` (holding `names`) is, or "" when it is none."""
    if "admin.token" in names or ("config.json" in names and "site.db" in names):
        return "a site home"
    if "keys" in names and (folder / "keys" / "signing.key").exists():
        return "a site home"
    if "dp.json" in names or "enrollment.token" in names:
        return "a distribution point home"
    if "client.json" in names and "secret" in names:
        return "a client home"
    return ""


def _home_refused(real: Path, home: Path, kind: str) -> SourceError:
    where = "is" if real == home else "is inside" if real.is_relative_to(home) else "contains"
    return SourceError(
        f"source folder {str(real)!r} {where} {kind} ({home}): its files are secrets",
        "give a folder that holds only the package's files",
    )
