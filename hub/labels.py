"""Security labels: Accumulo-style visibility expressions over attribute tokens.

A label is a boolean expression such as ``org=ngt&(role=planner|role=operator)``. Tokens are bare
(``[A-Za-z0-9_\\-.:/=]+``) or double-quoted with ``\\"`` and ``\\\\`` escapes; ``&`` and ``|`` may not be
mixed at one nesting level without parentheses, so ``A|B&C`` is rejected rather than guessed at.

The token ``classification=LEVEL`` is ordered: it is satisfied by a clearance at or above ``LEVEL``.
Every other token is satisfied when the caller holds exactly that token.

Labels are interned by :func:`label_id` over their canonical text, so every worker derives the same id for
the same expression without coordination, and the API evaluates each distinct label once per caller.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import structlog

log = structlog.get_logger(__name__)

CLASSIFICATION: Final = "classification"
LEVELS: Final[tuple[str, ...]] = ("PUBLIC", "OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET")
_RANK: Final[dict[str, int]] = {level: rank for rank, level in enumerate(LEVELS)}

_BARE_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:/=")
_BARE_RE: Final = re.compile(r"[A-Za-z0-9_\-.:/=]+")
_WHITESPACE: Final = frozenset(" \t\r\n")


class LabelError(ValueError):
    """An expression that is not a valid label; ``position`` is the 0-based index of the offending char."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def __str__(self) -> str:
        if not self.text and self.position == 0:
            return self.message
        # Tabs/newlines would throw the caret off, so show them as spaces.
        shown = "".join(" " if c in _WHITESPACE else c for c in self.text)
        return f"{self.message} at position {self.position}\n  {shown}\n  {' ' * self.position}^"


def rank(level: str) -> int:
    """Rank of a classification level (``PUBLIC`` is 0); ``ValueError`` naming the level if unknown."""
    found = _RANK.get(level.upper()) if isinstance(level, str) else None
    if found is None:
        raise ValueError(f"unknown classification level {level!r}; expected one of {', '.join(LEVELS)}")
    return found


def canonical_level(level: str) -> str:
    """Upper-case canonical spelling of a classification level; ``ValueError`` if unknown."""
    return LEVELS[rank(level)]


# --------------------------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Token:
    """One attribute token. ``level`` is the rank for ``classification=LEVEL`` tokens, else ``None``.

    ``classification=level`` is canonicalised on construction (``ValueError`` naming an unknown level), so
    two equal tokens always evaluate alike.
    """

    text: str
    level: int | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            raise ValueError("a label token cannot be empty")
        attr, eq, value = self.text.partition("=")
        if eq and attr.lower() == CLASSIFICATION:
            level = rank(value)
            object.__setattr__(self, "text", f"{CLASSIFICATION}={LEVELS[level]}")
            object.__setattr__(self, "level", level)

    @staticmethod
    def of(text: str) -> Token:
        return Token(text)


def _check_operands(node: And | Or) -> None:
    # An empty conjunction would be vacuously true, i.e. visible to everyone: never allow it.
    if not node.operands:
        raise ValueError(f"{type(node).__name__} needs at least one operand")


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Label, ...]

    def __post_init__(self) -> None:
        _check_operands(self)


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Label, ...]

    def __post_init__(self) -> None:
        _check_operands(self)


Label = Token | And | Or


# ----------------------------------------------------------------------------------------------- parser


def parse(text: str) -> Label:
    """Parse and normalise a label expression; :class:`LabelError` points at the offending character."""
    if not isinstance(text, str):
        raise LabelError(f"label must be a string, got {type(text).__name__}", 0)
    parser = _Parser(text)
    return normalise(parser.parse())


class _Parser:
    # Hand-written recursive descent: the grammar is tiny and errors need exact positions.
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> LabelError:
        return LabelError(message, self.pos if position is None else position, self.text)

    def skip_ws(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n and text[self.pos] in _WHITESPACE:
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Label:
        if not self.peek():
            raise self.fail("empty label expression (use classification=PUBLIC for public data)")
        label = self.expression()
        if self.pos < len(self.text):
            c = self.text[self.pos]
            if c == ")":
                raise self.fail("unmatched ')'")
            raise self.fail(f"unexpected {c!r}")
        return label

    def expression(self) -> Label:
        operands = [self.term()]
        op = ""
        while (c := self.peek()) in ("&", "|"):
            if op and c != op:
                raise self.fail(f"cannot mix '&' and '|' without parentheses (found {c!r} after {op!r})")
            op = c
            self.pos += 1
            operands.append(self.term())
        if not op:
            return operands[0]
        return And(tuple(operands)) if op == "&" else Or(tuple(operands))

    def term(self) -> Label:
        c = self.peek()
        start = self.pos
        if c == "(":
            self.pos += 1
            if self.peek() == ")":
                raise self.fail("empty parentheses")
            inner = self.expression()
            if self.peek() != ")":
                if self.pos >= len(self.text):
                    raise self.fail("unclosed '('", start)
                raise self.fail(f"expected ')' or an operator, found {self.text[self.pos]!r}")
            self.pos += 1
            return inner
        if c == '"':
            return self.quoted()
        if c and c in _BARE_CHARS:
            match = _BARE_RE.match(self.text, self.pos)
            assert match is not None  # the first char is a bare char
            self.pos = match.end()
            return self.token(match.group(), start)
        if not c:
            raise self.fail("expected a token or '(' but the expression ended")
        if c in "&|":
            raise self.fail(f"expected a token or '(' before {c!r}")
        if c == ")":
            raise self.fail("expected a token or '(' before ')'")
        raise self.fail(f"invalid character {c!r} (quote tokens that contain it)")

    def quoted(self) -> Label:
        start = self.pos
        text, n = self.text, len(self.text)
        i = start + 1
        chars: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 < n and text[i + 1] in '"\\':
                    chars.append(text[i + 1])
                    i += 2
                    continue
                raise self.fail('only \\" and \\\\ may be escaped in a quoted token', i)
            if c == '"':
                self.pos = i + 1
                value = "".join(chars)
                if not value:
                    raise self.fail("empty quoted token", start)
                return self.token(value, start)
            chars.append(c)
            i += 1
        raise self.fail("unterminated quoted token", start)

    def token(self, value: str, start: int) -> Token:
        try:
            return Token.of(value)
        except ValueError as exc:
            raise self.fail(str(exc), start) from None


# ------------------------------------------------------------------------------------ canonical form


def normalise(label: Label) -> Label:
    """Flatten nested same operators, sort and deduplicate operands, collapse single-operand groups."""
    if isinstance(label, Token):
        return label
    kind = type(label)
    flat: dict[str, Label] = {}
    stack = list(label.operands)
    while stack:
        op = stack.pop()
        if not isinstance(op, Token):
            op = normalise(op)
            if type(op) is kind:
                stack.extend(op.operands)
                continue
        # Keyed by rendered text: a quoted token can never collide with a parenthesised group.
        flat.setdefault(_render(op, top=False), op)
    if len(flat) == 1:
        return next(iter(flat.values()))
    # Tokens first, then groups; each by text, so the order is total and stable.
    ordered = sorted(flat.items(), key=lambda kv: (not isinstance(kv[1], Token), kv[0]))
    return kind(tuple(op for _, op in ordered))


def canonical(label: Label | str) -> str:
    """Canonical text: normalised tree, minimal parentheses, tokens quoted only when they must be."""
    tree = parse(label) if isinstance(label, str) else normalise(label)
    return _render(tree, top=True)


def quote(token: str) -> str:
    """A token as it must be written in an expression (bare when possible)."""
    if _BARE_RE.fullmatch(token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(label: Label, *, top: bool) -> str:
    if isinstance(label, Token):
        return quote(label.text)
    sep = "&" if isinstance(label, And) else "|"
    body = sep.join(_render(op, top=False) for op in label.operands)
    return body if top else f"({body})"


def tokens(label: Label) -> frozenset[str]:
    """Every token text the label mentions."""
    if isinstance(label, Token):
        return frozenset((label.text,))
    out: set[str] = set()
    for op in label.operands:
        out |= tokens(op)
    return frozenset(out)


# -------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Authorizations:
    """What a caller (or producer) holds: a clearance level and a set of tokens."""

    classification: str | None = None
    attributes: frozenset[str] = frozenset()
    clearance_rank: int = field(default=-1, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.classification is not None:
            level = rank(self.classification)
            object.__setattr__(self, "classification", LEVELS[level])
            object.__setattr__(self, "clearance_rank", level)
        if not isinstance(self.attributes, frozenset):
            object.__setattr__(self, "attributes", frozenset(self.attributes))

    @classmethod
    def from_claims(
        cls,
        *,
        clearance: str | None = None,
        org: str | None = None,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        extra: Iterable[str] = (),
    ) -> Authorizations:
        """Tokens ``org=<org>``, ``role=<r>`` and ``group=<g>``.

        Groups are their own namespace: a group is only ever the token ``group=<g>``, never its bare name,
        or a group named ``org=neso`` or ``role=admin`` (group names are chosen by whoever runs the
        identity provider) would grant that organisation's data or that role.
        """
        attrs: set[str] = set(extra)
        if org:
            attrs.add(f"org={org}")
        attrs.update(f"role={r}" for r in roles if r)
        attrs.update(f"group={g}" for g in groups if g)
        return cls(clearance, frozenset(attrs))

    @classmethod
    def public(cls) -> Authorizations:
        return cls("PUBLIC", frozenset())


def evaluate(label: Label, auths: Authorizations) -> bool:
    """Whether ``auths`` satisfies ``label``."""
    return _satisfies(label, auths.attributes, auths.clearance_rank)


def _satisfies(label: Label, held: frozenset[str], clearance: int) -> bool:
    if isinstance(label, Token):
        if label.level is not None:
            return clearance >= label.level
        return label.text in held
    if isinstance(label, And):
        return all(_satisfies(op, held, clearance) for op in label.operands)
    return any(_satisfies(op, held, clearance) for op in label.operands)


# ---------------------------------------------------------------------------------------- interning


def label_id(canonical_text: str) -> int:
    """Stable 63-bit id of a canonical label text (fits a signed 64-bit Neo4j integer)."""
    digest = hashlib.blake2b(canonical_text.encode("utf-8"), digest_size=8, person=b"hub-label").digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def intern(label: Label | str) -> tuple[int, str]:
    """``(label_id, canonical text)`` of a label or expression."""
    text = canonical(label)
    return label_id(text), text


class LabelCache:
    """Parsed labels by id (process-wide) and per-caller verdicts, so each distinct label is judged once.

    Labels that fail to parse are never visible: a stored expression that the current grammar rejects
    must not leak data.
    """

    def __init__(self, max_callers: int = 1024) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[int, Label | None] = {}
        self._verdicts: OrderedDict[Authorizations, dict[int, bool]] = OrderedDict()
        self._max_callers = max_callers

    def label(self, lid: int, expr: str) -> Label | None:
        parsed = self._parsed.get(lid, _MISSING)
        if parsed is _MISSING:
            try:
                parsed = parse(expr)
            except LabelError as exc:
                log.warning(
                    "stored security label does not parse; treated as hidden",
                    label_id=lid,
                    expr=expr,
                    error=exc.message,
                )
                parsed = None
            self._parsed[lid] = parsed
        return parsed  # type: ignore[return-value]

    def visible(self, labels: Mapping[int, str], auths: Authorizations) -> frozenset[int]:
        """Ids in ``labels`` (id -> expression) that ``auths`` may see."""
        with self._lock:
            verdicts = self._verdicts.get(auths)
            if verdicts is None:
                verdicts = self._verdicts[auths] = {}
                while len(self._verdicts) > self._max_callers:
                    self._verdicts.popitem(last=False)
            else:
                self._verdicts.move_to_end(auths)
        out: list[int] = []
        for lid, expr in labels.items():
            ok = verdicts.get(lid)
            if ok is None:
                parsed = self.label(lid, expr)
                ok = verdicts[lid] = parsed is not None and evaluate(parsed, auths)
            if ok:
                out.append(lid)
        return frozenset(out)

    def clear(self) -> None:
        with self._lock:
            self._parsed.clear()
            self._verdicts.clear()


_MISSING: Final = object()


def evaluate_many(
    labels: Mapping[int, str], auths: Authorizations, cache: LabelCache | None = None
) -> frozenset[int]:
    """Ids of the labels (id -> expression) that ``auths`` satisfies, each distinct id evaluated once."""
    return (cache or _default_cache).visible(labels, auths)


_default_cache = LabelCache()
