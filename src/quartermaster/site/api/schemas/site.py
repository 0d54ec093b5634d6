"""The site itself: its code, name, content URL and the signing keys it trusts."""

from __future__ import annotations

from typing import Any

from quartermaster.site.api.schemas.common import Answer


class SiteInfo(Answer):
    site_code: str
    name: str
    content_url: str
    library: str = ""  # where the content library is: a folder or an s3:// URL (no secret)
    signing_keys: list[dict[str, Any]]
    embedded_dp: dict[str, Any] | None = None  # None: a site without one
