"""Collections: the list, one collection's rules, links, members and why each is a member;
editing rules with syntax errors shown while typing (the site's own rule parser)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from starlette.datastructures import FormData

from quartermaster.console.web import (
    PAGE_SIZE,
    Pager,
    body,
    field,
    form_data,
    get_ctx,
    page_router,
    redirect,
    render,
    signed_in,
)
from quartermaster.core.errors import InvalidInput
from quartermaster.site.api.schemas.collections import (
    CollectionBody,
    MemberBody,
    OneMemberBody,
    OtherCollectionBody,
    RuleBody,
    WindowBody,
)
from quartermaster.site.collection_rules import MAX_RULE_LENGTH, Rule, parse_rule
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import collection_names
from quartermaster.site.targeting import membership
from quartermaster.site.targeting.rule_preview import PREVIEW_SIZE, preview_rules

router = page_router()
Form = Annotated[FormData, Depends(form_data)]


def _page(name: str) -> str:
    return f"/console/collections/{name}"


@router.get("/collections")
def collection_list(
    request: Request, principal: Annotated[Principal, signed_in("collection.read")]
) -> Response:
    with get_ctx(request).db.session() as session:
        rows = membership.list_collections(session)
    return render(request, "collections.html", principal, section="collections", collections=rows)


@router.post("/collections")
def collection_create(
    request: Request, principal: Annotated[Principal, signed_in("collection.create")], form: Form
) -> Response:
    rules = [r for r in field(form, "rules").splitlines() if r.strip()]
    data = body(
        CollectionBody,
        {"name": field(form, "name"), "comment": field(form, "comment"), "rules": rules},
    )
    with get_ctx(request).db.session() as session:
        membership.create_collection(session, data.name, data.comment, rules=data.rules)
    request.state.created_object = data.name
    return redirect(request, _page(data.name), f"Collection {data.name!r} created.")


@router.get("/collections/check-rule")
def check_rule(
    request: Request,
    principal: Annotated[Principal, signed_in("collection.read")],
    rule: str = Query("", max_length=2 * MAX_RULE_LENGTH),
    rules: str = Query("", max_length=20 * MAX_RULE_LENGTH),
) -> Response:
    """A fragment for the rule editors (`rule`: one rule; `rules`: one per line): the
    parser's error with a caret under its column, or "valid" and the members the rules
    would select (count and the first 20 hostnames)."""
    lines = [line for line in (rule or rules).splitlines() if line.strip()]
    problems: list[dict[str, str]] = []
    parsed: list[Rule] = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(parse_rule(line))
        except InvalidInput as exc:
            where = f"rule {number}: " if len(lines) > 1 else ""
            problems.append({"where": where, "message": exc.message, "hint": exc.hint or ""})
    preview = None
    if parsed and not problems:
        with get_ctx(request).db.session() as session:
            preview = preview_rules(session, parsed)
    return render(
        request,
        "_rule_check.html",
        principal,
        problems=problems,
        canonical=[str(r) for r in parsed],
        empty=not lines,
        preview=preview,
    )


@router.get("/collections/{name}")
def collection_page(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.read")],
    offset: int = Query(0, ge=0, le=10_000_000),
) -> Response:
    with get_ctx(request).db.session() as session:
        collection = membership.show_collection(session, name, PAGE_SIZE + 1, offset)
        names = collection_names(session)
    linked = {collection["name"], *collection["includes"], *collection["excludes"]}
    return render(
        request,
        "collection.html",
        principal,
        section="collections",
        collection=collection,
        others=[n for n in names if n not in linked],
        preview_size=PREVIEW_SIZE,
        pager=Pager(offset, collection["members"], total=collection["member_count"]),
    )


@router.post("/collections/{name}/rules")
def rule_add(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    rule = body(RuleBody, {"rule": field(form, "rule")}).rule
    with get_ctx(request).db.session() as session:
        membership.add_rule(session, name, rule)
    return redirect(request, _page(name), "Rule added; membership re-evaluated.")


@router.post("/collections/{name}/rules/remove")
def rule_remove(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    rule = body(RuleBody, {"rule": field(form, "rule")}).rule
    with get_ctx(request).db.session() as session:
        membership.remove_rule(session, name, rule)
    return redirect(request, _page(name), "Rule removed; membership re-evaluated.")


@router.post("/collections/{name}/members")
def member_add(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    client_id = body(MemberBody, {"client_id": field(form, "client_id")}).client_id or ""
    with get_ctx(request).db.session() as session:
        membership.add_member(session, name, client_id)
    return redirect(request, _page(name), f"Client {client_id} added as a direct member.")


@router.post("/collections/{name}/members/remove")
def member_remove(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    client_id = body(OneMemberBody, {"client_id": field(form, "client_id")}).client_id
    with get_ctx(request).db.session() as session:
        membership.remove_member(session, name, client_id)
    return redirect(request, _page(name), f"Client {client_id} is no longer a direct member.")


@router.post("/collections/{name}/links")
def link_change(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    """Include or exclude another collection, or remove such a link."""
    other = body(OtherCollectionBody, {"collection": field(form, "collection")}).collection
    kind, remove = field(form, "kind"), field(form, "remove") == "yes"
    if kind not in membership.LINK_KINDS:
        raise InvalidInput(f"link kind {kind!r} is not known", "use include or exclude")
    with get_ctx(request).db.session() as session:
        if remove:
            membership.unlink(session, name, other, kind)
        else:
            membership.link(session, name, other, kind)
    verb = "no longer " + kind + "s" if remove else kind + "s"
    return redirect(request, _page(name), f"{name!r} {verb} {other!r}.")


@router.post("/collections/{name}/windows")
def window_add(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    window = body(WindowBody, {"window": field(form, "window")}).window
    with get_ctx(request).db.session() as session:
        membership.add_window(session, name, window)
    return redirect(request, _page(name), f"Maintenance window {window!r} added.")


@router.post("/collections/{name}/windows/remove")
def window_remove(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("collection.update")],
    form: Form,
) -> Response:
    window = body(WindowBody, {"window": field(form, "window")}).window
    with get_ctx(request).db.session() as session:
        membership.remove_window(session, name, window)
    return redirect(request, _page(name), f"Maintenance window {window!r} removed.")
