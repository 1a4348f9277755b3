"""The write check: whether a writer may write an object, given its current label and the new one.

Every write to the graph passes this one check, in the worker's fold (:mod:`hub.writer`), where the
object's stored state is known; HTTP ingest (:mod:`hubql.http_ingest`) runs it early too, on what it knows,
so that a refusal comes back to the caller at once. A write is allowed when the writer

* satisfies the object's current label (None: the object is absent, a stub or a tombstone, so there is
  nothing of anyone's to protect),
* satisfies the new label (nobody may label data so that they could not see it themselves), and
* does not widen visibility, unless it holds the declassification right.

A change *widens visibility* when some set of authorizations satisfies the new label but not the old one,
i.e. when the new label does not imply the old. Labels are monotone (no negation; a higher clearance
satisfies every lower ``classification=`` token), so implication is decided exactly from the new label's
disjunctive normal form: each DNF term is satisfied by one least set of authorizations (its tokens, and
the highest classification the term names as clearance, else none); anything satisfying the term holds
at least that, so ``new => old`` iff every term's least authorizations satisfy ``old``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from hub.labels import LEVELS, And, Authorizations, Label, Or, Token, canonical, evaluate, parse

# Labels are a few tokens; a DNF larger than this is not a label anyone means, and expanding it would
# cost the worker time that other producers' events wait for.
MAX_TERMS: Final = 256


class LabelTooComplex(ValueError):
    """A label whose disjunctive normal form exceeds :data:`MAX_TERMS` terms."""


@dataclass(frozen=True, slots=True)
class WriteRights:
    """What one writer holds: its authorizations and whether it may widen a label's visibility."""

    authorizations: Authorizations
    declassify: bool = False

    def describe(self) -> str:
        auths = self.authorizations
        tokens = ",".join(sorted(auths.attributes)) or "-"
        return f"clearance={auths.classification or 'none'} tokens={tokens} declassify={self.declassify}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The check's answer: ``reason`` is None when the write is allowed; ``widens`` tells whether an
    allowed write widened visibility (a declassification, recorded as such)."""

    reason: str | None
    widens: bool = False

    @property
    def allowed(self) -> bool:
        return self.reason is None


ALLOWED: Final = Verdict(None)


def dnf(label: Label) -> list[frozenset[Token]]:
    """The label as a disjunction of conjunctions of tokens; :class:`LabelTooComplex` past
    :data:`MAX_TERMS` terms."""
    if isinstance(label, Token):
        return [frozenset((label,))]
    if isinstance(label, Or):
        terms: list[frozenset[Token]] = []
        for op in label.operands:
            terms.extend(dnf(op))
            if len(terms) > MAX_TERMS:
                raise LabelTooComplex(f"label {canonical(label)!r} expands to more than {MAX_TERMS} terms")
        return list(dict.fromkeys(terms))
    assert isinstance(label, And)
    product: list[frozenset[Token]] = [frozenset()]
    for op in label.operands:
        product = [left | right for left in product for right in dnf(op)]
        if len(product) > MAX_TERMS:
            raise LabelTooComplex(f"label {canonical(label)!r} expands to more than {MAX_TERMS} terms")
    return list(dict.fromkeys(product))


def least_authorizations(term: Iterable[Token]) -> Authorizations:
    """The least authorizations that satisfy a conjunction of tokens."""
    # No clearance at all when the term names none: a caller without one satisfies such a term too.
    level = -1
    held: set[str] = set()
    for token in term:
        if token.level is not None:
            level = max(level, token.level)
        else:
            held.add(token.text)
    return Authorizations(LEVELS[level] if level >= 0 else None, frozenset(held))


def implies(new: Label, old: Label) -> bool:
    """Whether every set of authorizations that satisfies ``new`` also satisfies ``old``."""
    return all(evaluate(old, least_authorizations(term)) for term in dnf(new))


def widens(old: Label | None, new: Label | None) -> bool:
    """Whether relabelling from ``old`` to ``new`` lets someone see what they could not before (a
    missing label on either side is nothing to widen)."""
    if old is None or new is None:
        return False
    return not implies(new, old)


def may_assign(authorizations: Authorizations, label: Label | str) -> bool:
    """Who may assign a label: only a writer that satisfies it (nobody may label data so that they could
    not see it themselves). The one statement of the rule: a producer's default label, the label a Kafka
    record names and every write the check judges all go through it."""
    return evaluate(parse(label) if isinstance(label, str) else label, authorizations)


def check(rights: WriteRights, current: Label | None, new: Label | None) -> Verdict:
    """Whether a writer holding ``rights`` may leave an object labelled ``current`` (None: there is no
    object to protect) labelled ``new`` (None: a delete, or a write that keeps the label)."""
    auths = rights.authorizations
    if current is not None and not evaluate(current, auths):
        return Verdict(
            f"label: writer ({rights.describe()}) does not satisfy the object's current label "
            f"{canonical(current)!r}"
        )
    if new is None:
        return ALLOWED
    if not may_assign(auths, new):
        return Verdict(
            f"label: writer ({rights.describe()}) does not satisfy the new label {canonical(new)!r}"
        )
    try:
        wider = widens(current, new)
    except LabelTooComplex as exc:
        return Verdict(f"label: {exc}")
    if wider and not rights.declassify:
        assert current is not None
        return Verdict(
            f"label: changing {canonical(current)!r} to {canonical(new)!r} widens who may see the object, "
            f"and the writer ({rights.describe()}) may not declassify"
        )
    return Verdict(None, wider)


def check_all(rights: Sequence[WriteRights], current: Label | None, new: Label | None) -> Verdict:
    """The write must pass under every one of ``rights`` (a topic's producer and, for HTTP ingest, the
    caller it publishes for); no rights at all is a refusal, never a pass."""
    if not rights:
        return Verdict("label: the write carries no writer rights")
    wider = False
    for one in rights:
        verdict = check(one, current, new)
        if not verdict.allowed:
            return verdict
        wider = wider or verdict.widens
    return Verdict(None, wider)


# ------------------------------------------------------------------------- rights carried in headers
# HTTP ingest publishes on the producer's topic on behalf of an authenticated caller. The caller's rights
# travel with each record in these headers, and the worker requires the write to pass under them as well
# as under the topic's producer: a header can only narrow what the producer may do, so a producer that
# writes (or forges) one gains nothing.

# JSON {"clearance": "OFFICIAL" or null, "tokens": [...]}: the caller's authorizations.
AUTHORIZATIONS_HEADER: Final = "Hub-Writer-Authorizations"
# "true" or "false": whether the caller holds a declassification role.
DECLASSIFY_HEADER: Final = "Hub-Writer-Declassify"
# The caller's subject, for the audit trail only (it decides nothing).
SUBJECT_HEADER: Final = "Hub-Writer-Subject"


def encode_rights(rights: WriteRights, subject: str) -> list[tuple[str, bytes]]:
    """The headers that carry ``rights`` of the caller ``subject`` to the worker."""
    auths = rights.authorizations
    body = orjson.dumps({"clearance": auths.classification, "tokens": sorted(auths.attributes)})
    return [
        (AUTHORIZATIONS_HEADER, body),
        (DECLASSIFY_HEADER, b"true" if rights.declassify else b"false"),
        (SUBJECT_HEADER, subject.encode()),
    ]


def decode_rights(authorizations: bytes, declassify: bytes | None) -> WriteRights:
    """Rights from the headers' values; ``ValueError`` naming the header and value if malformed."""
    try:
        body = orjson.loads(authorizations)
        clearance = body["clearance"]
        tokens = body["tokens"]
        if not (clearance is None or isinstance(clearance, str)) or not isinstance(tokens, list):
            raise TypeError("clearance must be a string or null and tokens a list")
        if not all(isinstance(t, str) and t for t in tokens):
            raise TypeError("tokens must be non-empty strings")
        auths = Authorizations(clearance, frozenset(tokens))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"header {AUTHORIZATIONS_HEADER} = {authorizations!r} is not valid: {exc}") from None
    if declassify is None:
        return WriteRights(auths, False)
    if declassify not in (b"true", b"false"):
        raise ValueError(f"header {DECLASSIFY_HEADER} = {declassify!r} must be 'true' or 'false'")
    return WriteRights(auths, declassify == b"true")
