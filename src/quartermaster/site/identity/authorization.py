"""Who may do what: every action of the site's APIs and the one function that decides.

The table `RULES` is the only place that says which role may do which action; the admin API,
the client API, the DP API and the web console all ask `authorize(principal, action)`.
Nothing here touches the database or HTTP, so a decision can be read and tested as data.

Principals: an administrator's account (roles admin, operator, viewer), a client agent (its
"role" is its approval state), a distribution point, or nobody (public routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from quartermaster.core.errors import Forbidden, Unauthorized


class Credential(StrEnum):
    """What a route authenticates with (see docs/security.md)."""

    NONE = "none"  # public: registration, enrollment, health
    ACCOUNT = "account"  # an administrator's API token (or a console session)
    CLIENT = "client"  # a client secret, `qmc_...`
    DP = "dp"  # a DP credential, `qmd_...`


ACCOUNT_ROLES = ("admin", "operator", "viewer")
ANONYMOUS = "anonymous"

# What a client may do depends on its approval state; "rekey_required" is a client whose
# administrator asked for a new secret and that still authenticates with the old one.
APPROVED, PENDING, BLOCKED, REKEY_REQUIRED = "approved", "pending", "blocked", "rekey_required"
CLIENT_STATES = (APPROVED, PENDING, BLOCKED)

_ALL = frozenset(ACCOUNT_ROLES)
_OPERATE = frozenset({"admin", "operator"})
_ADMIN = frozenset({"admin"})


@dataclass(frozen=True)
class Rule:
    credential: Credential
    roles: frozenset[str]
    summary: str


def _account(roles: frozenset[str], summary: str) -> Rule:
    return Rule(Credential.ACCOUNT, roles, summary)


def _client(summary: str, *states: str) -> Rule:
    return Rule(Credential.CLIENT, frozenset(states), summary)


# The whole policy. Reads are open to every role, changes to operators, and anything about
# identity (accounts, other people's tokens, clients' and DPs' credentials, site settings,
# the audit log) to admins only.
RULES: dict[str, Rule] = {
    # public
    "site.health": Rule(Credential.NONE, frozenset(), "check that the site answers"),
    "client_api.register": Rule(Credential.NONE, frozenset(), "register a new client"),
    "dp_api.enroll": Rule(Credential.NONE, frozenset(), "enroll a DP with a one-time token"),
    # every account
    "self.read": _account(_ALL, "see one's own account and what it may do"),
    "site.read": _account(_ALL, "read the site's identity and signing keys"),
    "settings.read": _account(_ALL, "read the site settings"),
    "package.read": _account(_ALL, "list and show packages"),
    "collection.read": _account(_ALL, "list and show collections"),
    "deployment.read": _account(_ALL, "list deployments and their status"),
    "application.read": _account(_ALL, "list and show applications and their compliance"),
    "status.read": _account(_ALL, "read status messages"),
    "client.read": _account(_ALL, "list clients"),
    "dp.read": _account(_ALL, "list DPs and their content"),
    "token.read": _account(_ALL, "list one's own API tokens"),
    "job.read": _account(_ALL, "list background jobs and follow their progress"),
    "site.metrics": _account(_ALL, "read /metrics (also open to direct loopback peers)"),
    # operators and admins
    "package.create": _account(_OPERATE, "create a package"),
    "package.update": _account(_OPERATE, "publish a new version of a package"),
    "program.create": _account(_OPERATE, "add a program to a package"),
    "package.distribute": _account(_OPERATE, "send a package to DPs"),
    "package.remove_dp": _account(_OPERATE, "take a package off DPs"),
    "package.prune": _account(_OPERATE, "remove old versions of a package (retention)"),
    "collection.create": _account(_OPERATE, "create a collection"),
    "collection.update": _account(_OPERATE, "change a collection's members, rules or windows"),
    "deployment.create": _account(_OPERATE, "deploy a program or application to a collection"),
    "application.create": _account(_OPERATE, "create an application"),
    "application.update": _account(_OPERATE, "make a new revision of an application"),
    "deployment.update": _account(_OPERATE, "pause, resume, change or cancel a deployment"),
    "release.approve": _account(
        _OPERATE, "hand in an approver's signature over a release (the key decides, not the role)"
    ),
    "client.notify": _account(_OPERATE, "ask clients to poll for policy at their next contact"),
    "dp.validate": _account(_OPERATE, "ask a DP to re-hash its content"),
    "token.create": _account(_OPERATE, "create an API token for oneself"),
    "token.revoke": _account(_OPERATE, "revoke one of one's own API tokens"),
    # admins only
    "token.manage_others": _account(_ADMIN, "list, create or revoke other accounts' tokens"),
    "account.read": _account(_ADMIN, "list accounts"),
    "account.create": _account(_ADMIN, "create an account"),
    "account.update": _account(_ADMIN, "change an account's role or password, disable it"),
    "settings.update": _account(_ADMIN, "change the site settings"),
    "audit.read": _account(_ADMIN, "read the audit log"),
    "trust_log.read": _account(_ADMIN, "read the hash-chained log of publishes and approvals"),
    "client.approve": _account(_ADMIN, "approve a client"),
    "client.block": _account(_ADMIN, "block a client"),
    "client.rekey": _account(_ADMIN, "make a client replace its secret"),
    "dp.create": _account(_ADMIN, "register a DP (issues an enrollment token)"),
    "dp.retire": _account(_ADMIN, "retire a DP (its credential stops working)"),
    "dp.reenroll": _account(_ADMIN, "issue a DP a new one-time enrollment token"),
    "legacy.admin_only": _account(_ADMIN, "a route not yet given its own action"),
    # the client agent (management point)
    "client_api.policy": _client("fetch policy", APPROVED),
    "client_api.content": _client("fetch manifests and content locations", APPROVED),
    "client_api.status": _client("send status messages", APPROVED),
    "client_api.inventory": _client("report the client's facts", APPROVED),
    "client_api.peer": _client("report what the client serves to its boundary", APPROVED),
    "client_api.rekey": _client(
        "exchange the secret for a new one", APPROVED, PENDING, REKEY_REQUIRED
    ),
    # distribution points
    "dp_api.sync": Rule(Credential.DP, frozenset({"dp"}), "fetch assignments and manifests"),
    "dp_api.report": Rule(Credential.DP, frozenset({"dp"}), "report content state"),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, as far as authorization cares; built by authentication."""

    kind: Credential
    name: str  # account name, client GUID, DP name; "" for nobody
    role: str  # account role, client state, "dp", or "anonymous"
    account_id: int | None = None
    token_id: int | None = None
    client_id: str | None = None
    dp_id: int | None = None
    poll_requested: bool = False  # the site asks this client to poll now (`qm client notify`)

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.kind is Credential.ACCOUNT:
            return self.name
        return f"{self.kind.value} {self.name}".strip()


NOBODY = Principal(Credential.NONE, "", ANONYMOUS)


class ApprovalPending(Forbidden):
    code = "approval_pending"


class ClientBlocked(Forbidden):
    code = "client_blocked"


class RekeyRequired(Unauthorized):
    code = "rekey_required"


def rule_for(action: str) -> Rule:
    try:
        return RULES[action]
    except KeyError:
        raise ValueError(
            f"unknown action {action!r}; add it to site/identity/authorization.py"
        ) from None


def authorize(principal: Principal, action: str) -> None:
    """Allow, or raise the typed error (401/403) that tells the caller why and what to do."""
    rule = rule_for(action)
    if rule.credential is Credential.NONE:
        return
    if principal.kind is not rule.credential:
        raise Unauthorized(
            f"{action} needs a {rule.credential.value} credential",
            _credential_hint(rule.credential),
        )
    if principal.role in rule.roles:
        return
    raise _denied(principal, action, rule)


def is_allowed(principal: Principal, action: str) -> bool:
    """For faces that show or hide a control (the console); routes use authorize()."""
    rule = rule_for(action)
    return rule.credential is Credential.NONE or (
        principal.kind is rule.credential and principal.role in rule.roles
    )


def allowed_actions(principal: Principal) -> list[str]:
    return sorted(
        a
        for a, r in RULES.items()
        if r.credential is not Credential.NONE and is_allowed(principal, a)
    )


def _denied(principal: Principal, action: str, rule: Rule) -> Exception:
    if principal.kind is Credential.CLIENT:
        return _client_denied(principal, action)
    if principal.kind is Credential.ACCOUNT:
        needed = " or ".join(r for r in ACCOUNT_ROLES if r in rule.roles)
        return Forbidden(
            f"account {principal.name!r} ({principal.role}) may not "
            f"{rule.summary} ({action}); that needs role {needed}",
            "ask an administrator to do it, or to change your role",
        )
    return Forbidden(f"{principal.kind.value} {principal.name!r} may not {rule.summary}")


def _client_denied(principal: Principal, action: str) -> Exception:
    if principal.role == PENDING:
        return ApprovalPending(
            f"client {principal.name} is waiting for approval",
            "an administrator approves it with `qm client approve ID`; until then the "
            "client gets no policy and no content, and keeps its status messages spooled",
        )
    if principal.role == BLOCKED:
        return ClientBlocked(
            f"client {principal.name} is blocked",
            "an administrator unblocks it with `qm client approve ID`",
        )
    if principal.role == REKEY_REQUIRED:
        return RekeyRequired(
            f"client {principal.name} must replace its secret before {action}",
            "POST /api/client/v1/rekey with the current secret, store the new one, use it",
        )
    return Forbidden(f"client {principal.name} may not {action}")


def _credential_hint(credential: Credential) -> str:
    return {
        Credential.ACCOUNT: "pass an administrator's API token (`qm token create`)",
        Credential.CLIENT: "send the client secret issued at registration",
        Credential.DP: "send the DP credential issued at enrollment",
        Credential.NONE: "",
    }[credential]
