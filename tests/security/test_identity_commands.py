"""The `qm` commands of identity and access against a real `qm site serve`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.processes import QM, SiteServer, run_qm


def _qm_with_input(site: SiteServer, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **site.env},
        timeout=120,
        check=False,
    )


def test_accounts_tokens_and_audit_from_the_command_line(site: SiteServer) -> None:
    created = _qm_with_input(
        site,
        "a long enough pass phrase\n",
        "account",
        "create",
        "alice",
        "--role",
        "operator",
        "--password-stdin",
    )
    assert created.returncode == 0, created.stderr

    issued = site.qm("token", "create", "--account", "alice", "--expires", "+30d")

    token = issued.stdout.strip()
    assert issued.stdout == token + "\n" and token.startswith("qma_")
    accounts = site.qm("account", "list", "--json").json()["accounts"]
    assert {(a["name"], a["role"], a["has_password"]) for a in accounts} == {
        ("admin", "admin", False),
        ("alice", "operator", True),
    }
    tokens = site.qm("token", "list", "--account", "alice", "--json").json()["tokens"]
    assert [(t["account"], t["state"]) for t in tokens] == [("alice", "active")]
    assert tokens[0]["expires"] is not None

    alice = {"QM_SITE": site.url, "QM_TOKEN": token}
    run_qm("collection", "create", "Lab", env=alice)
    refused = run_qm("account", "list", env=alice, check=False)
    assert refused.code == 1 and "may not list accounts" in " ".join(refused.stderr.split())
    whoami = run_qm("account", "whoami", "--json", env=alice).json()
    assert (whoami["account"], whoami["role"]) == ("alice", "operator")

    entries = site.qm("audit", "--json", "--account", "alice", "--since", "1h").json()["entries"]
    assert [(e["action"], e["object"], e["outcome"]) for e in entries] == [
        ("collection.create", "Lab", "ok")
    ]  # reads, even refused ones, are not changes
    assert "collection.create" in site.qm("audit").stdout

    site.qm("token", "revoke", str(tokens[0]["id"]))
    after = run_qm("collection", "list", env=alice, check=False)
    assert after.code == 1 and "revoked" in after.stderr
    site.qm("account", "disable", "alice")
    assert site.qm("account", "list", "--json").json()["accounts"][1]["disabled"] is True


def test_client_approval_and_dp_retirement_from_the_command_line(
    site: SiteServer, tmp_path: Path
) -> None:
    assert "require_approval: false" in site.qm("site", "settings").stdout
    site.qm("site", "settings", "--require-approval", "true", "--content-grace", "600")
    settings = site.qm("site", "settings", "--json").json()
    assert settings["require_approval"] is True and settings["content_grace_seconds"] == 600

    client_id = run_qm(
        "client", "register", "--home", str(tmp_path / "client"), "--site", site.url
    ).stdout.strip()

    pending = site.qm("client", "list", "--approval", "pending", "--json").json()["clients"]
    assert [c["client_id"] for c in pending] == [client_id]
    site.qm("client", "approve", client_id)
    site.qm("client", "rekey", client_id)
    listed = site.qm("client", "list", "--json").json()["clients"]
    assert [(c["approval"], c["rekey_required"]) for c in listed] == [("approved", True)]
    site.qm("client", "block", client_id)
    assert site.qm("client", "list", "--approval", "blocked", "--json").json()["clients"]

    first = site.qm("dp", "add", "--name", "branch", "--url", "http://127.0.0.1:9").stdout.strip()
    site.qm("dp", "retire", "branch")
    dps = {d["name"]: d["state"] for d in site.qm("dp", "list", "--json").json()["dps"]}
    assert dps["branch"] == "retired"
    second = site.qm("dp", "reenroll", "branch").stdout.strip()
    assert second.startswith("qme_") and second != first
    actions = [e["action"] for e in site.qm("audit", "--json").json()["entries"]]
    for action in (
        "settings.update",
        "client.approve",
        "client.rekey",
        "client.block",
        "dp.create",
        "dp.retire",
        "dp.reenroll",
    ):
        assert action in actions
    assert json.dumps(site.qm("audit", "--json").json()).count(second) == 0
