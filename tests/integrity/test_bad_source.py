"""Package sources that cannot be published as they are: refused at snapshot, path named,
nothing stored in the content library. Each goes through `qm package create` to a real site.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer
from tests.e2e.scenario import make_source

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]

Spoil = Callable[[Path], object]


def _library(site: SiteServer) -> set[str]:
    root = site.home / "library"
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "tmp" not in p.relative_to(root).parts
    }


def _refuse_each(
    site: SiteServer, tmp_path: Path, cases: dict[str, tuple[Spoil, str, str]]
) -> None:
    before = _library(site)
    for number, (name, (spoil, path, words)) in enumerate(cases.items()):
        source = make_source(tmp_path / f"src{number}", tmp_path / "never" / "installed.txt")
        spoil(source)
        result = site.qm(
            "package",
            "create",
            "--name",
            name,
            "--source",
            str(source),
            "--program",
            "Install=sh install.sh",
            check=False,
        )
        assert result.code != 0, f"{name}: accepted"
        said = _flat(result.stderr)  # the console wraps long lines
        assert _flat(repr(path)) in said, f"{name}: {path!r} not named: {result.stderr}"
        assert words in said, f"{name}: {result.stderr}"
        assert "hint:" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert site.qm("package", "list", "--json").json()["packages"] == []
    assert _library(site) == before


def _flat(text: str) -> str:
    return " ".join(text.split())


def _write(relpath: str, data: bytes = b"x") -> Spoil:
    def spoil(source: Path) -> None:
        path = source / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return spoil


def _symlinked_folder(source: Path) -> None:
    os.symlink("/etc", source / "etc")


def _hard_link_out_of_tree(source: Path) -> None:
    outside = source.parent / f"{source.name}-outside.txt"
    outside.write_text("a file outside the source folder\n")
    os.link(outside, source / "linked.txt")


def _fifo(source: Path) -> None:
    os.mkfifo(source / "pipe")


def _device(source: Path) -> None:
    os.mknod(source / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))


def _socket(source: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(source / "sock"))
    sock.close()


def test_links_devices_pipes_and_sockets_are_refused(site: SiteServer, tmp_path: Path) -> None:
    _refuse_each(
        site,
        tmp_path,
        {
            "file symlink": (
                lambda s: os.symlink("/etc/hostname", s / "zz-link"),
                "zz-link",
                "symbolic link",
            ),
            "folder symlink": (_symlinked_folder, "etc", "symbolic link"),
            "hard link": (_hard_link_out_of_tree, "linked.txt", "hard link"),
            "fifo": (_fifo, "pipe", "not a regular file"),
            "device": (_device, "null", "not a regular file"),
            "socket": (_socket, "sock", "not a regular file"),
        },
    )


def test_names_invalid_on_some_client_are_refused(site: SiteServer, tmp_path: Path) -> None:
    cases: dict[str, tuple[Spoil, str, str]] = {
        "reserved name": (_write("CON"), "CON", "reserved on Windows"),
        "reserved with extension": (_write("sub/aux.txt"), "sub/aux.txt", "reserved on Windows"),
        "trailing dot": (_write("setup."), "setup.", "ending in a space or dot"),
        "trailing space": (_write("setup "), "setup ", "ending in a space or dot"),
        "control character": (_write("a\x01b"), "a\x01b", "invalid on Windows"),
        "case collision": (
            lambda s: (_write("README")(s), _write("readme")(s)),
            "readme",
            "differ only by letter case",
        ),
        "file and folder collide": (
            lambda s: (_write("Tools")(s), _write("tools/x")(s)),
            "tools",
            "differ only by letter case",
        ),
    }
    for char in '<>:"|?*\\':
        cases[f"character {char}"] = (_write(f"ab{char}c"), f"ab{char}c", "invalid on Windows")
    _refuse_each(site, tmp_path, cases)


def _non_utf8_name(source: Path) -> None:
    with open(os.path.join(os.fsencode(source), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"x")


def test_names_that_are_not_utf8_or_hide_their_direction_or_normalization_are_refused(
    site: SiteServer, tmp_path: Path
) -> None:
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    _refuse_each(
        site,
        tmp_path,
        {
            "not UTF-8": (_non_utf8_name, os.fsdecode(b"caf\xe9.txt"), "is not valid UTF-8"),
            "right-to-left override": (
                _write("invoice\u202etxt.exe"),
                "invoice\u202etxt.exe",
                "direction control character",
            ),
            "normalization collision": (
                lambda s: (_write(nfc)(s), _write(nfd)(s)),
                nfd,
                "differ only by letter case",  # and Unicode normalization: collision_key
            ),
        },
    )
