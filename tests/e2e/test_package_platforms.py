"""A folder as Linux trees are (names differing only by case, perl's `::` man pages, links
inside the tree) becomes a linux package that a client lays out byte for byte and link for
link; the same folder as a windows package is refused with every offender named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer
from tests.e2e.scenario import deploy_to, register_client, run_client, wait_installed
from tests.integrity.test_package_platforms import debian_doc_tree, linux_tree

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def tree(root: Path) -> dict[str, tuple[str, str | bytes, int]]:
    """Every entry under root: a link's target, or a file's bytes and mode."""
    found: dict[str, tuple[str, str | bytes, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path), 0)
            elif path.is_file():
                found[rel] = ("file", path.read_bytes(), path.stat().st_mode & 0o777)
    return found


def test_a_linux_tree_installs_identical_and_windows_refuses_it(
    site: SiteServer, tmp_path: Path
) -> None:
    source = linux_tree(tmp_path / "src")
    copy = tmp_path / "installed"
    (source / "install.sh").write_text(f"set -e\nmkdir -p '{copy}'\ncp -a . '{copy}/'\n")

    refused = site.qm(
        "package",
        "create",
        "--name",
        "Docs",
        "--source",
        str(source),
        "--platform",
        "windows",
        "--program",
        "Install=sh install.sh",
        check=False,
    )
    assert refused.code == 1
    said = refused.stderr
    assert "has 6 entries a package for platform 'windows' cannot hold:" in " ".join(said.split())
    for rel, rule in [
        ("libffi-dev/html/index.html", "differ only by letter case"),
        ("perl/a:b", "contains ':', a character invalid on Windows"),
        ("perl/man3/File::Spec.3pm", "contains ':', a character invalid on Windows"),
        ("perl/changelog.gz", "is a symbolic link"),
        ("perl/docs", "is a symbolic link"),
        ("perl/chain", "is a symbolic link"),
    ]:
        line = next((x for x in said.splitlines() if x.startswith(f"  '{rel}' ")), "")
        assert rule in line, (rel, said)
    assert "is absolute" not in said
    assert site.qm("package", "list", "--json").json()["packages"] == []

    package_id = site.qm(
        "package",
        "create",
        "--name",
        "Docs",
        "--source",
        str(source),
        "--platform",
        "linux",
        "--program",
        "Install=sh install.sh",
    ).stdout.strip()
    wait_installed(site, package_id)
    shown = site.qm("package", "show", package_id, "--json").json()
    assert shown["platform"] == "linux"
    client = tmp_path / "client"
    deployment_id = deploy_to(site, package_id, [register_client(site, client)], "Lab")
    run_client(client)
    status = site.qm("deploy", "status", deployment_id, "--json").json()
    assert status["counts"]["succeeded"] == 1, status
    assert tree(copy) == tree(source)
    assert (copy / "perl" / "docs" / "Index.html").read_text() == "<h1>Index</h1>\n"
    assert os.readlink(copy / "perl" / "chain") == "changelog.gz"


def test_links_out_of_the_folder_are_left_out_on_request_and_the_choice_is_kept(
    site: SiteServer, tmp_path: Path
) -> None:
    """/usr/share/doc as it is holds links to ../../javascript, common-licenses and /etc: they
    refuse the folder, or with --outside-links skip are left out, each named, and the rest
    installs identical; the package keeps the choice for its updates."""
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the package\n")
    source = debian_doc_tree(tmp_path / "src", outside)
    copy = tmp_path / "installed"
    (source / "install.sh").write_text(f"set -e\nmkdir -p '{copy}'\ncp -a . '{copy}/'\n")
    create = ["package", "create", "--name", "Docs", "--source", str(source)]
    create += ["--platform", "linux", "--program", "Install=sh install.sh"]

    refused = site.qm(*create, check=False)
    assert refused.code == 1
    said = " ".join(refused.stderr.split())
    assert "has 3 entries a package for platform 'linux' cannot hold" in said
    assert "--outside-links skip" in said

    made = site.qm(*create, "--outside-links", "skip")
    package_id = made.stdout.strip()
    assert "left out 3 links to what is not in the package" in made.stderr
    assert "  locale.alias -> " + str(outside) in made.stderr
    wait_installed(site, package_id)
    assert site.qm("package", "show", package_id, "--json").json()["outside_links"] == "skip"

    client = tmp_path / "client"
    deployment_id = deploy_to(site, package_id, [register_client(site, client)], "Lab")
    run_client(client)
    status = site.qm("deploy", "status", deployment_id, "--json").json()
    assert status["counts"]["succeeded"] == 1, status
    left_out = {"locale.alias", "python3/_static/jquery.js", "git/contrib/COPYING"}
    assert tree(copy) == {k: v for k, v in tree(source).items() if k not in left_out}

    (source / "perl" / "more").symlink_to("../../../elsewhere")
    unchanged = site.qm("package", "update", package_id)  # a left-out link changes nothing
    assert unchanged.stdout.strip() == "1" and "left out 4 links" in unchanged.stderr
    (source / "perl" / "new.txt").write_text("new\n")
    updated = site.qm("package", "update", package_id)
    assert updated.stdout.strip() == "2"
    assert "left out 4 links" in updated.stderr
    refuse_again = site.qm(
        "package", "update", package_id, "--outside-links", "refuse", check=False
    )
    assert refuse_again.code == 1 and "'perl/more' is a symbolic link" in refuse_again.stderr
    bad = site.qm("package", "update", package_id, "--outside-links", "follow", check=False)
    assert bad.code != 0 and "outside-links choice 'follow' is not one of" in bad.stderr
