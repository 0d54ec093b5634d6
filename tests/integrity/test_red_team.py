"""Red team: the attacker holds the site home (database, online key, admin token) and an
administrator account, and still gets no client to run anything.

What the attacker does, each through the real site or straight into its database and
key folder, and the client check that stops it (each a numbered status message):

    publishes a package and deploys it to every collection     10082 approval threshold
    deploys the approved release outside its approved scope    10083 approved scope
    adds a program to the approved package and deploys it      10084 approved commands
    replays old approvals onto a new version, forges others    10082 approval threshold
    forges a key list (a root adding their own approver)       10080 root chain
    approves with their own key against that forged root       10082 approval threshold

Meanwhile the legitimate deployment keeps working: a new version the real approvers sign
installs on the lab client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quartermaster.core.canonical import canonical_json
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.signing import SigningKey, sign_envelope
from quartermaster.core.trust_roles import Root, root_payload
from quartermaster.site.context import SiteContext
from quartermaster.site.models import ReleaseApproval
from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    messages,
    register_client,
    run_client,
    wait_installed,
)
from tests.integrity.test_release_approval import make_approvers

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]

REFUSALS = {10082, 10083, 10084}


def _replay_approvals(site: SiteServer, onto_hash: str, onto_version: int) -> None:
    """Copy every stored approval onto another package hash: once as it is (the statement
    still names the old hash), once with the statement edited (the signature no longer fits)."""
    ctx = SiteContext.open(site.home)
    try:
        with ctx.db.session() as session:
            for row in list(session.query(ReleaseApproval).filter(ReleaseApproval.account != "")):
                statement = json.loads(row.statement)
                edited = {**statement, "package_hash": onto_hash, "source_version": onto_version}
                for text in (row.statement, canonical_json(edited).decode()):
                    session.add(
                        ReleaseApproval(
                            package_hash=onto_hash,
                            package_id=row.package_id,
                            source_version=onto_version,
                            statement=text,
                            statement_digest=sha256_bytes((text + onto_hash).encode()),
                            keyid=row.keyid,
                            signature=row.signature,
                        )
                    )
    finally:
        ctx.close()


def _insert_approval(site: SiteServer, statement: dict[str, object], key: SigningKey) -> None:
    text = canonical_json(statement).decode()
    ctx = SiteContext.open(site.home)
    try:
        with ctx.db.session() as session:
            session.add(
                ReleaseApproval(
                    package_hash=str(statement["package_hash"]),
                    package_id=str(statement["package_id"]),
                    source_version=1,
                    statement=text,
                    statement_digest=sha256_bytes(text.encode()),
                    keyid=key.keyid,
                    signature=key.sign(text.encode()),
                )
            )
    finally:
        ctx.close()


def _forge_root(site: SiteServer, attacker: SigningKey) -> None:
    """A root version 2 in the site's key folder, adding the attacker as the only approver,
    signed by keys of the attacker's making."""
    current = Root.parse(json.loads((site.home / "keys" / "root" / "1.json").read_text()))
    fakes = [SigningKey.generate() for _ in range(3)]
    payload = root_payload(
        current.site_code,
        2,
        [k.public for k in fakes],
        2,
        list(current.online_keys.values()),
        [attacker.public],
        1,
    )
    (site.home / "keys" / "root" / "2.json").write_text(json.dumps(sign_envelope(payload, fakes)))


def _version_hash(site: SiteServer, package_id: str, version: int) -> str:
    versions = site.qm("package", "show", package_id, "--json").json()["versions"]
    return str(next(v["package_hash"] for v in versions if v["source_version"] == version))


def test_an_attacker_with_the_site_home_and_an_admin_account_runs_nothing(
    site: SiteServer, tmp_path: Path
) -> None:
    alice, bob = make_approvers(site, tmp_path / "offline", "alice", "bob")
    legit_marker = tmp_path / "legit" / "payload.txt"
    legit_source = make_source(tmp_path / "legit-src", legit_marker, "legit 1\n")
    legit = create_package(site, legit_source, name="Legit")
    lab_home, office_home = tmp_path / "lab", tmp_path / "office"
    lab = register_client(site, lab_home, "lab-01")
    office = register_client(site, office_home, "office-01")
    deploy_to(site, legit, [lab], "Lab", "Install", "--rerun", "always")
    site.qm("collection", "create", "Office")
    site.qm("collection", "add", "Office", office)
    for key in (alice, bob):
        site.qm(
            "release",
            "approve",
            legit,
            "1",
            "--key",
            str(key),
            "--program",
            "Install",
            "--collection",
            "Lab",
        )
    run_client(lab_home)
    assert legit_marker.read_text() == "legit 1\n"

    # --- the attacker: admin token and site home -----------------------------------------
    evil_marker = tmp_path / "pwned" / "payload.txt"
    evil = create_package(site, make_source(tmp_path / "evil-src", evil_marker, "pwned\n"), "Evil")
    collections = [c["name"] for c in site.qm("collection", "list", "--json").json()["collections"]]
    assert set(collections) >= {"Lab", "Office"}
    attack = [
        site.qm(
            "deploy", "create", "--package", evil, "--program", "Install", "--collection", name
        ).stdout.strip()
        for name in collections
    ]
    attack.append(  # the approved release, outside its approved scope
        site.qm(
            "deploy", "create", "--package", legit, "--program", "Install", "--collection", "Office"
        ).stdout.strip()
    )
    site.qm(
        "program",
        "add",
        legit,
        "--name",
        "Evil",
        "--command",
        f"sh -c 'mkdir -p {evil_marker.parent}; echo pwned > {evil_marker}'",
    )
    attack.append(
        site.qm(
            "deploy", "create", "--package", legit, "--program", "Evil", "--collection", "Lab"
        ).stdout.strip()
    )
    _replay_approvals(site, _version_hash(site, evil, 1), 1)
    attacker = SigningKey.generate()
    _forge_root(site, attacker)
    attacker_file = tmp_path / "attacker.key"
    attacker.save(attacker_file)
    refused = site.qm(
        "release", "approve", evil, "1", "--key", str(attacker_file),
        "--program", "Install", "--any-collection",
        check=False,
    )  # fmt: skip
    assert refused.code != 0 and "not an approver key of root version 1" in refused.stderr
    statement = site.api(
        "GET",
        f"/api/v1/packages/{evil}/versions/1/approval-statement?any_collection=true&program=Install",
    )
    _insert_approval(site, statement, attacker)  # straight into the database

    for home in (lab_home, office_home):
        run_client(home)
        run_client(home)
    assert not evil_marker.exists()
    assert legit_marker.read_text() == "legit 1\n"
    for client, home, wanted in (
        (lab, lab_home, {10082, 10084, 10080}),
        (office, office_home, {10082, 10083, 10080}),
    ):
        found = messages(site, client=client)
        ids = {m["message_id"] for m in found}
        assert wanted <= ids, (client, sorted(ids))
        for m in found:
            if m.get("deployment_id") in attack:
                assert m["message_id"] in REFUSALS, m  # refused before anything downloaded
        assert json.loads((home / "client.json").read_text())["root"]["signed"]["version"] == 1
    texts = {m["message_id"]: m["text"] for c in (lab, office) for m in messages(site, client=c)}
    assert "approval threshold check" in texts[10082]
    assert "approved scope check" in texts[10083]
    assert "approved commands check" in texts[10084]
    assert "root chain check" in texts[10080]

    # the attacker publishes a new version of the approved package: old approvals do not count
    (legit_source / "payload.txt").write_text("pwned through legit\n")
    site.qm("package", "update", legit)
    wait_installed(site, legit, version=2)
    _replay_approvals(site, _version_hash(site, legit, 2), 2)
    run_client(lab_home)
    assert legit_marker.read_text() == "legit 1\n"

    # --- legitimate work goes on: the real approvers sign what they mean to ship ----------
    (legit_source / "payload.txt").write_text("legit 3\n")
    site.qm("package", "update", legit)
    wait_installed(site, legit, version=3)
    for key in (alice, bob):
        site.qm(
            "release",
            "approve",
            legit,
            "3",
            "--key",
            str(key),
            "--program",
            "Install",
            "--collection",
            "Lab",
        )
    run_client(lab_home)
    assert legit_marker.read_text() == "legit 3\n"
    evil_program = [
        m for m in messages(site, client=lab) if m.get("deployment_id") == attack[-1]
    ]  # the program the attacker added did not ride along on the new approvals
    assert evil_program[-1]["message_id"] == 10084
    run_client(office_home)
    assert not evil_marker.exists()
    run_qm("audit", "verify", "--home", str(site.home))  # every step of the attack is logged
