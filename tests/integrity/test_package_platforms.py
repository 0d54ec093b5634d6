"""Packages for a target platform: Windows file-name rules only where Windows clients may get
the package, symbolic links inside the package kept as links on Linux and macOS, and every
offender of a refused source folder listed at once with the rule it breaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput, SourceError
from quartermaster.core.manifest import FileEntry, LinkEntry, Manifest, link_check
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
            "is a symbolic link to '/etc/passwd', an absolute path: links must be relative",
        ),
        ("../../outside.txt", "is a symbolic link to '../../outside.txt', outside the package"),
        ("../missing", "is a symbolic link to '../missing', which is not in the package"),
        (
            "../keep.txt/index.html",
            "is a symbolic link to '../keep.txt/index.html', through the file 'keep.txt'",
        ),
        ("../loop/x", "is a symbolic link to '../loop/x', through more than 40 links (a loop?)"),
        ("../docs/../../x", "is a symbolic link to '../docs/../../x', with '..' after a name"),
        ("../up/x", "is a symbolic link to '../up/x', outside the package"),
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
    (root / "loop").symlink_to("loop")
    (root / "up").symlink_to("..")
    (tmp_path / "outside.txt").write_text("secret\n")
    (root / "sub" / "link").symlink_to(target)
    with pytest.raises(SourceError) as refused:
        ContentLibrary(tmp_path / "lib").snapshot(root, platform="linux")
    lines = refused.value.message.splitlines()[1:]
    assert f"  'sub/link' {rule}" in lines
    assert set(lines) <= {
        f"  'sub/link' {rule}",
        "  'up' is a symbolic link to '..', outside the package",
    }
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


def debian_doc_tree(root: Path, outside: Path) -> Path:
    """/usr/share/doc as Debian ships it: links inside the tree, and links that leave it
    (to ../../javascript/..., to common-licenses, and the absolute /etc/locale.alias)."""
    linux_tree(root)
    (root / "python3" / "_static").mkdir(parents=True)
    (root / "python3" / "_static" / "jquery.js").symlink_to("../../../javascript/jquery.js")
    (root / "git" / "contrib").mkdir(parents=True)
    (root / "git" / "contrib" / "COPYING").symlink_to("../../../common-licenses/GPL-2")
    (root / "locale.alias").symlink_to(str(outside))
    return root


def test_links_out_of_the_folder_are_refused_all_at_once_with_the_way_out(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the package\n")
    root = debian_doc_tree(tmp_path / "src", outside)
    with pytest.raises(SourceError) as refused:
        walk_source(root, "linux")
    assert len(refused.value.message.splitlines()) == 1 + 3
    assert "--outside-links skip" in refused.value.hint


def test_skipping_links_out_of_the_folder_keeps_the_rest_and_names_what_was_left_out(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the package\n")
    root = debian_doc_tree(tmp_path / "src", outside)
    library = ContentLibrary(tmp_path / "lib")
    snapshot = library.snapshot(root, platform="linux", outside_links="skip")
    assert snapshot.skipped_links == [
        LinkEntry("git/contrib/COPYING", "../../../common-licenses/GPL-2"),
        LinkEntry("locale.alias", str(outside)),
        LinkEntry("python3/_static/jquery.js", "../../../javascript/jquery.js"),
    ]
    assert [link.path for link in snapshot.links] == [
        "perl/chain",
        "perl/changelog.gz",
        "perl/docs",
    ]
    stored = {p.read_bytes() for p in (tmp_path / "lib" / "content").rglob("*") if p.is_file()}
    assert b"not for the package\n" not in stored  # a skipped link is never followed


def test_skip_leaves_out_only_links_to_what_is_not_in_the_package(tmp_path: Path) -> None:
    """Links to nothing in the package go too, and so does a link to a link left out; a link
    that is malformed (a '..' after a name) is still refused: skipping is not a blanket."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "keep.txt").write_text("kept\n")
    (root / "dangling").symlink_to("missing.txt")
    (root / "to-dangling").symlink_to("dangling")
    (root / "javascript").symlink_to("../../javascript")
    library = ContentLibrary(tmp_path / "lib")
    snapshot = library.snapshot(root, platform="linux", outside_links="skip")
    assert [link.path for link in snapshot.skipped_links] == [
        "dangling",
        "javascript",
        "to-dangling",
    ]
    assert [f.path for f in snapshot.files] == ["keep.txt"] and snapshot.links == []
    (root / "sub" / "bent").symlink_to("x/../../keep.txt")
    with pytest.raises(SourceError, match="'sub/bent' is a symbolic link to 'x/../../keep.txt'"):
        library.snapshot(root, platform="linux", outside_links="skip")
    with pytest.raises(InvalidInput, match="outside-links choice 'follow' is not one of"):
        library.snapshot(root, platform="linux", outside_links="follow")


@pytest.mark.parametrize(
    ("path", "target", "outside"),
    [
        ("a/b", "../c", False),
        ("a/b", "../../c", True),
        ("b", "../c", True),
        ("a/b", "/etc/passwd", True),
        ("a/b/c", "x/../../../..", False),  # malformed before it is outside
        ("a/b/c", "../../../..", True),
        ("a/b/c", "./../d", False),
        ("a/b", "nothing", True),
        ("a/b", "", False),
    ],
)
def test_which_links_point_to_what_is_not_in_the_package(
    path: str, target: str, outside: bool
) -> None:
    names = frozenset({"a/b", "a/c", "c", "a/b/c", "a/d"})
    assert link_check(path, target, "linux", names)[1] is outside


def test_a_link_through_a_link_of_the_package_is_kept(tmp_path: Path) -> None:
    """Debian's doc/cpp/README.Bugs -> ../gcc-12/README.Bugs where doc/gcc-12 -> gcc-12-base:
    resolved through the package's own link, it stays inside, so it is kept."""
    root = tmp_path / "src"
    (root / "gcc-12-base").mkdir(parents=True)
    (root / "gcc-12-base" / "README.Bugs").write_text("bugs\n")
    (root / "gcc-12").symlink_to("gcc-12-base")
    (root / "cpp").mkdir()
    (root / "cpp" / "README.Bugs").symlink_to("../gcc-12/README.Bugs")
    (root / "cpp" / "deep").symlink_to("../gcc-12/../gcc-12-base")  # '..' after a name: no
    with pytest.raises(SourceError) as refused:
        walk_source(root, "linux")
    assert refused.value.message.splitlines()[1:] == [
        "  'cpp/deep' is a symbolic link to '../gcc-12/../gcc-12-base', with '..' after a name"
    ]
    (root / "cpp" / "deep").unlink()
    snapshot = ContentLibrary(tmp_path / "lib").snapshot(root, platform="linux")
    assert [link.path for link in snapshot.links] == ["cpp/README.Bugs", "gcc-12"]
    manifest = Manifest("QM1", "QM100001", 1, tuple(snapshot.files), "linux", tuple(snapshot.links))
    assert Manifest.from_dict(manifest.to_dict()) == manifest  # a reader agrees


def test_a_reader_refuses_a_link_through_a_link_that_leaves() -> None:
    files = (FileEntry("a.txt", 1, 0o644, SHA),)
    links = (LinkEntry("out", "../.."), LinkEntry("b", "out/etc/passwd"))
    data = Manifest("QM1", "QM100001", 1, files, "linux", (LinkEntry("c", "a.txt"),)).to_dict()
    data["links"] = [link.to_dict() for link in sorted(links, key=lambda x: x.path)]
    with pytest.raises(InvalidInput, match="outside the package"):
        Manifest.from_dict(data)
