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
    job_commands,
    key_commands,
    package_commands,
    site_commands,
    site_settings_commands,
    status_commands,
    trust_commands,
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
app.add_typer(job_commands.app, name="job")
# These modules add their commands to a group above instead of making one: importing them is
# what joins `qm dp add|list|...`, `qm client list|approve|block|rekey`, `qm site settings` and
# `qm site rotate-key|retire-key|keys` (tests/client/test_cli.py checks the groups).
JOINED_GROUPS = (dp_admin_commands, client_admin_commands, site_settings_commands, key_commands)
app.add_typer(account_commands.app, name="account")
app.add_typer(account_commands.token_app, name="token")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(trust_commands.keys_app, name="keys")
app.add_typer(trust_commands.release_app, name="release")
