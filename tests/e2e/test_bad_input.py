"""Bad input to admin commands: a clear error, a non-zero exit, and nothing written."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import QM, SiteServer, run_qm, start_site
from tests.e2e.scenario import create_package, make_source

pytestmark = pytest.mark.e2e
# The commands that are refused and change nothing (each test checks that) share one site on
# the default engine, on one worker; the others each start their own.
ONE_SITE = pytest.mark.xdist_group("bad-input")


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteServer]:
    server = start_site(tmp_path_factory.mktemp("bad-input"))
    try:
        yield server
    finally:
        server.stop()


def _library_files(site: SiteServer) -> set[str]:
    root = site.home / "library" / "content"
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _package_count(site: SiteServer) -> int:
    return len(site.qm("package", "list", "--json").json()["packages"])


def _assert_refused(site: SiteServer, args: list[str], words: str) -> None:
    before = (_package_count(site), _library_files(site))
    result = site.qm(*args, check=False)
    assert result.code != 0
    assert words in " ".join(result.stderr.lower().split()), result.stderr  # rich wraps lines
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert (_package_count(site), _library_files(site)) == before


@ONE_SITE
def test_unknown_package_id(shared_site: SiteServer) -> None:
    _assert_refused(shared_site, ["package", "show", "QM1FFFFF"], "does not exist")
    _assert_refused(shared_site, ["package", "update", "QM1FFFFF"], "does not exist")
    _assert_refused(shared_site, ["package", "show", "not-an-id"], "not valid")


@ONE_SITE
def test_missing_source_folder(shared_site: SiteServer, tmp_path: Path) -> None:
    _assert_refused(
        shared_site,
        ["package", "create", "--name", "X", "--source", str(tmp_path / "nope")],
        "does not exist",
    )


@ONE_SITE
def test_symlink_in_source(shared_site: SiteServer, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", tmp_path / "out.txt")
    os.symlink("/etc/hostname", source / "zz-link")
    _assert_refused(
        shared_site, ["package", "create", "--name", "X", "--source", str(source)], "symbolic link"
    )


@ONE_SITE
def test_duplicate_program_name(shared_site: SiteServer, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", tmp_path / "out.txt")
    package_id = shared_site.qm(
        "package",
        "create",
        "--name",
        "X",
        "--source",
        str(source),
        "--program",
        "Install=sh install.sh",
    ).stdout.strip()
    result = shared_site.qm(
        "program", "add", package_id, "--name", "Install", "--command", "true", check=False
    )
    assert result.code != 0 and "already has a program" in result.stderr
    programs = shared_site.qm("package", "show", package_id, "--json").json()["programs"]
    assert [p["name"] for p in programs] == ["Install"]
    _assert_refused(
        shared_site,
        [
            "package",
            "create",
            "--name",
            "Y",
            "--source",
            str(source),
            "--program",
            "A=true",
            "--program",
            "A=false",
        ],
        "same name",
    )


@ON_POSTGRESQL
def test_invalid_token(site: SiteServer, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", tmp_path / "out.txt")
    before = _library_files(site)
    result = run_qm(
        "package",
        "create",
        "--name",
        "X",
        "--source",
        str(source),
        env={"QM_SITE": site.url, "QM_TOKEN": "qma_forged"},
        check=False,
    )
    assert result.code != 0 and "token is not valid" in result.stderr
    assert _package_count(site) == 0 and _library_files(site) == before


def test_site_unreachable_is_explained(tmp_path: Path) -> None:
    result = run_qm(
        "package", "list", env={"QM_SITE": "http://127.0.0.1:9", "QM_TOKEN": "x"}, check=False
    )
    assert result.code != 0 and "cannot reach the site server" in result.stderr


@ONE_SITE
def test_token_file_is_read_from_the_current_folder(
    shared_site: SiteServer, tmp_path: Path
) -> None:
    """QM_TOKEN=@FILE reads FILE relative to the current folder; from another folder the
    error names the absolute path it tried and how to give one; --help documents @FILE."""
    env = {**os.environ, "QM_SITE": shared_site.url, "QM_TOKEN": "@site/admin.token"}
    qm = [*QM, "package", "list", "--json"]
    here = subprocess.run(qm, cwd=shared_site.home.parent, env=env, capture_output=True, text=True)
    assert here.returncode == 0, here.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    there = subprocess.run(qm, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert there.returncode == 1
    said = " ".join(there.stderr.split())
    assert (
        f"error: cannot read token file site/admin.token (looked at {elsewhere}/site/admin.token)"
        ": No such file or directory" in said
    ), said
    assert "hint: @FILE is read from the current folder; use an absolute path, e.g. " in said
    assert "QM_TOKEN=@$PWD/site/admin.token" in said
    absolute = {**env, "QM_TOKEN": f"@{shared_site.home}/admin.token"}
    ok = subprocess.run(qm, cwd=elsewhere, env=absolute, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    shown = run_qm("package", "list", "--help").stdout
    assert "@FILE" in shown and "relative to the current folder" in " ".join(shown.split())


@ON_POSTGRESQL
def test_a_second_site_serve_names_the_busy_content_port(site: SiteServer) -> None:
    """The embedded DP's port is taken first: the hint names --content-listen, not --listen."""
    result = run_qm("site", "serve", "--home", str(site.home), check=False, timeout=120)
    assert result.code == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    busy = f"127.0.0.1:{site.port + 1}: the address is already in use"
    assert f"error: cannot listen on {busy}" in said, said
    hint = said.split("hint: ", 1)[1]
    assert hint == "stop the other process or choose another port with --content-listen", hint


@ON_POSTGRESQL
def test_ids_in_lower_case_name_the_same_objects(site: SiteServer, tmp_path: Path) -> None:
    """qm100001 is QM100001 everywhere: commands, API paths, queries and bodies."""
    package_id = create_package(site, make_source(tmp_path / "src", tmp_path / "out.txt"))
    site.qm("collection", "create", "Lab")
    deployment_id = site.qm(
        "deploy",
        "create",
        "--package",
        package_id.lower(),
        "--program",
        "Install",
        "--collection",
        "Lab",
    ).stdout.strip()
    assert deployment_id == "QM120000"
    assert site.qm("package", "show", package_id.lower()).stdout.startswith(f"{package_id} Demo")
    shown = site.qm("deploy", "status", deployment_id.lower(), "--json").json()
    assert (shown["deployment_id"], shown["package_id"]) == (deployment_id, package_id)
    assert site.api("GET", "/api/v1/deployments/qm120000/status")["deployment_id"] == "QM120000"
    site.qm("status", "messages", "--deployment", "qm120000", "--package", package_id.lower())
    app_id = site.qm(
        "app",
        "create",
        "--name",
        "Demo",
        "--package",
        package_id.lower(),
        "--install",
        "Install",
        "--detect",
        f"file:{tmp_path / 'out.txt'}",
    ).stdout.strip()
    assert app_id == "QM140000"
    assert site.qm("app", "show", "qm140000").stdout.startswith("QM140000 Demo")
    app_deployment = site.qm("deploy", "create", "--app", "qm140000", "--collection", "Lab")
    assert app_deployment.stdout.strip() == "QM120001"


@ONE_SITE
@pytest.mark.parametrize(
    ("args", "example"),
    [
        (
            ["deploy", "status", "QM12"],
            "a deployment ID is the site code followed by 5 hex digits, e.g. QM120000",
        ),
        (
            ["app", "show", "QM14"],
            "an application ID is the site code followed by 5 hex digits, e.g. QM140000",
        ),
        (
            ["package", "show", "QM10"],
            "a package ID is the site code followed by 5 hex digits, e.g. QM100001",
        ),
    ],
)
def test_a_bad_id_hint_shows_an_id_of_its_kind(
    shared_site: SiteServer, args: list[str], example: str
) -> None:
    result = shared_site.qm(*args, check=False)
    assert result.code == 1
    assert f"hint: {example}" in " ".join(result.stderr.split()), result.stderr
