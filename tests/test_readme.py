"""The README's GraphQL examples are valid against the exported schema."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import build_schema, parse, validate

ROOT = Path(__file__).resolve().parent.parent


def test_readme_graphql_examples_validate_against_the_schema() -> None:
    schema = build_schema((ROOT / "graphql" / "schema.graphql").read_text())
    blocks = re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no GraphQL example"
    for block in blocks:
        errors = validate(schema, parse(block))
        assert not errors, f"README example does not validate: {[e.message for e in errors]}\n{block}"
