"""Collections, under `/api/v1/collections`: members, rules, includes, excludes and windows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from quartermaster.core.errors import InvalidInput
from quartermaster.site.api.schemas.collections import (
    CollectionBody,
    CollectionDetail,
    CollectionList,
    MemberBody,
    MembersAdded,
    OneMemberBody,
    OtherCollectionBody,
    RuleBody,
    WindowBody,
)
from quartermaster.site.api.schemas.common import MAX_INT
from quartermaster.site.targeting.membership import (
    add_member,
    add_members,
    add_rule,
    add_window,
    create_collection,
    link,
    list_collections,
    remove_member,
    remove_rule,
    remove_window,
    show_collection,
    unlink,
)
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/collections",
    response_model=CollectionDetail,
    status_code=201,
    dependencies=[allow("collection.create")],
)
def new_collection(body: CollectionBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        create_collection(
            session,
            body.name,
            body.comment,
            rules=body.rules,
            include=body.include,
            exclude=body.exclude,
            windows=body.windows,
        )
        return show_collection(session, body.name)


@router.get("/collections", response_model=CollectionList, dependencies=[allow("collection.read")])
def collections(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"collections": list_collections(session)}


@router.get(
    "/collections/{name}", response_model=CollectionDetail, dependencies=[allow("collection.read")]
)
def collection(
    name: str,
    ctx: Ctx,
    limit: int = Query(1000, ge=0, le=100_000),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return show_collection(session, name, limit, offset)


@router.post(
    "/collections/{name}/members",
    response_model=MembersAdded | CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_member(name: str, body: MemberBody, ctx: Ctx) -> dict[str, Any]:
    if (body.client_id is None) == (body.client_ids is None):
        raise InvalidInput("give either client_id or client_ids")
    with ctx.db.session() as session:
        if body.client_ids is not None:
            added = add_members(session, name, body.client_ids)
            total = show_collection(session, name, limit=0)["member_count"]
            return {"name": name, "added": added, "member_count": total}
        add_member(session, name, body.client_id or "")
        return show_collection(session, name)


@router.post(
    "/collections/{name}/members/remove",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_member_remove(name: str, body: OneMemberBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_member(session, name, body.client_id)
        return show_collection(session, name)


@router.post(
    "/collections/{name}/rules",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_rule_add(name: str, body: RuleBody, ctx: Ctx) -> dict[str, Any]:
    """Add a query rule; a rule with a mistake is a 422 naming its line and column."""
    with ctx.db.session() as session:
        add_rule(session, name, body.rule)
        return show_collection(session, name)


@router.post(
    "/collections/{name}/rules/remove",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_rule_remove(name: str, body: RuleBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_rule(session, name, body.rule)
        return show_collection(session, name)


def _change_link(ctx: Ctx, name: str, other: str, kind: str, remove: bool) -> dict[str, Any]:
    with ctx.db.session() as session:
        if remove:
            unlink(session, name, other, kind)
        else:
            link(session, name, other, kind)
        return show_collection(session, name)


@router.post(
    "/collections/{name}/includes",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_include(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "include", remove=False)


@router.post(
    "/collections/{name}/includes/remove",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_include_remove(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "include", remove=True)


@router.post(
    "/collections/{name}/excludes",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_exclude(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "exclude", remove=False)


@router.post(
    "/collections/{name}/excludes/remove",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_exclude_remove(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "exclude", remove=True)


@router.post(
    "/collections/{name}/windows",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_window_add(name: str, body: WindowBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        add_window(session, name, body.window)
        return show_collection(session, name)


@router.post(
    "/collections/{name}/windows/remove",
    response_model=CollectionDetail,
    dependencies=[allow("collection.update")],
)
def collection_window_remove(name: str, body: WindowBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_window(session, name, body.window)
        return show_collection(session, name)
