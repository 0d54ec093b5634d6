"""Run as user:NAME: a real local account, created for the test and removed afterwards.

The program writes what it is (uid, groups, HOME, environment) into that account's home
and tries to change the agent's files; the agent runs as root, so any success there would
be the account writing where only the agent may.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.app_world import Apps
from tests.client.conftest import ClientWorld, deployment_entry
from tests.client.servers import StoreServer


@pytest.fixture
def account() -> Iterator[pwd.struct_passwd]:
    assert os.geteuid() == 0, "running as another account needs the tests to run as root"
    name = f"qm-test-{secrets.token_hex(4)}"
    home = Path(tempfile.mkdtemp(prefix="qm-test-home-")) / name
    home.parent.chmod(0o755)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
        check=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(home.parent, ignore_errors=True)


@pytest.fixture
def open_world() -> Iterator[ClientWorld]:
    """A client home any account can walk into (0755), so only file modes protect it."""
    root = Path(tempfile.mkdtemp(prefix="qm-test-client-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield ClientWorld(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _probe(home: Path) -> str:
    client = home
    return (
        'id -u > "$HOME/uid"; id -G > "$HOME/groups"; env > "$HOME/env"; '
        f'if echo x >> {client}/state.json 2>/dev/null; then echo state >> "$HOME/wrote"; fi; '
        f'if touch {client}/logs/evil 2>/dev/null; then echo logs >> "$HOME/wrote"; fi; '
        'touch ./mine && echo ok > "$HOME/cwd-writable"'
    )


def test_an_application_runs_as_the_named_account_and_cannot_touch_the_agent(
    open_world: ClientWorld,
    dp: StoreServer,
    account: pwd.struct_passwd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QM_TEST_AGENT_SECRET", "not for programs")
    home = Path(account.pw_dir)
    apps = Apps(open_world, dp)
    app = apps.app(
        _probe(open_world.home.root), [f"file:{home}/uid"], run_as=f"user:{account.pw_name}"
    )
    apps.publish(apps.deployment(app))
    open_world.run()
    open_world.run()  # state.json exists now: a second chance to write it
    assert open_world.site.messages(1000), open_world.site.ids()
    assert (home / "uid").read_text().strip() == str(account.pw_uid)
    groups = {int(g) for g in (home / "groups").read_text().split()}
    assert account.pw_gid in groups and 0 not in groups
    env = (home / "env").read_text()
    assert f"HOME={home}" in env and f"USER={account.pw_name}" in env
    assert "QM_TEST_AGENT_SECRET" not in env
    assert not (home / "wrote").exists(), (home / "wrote").read_text()
    assert not (open_world.home.logs / "evil").exists()
    assert (home / "cwd-writable").exists()  # its own private copy of the package
    assert b"x\n" not in open_world.home.state_path.read_bytes()[-2:]


def test_a_programs_run_context_user_name_is_honoured_too(
    open_world: ClientWorld, dp: StoreServer, account: pwd.struct_passwd
) -> None:
    home = Path(account.pw_dir)
    open_world.deploy(
        dp, command=_probe(open_world.home.root), run_context=f"user:{account.pw_name}"
    )
    open_world.run()
    assert open_world.site.messages(10008), open_world.site.ids()
    assert (home / "uid").read_text().strip() == str(account.pw_uid)


def test_an_unknown_account_or_a_bare_user_context_is_refused_before_running(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    world.deploy(dp, command=f"touch {ran}", run_context="user:qm-test-nobody-here")
    world.run()
    (refused,) = world.site.messages(10007)
    assert "no local account 'qm-test-nobody-here'" in refused["insertion_strings"][3]
    world.publish(
        deployment_entry(
            world.package({"a": b"a"}),
            deployment_id="QM120001",
            command=f"touch {ran}",
            run_context="user",
        )
    )
    world.site.manifests.update({})
    assert not ran.exists()
