"""The security label language: grammar, canonical form, evaluation, interning."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import labels
from hub.labels import (
    LEVELS,
    And,
    Authorizations,
    Label,
    LabelCache,
    LabelError,
    Or,
    Token,
    canonical,
    evaluate,
    evaluate_many,
    label_id,
    normalise,
    parse,
    quote,
)

# A small token set keeps truth tables exhaustive (2**4 attribute subsets x 5 clearances).
PLAIN = ("a", "org=ngt", "role=planner", "x y")
CLASSIFIED = tuple(f"classification={lvl}" for lvl in LEVELS)
CLEARANCES: tuple[str | None, ...] = (None, *LEVELS)


def trees(token_texts: tuple[str, ...]) -> st.SearchStrategy[Label]:
    leaves = st.sampled_from(token_texts).map(Token)
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.lists(kids, min_size=1, max_size=4).map(lambda ops: And(tuple(ops))),
            st.lists(kids, min_size=1, max_size=4).map(lambda ops: Or(tuple(ops))),
        ),
        max_leaves=12,
    )


def write(tree: Label, draw: st.DrawFn) -> str:
    """Unnormalised text for a tree: arbitrary redundant parentheses, whitespace and letter case."""
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    if isinstance(tree, Token):
        text = tree.text
        if text.startswith("classification=") and draw(st.booleans()):
            text = "classification=" + text.split("=", 1)[1].lower()
        out = quote(text)
        if out == text and draw(st.booleans()):
            # Quoting a bare token is allowed and must not change its meaning.
            out = f'"{text}"'
    else:
        sep = "&" if isinstance(tree, And) else "|"
        parts = []
        for op in tree.operands:
            inner = write(op, draw)
            # A nested group must be parenthesised; a single token may be, redundantly.
            if not isinstance(op, Token) or draw(st.booleans()):
                inner = f"({inner})"
            parts.append(inner)
        out = f"{pad}{sep}{pad}".join(parts)
    return f"{pad}{out}{pad}"


@st.composite
def written(draw: st.DrawFn, token_texts: tuple[str, ...] = PLAIN + CLASSIFIED) -> tuple[Label, str]:
    tree = draw(trees(token_texts))
    return tree, write(tree, draw)


def truth(tree: Label, held: frozenset[str], clearance: str | None) -> bool:
    """Reference semantics, straight from the definition, independent of hub.labels.evaluate."""
    if isinstance(tree, Token):
        if tree.text.startswith("classification="):
            level = tree.text.split("=", 1)[1]
            return clearance is not None and LEVELS.index(clearance) >= LEVELS.index(level)
        return tree.text in held
    results = [truth(op, held, clearance) for op in tree.operands]
    return all(results) if isinstance(tree, And) else any(results)


def all_authorizations() -> list[Authorizations]:
    subsets = itertools.chain.from_iterable(itertools.combinations(PLAIN, k) for k in range(len(PLAIN) + 1))
    return [Authorizations(c, frozenset(s)) for s in subsets for c in CLEARANCES]


AUTHS = all_authorizations()


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(written())
def test_evaluation_agrees_with_truth_table(case: tuple[Label, str]) -> None:
    tree, text = case
    parsed = parse(text)
    for auths in AUTHS:
        expected = truth(tree, auths.attributes, auths.classification)
        assert evaluate(parsed, auths) is expected, (text, auths)


@settings(max_examples=300, deadline=None)
@given(written())
def test_canonical_round_trip_and_idempotence(case: tuple[Label, str]) -> None:
    _, text = case
    parsed = parse(text)
    canon = canonical(parsed)
    assert parse(canon) == parsed
    assert canonical(parse(canon)) == canon
    assert canonical(text) == canon
    assert normalise(parsed) == parsed


@settings(max_examples=200, deadline=None)
@given(written())
def test_canonical_form_is_minimal(case: tuple[Label, str]) -> None:
    canon = canonical(case[1])
    # No whitespace outside quotes, no parentheses around the whole or around single tokens.
    unquoted = canon.split('"')[::2]
    assert not any(c.isspace() for part in unquoted for c in part)
    assert "()" not in canon
    tree = parse(canon)
    if isinstance(tree, Token):
        assert canon == quote(tree.text)
    else:
        # Operands alternate operators level by level (flattened), and are sorted and unique.
        texts = [canonical(op) for op in tree.operands]
        assert len(set(texts)) == len(texts)
        for op in tree.operands:
            assert type(op) is not type(tree)


@settings(max_examples=200, deadline=None)
@given(st.permutations(["a", "b", "c", "(d|e)", "a"]), st.sampled_from(["&", "|"]))
def test_operand_order_and_duplicates_do_not_matter(ops: list[str], op: str) -> None:
    if op == "|":
        ops = [o.replace("(d|e)", "(d&e)") for o in ops]
    assert canonical(op.join(ops)) == canonical(op.join(sorted(ops)))
    assert parse(op.join(ops)) == parse(op.join(dict.fromkeys(ops)))


@given(st.text(min_size=1, max_size=20).filter(lambda t: not t.lower().startswith("classification=")))
def test_any_token_text_survives_quoting(text: str) -> None:
    label = parse(quote(text))
    assert label == Token(text)
    assert parse(canonical(label)) == label


@settings(max_examples=200, deadline=None)
@given(written(PLAIN[:3]), st.data())
def test_error_points_at_inserted_bad_character(case: tuple[Label, str], data: st.DataObject) -> None:
    text = canonical(case[1])  # unquoted tokens only, so every position is outside a quoted string
    pos = data.draw(st.integers(0, len(text)))
    bad = data.draw(st.sampled_from("!#$%^*~;,[]{}<>"))
    with pytest.raises(LabelError) as info:
        parse(text[:pos] + bad + text[pos:])
    assert info.value.position == pos


@given(
    st.sampled_from(PLAIN[:3]),
    st.sampled_from(PLAIN[:3]),
    st.sampled_from(PLAIN[:3]),
    st.sampled_from([("|", "&"), ("&", "|")]),
)
def test_mixing_operators_without_parentheses_is_rejected(
    x: str, y: str, z: str, ops: tuple[str, str]
) -> None:
    text = f"{x} {ops[0]} {y} {ops[1]} {z}"
    with pytest.raises(LabelError) as info:
        parse(text)
    assert info.value.position == text.rindex(ops[1])
    assert "mix" in info.value.message
    # With parentheses either way it is fine.
    parse(f"({x}{ops[0]}{y}){ops[1]}{z}")
    parse(f"{x}{ops[0]}({y}{ops[1]}{z})")


# ------------------------------------------------------------------------------------------- examples


def test_accumulo_example_rejected_with_caret() -> None:
    with pytest.raises(LabelError) as info:
        parse("A|B&C")
    assert info.value.position == 3
    assert str(info.value).splitlines()[1:] == ["  A|B&C", "     ^"]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ("   ", 3, "empty"),
        ("a&", 2, "ended"),
        ("&a", 0, "before '&'"),
        ("a&&b", 2, "before '&'"),
        ("(a&b", 0, "unclosed"),
        ("a&b)", 3, "unmatched"),
        ("()", 1, "empty parentheses"),
        ("a b", 2, "unexpected 'b'"),
        ('a&"b', 2, "unterminated"),
        ('a&""', 2, "empty quoted"),
        ('"a\\nb"', 2, "escaped"),
        ("a&classification=TOPSECRET", 2, "unknown classification level 'TOPSECRET'"),
        ("(a|b)(c)", 5, "expected"),
        ("org=ngt|role@x", 12, "unexpected '@'"),
    ],
)
def test_errors_point_at_the_offending_character(text: str, position: int, fragment: str) -> None:
    with pytest.raises(LabelError) as info:
        parse(text)
    assert info.value.position == position
    assert fragment in info.value.message
    if text.strip():
        lines = str(info.value).splitlines()
        assert lines[-1].index("^") - 2 == position


def test_non_string_is_a_label_error() -> None:
    with pytest.raises(LabelError):
        parse(42)  # type: ignore[arg-type]


def test_canonical_examples() -> None:
    assert canonical("role=planner | org=ngt | org=ngt") == "org=ngt|role=planner"
    assert canonical("(b&(a&c))&a") == "a&b&c"
    assert canonical("((a|b))&c") == "c&(a|b)"
    assert canonical("classification=official-sensitive") == "classification=OFFICIAL-SENSITIVE"
    assert canonical('"org=National Grid"&"say \\"hi\\""') == '"org=National Grid"&"say \\"hi\\""'
    assert canonical('"plain"') == "plain"
    assert canonical("a|(a)") == "a"


def test_hand_built_trees_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one operand"):
        And(())
    with pytest.raises(ValueError, match="at least one operand"):
        Or(())
    with pytest.raises(ValueError, match="'TOP'"):
        Token("classification=TOP")
    assert Token("Classification=secret") == Token("classification=SECRET")
    assert Token("classification=secret").level == 3


# ---------------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("required", LEVELS)
@pytest.mark.parametrize("clearance", CLEARANCES)
def test_classification_is_ordered(required: str, clearance: str | None) -> None:
    label = parse(f"classification={required.lower()}")
    expected = clearance is not None and LEVELS.index(clearance) >= LEVELS.index(required)
    assert evaluate(label, Authorizations(clearance)) is expected


def test_classification_token_in_attributes_grants_nothing() -> None:
    # Clearance comes only from the clearance level, never from a token a caller happens to hold.
    auths = Authorizations("PUBLIC", frozenset({"classification=SECRET"}))
    assert not evaluate(parse("classification=SECRET"), auths)


def test_authorizations_from_claims() -> None:
    auths = Authorizations.from_claims(clearance="official", org="ngt", roles=["planner"], groups=["gas-ops"])
    assert auths.classification == "OFFICIAL"
    # A group is the token group=<name> only; its bare name is not a token the caller holds.
    assert auths.attributes == {"org=ngt", "role=planner", "group=gas-ops"}
    assert evaluate(parse("org=ngt&role=planner&classification=PUBLIC"), auths)
    assert evaluate(parse("group=gas-ops"), auths)
    assert not evaluate(parse("gas-ops"), auths)
    assert not evaluate(parse("org=ngt&classification=SECRET"), auths)
    with pytest.raises(ValueError, match="'TOP'"):
        Authorizations("TOP")


def test_public_authorizations() -> None:
    pub = Authorizations.public()
    assert evaluate(parse("classification=PUBLIC"), pub)
    assert not evaluate(parse("classification=OFFICIAL"), pub)
    assert not evaluate(parse("org=ngt|classification=OFFICIAL"), pub)


# ---------------------------------------------------------------------------------------- interning


def test_label_id_is_stable_63_bit() -> None:
    # Ids are stored in the graph by independent workers: this value must never change.
    assert label_id("role=admin") == 6414683167959183264
    seen = {label_id(canonical(t)) for t in ["a", "b", "a&b", "a|b", "role=admin", "classification=PUBLIC"]}
    assert len(seen) == 6
    assert all(0 <= i < 2**63 for i in seen)
    assert labels.intern("b & a") == (label_id("a&b"), "a&b")


def test_evaluate_many_evaluates_each_label_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Label] = []
    real = labels.evaluate

    def counting(label: Label, auths: Authorizations) -> bool:
        calls.append(label)
        return real(label, auths)

    monkeypatch.setattr(labels, "evaluate", counting)
    texts = ["org=ngt", "classification=PUBLIC", "org=ngt&role=planner", "role=admin"]
    stored = {label_id(t): t for t in texts}
    stored[123] = "a|b&c"  # a stored expression the grammar rejects stays hidden
    cache = LabelCache()
    planner = Authorizations.from_claims(clearance="OFFICIAL", org="ngt", roles=["planner"])
    expected = {label_id("org=ngt"), label_id("classification=PUBLIC"), label_id("org=ngt&role=planner")}
    assert evaluate_many(stored, planner, cache) == expected
    assert len(calls) == 4
    assert evaluate_many(stored, planner, cache) == expected
    assert len(calls) == 4
    # An equal caller (same clearance and tokens) shares the verdicts.
    same = Authorizations.from_claims(clearance="official", org="ngt", roles=["planner"])
    assert evaluate_many(stored, same, cache) == expected
    assert len(calls) == 4
    # A new label is evaluated once; other callers get their own verdicts.
    stored[label_id("org=nggt")] = "org=nggt"
    assert evaluate_many(stored, planner, cache) == expected
    assert len(calls) == 5
    assert evaluate_many(stored, Authorizations.public(), cache) == {label_id("classification=PUBLIC")}


def test_label_cache_forgets_least_recent_callers() -> None:
    cache = LabelCache(max_callers=2)
    stored = {label_id("org=a"): "org=a"}
    callers = [Authorizations.from_claims(org=o) for o in ("a", "b", "c")]
    for c in callers:
        cache.visible(stored, c)
    assert len(cache._verdicts) == 2
    assert cache.visible(stored, callers[0]) == {label_id("org=a")}


@pytest.mark.parametrize("group", ["org=neso", "role=admin", "group=x", "control-room"])
def test_a_group_named_like_another_attribute_grants_only_the_group(group: str) -> None:
    # Group names come from the identity provider; a group called "org=neso" is not membership of neso.
    auths = Authorizations.from_claims(clearance="PUBLIC", org="public", groups=[group])
    assert auths.attributes == {"org=public", f"group={group}"}
    assert not evaluate(parse(group), auths)
    assert evaluate(parse(f"group={group}"), auths)
