"""Entry point of `qm`: every command group lives in its own module."""

from __future__ import annotations

import typer

from quartermaster.cli import (
    account_commands,
    app_commands,
    audit_commands,
    client_admin_commands,
    client_commands,
    collection_commands,
    deploy_commands,
    dp_admin_commands,
    dp_commands,
    key_commands,
    package_commands,
    site_commands,
    site_settings_commands,
    status_commands,
)

app = typer.Typer(
    name="qm",
    help="Quartermaster: publish packages, distribute them to DPs, deploy programs to clients.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(site_commands.app, name="site")
app.add_typer(package_commands.app, name="package")
app.add_typer(package_commands.program_app, name="program")
app.add_typer(collection_commands.app, name="collection")
app.add_typer(app_commands.app, name="app")
app.add_typer(deploy_commands.app, name="deploy")
app.add_typer(status_commands.app, name="status")
app.add_typer(client_commands.app, name="client")
app.add_typer(dp_commands.app, name="dp")
assert dp_admin_commands.app is dp_commands.app  # its commands join the dp group
assert client_admin_commands.app is client_commands.app  # list/approve/block/rekey join client
assert site_settings_commands.app is site_commands.app  # `qm site settings`
assert key_commands.app is site_commands.app  # `qm site rotate-key|retire-key|keys`
app.add_typer(account_commands.app, name="account")
app.add_typer(account_commands.token_app, name="token")
app.command("audit")(audit_commands.audit)
