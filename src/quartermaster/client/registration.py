"""Registration: tell the site about this computer, keep the identity and keys it issues."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quartermaster.client.home import PRIVATE_FILE, ClientConfig, ClientHome
from quartermaster.client.machine_facts import collect_facts, inventory_digest
from quartermaster.client.site_link import REGISTRATION_ADVICE, SiteLink
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import IntegrityError, InvalidInput, QMError, SignatureError
from quartermaster.core.ids import check_client_id
from quartermaster.core.signing import parse_public_keys
from quartermaster.core.tls import pinned_context, read_ca_file
from quartermaster.core.trust_roles import trust_first_root


def register(
    home: ClientHome,
    site_url: str,
    *,
    hostname: str = "",
    force: bool = False,
    timeout: float = 30.0,
    ca_file: Path | None = None,
    properties: dict[str, str] | None = None,
) -> ClientConfig:
    """Register with the site at `site_url`; `force` replaces an existing identity.

    `ca_file` (https only) is pinned: copied into the home, it is the only TLS trust for
    this call and every later one, to the site and to DPs.
    """
    site_url = check_site_url(site_url)
    if not force:
        home.ensure_unregistered()
    ca_bytes = _pinned_ca(site_url, ca_file)
    home.make_private()
    facts = collect_facts(home.root, site_url, hostname)
    context = pinned_context(ca_file) if ca_file is not None else None
    report = facts.registration(properties)
    with SiteLink(
        site_url, timeout=timeout, ssl_context=context, advice=REGISTRATION_ADVICE
    ) as site:
        answer = site.register(report)
    config, secret = config_from_answer(answer, site_url, facts.hostname)
    config.properties = dict(properties or {})
    config.inventory_digest = inventory_digest(report)
    if ca_bytes is not None:
        write_atomic(home.ca_path, ca_bytes, PRIVATE_FILE)
        config.ca_file = home.ca_path.name
    else:
        home.ca_path.unlink(missing_ok=True)
    home.save_config(config)
    home.write_secret(secret)
    home.policy_path.unlink(missing_ok=True)  # it belonged to the previous identity
    home.log("policyagent").write(f"registered with {site_url} as client {config.client_id}")
    return config


def _pinned_ca(site_url: str, ca_file: Path | None) -> bytes | None:
    if ca_file is None:
        return None
    if not site_url.startswith("https://"):
        raise InvalidInput(
            f"--ca-file pins the CA of an https site; {site_url} is not https",
            "give the site's https:// URL, or leave out --ca-file",
        )
    return read_ca_file(ca_file)


def check_site_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(
            f"site URL {url!r} is not valid",
            "give the site server's URL, e.g. http://site.example:8441",
        )
    return url.rstrip("/")


def config_from_answer(
    answer: dict[str, Any], site_url: str, hostname: str
) -> tuple[ClientConfig, str]:
    """Check the site's registration answer; returns the config and the client secret."""
    try:
        client_id = check_client_id(str(answer.get("client_id")))
    except InvalidInput as exc:
        raise QMError(f"the site's registration answer is unusable: {exc.message}") from None
    secret, site_code = answer.get("client_secret"), answer.get("site_code")
    if not isinstance(secret, str) or not secret or not isinstance(site_code, str):
        raise QMError(
            "the site's registration answer has no client secret or site code",
            "check that the URL points at a Quartermaster site server",
        )
    poll = answer.get("poll_interval")
    root = _root(answer.get("root"), site_code)
    return ClientConfig(
        root=root,
        client_id=client_id,
        site_url=site_url.rstrip("/"),
        site_code=site_code,
        signing_keys=_keys(answer.get("signing_keys")),
        poll_interval=poll if isinstance(poll, int) and poll > 0 else 3600,
        hostname=hostname,
    ), secret


def _root(envelope: Any, site_code: str) -> dict[str, Any] | None:
    """The site's root metadata, pinned now (trust on first use, over the pinned CA); from
    then on only a root signed by a threshold of its root keys replaces it."""
    if envelope is None:
        return None
    try:
        root = trust_first_root(envelope)
    except SignatureError as exc:
        raise IntegrityError(f"the site's root metadata: {exc.message}", exc.hint) from None
    if root.site_code != site_code:
        raise IntegrityError(f"the site's root metadata is for site {root.site_code}")
    return root.envelope


def _keys(entries: Any) -> list[dict[str, str]]:
    try:
        keys = parse_public_keys(entries)
    except SignatureError as exc:
        raise IntegrityError(
            f"the site's registration answer: {exc.message}",
            exc.hint or "the client could trust nothing",
        ) from None
    return [key.to_dict() for key in keys]
