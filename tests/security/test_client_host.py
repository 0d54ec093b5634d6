"""A local user on a managed computer against the client agent, with real `qm` processes.

The agent runs programs as root, so its home must be its own: a non-root account that
could rewrite a laid-out script while the first program runs would run code as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import QM, SiteServer, run_qm, start_site, wait_until
from tests.e2e.scenario import create_package, deploy_to, messages, register_client
from tests.required_programs import program

pytestmark = pytest.mark.e2e
NOBODY = 65534


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[SiteServer]:
    """The client side does not depend on the site's database engine: SQLite only."""
    site = start_site(tmp_path)
    yield site
    site.stop()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every account may enter (pytest's own are 0700), as /var/lib is."""
    folder = Path(tempfile.mkdtemp(prefix="qm-client-host-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    setpriv = program("setpriv")
    return subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_local_user_cannot_rewrite_a_later_script_while_the_first_runs_as_root(
    sqlite_site: SiteServer, open_folder: Path, tmp_path: Path
) -> None:
    assert os.geteuid() == 0, "the attack needs a second account: the tests run as root"
    site = sqlite_site
    started, go, ran = open_folder / "started", open_folder / "go", open_folder / "ran"
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "install.sh").write_text(
        f"touch '{started}'\nwhile [ ! -f '{go}' ]; do sleep 0.1; done\nsh lib/step2.sh\n"
    )
    (source / "lib" / "step2.sh").write_text(f"echo genuine > '{ran}'\n")
    os.chmod(source / "lib" / "step2.sh", 0o666)  # a careless source: world-writable
    package_id = create_package(site, source)
    home = open_folder / "client"
    client_id = register_client(site, home)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")

    agent = subprocess.Popen(
        [*QM, "client", "run", "--home", str(home), "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(started.exists, "the first script to run as root", timeout=120)
        step2 = home / "work" / deployment_id / "lib" / "step2.sh"
        attack = _as_nobody("sh", "-c", f"echo 'echo pwned > {ran}' > '{step2}'")
        peek = _as_nobody("ls", str(home / "work" / deployment_id))
        laid_out = home / "work" / deployment_id  # while the program runs: removed after
        modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in [laid_out, *laid_out.rglob("*")]}
        go.touch()
        output, _ = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

    assert attack.returncode != 0 and "Permission denied" in attack.stderr, attack
    assert peek.returncode != 0, peek.stdout
    assert agent.returncode == 0, output
    assert ran.read_text() == "genuine\n"
    assert all(not mode & 0o022 for mode in modes.values()), modes
    assert modes[laid_out / "lib" / "step2.sh"] == 0o644
    assert 10008 in {m["message_id"] for m in messages(site, client=client_id)}

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for private in [
        home / "secret",
        home / "client.json",
        home / "policy.json",
        home / "state.json",
        *(home / "logs").rglob("*"),
        *(home / "spool").rglob("*"),
        *(home / "manifests").rglob("*"),
    ]:
        mode = stat.S_IMODE(private.lstat().st_mode)
        assert not mode & 0o077, f"{private} is {oct(mode)}"
    assert _as_nobody("cat", str(home / "policy.json")).returncode != 0


def test_an_existing_world_readable_home_is_made_private_at_the_next_run(
    sqlite_site: SiteServer, open_folder: Path
) -> None:
    """A home made by an older version (0755, files 0644) is tightened, not trusted."""
    home = open_folder / "client"
    register_client(sqlite_site, home)
    os.chmod(home, 0o755)
    (home / "logs").chmod(0o755)
    for path in (home / "logs").glob("*.log"):
        path.chmod(0o644)
    subprocess.run([*QM, "client", "run", "--home", str(home), "--once"], check=True)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700
    for path in (home / "logs").glob("*.log"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.fixture
def small_disk(open_folder: Path) -> Iterator[Path]:
    """A real 2 MB filesystem (tmpfs) for a client home: it fills like a full disk."""
    assert os.geteuid() == 0, "mounting a small filesystem needs the tests to run as root"
    mount_point = open_folder / "disk"
    mount_point.mkdir()
    subprocess.run(
        [program("mount"), "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount_point)],
        check=True,
    )
    yield mount_point
    subprocess.run([program("umount"), "-l", str(mount_point)], check=True)


def _run_agent(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QM, "client", "run", "--home", str(home), "--once"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _leftovers(home: Path) -> list[Path]:
    """Partial transfers: verified blobs that did fit may stay in the cache."""
    return list((home / "cache").rglob("*.part"))


def test_a_package_larger_than_the_disk_is_reported_and_the_agent_keeps_running(
    sqlite_site: SiteServer, small_disk: Path, tmp_path: Path
) -> None:
    site = sqlite_site
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "install.sh").write_text(f"touch '{tmp_path / 'ran'}'\n")
    package_id = create_package(site, source)
    home = small_disk / "client"
    client_id = register_client(site, home)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")

    for attempt in (1, 2):  # the next run neither crashes nor finds a partial file
        result = _run_agent(home)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert _leftovers(home) == [], attempt

    full = [m for m in messages(site, client=client_id) if m["message_id"] == 10050]
    assert len(full) == 2 and "no space left" in full[0]["insertion_strings"][4], full
    assert "larger than the free cache space" in full[0]["insertion_strings"][4]
    assert 10051 in {m["message_id"] for m in messages(site, client=client_id)}
    status = site.qm("deploy", "status", deployment_id, "--json").json()
    states = {c["client_id"]: c["state"] for c in status["clients"]}
    assert states[client_id] not in ("unknown", "success"), status
    assert not (tmp_path / "ran").exists()


def test_a_disk_filled_by_something_else_still_lets_the_agent_report(
    sqlite_site: SiteServer, small_disk: Path, tmp_path: Path
) -> None:
    """The reserve kept in the home is given up so the status messages can be spooled."""
    site = sqlite_site
    source = tmp_path / "src"
    source.mkdir()
    (source / "payload.bin").write_bytes(os.urandom(1024 * 1024))  # more than the reserve
    (source / "install.sh").write_text(f"touch '{tmp_path / 'ran'}'\n")
    package_id = create_package(site, source)
    home = small_disk / "client"
    client_id = register_client(site, home)
    assert _run_agent(home).returncode == 0  # the reserve is made on the first run
    deploy_to(site, package_id, [client_id], "Lab")
    with open(small_disk / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:  # another program fills the disk
            filler.write(b"\0" * 4096)

    result = _run_agent(home)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    ids = [m["message_id"] for m in messages(site, client=client_id)]
    assert 10050 in ids and 10051 in ids, ids
    assert _leftovers(home) == []
    assert list((home / "spool").glob("*.json")) == []  # delivered, so deleted


def test_registering_over_plain_http_to_another_host_warns(tmp_path: Path) -> None:
    """0.0.0.0 is not a loopback address (it refuses at once here): the warning comes first."""
    result = run_qm(
        "client",
        "register",
        "--home",
        str(tmp_path / "c"),
        "--site",
        "http://0.0.0.0:9",
        check=False,
        timeout=120,
    )
    assert "warning: http://0.0.0.0:9 is plain http" in " ".join(result.stderr.split())
    local = run_qm(
        "client",
        "register",
        "--home",
        str(tmp_path / "d"),
        "--site",
        "http://127.0.0.1:9",
        check=False,
    )
    assert "warning" not in local.stderr and local.code != 0
    assert "plain http" in run_qm("client", "register", "--help").stdout
