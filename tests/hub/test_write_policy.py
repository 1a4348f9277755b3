"""The write check (hub/write_policy.py): its widening test against brute force over small universes,
and each of its rules."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.labels import LEVELS, And, Authorizations, Label, Or, Token, evaluate, normalise, parse
from hub.write_policy import (
    MAX_TERMS,
    WriteRights,
    check,
    check_all,
    dnf,
    implies,
    widens,
)

TOKENS = ("a", "b", "c")
CLASSIFICATIONS = tuple(f"classification={level}" for level in LEVELS)


def trees() -> st.SearchStrategy[Label]:
    leaves = st.sampled_from(TOKENS + CLASSIFICATIONS).map(Token)
    return st.recursive(
        leaves,
        lambda inner: st.builds(
            lambda kind, ops: normalise(kind(tuple(ops))),
            st.sampled_from([And, Or]),
            st.lists(inner, min_size=2, max_size=3),
        ),
        max_leaves=7,
    )


# Every set of authorizations the universe allows: each subset of the tokens, with no clearance or any.
UNIVERSE = [
    Authorizations(level, frozenset(held))
    for level in (None, *LEVELS)
    for n in range(len(TOKENS) + 1)
    for held in itertools.combinations(TOKENS, n)
]


def widens_by_brute_force(old: Label, new: Label) -> bool:
    return any(evaluate(new, a) and not evaluate(old, a) for a in UNIVERSE)


@settings(max_examples=2000, deadline=None)
@given(old=trees(), new=trees())
def test_widening_equals_brute_force(old: Label, new: Label) -> None:
    assert widens(old, new) == widens_by_brute_force(old, new)
    assert implies(new, old) == (not widens_by_brute_force(old, new))


@settings(max_examples=500, deadline=None)
@given(label=trees())
def test_dnf_is_the_same_function(label: Label) -> None:
    terms = dnf(label)
    for auths in UNIVERSE:
        assert evaluate(label, auths) == any(all(evaluate(t, auths) for t in term) for term in terms)


def rights(clearance: str | None, *tokens: str, declassify: bool = False) -> WriteRights:
    return WriteRights(Authorizations(clearance, frozenset(tokens)), declassify)


OFFICIAL = parse("classification=OFFICIAL")
PUBLIC = parse("classification=PUBLIC")
SECRET = parse("classification=SECRET")


def test_writer_must_satisfy_the_current_label() -> None:
    verdict = check(rights("PUBLIC", "org=ngt"), OFFICIAL, PUBLIC)
    assert not verdict.allowed
    assert "current label 'classification=OFFICIAL'" in str(verdict.reason)
    # A delete (no new label) of an object the writer cannot see is refused too.
    assert not check(rights("PUBLIC", "org=ngt"), OFFICIAL, None).allowed


def test_writer_must_satisfy_the_new_label() -> None:
    verdict = check(rights("OFFICIAL", "org=ngt"), None, SECRET)
    assert not verdict.allowed and "new label 'classification=SECRET'" in str(verdict.reason)


def test_widening_needs_the_declassify_right_and_is_reported() -> None:
    refused = check(rights("OFFICIAL"), OFFICIAL, PUBLIC)
    assert not refused.allowed and "widens" in str(refused.reason)
    allowed = check(rights("OFFICIAL", declassify=True), OFFICIAL, PUBLIC)
    assert allowed.allowed and allowed.widens
    narrowing = check(rights("OFFICIAL"), PUBLIC, OFFICIAL)
    assert narrowing.allowed and not narrowing.widens
    # A new object (no current label) widens nothing.
    assert check(rights("OFFICIAL"), None, PUBLIC) == check(rights("OFFICIAL"), None, OFFICIAL)


def test_every_writer_must_pass_and_no_writer_is_a_refusal() -> None:
    producer = rights("SECRET", "org=ngt", declassify=True)
    caller = rights("PUBLIC", "org=ngt")
    assert not check_all([producer, caller], OFFICIAL, PUBLIC).allowed
    assert not check_all([producer, rights("OFFICIAL")], OFFICIAL, PUBLIC).allowed
    assert check_all([producer, rights("OFFICIAL", declassify=True)], OFFICIAL, PUBLIC).widens
    assert not check_all([], None, PUBLIC).allowed


def test_absurd_labels_are_refused_with_a_reason() -> None:
    # (a1|b1)&(a2|b2)&... has 2^n terms.
    text = "&".join(f"(x{i}|y{i})" for i in range(9))
    holder = rights("SECRET", *(f"x{i}" for i in range(9)), *(f"y{i}" for i in range(9)))
    assert MAX_TERMS < 2**9
    verdict = check(holder, parse("x0"), parse(text))
    assert not verdict.allowed and f"more than {MAX_TERMS} terms" in str(verdict.reason)


@pytest.mark.parametrize(
    ("old", "new", "wider"),
    [
        ("org=ngt", "org=ngt|org=neso", True),
        ("org=ngt|org=neso", "org=ngt", False),
        ("classification=OFFICIAL&org=ngt", "org=ngt", True),
        ("classification=OFFICIAL", "classification=SECRET", False),
        ("classification=SECRET", "classification=OFFICIAL|org=x", True),
        ("classification=PUBLIC|b", "a", True),  # a caller with no clearance holding a
    ],
)
def test_known_cases(old: str, new: str, wider: bool) -> None:
    assert widens(parse(old), parse(new)) is wider
