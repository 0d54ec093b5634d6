"""The signed key list a DP follows: newer lists signed by a trusted key only."""

from __future__ import annotations

import pytest

from quartermaster.core.errors import SignatureError
from quartermaster.core.signing import (
    SigningKey,
    accept_key_list,
    key_list_payload,
    sign_envelope,
)


def _list(version: int, *keys: SigningKey, site_code: str = "QM1") -> dict[str, object]:
    return sign_envelope(key_list_payload(site_code, version, [k.public for k in keys]), keys)


def test_a_newer_list_signed_by_a_trusted_key_replaces_the_keys() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    version, keys = accept_key_list(
        _list(2, new, old), {old.keyid: old.public}, site_code="QM1", min_version=1
    )
    assert version == 2 and [k.keyid for k in keys] == [new.keyid, old.keyid]


def test_an_older_list_is_refused_as_rollback() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    trusted = {new.keyid: new.public, old.keyid: old.public}
    with pytest.raises(SignatureError, match="rollback"):
        accept_key_list(_list(2, new, old), trusted, site_code="QM1", min_version=3)


def test_a_list_signed_only_by_keys_not_trusted_is_refused() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(SignatureError, match="not signed by a key"):
        accept_key_list(_list(3, new), {old.keyid: old.public}, site_code="QM1", min_version=1)


def test_another_sites_list_is_refused() -> None:
    key = SigningKey.generate()
    with pytest.raises(SignatureError, match="not this site's"):
        accept_key_list(
            _list(2, key, site_code="QM2"), {key.keyid: key.public}, site_code="QM1", min_version=1
        )


def test_a_key_whose_id_does_not_match_is_refused() -> None:
    key = SigningKey.generate()
    payload = key_list_payload("QM1", 2, [key.public])
    payload["keys"][0]["keyid"] = "0" * 16  # type: ignore[index]
    with pytest.raises(SignatureError, match="does not match"):
        accept_key_list(
            key.envelope(payload), {key.keyid: key.public}, site_code="QM1", min_version=1
        )
