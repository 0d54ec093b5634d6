"""Collections: a new collection and the changes to its members, rules, links and windows."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from quartermaster.site.api.schemas.common import Answer, Strict
from quartermaster.site.collection_rules import MAX_RULE_LENGTH
from quartermaster.site.targeting.membership import (
    MAX_BULK_MEMBERS,
    MAX_LINKS,
    MAX_RULES,
    MAX_WINDOWS,
)

RuleText = Annotated[str, Field(min_length=1, max_length=2 * MAX_RULE_LENGTH)]


WindowText = Annotated[str, Field(min_length=1, max_length=200)]


CollectionName = Annotated[str, Field(min_length=1, max_length=200)]


class CollectionBody(Strict):
    name: CollectionName
    comment: str = Field(default="", max_length=2000)
    rules: list[RuleText] = Field(default_factory=list, max_length=MAX_RULES)
    include: list[CollectionName] = Field(default_factory=list, max_length=MAX_LINKS)
    exclude: list[CollectionName] = Field(default_factory=list, max_length=MAX_LINKS)
    windows: list[WindowText] = Field(default_factory=list, max_length=MAX_WINDOWS)


class MemberBody(Strict):
    """One client (`client_id`) or many at once (`client_ids`, one re-evaluation)."""

    client_id: str | None = Field(default=None, min_length=1, max_length=255)  # or host name
    client_ids: list[str] | None = Field(default=None, max_length=MAX_BULK_MEMBERS)


class OneMemberBody(Strict):
    client_id: str = Field(min_length=1, max_length=255)  # GUID or host name


class RuleBody(Strict):
    rule: RuleText


class OtherCollectionBody(Strict):
    collection: CollectionName


class WindowBody(Strict):
    window: WindowText


class CollectionDetail(Answer):
    name: str
    comment: str
    created: str
    member_count: int
    members: list[dict[str, Any]]
    rules: list[str]
    includes: list[str]
    excludes: list[str]
    windows: list[str]


class MembersAdded(Answer):
    name: str
    added: int
    member_count: int


class CollectionSummary(Answer):
    name: str
    comment: str
    member_count: int
    rule_count: int


class CollectionList(Answer):
    collections: list[CollectionSummary]
