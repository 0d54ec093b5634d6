"""`qm site rotate-key`, `qm site retire-key`, `qm site keys`: the site's signing keys.

These work on the site home directly (run them on the site host): the private keys never
travel over the API. A running `qm site serve` follows the change at once.
"""

from __future__ import annotations

from pathlib import Path

import typer

from quartermaster.cli import site_commands
from quartermaster.cli.site_link import handles_errors, out, print_json, print_table

app = site_commands.app

HomeOption = typer.Option(..., "--home", help="The site home folder, e.g. ./site.")
JsonOption = typer.Option(False, "--json", help="Print JSON.")


@app.command("rotate-key")
@handles_errors
def rotate_key(home: Path = HomeOption, as_json: bool = JsonOption) -> None:
    """Make a new signing key; the old one keeps co-signing until `qm site retire-key`.

    Every manifest gets the new key's signature and every client and DP learns the new key
    at its next poll. Retire the old key once they all have polled (docs/security.md).

    Example: qm site rotate-key --home ./site
    """
    from quartermaster.site.context import SiteContext
    from quartermaster.site.identity import keys

    ctx = SiteContext.open(home)
    try:
        old, new = keys.rotate_files(ctx.home.keys)
        count = keys.resign_manifests(ctx.db, ctx.library, ctx.key)
    finally:
        ctx.close()
    if as_json:
        print_json({"new_keyid": new.keyid, "old_keyid": old.keyid, "manifests": count})
        return
    out.print(
        f"new signing key {new.keyid}; {old.keyid} keeps co-signing during the overlap "
        f"({count} manifests re-signed)"
    )
    out.print(
        f"when every client and DP has polled, run: qm site retire-key {old.keyid} --home {home}"
    )
    from quartermaster.site.home import SiteHome
    from quartermaster.site.identity.root_store import RootStore

    if RootStore(SiteHome(home).keys).current() is not None:
        out.print(
            "this site has root metadata: clients trust the new key only once a root lists "
            f"it: qm keys root edit --home {home} --online-from-site --out FILE, then "
            "qm keys root sign FILE --key ROOTKEY (a threshold of root key holders) and "
            f"qm keys root install FILE --home {home}"
        )


@app.command("retire-key")
@handles_errors
def retire_key(
    keyid: str = typer.Argument(..., help="The key ID (16 hex digits)."), home: Path = HomeOption
) -> None:
    """Stop signing with a rotated-out key and delete it.

    A client or DP that did not poll during the overlap knows only the retired key and
    must register (or enroll) again.

    Example: qm site retire-key 3f1c0a9e2b7d4c61 --home ./site
    """
    from quartermaster.site.context import SiteContext
    from quartermaster.site.identity import keys

    ctx = SiteContext.open(home)
    try:
        keys.retire_files(ctx.home.keys, keyid)
        count = keys.resign_manifests(ctx.db, ctx.library, ctx.key)
    finally:
        ctx.close()
    out.print(f"key {keyid} retired; {count} manifests now carry only the active keys' signatures")


@app.command("keys")
@handles_errors
def list_keys(home: Path = HomeOption, as_json: bool = JsonOption) -> None:
    """List the active signing keys: the primary, and any still in a rotation's overlap.

    Example: qm site keys --home ./site --json
    """
    from quartermaster.site.home import SiteHome
    from quartermaster.site.identity.keys import SiteKeys

    site_keys = SiteKeys(SiteHome(home).keys)
    rows = [k.to_dict() for k in site_keys.describe()]
    if as_json:
        print_json({"version": site_keys.version, "keys": rows})
    else:
        print_table(
            rows, ["keyid", "role", "created"], title=f"key list version {site_keys.version}"
        )
