"""A DP's identity: one-time enrollment tokens and the credential it authenticates with."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Unauthorized
from quartermaster.core.hashing import token_hash
from quartermaster.site.distribution.points import check_dp_url
from quartermaster.site.models import (
    DistributionPoint,
    utcnow,
)


def enroll(
    session: Session, enrollment_token: str, url: str | None
) -> tuple[DistributionPoint, str]:
    if url:
        url = check_dp_url(url)  # before the token is spent
    dp = session.scalar(
        select(DistributionPoint).where(
            DistributionPoint.enrollment_token_hash == token_hash(enrollment_token)
        )
    )
    if dp is None or dp.state != "active":
        raise Unauthorized(
            "the enrollment token is not valid or was already used",
            "ask the administrator for a new one: `qm dp add` or `qm dp reenroll`",
        )
    credential = "qmd_" + secrets.token_urlsafe(32)
    dp.enrollment_token_hash = None
    dp.credential_hash = token_hash(credential)
    dp.last_contact = utcnow()
    if url:
        dp.url = url.rstrip("/")
    return dp, credential


def authenticate_dp(session: Session, credential: str) -> DistributionPoint:
    dp = session.scalar(
        select(DistributionPoint).where(DistributionPoint.credential_hash == token_hash(credential))
    )
    if dp is None or dp.state != "active":
        raise Unauthorized(
            "unknown or retired distribution point credential",
            "enroll the DP again with a new token",
        )
    return dp
