"""Registration: tell the site about this computer, keep the identity and keys it issues."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from quartermaster.client.home import ClientConfig, ClientHome
from quartermaster.client.machine_facts import collect_facts
from quartermaster.client.site_link import SiteLink
from quartermaster.core.errors import IntegrityError, InvalidInput, QMError
from quartermaster.core.ids import check_client_id
from quartermaster.core.signing import PublicKey


def register(home: ClientHome, site_url: str, *, hostname: str = "", force: bool = False,
             timeout: float = 30.0) -> ClientConfig:
    """Register with the site at `site_url`; `force` replaces an existing identity."""
    site_url = check_site_url(site_url)
    if not force:
        home.ensure_unregistered()
    facts = collect_facts(home.root, site_url, hostname)
    with SiteLink(site_url, timeout=timeout) as site:
        answer = site.register(facts.registration())
    config, secret = config_from_answer(answer, site_url, facts.hostname)
    home.save_config(config)
    home.write_secret(secret)
    home.policy_path.unlink(missing_ok=True)  # it belonged to the previous identity
    home.log("policyagent").write(f"registered with {site_url} as client {config.client_id}")
    return config


def check_site_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(f"site URL {url!r} is not valid",
                           "give the site server's URL, e.g. http://site.example:8441")
    return url.rstrip("/")


def config_from_answer(answer: dict[str, Any], site_url: str,
                       hostname: str) -> tuple[ClientConfig, str]:
    """Check the site's registration answer; returns the config and the client secret."""
    try:
        client_id = check_client_id(str(answer.get("client_id")))
    except InvalidInput as exc:
        raise QMError(f"the site's registration answer is unusable: {exc.message}") from None
    secret, site_code = answer.get("client_secret"), answer.get("site_code")
    if not isinstance(secret, str) or not secret or not isinstance(site_code, str):
        raise QMError("the site's registration answer has no client secret or site code",
                      "check that the URL points at a Quartermaster site server")
    poll = answer.get("poll_interval")
    return ClientConfig(
        client_id=client_id, site_url=site_url.rstrip("/"), site_code=site_code,
        signing_keys=_keys(answer.get("signing_keys")),
        poll_interval=poll if isinstance(poll, int) and poll > 0 else 3600,
        hostname=hostname,
    ), secret


def _keys(entries: Any) -> list[dict[str, str]]:
    if not isinstance(entries, list) or not entries:
        raise IntegrityError("the site gave no signing keys", "the client could trust nothing")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise IntegrityError("a signing key in the registration answer is not an object")
        try:
            key = PublicKey.from_hex(str(entry.get("public_key")))
        except ValueError:
            raise IntegrityError("a signing key is not hex") from None
        if entry.get("keyid") != key.keyid:
            raise IntegrityError(f"signing key id {entry.get('keyid')!r} does not match its key",
                                 "the key ID is the first 16 hex digits of the key's SHA-256")
        keys.append(key.to_dict())
    return keys
