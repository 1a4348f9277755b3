"""The graph's bookkeeping keys: one definition, expanded into every statement that names them."""

from __future__ import annotations

import re

import pytest

from hub.graph import SCHEMA_STATEMENTS
from hub.graph_schema import BOOKKEEPING, CLASS, KEYS, LABEL, VERSION, cypher
from hub.reader import LITE
from hub.writer import READ_STATE, WRITE_BATCH
from ontology.loader import load_ontology

# A property access or map key that looks like bookkeeping: ``n._version``, ``{_class: ...}``.
_KEY_LIKE = re.compile(r"(?<![A-Za-z0-9_$])_[a-z][a-z_]*\b")


def test_placeholders_expand_to_the_keys() -> None:
    assert cypher("MATCH (n) WHERE n.@version < $v RETURN n.@class, n.@label") == (
        f"MATCH (n) WHERE n.{VERSION} < $v RETURN n.{CLASS}, n.{LABEL}"
    )
    # Parameters and text without placeholders are left alone.
    assert cypher("RETURN $label, 'a' + $class_labels") == "RETURN $label, 'a' + $class_labels"


def test_an_unknown_placeholder_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="@versoin"):
        cypher("MATCH (n) WHERE n.@versoin = 1 RETURN n")


@pytest.mark.parametrize(
    "statement",
    [READ_STATE, WRITE_BATCH, LITE, *SCHEMA_STATEMENTS],
    ids=["read_state", "write_batch", "lite", *(f"schema{i}" for i in range(len(SCHEMA_STATEMENTS)))],
)
def test_statements_name_only_defined_keys(statement: str) -> None:
    assert "@" not in statement
    named = set(_KEY_LIKE.findall(statement))
    assert named <= BOOKKEEPING, named - BOOKKEEPING


def test_the_writer_sets_every_bookkeeping_key_and_the_reader_projects_the_light_ones() -> None:
    written = set(_KEY_LIKE.findall(WRITE_BATCH))
    assert written == BOOKKEEPING - {KEYS["x"], KEYS["y"]}  # a point arrives among the event's properties
    assert set(_KEY_LIKE.findall(LITE)) == {KEYS[k] for k in ("class", "domain", "label", "x", "y")}


def test_no_ontology_property_key_can_collide_with_bookkeeping() -> None:
    ontology = load_ontology()
    keys = {attr.key for cls in ontology.classes for attr in ontology.attributes_of(cls).values()}
    assert keys and not any(key.startswith("_") for key in keys)
