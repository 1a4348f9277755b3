"""The name search's index and queries: generated from the ontology, words cut as the index cuts them,
fuzzy words spelled out as one-edit regular expressions, and the schema set-up replacing an index made
from an earlier ontology."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.graph import ensure_schema
from hub.name_search import (
    FUZZY_MAX,
    INDEX_PREFIX,
    NameSearch,
    SearchTextError,
    name_properties,
    one_edit_regex,
    words,
)
from ontology.loader import load_ontology

ONT = load_ontology()


def test_the_index_covers_the_identifying_strings_of_the_ontology() -> None:
    props = name_properties(ONT)
    assert {"name", "shortName", "energyIdentCodeEic", "alias"} <= set(props)
    assert "description" not in props and "mRID" not in props and "mrid" not in props
    search = NameSearch(ONT)
    assert search.index.startswith(INDEX_PREFIX)
    assert "CREATE FULLTEXT INDEX" in search.create_statement()


def test_words_are_cut_and_lowered_as_the_index_does() -> None:
    assert words("Sub-station NORTH 1.5 kV, o'neil_x") == ["sub", "station", "north", "1.5", "kv", "o'neil_x"]
    assert words("  -- ") == []


@pytest.mark.parametrize(
    ("word", "matches", "misses"),
    [
        (
            "alpha",
            ["alpha", "alphabet", "alpah", "alpa", "alpxa", "alxpha", "lpha", "xalpha"],
            ["beta", "apl"],
        ),
        ("nrth", ["north", "nrth", "nrthx", "narth"], ["south", "nr"]),
    ],
)
def test_a_fuzzy_word_matches_words_starting_within_one_edit(
    word: str, matches: list[str], misses: list[str]
) -> None:
    # Lucene's regular expressions match the whole term, like fullmatch; their syntax here is Python's.
    pattern = re.compile(one_edit_regex(word))
    for term in matches:
        assert pattern.fullmatch(term), term
    for term in misses:
        assert not pattern.fullmatch(term), term


def test_queries_escape_and_limit() -> None:
    search = NameSearch(ONT)
    assert search.query("Sub nor") == "sub* AND nor*"
    assert search.query("ab", fuzzy=True) == "ab*"  # too short to be fuzzy
    assert search.query("x" * (FUZZY_MAX + 1), fuzzy=True) == "x" * (FUZZY_MAX + 1) + "*"
    assert "/" in (search.query("north", fuzzy=True) or "")
    assert search.query("?!*") is None
    with pytest.raises(SearchTextError, match="at most 32"):
        search.query(" ".join("w" * 33))


@pytest.mark.services
def test_the_schema_set_up_replaces_an_index_from_an_earlier_ontology(
    settings: Any, neo4j_driver: Any
) -> None:
    stale = INDEX_PREFIX + "000000000000"
    neo4j_driver.execute_query(
        f"CREATE FULLTEXT INDEX `{stale}` IF NOT EXISTS FOR (n:Entity) ON EACH [n.name]"
    )
    ensure_schema(neo4j_driver, settings.neo4j_database)
    records, _, _ = neo4j_driver.execute_query(
        "SHOW FULLTEXT INDEXES YIELD name, state WHERE name STARTS WITH $p RETURN name, state", p=INDEX_PREFIX
    )
    assert [(r["name"], r["state"]) for r in records] == [(NameSearch(ONT).index, "ONLINE")]
