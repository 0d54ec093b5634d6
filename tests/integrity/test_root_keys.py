"""Offline root keys with a threshold (core/trust_roles.py) and the root chain on a client.

The root signs the online keys and the approvers; a new root needs a threshold of the old
root's keys. A client registered before a rotation follows it at its next poll; a root that
one key alone signed, or that strangers signed, changes nothing on any client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quartermaster.core.errors import SignatureError
from quartermaster.core.signing import SigningKey, sign_envelope
from quartermaster.core.trust_roles import (
    add_signature,
    next_root,
    root_payload,
    trust_first_root,
)
from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm, wait_until
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


def _root(version: int, roots: list[SigningKey], threshold: int, online: SigningKey) -> dict:  # type: ignore[type-arg]
    payload = root_payload(
        "QM1", version, [k.public for k in roots], threshold, [online.public], [], 0
    )
    return {"signed": payload, "signatures": []}


def test_two_of_three_root_keys_rotate_and_one_alone_cannot() -> None:
    roots = [SigningKey.generate() for _ in range(3)]
    online, new_online = SigningKey.generate(), SigningKey.generate()
    first = trust_first_root(sign_envelope(_root(1, roots, 2, online)["signed"], roots))
    second = _root(2, roots, 2, new_online)
    with pytest.raises(SignatureError, match="1 valid root signatures, 2 needed"):
        next_root(first, add_signature(second, roots[0]))
    signed = add_signature(add_signature(second, roots[0]), roots[2])
    assert set(next_root(first, signed).online_keys) == {new_online.keyid}
    # an online key, or a stranger, signing in place of a root key does not count
    forged = add_signature(add_signature(second, roots[0]), online)
    with pytest.raises(SignatureError):
        next_root(first, forged)
    # replacing the root keys needs the old threshold and the new one
    fresh = [SigningKey.generate() for _ in range(3)]
    takeover = add_signature(add_signature(_root(2, fresh, 2, online), fresh[0]), fresh[1])
    with pytest.raises(SignatureError, match="by the keys of root 1"):
        next_root(first, takeover)
    handover = add_signature(add_signature(takeover, roots[1]), roots[2])
    assert next_root(first, handover).version == 2
    with pytest.raises(SignatureError, match="does not follow"):
        next_root(
            first, add_signature(add_signature(_root(3, roots, 2, online), roots[0]), roots[1])
        )


def _trusted_root(home: Path) -> dict:  # type: ignore[type-arg]
    root: dict = json.loads((home / "client.json").read_text())["root"]  # type: ignore[type-arg]
    return root["signed"]  # type: ignore[no-any-return]


@pytest.mark.e2e
@ON_POSTGRESQL
def test_a_client_follows_a_two_of_three_root_rotation_of_a_stolen_online_key(
    site: SiteServer, tmp_path: Path
) -> None:
    offline = tmp_path / "offline"
    run_qm(
        "keys",
        "root",
        "init",
        "--home",
        str(site.home),
        "--out",
        str(offline / "root.json"),
        "--no-approval",
    )
    keys = [offline / f"root-{i}.key" for i in (1, 2, 3)]
    assert all(k.is_file() for k in keys)

    marker = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", marker, "version 1\n")
    package_id = create_package(site, source)
    home = tmp_path / "client"
    client_id = register_client(site, home)
    assert _trusted_root(home)["version"] == 1
    deploy_to(site, package_id, [client_id], "Lab", "Install", "--rerun", "always")
    run_client(home)
    assert marker.read_text() == "version 1\n"

    # the online key is stolen: rotate it out of the site at once
    [stolen] = [
        k["keyid"]
        for k in run_qm("site", "keys", "--home", str(site.home), "--json").json()["keys"]
    ]
    run_qm("site", "rotate-key", "--home", str(site.home))
    wait_until(  # the site's own DP follows key lists, not roots: let it see the new key
        lambda: len(json.loads((site.home / "dp" / "dp.json").read_text())["signing_keys"]) == 2,
        "the embedded DP to learn the new key",
    )
    run_qm("site", "retire-key", stolen, "--home", str(site.home))
    (source / "payload.txt").write_text("version 2\n")
    site.qm("package", "update", package_id)
    wait_installed(site, package_id, version=2)
    run_client(home)  # the new key is in no root yet: refused, by number
    assert marker.read_text() == "version 1\n"
    refusal = [m for m in messages(site, client=client_id) if m["message_id"] == 10085]
    assert (
        refusal and "not signed by a key this client trusts" in refusal[-1]["insertion_strings"][0]
    )

    second = offline / "root-2.json"
    run_qm(
        "keys", "root", "edit", "--home", str(site.home), "--online-from-site", "--out", str(second)
    )
    run_qm("keys", "root", "sign", str(second), "--key", str(keys[0]))
    alone = run_qm("keys", "root", "install", str(second), "--home", str(site.home), check=False)
    assert alone.code != 0 and "1 valid root signatures, 2 needed" in alone.stdout + alone.stderr
    run_qm("keys", "root", "sign", str(second), "--key", str(keys[2]))
    run_qm("keys", "root", "install", str(second), "--home", str(site.home))

    run_client(home)  # registered before the rotation, follows it without registering again
    assert _trusted_root(home)["version"] == 2
    assert stolen not in _trusted_root(home)["roles"]["online"]["keyids"]
    assert marker.read_text() == "version 2\n"

    # a root signed by strangers, dropped into the site home, is refused and changes nothing
    strangers = [SigningKey.generate() for _ in range(3)]
    forged = root_payload("QM1", 3, [k.public for k in strangers], 1, [strangers[0].public], [], 0)
    (site.home / "keys" / "root" / "3.json").write_text(
        json.dumps(sign_envelope(forged, strangers))
    )
    site.qm(
        "deploy", "create", "--package", package_id, "--program", "Install", "--collection", "Lab"
    )
    run_client(home)
    assert 10080 in message_ids(site, client=client_id)
    assert _trusted_root(home)["version"] == 2
