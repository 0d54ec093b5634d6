"""Collection query rules: a small language over what clients report, parsed once, run often.

A rule is parsed by lark (LALR) and then compiled into plain Python closures, so evaluating
it against a client costs a few attribute look-ups and comparisons, not a tree walk. The
grammar, in order of binding (loosest first)::

    rule        := or_expr
    or_expr     := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | "(" or_expr ")" | comparison
    comparison  := attribute ("=" | "!=" | "<" | "<=" | ">" | ">=") value
                 | attribute ["not"] "like" value
                 | attribute ["not"] "in" ( "(" value ("," value)* ")" | network )
    attribute   := hostname | os | os_version | architecture | arch | ip
                 | agent_version | free_disk_mb | prop.NAME
    value       := "quoted text" | 'quoted text' | bare  (a bare value starts with a digit:
                                                           2048, 6.1, 10.1.0.0/16)

Keywords are case-insensitive. Text compares case-insensitively; ``like`` takes ``%`` (any
run of characters) and ``_`` (one character), a backslash makes the next character literal.
Versions compare by their numeric components (``0.10 > 0.9``, ``6.1 = 6.1.0``); a
comparison with an attribute the client did not report is false, and so are ``!=``,
``not like`` and ``not in`` (only ``not (...)`` turns it true). ``ip`` holds several
addresses: it matches when any of them does, and its negated forms hold when none does.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from quartermaster.core.errors import InvalidInput

Client = Mapping[str, Any]
Test = Callable[[Client], bool]

#: Longer rules are refused: a rule is a filter an administrator reads, not a program.
MAX_RULE_LENGTH = 4000
#: Deeper nesting is refused so that compiling a rule can never exhaust the stack.
MAX_DEPTH = 64
#: A membership reason is stored in a 200-character column.
MAX_REASON_LENGTH = 200

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr -> negation
         | "(" or_expr ")"
         | comparison
comparison: ATTRIBUTE OPERATOR value        -> compare
          | ATTRIBUTE NOT? LIKE value       -> like
          | ATTRIBUTE NOT? IN value_list    -> member
          | ATTRIBUTE NOT? IN value         -> member
value_list: "(" value ("," value)* ")"
?value: STRING | BARE
OR: "or"i
AND: "and"i
NOT: "not"i
LIKE: "like"i
IN: "in"i
OPERATOR: "!=" | "<=" | ">=" | "=" | "<" | ">"
ATTRIBUTE: /[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_-]*)?/i
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
BARE: /[0-9][0-9a-z._:\/-]*/i
%import common.WS
%ignore WS
"""


class Kind(Enum):
    """How an attribute's values compare."""

    TEXT = "text"
    VERSION = "version"
    NUMBER = "number"
    ADDRESS = "address"
    PROPERTY = "property"


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: Kind
    read: Callable[[Client], Any]


def _field(key: str) -> Callable[[Client], Any]:
    return lambda client: client.get(key)


def _prop(key: str) -> Callable[[Client], Any]:
    def read(client: Client) -> Any:
        props = client.get("properties")
        return props.get(key) if props else None

    return read


ATTRIBUTES: dict[str, Attribute] = {
    "hostname": Attribute("hostname", Kind.TEXT, _field("hostname")),
    "os": Attribute("os", Kind.TEXT, _field("os")),
    "os_version": Attribute("os_version", Kind.VERSION, _field("os_version")),
    "architecture": Attribute("architecture", Kind.TEXT, _field("architecture")),
    "ip": Attribute("ip", Kind.ADDRESS, _field("ip_addresses")),
    "agent_version": Attribute("agent_version", Kind.VERSION, _field("agent_version")),
    "free_disk_mb": Attribute("free_disk_mb", Kind.NUMBER, _prop("free_disk_mb")),
}
ALIASES = {"arch": "architecture"}
_ATTRIBUTE_LIST = (
    "hostname, os, os_version, architecture (or arch), ip, agent_version, free_disk_mb, prop.NAME"
)

_ORDERING = {"<", "<=", ">", ">="}


# --------------------------------------------------------------------------- the public API


def client_facts(client: Any) -> dict[str, Any]:
    """What rules read from a client record: the facts as the client last reported them."""
    return {
        "client_id": client.client_id,
        "hostname": client.hostname,
        "os": client.os,
        "os_version": client.os_version,
        "architecture": client.architecture,
        "ip_addresses": client.ip_addresses,
        "agent_version": client.agent_version,
        "properties": client.properties,
    }


@dataclass(frozen=True, eq=False)
class _Node:
    """One compiled piece of a rule: its test, its display text and its parts."""

    kind: str  # "compare", "and", "or", "not"
    test: Test
    text: str  # canonical: parses back to the same rule
    parts: tuple[_Node, ...] = ()
    plain: str = ""  # a comparison without quotes, for membership reasons


class Rule:
    """A parsed, validated query rule; immutable and safe to share between threads."""

    __slots__ = ("text", "attributes", "_root")

    def __init__(self, text: str, root: _Node, attributes: frozenset[str]) -> None:
        self.text = text
        self.attributes = attributes  # what a client must report for this rule to change
        self._root = root

    def matches(self, client: Client) -> bool:
        return self._root.test(client)

    def explain(self, client: Client) -> str:
        """Why the client is (or is not) a member, short enough to store as the reason."""
        if self._root.test(client):
            return _clip("rule: " + _why(self._root, client, True))
        return _clip("no match: " + _why(self._root, client, False))

    def __str__(self) -> str:
        return self._root.text

    def __repr__(self) -> str:
        return f"Rule({self._root.text!r})"


def parse_rule(text: str) -> Rule:
    """Parse and validate a rule; every mistake is an InvalidInput pointing at its column."""
    if len(text) > MAX_RULE_LENGTH:
        raise InvalidInput(
            f"the rule is {len(text)} characters long",
            f"keep a rule under {MAX_RULE_LENGTH} characters; split it into "
            "several rules of the collection (a client matching any is a member)",
        )
    if not text.strip():
        raise InvalidInput("the rule is empty", 'write a condition such as os = "linux"')
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    _check_depth(text, tree)
    attributes: set[str] = set()
    root = _Compiler(text, attributes).node(tree)
    return Rule(text, root, frozenset(attributes))


def evaluate_collection(
    clients: Iterable[Client],
    *,
    direct: Collection[str] = (),
    rules: Sequence[Rule] = (),
    include: Mapping[str, Collection[str]] | None = None,
    exclude: Mapping[str, Collection[str]] | None = None,
) -> dict[str, str]:
    """Members of one collection as {client_id: reason}.

    ``clients`` is every client that may be a member (the site passes approved clients); a
    direct or included ID that is not among them is not a member. ``include`` and ``exclude``
    map another collection's name to its evaluated member IDs. A client is a member when it
    is a direct member, matches any rule, or is in an included collection, and it is not in
    any excluded collection: exclusion always wins. The reason names the first of these that
    applies, in that order ("direct", "rule: ...", "included from NAME").
    """
    direct_ids = set(direct)
    included = [(name, ids) for name, ids in (include or {}).items()]
    excluded = [ids for ids in (exclude or {}).values()]
    members: dict[str, str] = {}
    for client in clients:
        client_id = str(client["client_id"])
        if any(client_id in ids for ids in excluded):
            continue
        reason = _reason(client_id, client, direct_ids, rules, included)
        if reason:
            members[client_id] = reason
    return members


def evaluation_order(references: Mapping[str, Collection[str]]) -> list[str]:
    """Collections ordered so each comes after those it includes or excludes.

    ``references`` maps a collection name to the names it includes or excludes. A cycle is
    refused, because membership would then depend on itself.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = being visited, 2 = done
    for start in sorted(references):
        if state.get(start) == 2:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(references.get(start, ())))]
        state[start] = 1
        while stack:
            name, pending = stack[-1]
            if not pending:
                stack.pop()
                state[name] = 2
                order.append(name)
                continue
            child = pending.pop(0)
            if state.get(child) == 1:
                path = [n for n, _ in stack] + [child]
                cycle = " -> ".join(path[path.index(child) :])
                raise InvalidInput(
                    f"collections refer to each other: {cycle}",
                    "remove one of the include or exclude links",
                )
            if state.get(child) is None:
                state[child] = 1
                stack.append((child, sorted(references.get(child, ()))))
    return order


def _reason(
    client_id: str,
    client: Client,
    direct: set[str],
    rules: Sequence[Rule],
    included: list[tuple[str, Collection[str]]],
) -> str:
    if client_id in direct:
        return "direct"
    for rule in rules:
        if rule.matches(client):
            return rule.explain(client)
    for name, ids in included:
        if client_id in ids:
            return _clip(f"included from {name}")
    return ""


def _clip(reason: str) -> str:
    if len(reason) <= MAX_REASON_LENGTH:
        return reason
    return reason[: MAX_REASON_LENGTH - 1] + "…"


def _why(node: _Node, client: Client, wanted: bool) -> str:
    """The smallest part of the rule that gives the result: all of an and, one of an or."""
    if node.kind == "not":
        return f"not ({_why(node.parts[0], client, not wanted)})"
    if node.kind == "compare":
        return node.plain
    decisive = (node.kind == "or") == wanted  # an or is decided by one true part
    if decisive:
        part = next(p for p in node.parts if p.test(client) == wanted)
        return _why(part, client, wanted)
    joiner = " and " if node.kind == "and" else " or "
    return joiner.join(_wrap(p, _why(p, client, wanted), node.kind) for p in node.parts)


def _wrap(part: _Node, text: str, parent: str) -> str:
    return f"({text})" if part.kind in ("and", "or") and part.kind != parent else text


# --------------------------------------------------------------------------- parsing


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="basic")


_TERMINAL_NAMES = {  # in the order a hint lists them
    "ATTRIBUTE": "an attribute",
    "STRING": 'a quoted value ("text")',
    "BARE": "a number, version or address",
    "OPERATOR": "a comparison (= != < <= > >=)",
    "LIKE": '"like"',
    "IN": '"in"',
    "NOT": '"not"',
    "LPAR": '"("',
    "AND": '"and"',
    "OR": '"or"',
    "COMMA": '","',
    "RPAR": '")"',
    "$END": "the end of the rule",
}


def _syntax_error(text: str, error: UnexpectedInput) -> InvalidInput:
    line, column = error.line, error.column
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream is not None else "?"
        return _error_at(
            text, line, column, f"unexpected character {char!r}", _character_hint(char)
        )
    if not isinstance(error, UnexpectedToken):
        return _error_at(text, line, column, "the rule is incomplete here", "")
    token = error.token
    expected = [e for e in _TERMINAL_NAMES if e in error.expected]
    wanted = _either([_TERMINAL_NAMES[e] for e in expected])
    if token.type == "$END":
        line, column = _end_position(text)
        return _error_at(text, line, column, "the rule ends too early", f"expected {wanted}")
    return _error_at(
        text,
        token.line or line,
        token.column or column,
        f"unexpected {str(token)!r}",
        _token_hint(token, expected, wanted),
    )


def _either(names: list[str]) -> str:
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _character_hint(char: str) -> str:
    if char in "\"'":
        return f"a quoted value is not closed; add the closing {char}"
    if char in "&|":
        return 'combine conditions with "and", "or" and "not"'
    return 'text values go in double quotes, e.g. os = "linux"'


def _token_hint(token: Token, expected: list[str], wanted: str) -> str:
    if token.type == "ATTRIBUTE" and "STRING" in expected:
        return f'text values go in double quotes: "{token}"'
    if token.type == "OPERATOR" and token == "=" and "STRING" in expected:
        return 'compare with a single "=", e.g. os = "linux"'
    if token.type in ("STRING", "BARE") and "ATTRIBUTE" in expected:
        return f"expected {wanted}; a condition starts with an attribute: {_ATTRIBUTE_LIST}"
    return f"expected {wanted}"


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


def _error_at(text: str, line: int, column: int, problem: str, hint: str) -> InvalidInput:
    """An error whose message shows the rule's line with a caret under the mistake."""
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    pad = "".join("\t" if c == "\t" else " " for c in source[: column - 1])
    message = f"rule error at line {line}, column {column}: {problem}\n  {source}\n  {pad}^"
    return InvalidInput(message, hint)


def _check_depth(text: str, tree: Tree[Token]) -> None:
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_DEPTH:
            first = next((t for t in node.scan_values(lambda v: isinstance(v, Token))), None)
            line = first.line if first is not None and first.line else 1
            column = first.column if first is not None and first.column else 1
            raise _error_at(
                text,
                line,
                column,
                f"the rule nests deeper than {MAX_DEPTH} levels",
                "remove redundant parentheses or repeated 'not'",
            )
        stack.extend((child, depth + 1) for child in node.children)


# --------------------------------------------------------------------------- values


def version_key(value: Any) -> tuple[int, ...] | None:
    """Leading dotted numbers of a version, trailing zeros dropped ("6.1.0-26" -> (6, 1))."""
    match = _VERSION.match(str(value).strip())
    if not match:
        return None
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_VERSION = re.compile(r"[vV]?(\d+(?:\.\d+)*)")


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        text = str(value).strip()
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=65536)
def _address(text: str) -> tuple[int, int] | None:
    """(IP version, integer) of an address a client reported; cached, clients repeat them."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return address.version, int(address)


def _like(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _unquote(token: Token) -> str:
    if token.type == "BARE":
        return str(token)
    body = str(token)[1:-1]
    return re.sub(r"\\([\"'\\])", r"\1", body)


def _display(value: str, quote: bool) -> str:
    """A value as a rule shows it: canonical (quoted unless bare) or plain (for reasons)."""
    bare = _BARE if quote else _PLAIN
    if bare.fullmatch(value) and value.lower() not in ("and", "or", "not", "like", "in"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_BARE = re.compile(r"[0-9][0-9a-zA-Z._:/-]*")
_PLAIN = re.compile(r"[\w.%/:\-]+")


# --------------------------------------------------------------------------- compiling


Network = tuple[int, int, int]  # IP version, network as integer, mask as integer


class _Compiler:
    """Turns the lark tree into closures, checking each comparison against its attribute."""

    def __init__(self, text: str, attributes: set[str]) -> None:
        self.text = text
        self.attributes = attributes

    def fail(self, token: Token, problem: str, hint: str) -> InvalidInput:
        return _error_at(self.text, token.line or 1, token.column or 1, problem, hint)

    def node(self, tree: Tree[Token] | Token) -> _Node:
        if not isinstance(tree, Tree):
            raise self.fail(tree, f"unexpected {tree.value!r}", "")
        kind = str(tree.data)
        if kind in ("or_expr", "and_expr"):
            return self.junction(tree)
        if kind == "negation":
            inner = self.node(tree.children[1])
            inner_test = inner.test
            return _Node("not", lambda c: not inner_test(c), f"not ({inner.text})", (inner,))
        return self.comparison(tree)

    def junction(self, tree: Tree[Token]) -> _Node:
        kind = "or" if tree.data == "or_expr" else "and"
        parts = tuple(self.node(c) for c in tree.children if isinstance(c, Tree))
        tests = tuple(p.test for p in parts)
        text = f" {kind} ".join(_wrap(p, p.text, kind) for p in parts)
        return _Node(kind, _any(tests) if kind == "or" else _all(tests), text, parts)

    def comparison(self, tree: Tree[Token]) -> _Node:
        tokens = [c for c in tree.children if isinstance(c, Token)]
        lists = [c for c in tree.children if isinstance(c, Tree)]
        attr_token = tokens[0]
        negated = any(t.type == "NOT" for t in tokens)
        attribute = self.attribute(attr_token)
        self.attributes.add(attribute.name)
        values = [v for v in (lists[0].children if lists else tokens[-1:]) if isinstance(v, Token)]
        if tree.data == "compare":
            operator = str(tokens[1])
            test = self.compare(attribute, tokens[1], values[0])
        elif tree.data == "like":
            operator = "not like" if negated else "like"
            test = self.like(attribute, values[0], negated)
        else:
            operator = "not in" if negated else "in"
            test = self.member(attribute, values, negated, bool(lists))

        def show(quote: bool) -> str:
            shown = ", ".join(_display(_unquote(v), quote) for v in values)
            return f"{attribute.name} {operator} " + (f"({shown})" if lists else shown)

        return _Node("compare", test, show(True), plain=show(False))

    def attribute(self, token: Token) -> Attribute:
        name = str(token).lower()
        name = ALIASES.get(name, name)
        if name in ATTRIBUTES:
            return ATTRIBUTES[name]
        if name.startswith("prop."):
            key = str(token)[5:]
            return Attribute(f"prop.{key}", Kind.PROPERTY, _prop(key))
        close = difflib.get_close_matches(name, [*ATTRIBUTES, *ALIASES], n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        if "." in name:
            guess = "custom properties are written prop.NAME; "
        raise self.fail(
            token, f"unknown attribute {str(token)!r}", f"{guess}attributes are {_ATTRIBUTE_LIST}"
        )

    # --- one compiler per operator family; each returns a closure over prepared values

    def compare(self, attribute: Attribute, operator_token: Token, token: Token) -> Test:
        kind, operator = attribute.kind, str(operator_token)
        if operator in _ORDERING and kind in (Kind.TEXT, Kind.ADDRESS):
            raise self.fail(
                operator_token,
                f"{attribute.name} cannot be compared with {operator}",
                "use =, !=, like or in; only versions, numbers and custom properties are ordered",
            )
        if kind is Kind.ADDRESS:
            network = self.network(token, attribute, single=True)
            found = _in_networks(attribute.read, [network])
            return found if operator == "=" else _none_of(attribute.read, found)
        key, prepare = self.converter(attribute, token, ordering=operator in _ORDERING)
        return _comparator(attribute.read, prepare, _OPERATORS[operator], key)

    def like(self, attribute: Attribute, token: Token, negated: bool) -> Test:
        if attribute.kind is Kind.NUMBER:
            raise self.fail(
                token,
                f"{attribute.name} is a number and cannot be matched with like",
                "compare it with = != < <= > >=",
            )
        pattern = _like(_unquote(token)).fullmatch
        read = attribute.read
        if attribute.kind is Kind.ADDRESS:
            found = _any_address(read, lambda a: pattern(a) is not None)
            return _none_of(read, found) if negated else found

        def test(client: Client) -> bool:
            value = read(client)
            if value is None or value == "":
                return False
            return (pattern(str(value)) is None) is negated

        return test

    def member(
        self, attribute: Attribute, tokens: list[Token], negated: bool, is_list: bool
    ) -> Test:
        read = attribute.read
        if attribute.kind is Kind.ADDRESS:
            networks = [self.network(t, attribute, single=False) for t in tokens]
            found = _in_networks(read, networks)
            return _none_of(read, found) if negated else found
        if not is_list:
            raise self.fail(
                tokens[0],
                f"{attribute.name} in needs a list in parentheses",
                f'e.g. {attribute.name} in ("a", "b"); only ip takes a network',
            )
        keys = set()
        prepare: Callable[[Any], Any] = _casefold
        for token in tokens:
            key, prepare = self.converter(attribute, token, ordering=False)
            keys.add(key)
        allowed = frozenset(keys)

        def test(client: Client) -> bool:
            value = read(client)
            if value is None or value == "":
                return False
            prepared = prepare(value)
            return prepared is not None and (prepared in allowed) is not negated

        return test

    def converter(
        self, attribute: Attribute, token: Token, ordering: bool
    ) -> tuple[Any, Callable[[Any], Any]]:
        """The literal's comparable form and the function giving a client value's form."""
        raw = _unquote(token)
        kind = attribute.kind
        if kind is Kind.PROPERTY:
            kind = Kind.VERSION if ordering else Kind.TEXT
        if kind is Kind.TEXT:
            return raw.casefold(), _casefold
        if kind is Kind.NUMBER:
            number = _number(raw)
            if number is None:
                raise self.fail(
                    token,
                    f"{attribute.name} compares numbers; {raw!r} is not a number",
                    f"e.g. {attribute.name} > 2048",
                )
            return number, _number
        version = version_key(raw)
        if version is None:
            raise self.fail(
                token,
                f"{attribute.name} compares versions; {raw!r} is not a version",
                'a version starts with a number, e.g. "6.1"',
            )
        return version, version_key

    def network(self, token: Token, attribute: Attribute, single: bool) -> Network:
        raw = _unquote(token).strip()
        if single and "/" in raw:
            raise self.fail(token, f"{raw} is a network", f"use {attribute.name} in {raw}")
        try:
            network = ipaddress.ip_network(raw, strict=True)
        except ValueError as error:
            problem = f"{raw!r} is not an IP address or network"
            hint = "write an address (10.1.2.3) or a network (10.1.0.0/16)"
            if "host bits set" in str(error):
                proper = ipaddress.ip_network(raw, strict=False)
                problem = f"network {raw} has host bits set"
                hint = f"did you mean {proper}? the address part must be the network's start"
            raise self.fail(token, problem, hint) from None
        return network.version, int(network.network_address), int(network.netmask)


def _casefold(value: Any) -> str:
    return str(value).casefold()


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _comparator(
    read: Callable[[Client], Any],
    prepare: Callable[[Any], Any],
    op: Callable[[Any, Any], bool],
    key: Any,
) -> Test:
    def test(client: Client) -> bool:
        value = read(client)
        if value is None or value == "":
            return False
        prepared = prepare(value)
        return prepared is not None and op(prepared, key)

    return test


def _addresses(value: Any) -> list[tuple[int, int]]:
    if not value:
        return []
    items = [value] if isinstance(value, str) else value
    return [a for a in (_address(str(item)) for item in items) if a is not None]


def _in_networks(read: Callable[[Client], Any], networks: list[Network]) -> Test:
    def test(client: Client) -> bool:
        for version, number in _addresses(read(client)):
            for net_version, net, mask in networks:
                if version == net_version and number & mask == net:
                    return True
        return False

    return test


def _any_address(read: Callable[[Client], Any], check: Callable[[str], bool]) -> Test:
    def test(client: Client) -> bool:
        value = read(client)
        items = [value] if isinstance(value, str) else (value or [])
        return any(check(str(item)) for item in items)

    return test


def _none_of(read: Callable[[Client], Any], found: Test) -> Test:
    """The negated form of a multi-valued test: reported, and no value matches."""
    return lambda client: bool(read(client)) and not found(client)


def _all(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 2:
        first, second = tests
        return lambda client: first(client) and second(client)

    def test(client: Client) -> bool:
        return all(each(client) for each in tests)

    return test


def _any(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 2:
        first, second = tests
        return lambda client: first(client) or second(client)

    def test(client: Client) -> bool:
        return any(each(client) for each in tests)

    return test
