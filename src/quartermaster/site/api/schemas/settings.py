"""Site settings an administrator may change."""

from __future__ import annotations

from pydantic import StrictBool

from quartermaster.site.api.schemas.common import Answer, Strict


class SettingsBody(Strict):
    require_approval: StrictBool | None = None  # "yes" is refused, not taken as true


class SiteSettings(Answer):
    require_approval: bool
