"""The hash-chained trust log: `qm audit verify` (database and copy) and clients that track
the head both notice a removed or altered entry.

An alteration in place breaks the chain (`qm audit verify` names the entry). Whoever also
rewrites every later hash gets a consistent chain, but not the one an earlier copy or a
client saw: `qm audit verify --head` and the client (10081) refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from quartermaster.core.canonical import canonical_json
from quartermaster.core.log_chain import GENESIS, entry_hash
from quartermaster.site.context import SiteContext
from quartermaster.site.identity import trust_log
from quartermaster.site.models import Counter, TrustLogEntry
from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    message_ids,
    messages,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def _verify(site: SiteServer, *args: str) -> tuple[int, str]:
    result = run_qm("audit", "verify", *args, check=False)
    return result.code, result.stdout + result.stderr


def _rewrite_without(site: SiteServer, seq: int) -> None:
    """What an attacker with the database does: drop an entry and re-chain the rest."""
    ctx = SiteContext.open(site.home)
    try:
        with ctx.db.session() as session:
            kept = [e for e in trust_log.all_entries(session) if e["seq"] != seq]
            session.execute(delete(TrustLogEntry))
            session.flush()
            prev = GENESIS
            for number, old in enumerate(kept, 1):
                entry = {**old, "seq": number, "prev": prev}
                session.add(
                    TrustLogEntry(
                        seq=number,
                        time=old["time"],
                        kind=old["kind"],
                        subject=old["subject"],
                        details=canonical_json(old["details"]).decode(),
                        prev_hash=prev,
                        entry_hash=entry_hash(entry),
                    )
                )
                prev = entry_hash(entry)
            session.execute(
                update(Counter).where(Counter.name == trust_log.COUNTER).values(value=len(kept))
            )
    finally:
        ctx.close()


def _alter(site: SiteServer, seq: int, details: str) -> str:
    ctx = SiteContext.open(site.home)
    try:
        with ctx.db.session() as session:
            row = session.get(TrustLogEntry, seq)
            assert row is not None
            before, row.details = row.details, details
            return before
    finally:
        ctx.close()


def test_a_removed_or_altered_entry_is_found_by_audit_verify_and_by_a_client(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", marker, "version 1\n")
    package_id = create_package(site, source)
    home = tmp_path / "client"
    client_id = register_client(site, home)
    deploy_to(site, package_id, [client_id], "Lab", "Install", "--rerun", "always")
    run_client(home)
    seen = json.loads((home / "client.json").read_text())
    assert seen["log_seq"] >= 3  # package, publish, deployment

    code, text = _verify(site, "--home", str(site.home))
    assert code == 0 and f"{seen['log_seq']} entries" in text
    copy = tmp_path / "copy.json"
    run_qm("audit", "export", "--out", str(copy), env=site.env)  # over the API
    entries = json.loads(copy.read_text())["entries"]
    assert [e["kind"] for e in entries][:2] == ["package.create", "publish"]
    assert _verify(site, "--copy", str(copy))[0] == 0
    head = f"{entries[-1]['seq']}:{entries[-1]['hash']}"

    # a copy with an entry removed, and the database with an entry altered in place
    holed = tmp_path / "holed.json"
    holed.write_text(json.dumps({"entries": [e for e in entries if e["seq"] != 2]}))
    code, text = _verify(site, "--copy", str(holed))
    assert code == 3 and "log entry 2 is missing" in text
    original = _alter(site, 1, '{"programs":[]}')
    code, text = _verify(site, "--home", str(site.home))
    assert code == 3 and "log entry 1 does not match its recorded hash" in text
    _alter(site, 1, original)
    assert _verify(site, "--home", str(site.home))[0] == 0

    # the attacker removes the deployment's entry and re-chains: consistent, but not the
    # log that the copy and the client saw
    _rewrite_without(site, seen["log_seq"])
    assert _verify(site, "--home", str(site.home))[0] == 0
    code, text = _verify(site, "--home", str(site.home), "--head", head)
    assert code == 3 and "no longer holds entry" in text
    (source / "payload.txt").write_text("version 2\n")
    site.qm("package", "update", package_id)  # a new entry and a new policy
    wait_installed(site, package_id, version=2)
    run_client(home)
    assert 10081 in message_ids(site, client=client_id)
    refusal = [m for m in messages(site, client=client_id) if m["message_id"] == 10081][-1]
    assert f"log entry {seen['log_seq']} differs" in refusal["insertion_strings"][0]
    assert marker.read_text() == "version 1\n"  # the forked policy was not acted on
    after = json.loads((home / "client.json").read_text())
    assert (after["log_seq"], after["log_hash"]) == (seen["log_seq"], seen["log_hash"])
