"""Every trust decision of the client, in one place: signatures, rollback, freeze, mix-and-match.

Nothing the site or a DP sends is acted on before it passed through here. A refusal is an
IntegrityError whose message says why, which the caller reports as a status message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quartermaster.client.policy import DeploymentPolicy, Policy
from quartermaster.client.timestamps import format_utc
from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import IntegrityError, InvalidInput, SignatureError
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.manifest import Manifest
from quartermaster.core.signing import PublicKey, parse_public_keys, verify_envelope


class PolicyRefused(IntegrityError):
    code = "policy_refused"
    message_id = 10061


class PolicyKeyRefused(PolicyRefused):
    """Not signed by a key the client trusts (with a pinned root: not an online key of it)."""


class ManifestRefused(IntegrityError):
    code = "manifest_refused"


def accept_policy(
    envelope: Any,
    keys: dict[str, PublicKey],
    *,
    client_id: str,
    site_code: str,
    min_serial: int,
    now: datetime,
) -> Policy:
    """The policy in `envelope`, if it is signed, ours, not rolled back and not expired.

    A policy also names the site's current signing keys (`signing_keys`); the caller
    replaces its trusted keys with them (see `policy_signing_keys`), which is how a client
    follows a key rotation without registering again.
    """
    try:
        payload = verify_envelope(envelope, keys)
    except SignatureError as exc:
        raise _untrusted_policy(envelope, keys, exc) from None
    try:
        policy = Policy.from_dict(payload)
        if "signing_keys" in payload:
            parse_public_keys(payload["signing_keys"])
    except (SignatureError, InvalidInput) as exc:
        raise PolicyRefused(exc.message, exc.hint) from None
    if policy.client_id != client_id or policy.site_code != site_code:
        raise PolicyRefused(
            f"the policy is for client {policy.client_id} of site "
            f"{policy.site_code}, not for this client",
            "the site answered with another client's policy",
        )
    if policy.serial < min_serial:
        raise PolicyRefused(
            f"policy serial {policy.serial} is lower than {min_serial}, already seen (rollback)",
            "an old policy was replayed; the client keeps its current one",
        )
    if policy.expires <= now:
        raise PolicyRefused(
            f"the policy expired at {format_utc(policy.expires)} (freeze)",
            "check the client's clock and that the site issues fresh policy",
        )
    return policy


def policy_signing_keys(envelope: Any) -> list[PublicKey] | None:
    """The signing keys an accepted policy names; None if it names none (an older site)."""
    payload = envelope.get("signed") if isinstance(envelope, dict) else None
    if not isinstance(payload, dict) or "signing_keys" not in payload:
        return None
    return parse_public_keys(payload["signing_keys"])


def _untrusted_policy(
    envelope: Any, keys: dict[str, PublicKey], exc: SignatureError
) -> PolicyRefused:
    """Say which keys signed and which are trusted: a rotation the client missed is fixed
    by registering again, and the message must say so."""
    signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
    signers = sorted({str(s.get("keyid")) for s in signatures or [] if isinstance(s, dict)})
    if not signers or any(k in keys for k in signers):
        return PolicyKeyRefused(exc.message, exc.hint)  # unsigned, or a bad signature
    return PolicyKeyRefused(
        f"the policy is not signed by a key this client trusts (signed by {', '.join(signers)}; "
        f"trusted: {', '.join(sorted(keys)) or 'none'}): either it is forged, or the site "
        "rotated its signing key and retired the old one while this client was offline; "
        "re-register the client",
        "qm client register --home DIR --site URL --force (add --ca-file for https)",
    )


def accept_manifest(
    envelope: Any, keys: dict[str, PublicKey], deployment: DeploymentPolicy, site_code: str
) -> Manifest:
    """The manifest, if signed and exactly the package version this deployment names."""
    try:
        payload = verify_envelope(envelope, keys)
    except SignatureError as exc:
        raise ManifestRefused(exc.message, exc.hint) from None
    actual = sha256_bytes(canonical_json(payload))
    if actual != deployment.package_hash:
        raise ManifestRefused(
            f"its hash {actual} is not the package hash {deployment.package_hash} in policy",
            "a DP or the site served the manifest of another version",
        )
    try:
        manifest = Manifest.from_dict(payload)
    except InvalidInput as exc:
        raise ManifestRefused(exc.message, exc.hint) from None
    named = (deployment.package_id, deployment.source_version, site_code)
    if (manifest.package_id, manifest.source_version, manifest.site_code) != named:
        raise ManifestRefused(
            f"it describes {manifest.package_id} version "
            f"{manifest.source_version} of site {manifest.site_code}, policy "
            f"names {deployment.package_id} version "
            f"{deployment.source_version}",
            "the site signed a policy that does not match its manifest",
        )
    return manifest
