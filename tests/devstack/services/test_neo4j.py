"""The test Neo4j really stores and serves data, with authentication on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError


def test_node_written_through_the_driver_is_read_back(neo4j_driver: Any, settings: Any) -> None:
    mrid = str(uuid.uuid4())
    neo4j_driver.execute_query(
        "CREATE (n:ServicesCheck {mrid: $mrid, name: $name, r: $r})",
        mrid=mrid,
        name="Line 1",
        r=0.125,
        database_=settings.neo4j_database,
    )
    try:
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (n:ServicesCheck {mrid: $mrid}) RETURN n.name AS name, n.r AS r",
            mrid=mrid,
            database_=settings.neo4j_database,
        )
        assert [(r["name"], r["r"]) for r in records] == [("Line 1", 0.125)]
    finally:
        neo4j_driver.execute_query(
            "MATCH (n:ServicesCheck {mrid: $mrid}) DELETE n", mrid=mrid, database_=settings.neo4j_database
        )


def test_wrong_password_is_refused(settings: Any) -> None:
    with (
        GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, "not-the-password")) as driver,
        pytest.raises(AuthError),
    ):
        driver.verify_connectivity()


def test_clean_graph_starts_empty_and_wipe_removes_everything(
    clean_graph: Any, wipe_graph: Callable[..., int], settings: Any
) -> None:
    count = "MATCH (n) RETURN count(n) AS c"
    records, _, _ = clean_graph.execute_query(count, database_=settings.neo4j_database)
    assert records[0]["c"] == 0
    clean_graph.execute_query(
        "UNWIND range(1, 25) AS i CREATE (:ServicesCheck {i: i})-[:NEXT]->(:ServicesCheck {i: -i})",
        database_=settings.neo4j_database,
    )
    assert wipe_graph(batch=7) == 50
    records, _, _ = clean_graph.execute_query(count, database_=settings.neo4j_database)
    assert records[0]["c"] == 0
