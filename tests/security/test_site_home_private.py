"""The site home is its user's alone: other local users read no key, token or database.

Before, site.db and its -wal/-shm files were 0644: a local user read the console's cookie
key from it and forged an admin session. `qm site init` and `qm site serve` are run as
real processes here.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import QM, Daemon, SiteServer, free_port_pair, run_qm
from tests.e2e.scenario import make_source

pytestmark = pytest.mark.e2e


def _open_to_others(root: Path) -> list[str]:
    return [
        f"{p} {stat.S_IMODE(p.lstat().st_mode):04o}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]


def _init(tmp_path: Path) -> tuple[Path, int]:
    home, port = tmp_path / "site", free_port_pair()
    run_qm("site", "init", "--home", str(home), "--listen", f"127.0.0.1:{port}")
    return home, port


def test_init_makes_a_private_home_and_the_running_site_keeps_it_private(
    tmp_path: Path,
) -> None:
    home, port = _init(tmp_path)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert _open_to_others(home) == []
    site = SiteServer(home, port, Daemon(["site", "serve", "--home", str(home)], tmp_path / "log"))
    site.start()
    try:
        source = make_source(tmp_path / "src", tmp_path / "never.txt")
        site.qm("package", "create", "--name", "P", "--source", str(source), "--program", "I=true")
        assert (home / "site.db-wal").exists()  # the database is open, in WAL mode
        assert _open_to_others(home) == []
    finally:
        site.stop()


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        (".", 0o755),
        ("site.db", 0o644),
        ("keys/signing.key", 0o640),
        ("keys", 0o750),
        ("admin.token", 0o604),
        ("dp/enrollment.token", 0o644),
    ],
)
def test_serve_refuses_a_home_open_to_other_users(tmp_path: Path, path: str, mode: int) -> None:
    home, _ = _init(tmp_path)
    exposed = (home / path).resolve()
    os.chmod(exposed, mode)
    try:
        proc = subprocess.run(
            [*QM, "site", "serve", "--home", str(home)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the site started with {path} at {mode:04o}")
    said = " ".join(proc.stderr.split())
    assert proc.returncode != 0, said
    assert f"{exposed} is open to other users (mode {mode:04o})" in said, said
    assert f"chmod -R go-rwx {home}" in said, said
    assert "Traceback" not in proc.stderr
