"""Packages for a target platform: Windows file-name rules only where Windows clients may get
the package, symbolic links inside the package kept as links on Linux and macOS, and every
offender of a refused source folder listed at once with the rule it breaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput, SourceError
from quartermaster.core.manifest import FileEntry, LinkEntry, Manifest
from quartermaster.site.content_library import MAX_LISTED, ContentLibrary, walk_source_and_links

SHA = "ab" * 32


def walk_source(root: Path, platform: str) -> object:
    """The snapshot's walk over the folder, opened as the snapshot opens it."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return walk_source_and_links(fd, root, platform)
    finally:
        os.close(fd)


def linux_tree(root: Path) -> Path:
    """What /usr/share/doc holds: names differing only by case, perl's `::` man pages, and
    relative links inside the tree (to a file, to a folder, and a chain)."""
    (root / "libffi-dev" / "html").mkdir(parents=True)
    (root / "libffi-dev" / "html" / "Index.html").write_text("<h1>Index</h1>\n")
    (root / "libffi-dev" / "html" / "index.html").write_text("<h1>index</h1>\n")
    (root / "perl" / "man3").mkdir(parents=True)
    (root / "perl" / "man3" / "File::Spec.3pm").write_text(".TH File::Spec 3pm\n")
    (root / "perl" / "a:b").write_text("colon\n")
    (root / "perl" / "changelog.gz").symlink_to("man3/File::Spec.3pm")
    (root / "perl" / "docs").symlink_to("../libffi-dev/html")
    (root / "perl" / "chain").symlink_to("changelog.gz")
    return root


def test_a_windows_package_lists_every_offender_with_its_rule(tmp_path: Path) -> None:
    root = linux_tree(tmp_path / "src")
    (root / "CON.txt").write_text("reserved\n")
    (root / "trailing.").write_text("dot\n")
    with pytest.raises(SourceError) as refused:
        walk_source(root, "windows")
    lines = refused.value.message.splitlines()
    assert lines[0] == (
        f"source folder {root} has 8 entries a package for platform 'windows' cannot hold:"
    )
    assert sorted(lines[1:]) == sorted(
        [
            "  'CON.txt' uses the name 'CON.txt', reserved on Windows",
            "  'libffi-dev/html/index.html' and 'libffi-dev/html/Index.html' differ only by "
            "letter case (Windows and macOS)",
            "  'perl/a:b' contains ':', a character invalid on Windows",
            "  'perl/chain' is a symbolic link: a package for platform 'windows' cannot hold "
            "links (Windows clients)",
            "  'perl/changelog.gz' is a symbolic link: a package for platform 'windows' "
            "cannot hold links (Windows clients)",
            "  'perl/docs' is a symbolic link: a package for platform 'windows' cannot hold "
            "links (Windows clients)",
            "  'perl/man3/File::Spec.3pm' contains ':', a character invalid on Windows",
            "  'trailing.' has a component ending in a space or dot, invalid on Windows",
        ]
    )
    assert "is absolute" not in refused.value.message
    assert "--platform linux" in refused.value.hint


def test_a_linux_package_keeps_names_and_links(tmp_path: Path) -> None:
    root = linux_tree(tmp_path / "src")
    snapshot = ContentLibrary(tmp_path / "lib").snapshot(root, platform="linux")
    assert [f.path for f in snapshot.files] == [
        "libffi-dev/html/Index.html",
        "libffi-dev/html/index.html",
        "perl/a:b",
        "perl/man3/File::Spec.3pm",
    ]
    assert snapshot.links == [
        LinkEntry("perl/chain", "changelog.gz"),
        LinkEntry("perl/changelog.gz", "man3/File::Spec.3pm"),
        LinkEntry("perl/docs", "../libffi-dev/html"),
    ]
    manifest = Manifest("QM1", "QM100001", 1, tuple(snapshot.files), "linux", tuple(snapshot.links))
    again = Manifest.from_dict(manifest.to_dict())
    assert again == manifest and again.package_hash() == manifest.package_hash()
    assert manifest.to_dict()["format"] == 2


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        (
            "/etc/passwd",
            "is a symbolic link to the absolute path '/etc/passwd': links must be relative",
        ),
        ("../../outside.txt", "is a symbolic link to '../../outside.txt', outside the package"),
        ("../missing", "is a symbolic link to '../missing', which is not in the package"),
        (
            "../docs/index.html",
            "is a symbolic link to '../docs/index.html', through the link or file 'docs'",
        ),
        ("x/../../keep.txt", "is a symbolic link to 'x/../../keep.txt', with '..' after a name"),
    ],
)
def test_links_never_point_outside_the_package(tmp_path: Path, target: str, rule: str) -> None:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "keep.txt").write_text("kept\n")
    (root / "html").mkdir()
    (root / "html" / "index.html").write_text("x\n")
    (root / "docs").symlink_to("html")
    (tmp_path / "outside.txt").write_text("secret\n")
    (root / "sub" / "link").symlink_to(target)
    with pytest.raises(SourceError) as refused:
        ContentLibrary(tmp_path / "lib").snapshot(root, platform="linux")
    assert refused.value.message.splitlines()[1:] == [f"  'sub/link' {rule}"]
    assert not (tmp_path / "lib" / "content").exists()  # nothing stored, nothing followed


def test_a_signed_manifest_with_an_escaping_link_is_refused() -> None:
    files = (FileEntry("a.txt", 1, 0o644, SHA),)
    data = Manifest("QM1", "QM100001", 1, files, "linux", (LinkEntry("b", "a.txt"),)).to_dict()
    data["links"] = [{"path": "b", "target": "../../etc/passwd"}]
    with pytest.raises(InvalidInput, match="outside the package"):
        Manifest.from_dict(data)
    data["platform"] = "windows"
    data["links"] = [{"path": "b", "target": "a.txt"}]
    with pytest.raises(InvalidInput, match="cannot hold links"):
        Manifest.from_dict(data)


def test_manifests_without_platform_or_links_keep_format_1_and_their_hash() -> None:
    """Every manifest signed before platforms existed verifies as it did: same bytes."""
    files = (FileEntry("install.sh", 5, 0o644, SHA),)
    manifest = Manifest("QM1", "QM100001", 1, files)
    assert canonical_json(manifest.to_dict()) == canonical_json(
        {
            "format": 1,
            "site_code": "QM1",
            "package_id": "QM100001",
            "source_version": 1,
            "files": [{"path": "install.sh", "size": 5, "mode": 0o644, "sha256": SHA}],
        }
    )
    assert Manifest.from_dict(manifest.to_dict()).platform == "any"
    with pytest.raises(InvalidInput, match="format 1 manifest has no platform or links"):
        Manifest.from_dict({**manifest.to_dict(), "links": []})


def test_a_long_list_of_offenders_is_cut_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(MAX_LISTED + 13):
        (root / f"Pod::Name{i:03}.3pm").write_text("x\n")
    with pytest.raises(SourceError) as refused:
        walk_source(root, "any")
    lines = refused.value.message.splitlines()
    assert len(lines) == 1 + MAX_LISTED + 1
    assert lines[-1] == "  ... and 13 more"
    assert f"has {MAX_LISTED + 13} entries" in lines[0]


def test_the_platform_is_checked(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(InvalidInput, match="platform 'beos' is not one of"):
        ContentLibrary(tmp_path / "lib").snapshot(tmp_path / "src", platform="beos")
    assert os.listdir(tmp_path) == ["src"]
