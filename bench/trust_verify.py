"""Client CPU to verify a policy whose deployments are all approved, and policy size.

    python bench/trust_verify.py [--deployments 50] [--approvals 2] [--repeats 200]

Builds a signed policy with N package deployments, each of its own package version, each
approved by `--approvals` of three approver keys for its collection, and a root naming
them. Times, in CPU seconds of this process (median of `--repeats`), what the client
does with it before acting (client/policy_agent.py): the online-key signature, parsing,
and the approval checks (client/approval_check.py), once with the approver signatures
already verified at an earlier poll (the steady state: approvals-verified.json) and once
seeing them all for the first time. The baseline is the same policy
without approvals and without a root (what a site without root keys costs). Also reports
the canonical policy size with and without approvals, and the growth per deployment.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from quartermaster.client.approval_check import refusals
from quartermaster.client.timestamps import format_utc
from quartermaster.client.trust import accept_policy
from quartermaster.core.canonical import canonical_json
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.signing import SigningKey, sign_envelope
from quartermaster.core.trust_roles import (
    Root,
    program_digest,
    release_statement,
    root_payload,
)

PROGRAM = {"name": "Install", "command": "sh install.sh"}


def build(count: int, approvals: int) -> tuple[dict[str, Any], dict[str, Any], Root, SigningKey]:
    online = SigningKey.generate()
    roots = [SigningKey.generate() for _ in range(3)]
    approvers = [SigningKey.generate() for _ in range(3)]
    root = Root.parse(
        sign_envelope(
            root_payload(
                "QM1",
                1,
                [k.public for k in roots],
                2,
                [online.public],
                [k.public for k in approvers],
                approvals,
            ),
            roots,
        )
    )
    now = datetime.now(UTC)
    deployments, signed = [], []
    for i in range(count):
        package_id, package_hash = f"QM1{0x10000 + i:05X}", sha256_bytes(b"package %d" % i)
        deployments.append(
            {
                "deployment_id": f"QM1{0x20000 + i:05X}",
                "collection": "Lab",
                "package_id": package_id,
                "package_name": f"Package {i}",
                "source_version": 1,
                "package_hash": package_hash,
                "program": PROGRAM,
                "available": format_utc(now - timedelta(days=1)),
                "deadline": format_utc(now - timedelta(hours=1)),
                "expires": None,
                "rerun": "if-failed",
                "state": "active",
                "override_maintenance": False,
                "maintenance_windows": [],
            }
        )
        statement = release_statement(
            "QM1", package_id, 1, package_hash, {"Install": program_digest(PROGRAM)}, ["Lab"]
        )
        signed.append(sign_envelope(statement, approvers[:approvals]))
    client_id = str(uuid.uuid4())
    base = {
        "type": "policy",
        "client_id": client_id,
        "site_code": "QM1",
        "serial": 1,
        "issued": format_utc(now - timedelta(minutes=1)),
        "expires": format_utc(now + timedelta(days=7)),
        "poll_interval": 3600,
        "deployments": deployments,
        "applications": {},
        "log_head": {"seq": 3 * count, "hash": sha256_bytes(b"head")},
    }
    with_approvals = online.envelope({**base, "approvals": signed, "root_version": 1})
    without = online.envelope(base)
    return with_approvals, without, root, online


def verify(
    envelope: dict[str, Any],
    keys: dict[str, Any],
    root: Root | None,
    verified: set[str] | None = None,
) -> int:
    policy = accept_policy(
        envelope,
        keys,
        client_id=envelope["signed"]["client_id"],
        site_code="QM1",
        min_serial=0,
        now=datetime.now(UTC),
    )
    refused = refusals(envelope["signed"], root, verified)
    return len(policy.deployments) - len(refused)


def cpu(action: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        action()
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--approvals", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    with_approvals, without, root, online = build(args.deployments, args.approvals)
    keys = {online.keyid: online.public}
    assert verify(with_approvals, root.online_keys, root) == args.deployments, "all approved"
    first_seen = cpu(lambda: verify(with_approvals, root.online_keys, root, set()), args.repeats)
    seen: set[str] = set()
    verify(with_approvals, root.online_keys, root, seen)  # what approvals-verified.json holds
    approved = cpu(lambda: verify(with_approvals, root.online_keys, root, seen), args.repeats)
    baseline = cpu(lambda: verify(without, keys, None), args.repeats)
    size_with = len(canonical_json(with_approvals))
    size_without = len(canonical_json(without))
    print(
        json.dumps(
            {
                "deployments": args.deployments,
                "approvals_per_release": args.approvals,
                "verify_cpu_ms_approved": round(approved * 1000, 3),
                "verify_cpu_ms_first_seen": round(first_seen * 1000, 3),
                "verify_cpu_ms_baseline": round(baseline * 1000, 3),
                "ratio": round(approved / baseline, 2) if baseline else None,
                "policy_bytes_approved": size_with,
                "policy_bytes_baseline": size_without,
                "bytes_per_deployment_approved": round(size_with / args.deployments),
                "approval_bytes_per_deployment": round(
                    (size_with - size_without) / args.deployments
                ),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
