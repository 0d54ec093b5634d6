"""Policy retrieval: poll with an ETag, verify what comes back, keep the last good policy.

A refused policy (bad signature, rollback, freeze, wrong client) is reported with 10061 and
the previous policy stays in force, as long as it has not expired itself.
"""

from __future__ import annotations

import json

from quartermaster.client.home import ClientConfig, ClientHome, write_private
from quartermaster.client.policy import Policy
from quartermaster.client.site_link import SiteApi
from quartermaster.client.status_spool import StatusSpool
from quartermaster.client.timestamps import Clock
from quartermaster.client.trust import PolicyRefused, accept_policy, policy_signing_keys
from quartermaster.core.canonical import canonical_json


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
        try:
            policy = self._accept(answer.envelope)
        except PolicyRefused as exc:
            self.log.warning(f"policy refused: {exc}; keeping serial {self.config.policy_serial}")
            self.spool.add(10061, [exc.message], properties={"reason": exc.message})
            return stored
        write_private(self.home.policy_path, canonical_json(answer.envelope))
        self.config.policy_serial = policy.serial
        self.config.policy_etag = answer.etag
        self.config.poll_interval = policy.poll_interval
        self._follow_signing_keys(answer.envelope)
        self.home.save_config(self.config)
        self.log.write(
            f"policy serial {policy.serial} accepted: "
            f"{len(policy.deployments)} deployments, expires "
            f"{policy.expires.isoformat()}"
        )
        return policy

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
            return self._accept(envelope)
        except PolicyRefused as exc:
            self.log.write(f"stored policy no longer valid: {exc}")
            return None

    def _follow_signing_keys(self, envelope: object) -> None:
        """Trust exactly the keys the accepted policy names (key rotation, docs/security.md)."""
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
