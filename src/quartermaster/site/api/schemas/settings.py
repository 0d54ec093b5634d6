"""Site settings an administrator may change."""

from __future__ import annotations

from pydantic import Field, StrictBool, StrictInt

from quartermaster.site import settings
from quartermaster.site.api.schemas.common import Answer, Strict


class SettingsBody(Strict):
    require_approval: StrictBool | None = None  # "yes" is refused, not taken as true
    content_grace_seconds: StrictInt | None = Field(default=None, ge=0, le=settings.MAX_GRACE)


class SiteSettings(Answer):
    require_approval: bool
    content_grace_seconds: int
