"""The load benchmark's requests are valid: each page operation it sends stands alone as a document (with
the fragments it uses, and no other) and validates against the exported schema, as does its subscription."""

from __future__ import annotations

from pathlib import Path

from bench.load import FILTERS, MIX, SUBSCRIPTION, documents
from graphql import build_schema, parse, validate

SCHEMA = Path(__file__).resolve().parents[2] / "graphql" / "schema.graphql"


def test_every_operation_of_the_mix_is_a_valid_document_of_its_own() -> None:
    schema = build_schema(SCHEMA.read_text())
    docs = documents()
    assert set(MIX) <= set(docs)
    for name in MIX:
        errors = validate(schema, parse(docs[name]))
        assert not errors, (name, [e.message for e in errors], docs[name])
    # A fragment is carried only where it is spread (an unused fragment fails validation).
    assert "fragment SubgraphView" in docs["Neighbourhood"]
    assert "fragment" not in docs["Counts"]


def test_the_subscription_validates_with_and_without_node_for_every_filter() -> None:
    schema = build_schema(SCHEMA.read_text())
    for node in ("", " node { mrid name label }"):
        document = parse(SUBSCRIPTION % node)
        assert not validate(schema, document)
    for flt in FILTERS:
        assert set(flt) <= {"classNames", "domain"}
        assert flt.get("domain") in (None, "GAS", "ELECTRICITY")
