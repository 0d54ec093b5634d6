"""Trust checks: forged, rolled back, frozen or mismatched metadata is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quartermaster.client.policy import DeploymentPolicy
from quartermaster.client.trust import (
    ManifestRefused,
    PolicyRefused,
    accept_manifest,
    accept_policy,
)
from quartermaster.core.signing import SigningKey

from .conftest import SITE_CODE, START, deployment_entry, make_package, policy_payload

CLIENT = "6f1d3c2a-0000-4000-8000-000000000001"


def accept(envelope: object, key: SigningKey, min_serial: int = 0) -> object:
    return accept_policy(
        envelope,
        {key.keyid: key.public},
        client_id=CLIENT,
        site_code=SITE_CODE,
        min_serial=min_serial,
        now=START,
    )


def test_a_signed_current_policy_for_this_client_is_accepted() -> None:
    key = SigningKey.generate()
    package = make_package(key, {"a.txt": b"a"})
    policy = accept(
        key.envelope(policy_payload(CLIENT, [deployment_entry(package)], serial=4)),
        key,
        min_serial=4,
    )
    assert policy.serial == 4  # type: ignore[attr-defined]


def test_a_policy_signed_by_an_unknown_key_is_refused() -> None:
    key, forger = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(PolicyRefused, match="not signed by a key this client trusts"):
        accept(forger.envelope(policy_payload(CLIENT, [])), key)


def test_a_policy_altered_after_signing_is_refused() -> None:
    key = SigningKey.generate()
    envelope = key.envelope(policy_payload(CLIENT, []))
    envelope["signed"]["poll_interval"] = 1
    with pytest.raises(PolicyRefused):
        accept(envelope, key)


def test_a_policy_with_a_lower_serial_than_seen_is_refused_as_rollback() -> None:
    key = SigningKey.generate()
    with pytest.raises(PolicyRefused, match="rollback"):
        accept(key.envelope(policy_payload(CLIENT, [], serial=3)), key, min_serial=4)


def test_an_expired_policy_is_refused_as_freeze() -> None:
    key = SigningKey.generate()
    payload = policy_payload(CLIENT, [], expires=START - timedelta(seconds=1))
    with pytest.raises(PolicyRefused, match="freeze"):
        accept(key.envelope(payload), key)


def test_another_clients_policy_is_refused() -> None:
    key = SigningKey.generate()
    payload = policy_payload("6f1d3c2a-0000-4000-8000-000000000002", [])
    with pytest.raises(PolicyRefused, match="not for this client"):
        accept(key.envelope(payload), key)


def _deployment(
    key: SigningKey, package_hash: str, package_id: str = "QM100001", version: int = 1
) -> DeploymentPolicy:
    package = make_package(key, {"x": b"x"}, package_id=package_id, version=version)
    entry = deployment_entry(package)
    entry["package_hash"] = package_hash
    return DeploymentPolicy.from_dict(entry)


def test_the_manifest_policy_names_is_accepted() -> None:
    key = SigningKey.generate()
    package = make_package(key, {"x": b"x"})
    manifest = accept_manifest(
        package.envelope, {key.keyid: key.public}, _deployment(key, package.package_hash), SITE_CODE
    )
    assert manifest == package.manifest


def test_the_manifest_of_another_version_is_refused_as_mix_and_match() -> None:
    key = SigningKey.generate()
    v1 = make_package(key, {"x": b"x"}, version=1)
    v2 = make_package(key, {"x": b"y"}, version=2)
    with pytest.raises(ManifestRefused, match="is not the package hash"):
        accept_manifest(
            v2.envelope, {key.keyid: key.public}, _deployment(key, v1.package_hash), SITE_CODE
        )


def test_a_manifest_whose_hash_matches_but_names_another_package_is_refused() -> None:
    key = SigningKey.generate()
    other = make_package(key, {"x": b"x"}, package_id="QM100002")
    with pytest.raises(ManifestRefused, match="QM100002"):
        accept_manifest(
            other.envelope,
            {key.keyid: key.public},
            _deployment(key, other.package_hash, package_id="QM100001"),
            SITE_CODE,
        )


def test_a_manifest_signed_by_an_unknown_key_is_refused() -> None:
    key, forger = SigningKey.generate(), SigningKey.generate()
    package = make_package(forger, {"x": b"x"})
    with pytest.raises(ManifestRefused, match="not signed"):
        accept_manifest(
            package.envelope,
            {key.keyid: key.public},
            _deployment(key, package.package_hash),
            SITE_CODE,
        )
