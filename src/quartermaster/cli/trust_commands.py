"""`qm keys`, `qm keys root ...` and `qm release ...`: offline root keys and release approval.

Root and approver keys never go near the site: `qm keys generate` writes a private key on
the machine (or removable medium) that keeps it, and the commands that sign read it from
there. Only public keys and signatures travel. See docs/security.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from quartermaster.cli.site_link import (
    CommandError,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    out,
    print_json,
    print_table,
)

keys_app = typer.Typer(help="Offline root keys and approver keys (docs/security.md).")
root_app = typer.Typer(help="The site's root metadata: online keys, approvers, thresholds.")
keys_app.add_typer(root_app, name="root")
release_app = typer.Typer(help="Release approval: approvers sign what may run, and where.")

HomeOption = typer.Option(None, "--home", help="The site home folder, e.g. ./site.")
JsonFlag = typer.Option(False, "--json", help="Print JSON.")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def _write_json(path: Path, data: Any) -> None:
    from quartermaster.core.durable_files import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _public_key(text: str) -> Any:
    """A public key from hex, a .pub file (hex) or a private key file."""
    from quartermaster.core.signing import PublicKey, SigningKey

    path = Path(text)
    if path.is_file():
        content = path.read_bytes()
        if b"PRIVATE KEY" in content:
            return SigningKey.load(path).public
        text = content.decode().strip()
    try:
        return PublicKey.from_hex(text)
    except (ValueError, Exception) as exc:
        raise CommandError(f"{text!r} is not a public key, .pub file or key file: {exc}") from None


def _signing_key(path: Path) -> Any:
    from quartermaster.core.signing import SigningKey

    if not path.is_file():
        raise CommandError(f"key file {path} does not exist", "make one with `qm keys generate`")
    return SigningKey.load(path)


def _generate(path: Path) -> Any:
    from quartermaster.core.signing import SigningKey

    if path.exists():
        raise CommandError(
            f"{path} already exists", "choose another --out; keys are never overwritten"
        )
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    key.save(path)
    (path.parent / f"{path.name}.pub").write_text(key.public.public_hex + "\n")
    return key


@keys_app.command("generate")
@handles_errors
def generate(
    out_file: Path = typer.Option(..., "--out", help="Where to write the private key (0600)."),
) -> None:
    """Make one Ed25519 key (a root key or an approver's key); FILE.pub gets the public key.

    Keep the private key off the site server: on removable media or the holder's machine.

    Example: qm keys generate --out /media/usb/alice-approver.key
    """
    key = _generate(out_file)
    out.print(f"key {key.keyid} written to {out_file}; public key in {out_file}.pub")


def _site_facts(home: Path | None, site_code: str, online: list[str]) -> tuple[str, list[Any]]:
    keys = [_public_key(k) for k in online]
    if home is not None:
        from quartermaster.site.home import SiteHome
        from quartermaster.site.identity.keys import SiteKeys

        site_home = SiteHome(home)
        site_code = site_code or site_home.load_config().site_code
        keys = keys or SiteKeys(site_home.keys).public_keys()
    if not site_code or not keys:
        raise CommandError(
            "the site code and online keys are unknown",
            "pass --home SITE, or --site-code and --online-key (from `qm site keys --json`)",
        )
    return site_code, keys


def _install(home: Path, envelope: dict[str, Any]) -> Any:
    from quartermaster.site.context import SiteContext
    from quartermaster.site.identity.root_store import install_root

    ctx = SiteContext.open(home)
    try:
        return install_root(ctx, envelope)
    finally:
        ctx.close()


@root_app.command("init")
@handles_errors
def root_init(
    out_file: Path = typer.Option(..., "--out", help="Where to write root version 1 (public)."),
    root_keys: list[Path] = typer.Option(  # noqa: B008
        None, "--root-key", help="A root key file; made if missing. Default: 3 next to --out."
    ),
    threshold: int = typer.Option(
        0, "--threshold", help="Root signatures needed (default: a majority)."
    ),
    approvers: list[str] = typer.Option(  # noqa: B008
        None, "--approver", help="An approver's public key (hex, .pub or key file); repeatable."
    ),
    approvals: int = typer.Option(
        -1,
        "--approvals",
        help="Approver signatures a release needs (default: 2, or 1 with one approver).",
    ),
    no_approval: bool = typer.Option(
        False, "--no-approval", help="Do not require release approval."
    ),
    home: Path = HomeOption,
    site_code: str = typer.Option("", "--site-code"),
    online: list[str] = typer.Option(
        None, "--online-key", help="Online public key (default: the site's)."
    ),  # noqa: B008
) -> None:
    """Make root version 1, signed by every root key, and install it if --home is given.

    Root keys sign only root metadata; keep them offline. Release approval is on unless
    --no-approval: then a release needs --approvals signatures of the --approver keys.

    Example: qm keys root init --home ./site --out /media/usb/root.json --approver alice.key.pub
    """
    from quartermaster.core.signing import sign_envelope
    from quartermaster.core.trust_roles import root_payload

    code, online_keys = _site_facts(home, site_code, list(online or []))
    paths = list(root_keys or []) or [out_file.parent / f"root-{i}.key" for i in (1, 2, 3)]
    signers = [_signing_key(p) if p.exists() else _generate(p) for p in paths]
    approver_keys = [_public_key(a) for a in approvers or []]
    if no_approval:
        needed = 0
    elif not approver_keys:
        raise CommandError(
            "release approval is on by default and needs at least one --approver",
            "make one with `qm keys generate --out alice.key`, or pass --no-approval",
        )
    else:
        needed = approvals if approvals >= 0 else min(2, len(approver_keys))
    majority = threshold or len(signers) // 2 + 1
    payload = root_payload(
        code, 1, [k.public for k in signers], majority, online_keys, approver_keys, needed
    )
    envelope = sign_envelope(payload, signers)
    from quartermaster.core.trust_roles import trust_first_root

    try:
        trust_first_root(envelope)
    except Exception as exc:
        raise CommandError(f"the root would be invalid: {exc}") from None
    _write_json(out_file, envelope)
    out.print(
        f"root version 1 written to {out_file}: {len(signers)} root keys "
        f"({', '.join(str(p) for p in paths)}), {majority} needed; "
        f"{len(approver_keys)} approvers, {needed} needed per release"
    )
    if home is not None:
        _install(home, envelope)
        out.print(f"installed in {home}; move the root key files off this machine")


@root_app.command("edit")
@handles_errors
def root_edit(
    out_file: Path = typer.Option(..., "--out", help="Where to write the next version (unsigned)."),
    home: Path = HomeOption,
    base: Path = typer.Option(None, "--from", help="The current root file (default: the site's)."),
    online_from_site: bool = typer.Option(
        False, "--online-from-site", help="Online keys := the site's active keys."
    ),
    online: list[str] = typer.Option(None, "--online-key", help="Online keys := these."),  # noqa: B008
    add_approver: list[str] = typer.Option(None, "--add-approver"),  # noqa: B008
    remove_approver: list[str] = typer.Option(None, "--remove-approver", help="Key ID."),  # noqa: B008
    approvals: int = typer.Option(-1, "--approvals", help="New approval threshold (0: off)."),
    add_root_key: list[str] = typer.Option(None, "--add-root-key"),  # noqa: B008
    remove_root_key: list[str] = typer.Option(None, "--remove-root-key", help="Key ID."),  # noqa: B008
    threshold: int = typer.Option(0, "--threshold", help="New root threshold."),
) -> None:
    """Write the next root version with the changes asked for, unsigned.

    Then each root key holder runs `qm keys root sign FILE --key THEIR.key`; a threshold of
    the current root keys (and of the new ones) must sign before `qm keys root install`.

    Example: qm keys root edit --home ./site --online-from-site --out root-2.json
    """
    from quartermaster.core.signing import PublicKey
    from quartermaster.core.trust_roles import Root, root_payload

    if base is not None:
        current = Root.parse(_load_json(base))
    elif home is not None:
        from quartermaster.site.home import SiteHome
        from quartermaster.site.identity.root_store import RootStore

        found = RootStore(SiteHome(home).keys).current()
        if found is None:
            raise CommandError("the site has no root yet", "make one with `qm keys root init`")
        current = found
    else:
        raise CommandError("which root to edit?", "pass --home SITE or --from FILE")

    def keys_of(role: str) -> dict[str, PublicKey]:
        return dict(current.role_keys(role))

    online_keys = keys_of("online")
    if online_from_site or online:
        _, fresh = _site_facts(
            home if online_from_site else None, current.site_code, list(online or [])
        )
        online_keys = {k.keyid: k for k in fresh}
    approver_keys = keys_of("approver")
    for text in add_approver or []:
        key = _public_key(text)
        approver_keys[key.keyid] = key
    for keyid in remove_approver or []:
        if approver_keys.pop(keyid, None) is None:
            raise CommandError(f"{keyid} is not an approver of root version {current.version}")
    root_keys = keys_of("root")
    for text in add_root_key or []:
        key = _public_key(text)
        root_keys[key.keyid] = key
    for keyid in remove_root_key or []:
        if root_keys.pop(keyid, None) is None:
            raise CommandError(f"{keyid} is not a root key of root version {current.version}")
    needed = approvals if approvals >= 0 else min(current.approval_threshold, len(approver_keys))
    payload = root_payload(
        current.site_code,
        current.version + 1,
        list(root_keys.values()),
        threshold or min(current.roles["root"].threshold, len(root_keys)),
        list(online_keys.values()),
        list(approver_keys.values()),
        needed,
    )
    _write_json(out_file, {"signed": payload, "signatures": []})
    out.print(
        f"root version {current.version + 1} written to {out_file} (unsigned): "
        f"{current.roles['root'].threshold} of the current root keys must sign it"
    )


@root_app.command("sign")
@handles_errors
def root_sign(
    file: Path = typer.Argument(..., help="A root metadata file."),
    key: Path = typer.Option(..., "--key", help="Your root key file."),
) -> None:
    """Add your root key's signature to a root metadata file (in place).

    Example: qm keys root sign root-2.json --key /media/usb/root-1.key
    """
    from quartermaster.core.trust_roles import Root, add_signature

    envelope = _load_json(file)
    root = Root.parse(envelope)
    signer = _signing_key(key)
    _write_json(file, add_signature(envelope, signer))
    out.print(f"root version {root.version} signed with {signer.keyid}")


@root_app.command("install")
@handles_errors
def root_install(
    file: Path = typer.Argument(..., help="The signed root metadata file."),
    home: Path = typer.Option(..., "--home", help="The site home folder."),
) -> None:
    """Give the site a new root, after checking it follows the current one.

    Clients fetch it at their next poll and check the same thing themselves.

    Example: qm keys root install root-2.json --home ./site
    """
    root = _install(home, _load_json(file))
    out.print(
        f"root version {root.version} installed: online keys {', '.join(root.online_keys)}; "
        f"{root.approval_threshold} approvals per release"
    )


@root_app.command("show")
@handles_errors
def root_show(home: Path = typer.Option(..., "--home"), as_json: bool = JsonFlag) -> None:
    """The site's current root: versions, keys per role and thresholds.

    Example: qm keys root show --home ./site
    """
    from quartermaster.site.home import SiteHome
    from quartermaster.site.identity.root_store import RootStore

    root = RootStore(SiteHome(home).keys).current()
    if root is None:
        raise CommandError("the site has no root yet", "make one with `qm keys root init`")
    if as_json:
        print_json(root.envelope)
        return
    rows = [
        {"role": name, "threshold": role.threshold, "keys": ", ".join(role.keyids)}
        for name, role in root.roles.items()
    ]
    print_table(rows, ["role", "threshold", "keys"], f"root version {root.version}")


def _approve(site: str, token: str, path: str, key: Path, params: dict[str, Any]) -> None:
    signer = _signing_key(key)
    link = SiteLink(site, token)
    statement = link.get(path, **params)
    out.print(json.dumps(statement, indent=2, sort_keys=True))
    from quartermaster.core.canonical import canonical_json

    answer = link.post(
        "/api/v1/approvals",
        {
            "statement": statement,
            "keyid": signer.keyid,
            "sig": signer.sign(canonical_json(statement)),
        },
    )
    out.print(f"approved with key {signer.keyid} (statement {answer['statement_digest'][:16]})")


ScopeOption = typer.Option(None, "--collection", help="A collection it may go to; repeatable.")
AnyOption = typer.Option(False, "--any-collection", help="It may go to any collection.")
KeyOption = typer.Option(..., "--key", help="Your approver key file.")


@release_app.command("approve")
@handles_errors
def approve(
    package_id: str = typer.Argument(...),
    version: int = typer.Argument(..., help="The source version."),
    key: Path = KeyOption,
    program: list[str] = typer.Option(  # noqa: B008
        ..., "--program", help="A program it may run; repeatable (only these are approved)."
    ),
    collection: list[str] = ScopeOption,  # noqa: B008
    any_collection: bool = AnyOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Sign a package version: its hash, the named programs' commands, where it may go.

    Example: qm release approve QM100001 1 --key alice.key --program Install --collection Lab
    """
    params = {
        "collection": list(collection or []),
        "any_collection": any_collection,
        "program": list(program),
    }
    _approve(
        site,
        token,
        f"/api/v1/packages/{package_id}/versions/{version}/approval-statement",
        key,
        params,
    )


@release_app.command("approve-app")
@handles_errors
def approve_app(
    app_id: str = typer.Argument(...),
    revision: int = typer.Argument(..., help="The application revision."),
    key: Path = KeyOption,
    collection: list[str] = ScopeOption,  # noqa: B008
    any_collection: bool = AnyOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Sign an application revision: package hash, install and uninstall commands,
    detection rules, run-as account, and where it may go.

    Example: qm release approve-app QM100003 1 --key alice.key --collection Lab
    """
    params = {
        "revision": revision,
        "collection": list(collection or []),
        "any_collection": any_collection,
    }
    _approve(site, token, f"/api/v1/applications/{app_id}/approval-statement", key, params)


@release_app.command("pending")
@handles_errors
def pending(as_json: bool = JsonFlag, site: str = SiteOption, token: str = TokenOption) -> None:
    """Current package versions still short of approvals.

    Example: qm release pending
    """
    data = SiteLink(site, token).get("/api/v1/approvals/pending")
    if as_json:
        print_json(data)
        return
    print_table(
        data["pending"],
        ["package_id", "name", "source_version", "approvals", "threshold"],
        "pending approvals",
    )
