"""Which write failures are retried (the database unavailable) and which split the batch (the events):
classified on errors provoked from the real driver and the real Neo4j."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from typing import Any

import neo4j
import pytest

from ingest.store_errors import describe, unavailable


def _raised(action: Callable[[], Any]) -> BaseException:
    # Any error at all: which kind it is, is what the tests look at.
    with pytest.raises(Exception) as info:
        action()
    return info.value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_that_does_not_answer_is_unavailable(settings: Any) -> None:
    driver = neo4j.GraphDatabase.driver(
        f"bolt://127.0.0.1:{_free_port()}",
        auth=(settings.neo4j_user, settings.neo4j_password),
        connection_timeout=2.0,
    )
    try:
        exc = _raised(lambda: driver.execute_query("RETURN 1"))
    finally:
        driver.close()
    assert isinstance(exc, neo4j.exceptions.ServiceUnavailable)
    assert unavailable(exc)


def test_wrong_credentials_are_the_stores_problem_not_the_events(settings: Any) -> None:
    driver = neo4j.GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, "not-the-password"))
    try:
        exc = _raised(lambda: driver.execute_query("RETURN 1"))
    finally:
        driver.close()
    assert unavailable(exc), describe(exc)
    assert "Neo.ClientError.Security" in describe(exc)


@pytest.mark.parametrize(
    ("value", "error"),
    [(2**64, OverflowError), ("lone \ud800", UnicodeEncodeError)],
)
def test_values_the_driver_cannot_pack_are_the_events(
    neo4j_driver: neo4j.Driver, value: object, error: type[BaseException]
) -> None:
    exc = _raised(lambda: neo4j_driver.execute_query("RETURN $v AS v", v=value))
    assert isinstance(exc, error)
    assert not unavailable(exc)
    assert type(exc).__name__ in describe(exc)


def test_a_constraint_neo4j_enforces_is_the_events(neo4j_driver: neo4j.Driver) -> None:
    label = f"StoreErrorProbe{uuid.uuid4().hex[:8]}"
    neo4j_driver.execute_query(f"CREATE CONSTRAINT {label} FOR (n:{label}) REQUIRE n.k IS UNIQUE")
    try:
        neo4j_driver.execute_query(f"CREATE (:{label} {{k: 1}})")
        exc = _raised(lambda: neo4j_driver.execute_query(f"CREATE (:{label} {{k: 1}})"))
    finally:
        neo4j_driver.execute_query(f"MATCH (n:{label}) DELETE n")
        neo4j_driver.execute_query(f"DROP CONSTRAINT {label}")
    assert not unavailable(exc)
    assert describe(exc).startswith("Neo.ClientError.Schema.ConstraintValidationFailed: ")


def test_a_value_of_the_wrong_type_for_cypher_is_the_events(neo4j_driver: neo4j.Driver) -> None:
    exc = _raised(lambda: neo4j_driver.execute_query("RETURN datetime({epochMillis: $t}) AS t", t="soon"))
    assert not unavailable(exc)
    assert describe(exc).startswith("Neo.ClientError.Statement."), describe(exc)
