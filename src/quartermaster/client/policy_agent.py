"""Policy retrieval: poll with an ETag, verify what comes back, keep the last good policy.

A refused policy (bad signature, rollback, freeze, wrong client) is reported with 10061 and
the previous policy stays in force, as long as it has not expired itself. With a pinned
root (core/trust_roles.py) three more checks run, each with its own status message:
the root chain (10080: a new root needs a threshold of the old root's keys), the online
key (10085: policy signed by a key the root lists), and the trust log (10081: the head
extends the one seen). Then each deployment must carry release approvals (10082-10084,
client/approval_check.py); a refused deployment is dropped, the others run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from quartermaster.client.approval_check import refusals
from quartermaster.client.home import ClientConfig, ClientHome, write_private
from quartermaster.client.policy import Policy
from quartermaster.client.site_link import SiteApi
from quartermaster.client.status_spool import DeploymentReporter, StatusSpool
from quartermaster.client.timestamps import Clock
from quartermaster.client.trust import (
    PolicyKeyRefused,
    PolicyRefused,
    accept_policy,
    policy_signing_keys,
)
from quartermaster.core.canonical import canonical_json
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import SignatureError
from quartermaster.core.log_chain import GENESIS, LogBroken, check_extends
from quartermaster.core.trust_roles import Root, next_root, trust_first_root

ROOT_REFUSED, LOG_REFUSED, KEY_REFUSED = 10080, 10081, 10085
VERIFIED_FILE = "approvals-verified.json"  # approver signatures already checked
MAX_VERIFIED = 20000


class PolicyAgent:
    def __init__(
        self,
        home: ClientHome,
        config: ClientConfig,
        site: SiteApi,
        spool: StatusSpool,
        clock: Clock,
    ) -> None:
        self.home = home
        self.config = config
        self.site = site
        self.spool = spool
        self.clock = clock
        self.log = home.log("policyagent")

    def refresh(self) -> Policy | None:
        """The policy to act on now, or None when there is no valid one."""
        stored = self.stored()
        answer = self.site.policy(self.config.policy_etag if stored is not None else "")
        if answer.not_modified and stored is not None:
            self.log.write(f"policy unchanged (serial {stored.serial})")
            return stored
        self._follow_root(answer.envelope)
        try:
            policy = self._accept(answer.envelope)
            head = self._check_log(answer.envelope)
        except PolicyRefused as exc:
            message_id = KEY_REFUSED if self._key_refusal(exc) else exc.message_id
            self.log.warning(f"policy refused: {exc}; keeping serial {self.config.policy_serial}")
            self.spool.add(message_id, [exc.message], properties={"reason": exc.message})
            return stored
        write_private(self.home.policy_path, canonical_json(answer.envelope))
        self.config.policy_serial = policy.serial
        self.config.policy_etag = answer.etag
        self.config.poll_interval = policy.poll_interval
        if head is not None:
            self.config.log_seq, self.config.log_hash = head
        self._follow_signing_keys(answer.envelope)
        self.home.save_config(self.config)
        self.log.write(
            f"policy serial {policy.serial} accepted: "
            f"{len(policy.deployments)} deployments, expires "
            f"{policy.expires.isoformat()}"
        )
        return self._approved(policy, answer.envelope, report=True)

    def stored(self) -> Policy | None:
        """The last accepted policy, re-verified; None if absent, damaged or expired."""
        try:
            envelope = json.loads(self.home.policy_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.log.write(f"stored policy unreadable ({exc}); asking for a fresh one")
            return None
        try:
            return self._approved(self._accept(envelope), envelope, report=False)
        except PolicyRefused as exc:
            self.log.write(f"stored policy no longer valid: {exc}")
            return None

    def _key_refusal(self, exc: PolicyRefused) -> bool:
        return isinstance(exc, PolicyKeyRefused) and self.config.root is not None

    def _follow_root(self, envelope: Any) -> None:
        """Walk the root chain up to the version policy names, one version at a time; a
        version that fails stops the walk (10080) and the last good root stays pinned."""
        payload = envelope.get("signed") if isinstance(envelope, dict) else None
        wanted = payload.get("root_version") if isinstance(payload, dict) else None
        current = self.config.pinned_root()
        have = current.version if current else 0
        if not isinstance(wanted, int) or wanted <= have:
            return
        new = current
        try:
            for offered in self.site.roots(have):
                new = self._next(new, offered)
        except SignatureError as exc:
            self.log.write(f"root metadata refused: {exc}")
            self.spool.add(ROOT_REFUSED, [exc.message], properties={"reason": exc.message})
        if new is not None and new is not current:
            self.log.write(
                f"root version {new.version} accepted: online keys "
                f"{', '.join(new.online_keys)}, approval threshold {new.approval_threshold}"
            )
            self.config.root = new.envelope
            self.home.save_config(self.config)

    def _next(self, current: Root | None, offered: Any) -> Root:
        if current is not None:
            return next_root(current, offered)
        first = trust_first_root(offered)  # a client registered before the site had a root
        if first.version != 1 or not set(first.online_keys) & set(self.config.trusted_keys()):
            raise SignatureError(
                "the first root names none of the signing keys this client trusts",
                "re-register the client to pin the site's root",
            )
        return first

    def _check_log(self, envelope: Any) -> tuple[int, str] | None:
        """The policy's log head, if it extends the head seen before (10081 otherwise)."""
        head = envelope["signed"].get("log_head")
        if not isinstance(head, dict):
            return None
        seq, digest = head.get("seq"), head.get("hash")
        if not isinstance(seq, int) or not isinstance(digest, str):
            raise _log_refused("the policy's log head is malformed")
        seen_seq, seen_hash = self.config.log_seq, self.config.log_hash or GENESIS
        entries = self.site.trust_log(seen_seq, seq) if seq > seen_seq and seen_seq > 0 else []
        try:
            if seen_seq > 0:
                check_extends(seen_seq, seen_hash, seq, digest, entries)
        except LogBroken as exc:
            raise _log_refused(exc.message) from None
        return seq, digest

    def _approved(self, policy: Policy, envelope: Any, *, report: bool) -> Policy:
        """The policy without deployments that fail the approval checks; with `report`,
        each refusal is a status message naming the check."""
        known = self._verified_approvals()
        before = len(known)
        refused = refusals(envelope["signed"], self.config.pinned_root(), known)
        if len(known) != before:
            marks = sorted(known)[-MAX_VERIFIED:]
            write_atomic(self.home.root / VERIFIED_FILE, json.dumps(marks).encode())
        if not refused:
            return policy
        kept = []
        for deployment in policy.deployments:
            refusal = refused.get(deployment.deployment_id)
            if refusal is None:
                kept.append(deployment)
                continue
            if report:
                self.log.write(
                    f"deployment {deployment.deployment_id} refused ({refusal.check}): "
                    f"{refusal.reason}"
                )
                DeploymentReporter(self.spool, deployment).emit(
                    refusal.message_id, refusal.reason, properties={"check": refusal.check}
                )
        return replace(policy, deployments=tuple(kept))

    def _verified_approvals(self) -> set[str]:
        try:
            marks = json.loads((self.home.root / VERIFIED_FILE).read_bytes())
        except (OSError, ValueError):
            return set()
        return {m for m in marks if isinstance(m, str)} if isinstance(marks, list) else set()

    def _follow_signing_keys(self, envelope: object) -> None:
        """Trust exactly the keys the accepted policy names (key rotation, docs/security.md);
        with a pinned root only the root names keys, so this does nothing."""
        if self.config.root is not None:
            return
        keys = policy_signing_keys(envelope)
        if keys is None:
            return
        entries = [key.to_dict() for key in keys]
        if entries != self.config.signing_keys:
            self.log.write(f"site signing keys now: {', '.join(k.keyid for k in keys)}")
            self.config.signing_keys = entries

    def _accept(self, envelope: object) -> Policy:
        return accept_policy(
            envelope,
            self.config.trusted_keys(),
            client_id=self.config.client_id,
            site_code=self.config.site_code,
            min_serial=self.config.policy_serial,
            now=self.clock(),
        )


def _log_refused(message: str) -> PolicyRefused:
    refusal = PolicyRefused(message, "run `qm audit verify` on the site (docs/security.md)")
    refusal.message_id = LOG_REFUSED
    return refusal
