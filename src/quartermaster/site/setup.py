"""`qm site init`: create a site home with its database, content library, key and first token."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import Conflict, InvalidInput
from quartermaster.core.ids import check_site_code
from quartermaster.site import db
from quartermaster.site import source_roots as roots
from quartermaster.site.distribution.points import EMBEDDED_DP, add_dp
from quartermaster.site.home import (
    SiteConfig,
    SiteHome,
    content_url,
    lock_down,
    split_listen,
    sqlite_path,
)
from quartermaster.site.identity.accounts import check_password, create_account, create_token
from quartermaster.site.identity.keys import create_first_key
from quartermaster.site.library_bucket import check_library_url
from quartermaster.site.models import Site

EMBEDDED_ENROLLMENT = "enrollment.token"


def init_site(
    root: Path,
    site_code: str,
    name: str,
    database_url: str | None = None,
    listen: str = "127.0.0.1:8440",
    admin_password: str | None = None,
    source_roots: list[Path] | None = None,
    library_url: str = "",
) -> SiteHome:
    """`admin_password`, when given, lets the first `admin` account sign in to the console.
    `source_roots`, when given, are the only folders package sources may come from.
    `library_url` (s3://…) keeps the content library in a bucket, checked here first."""
    home = SiteHome(root)
    check_site_code(site_code)
    split_listen(listen)
    if library_url:
        library_url = check_library_url(library_url)
    if admin_password is not None:
        check_password(admin_password)
    if home.exists():
        raise Conflict(
            f"{home.root} already holds a site", "choose another --home, or serve this one"
        )
    if not name.strip():
        raise InvalidInput("a site needs a name", "pass --name")
    created_root = not home.root.exists()
    try:
        _create(home, site_code, name, database_url, listen, admin_password, library_url)
        if source_roots:
            roots.write_roots(home, source_roots)
            lock_down(home)
    except BaseException:
        if created_root:
            shutil.rmtree(home.root, ignore_errors=True)
        raise
    return home


def _create(
    home: SiteHome,
    site_code: str,
    name: str,
    database_url: str | None,
    listen: str,
    admin_password: str | None,
    library_url: str = "",
) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    for folder in (home.library, home.logs, home.dp_home, home.signing_key_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(home.signing_key_path.parent, 0o700)
    config = SiteConfig(
        site_code=site_code,
        name=name.strip(),
        listen=listen,
        database_url=database_url or db.sqlite_url(home.database_path),
        library_url=library_url,
    )
    db.upgrade(config.database_url)
    database_file = sqlite_path(config)
    if database_file is not None and database_file.exists():
        os.chmod(database_file, 0o600)  # also when it lies outside the home
    create_first_key(home.keys)
    database = db.Database(config.database_url)
    try:
        with database.session() as session:
            if session.query(Site).count():
                raise Conflict(
                    "that database already holds a site",
                    "give a new, empty database with --database",
                )
            session.add(Site(site_code=site_code, name=config.name))
            admin = create_account(session, "admin", "admin", admin_password)
            _, token = create_token(session, admin, label="admin.token (qm site init)")
            dp_token = add_dp(
                session, EMBEDDED_DP, content_url(config), [], fallback=True, embedded=True
            )
    finally:
        database.dispose()
    write_atomic(home.dp_home / EMBEDDED_ENROLLMENT, dp_token.encode() + b"\n", mode=0o600)
    write_atomic(home.admin_token_path, token.encode() + b"\n", mode=0o600)
    home.save_config(config)
    lock_down(home)  # last: a complete site home, its user's alone
