"""Rows carried back in one record (hub/one_record.py): the wrapped statement answers exactly what the
statement does, row for row and in order, against Neo4j; the guard learns a statement's columns on its first
read and reads it wrapped from then on; a statement a subquery may not hold is read as written."""

from __future__ import annotations

import uuid
from typing import Any

import neo4j
import neo4j.graph
import pytest

from hub import guard as guard_module
from hub.caller import Caller
from hub.graph import make_async_driver
from hub.guard import Guard, LabelDirectory, visible, without_grants
from hub.labels import LabelCache
from hub.one_record import ROWS, Columns, rows, wrapped


def test_options_stay_in_front_and_plans_are_never_wrapped() -> None:
    text = wrapped("CYPHER replan=skip\nMATCH (n) RETURN n.x AS `a``b`, n AS n", ("a`b", "n"))
    assert text is not None
    assert text.startswith("CYPHER replan=skip\nCALL () {\nMATCH (n) RETURN")
    assert text.endswith("RETURN collect([`a``b`, `n`]) AS __rows")
    assert wrapped("EXPLAIN MATCH (n) RETURN n", ("n",)) is None
    assert wrapped(" profile MATCH (n) RETURN n", ("n",)) is None
    assert wrapped("MATCH (n) RETURN n", ()) is None
    # An expression returned without a name (a subquery may not return one) is read as written.
    assert wrapped("MATCH (n) RETURN n.mrid, count(*) AS c", ("n.mrid", "c")) is None
    assert wrapped("MATCH (n) RETURN n._class AS `n.c`", ("n.c",)) is not None


def test_columns_are_bounded_least_recently_used_first() -> None:
    columns = Columns(2)
    columns.learn("RETURN 1 AS x", ["x"])
    columns.learn("RETURN 2 AS y", ["y"])
    assert columns.prepared("RETURN 1 AS x") == (wrapped("RETURN 1 AS x", ["x"]), ("x",))  # now most recent
    columns.learn("RETURN 3 AS z", ["z"])
    assert not columns.knows("RETURN 2 AS y")
    assert columns.prepared("RETURN 1 AS x") is not None
    assert columns.prepared("RETURN 3 AS z") is not None
    columns.learn("EXPLAIN RETURN 1 AS x", ["x"])
    assert columns.knows("EXPLAIN RETURN 1 AS x") and columns.prepared("EXPLAIN RETURN 1 AS x") is None
    off = Columns(0)
    off.learn("RETURN 1 AS x", ["x"])
    assert not off.knows("RETURN 1 AS x")


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Nodes as what they hold (the driver's nodes compare by identity)."""
    return {
        k: (v.element_id, set(v.labels), dict(v)) if isinstance(v, neo4j.graph.Node) else v
        for k, v in row.items()
    }


STATEMENTS = (
    # Many rows, ordered against the order they are made in, with nulls, lists and maps.
    "UNWIND range(1, 3000) AS i WITH i, i % 7 AS k ORDER BY k DESC, i "
    "RETURN i, CASE WHEN k = 0 THEN null ELSE k END AS k, [i, 'x'] AS pair, {i: i, s: toString(i)} AS m",
    # A union, and options in front.
    "CYPHER runtime=slotted\nUNWIND [3, 1, 2] AS i RETURN i UNION ALL UNWIND [9, 8] AS i RETURN i",
    # Nodes, and no rows at all.
    "MATCH (n:Entity {mrid: $m}) RETURN n, labels(n) AS l",
    "UNWIND [] AS i RETURN i",
)


@pytest.mark.services
@pytest.mark.parametrize("statement", STATEMENTS)
def test_the_wrapped_statement_answers_the_same_rows_in_the_same_order(
    neo4j_driver: Any, statement: str
) -> None:
    mrid = f"onerecord-{uuid.uuid4().hex[:8]}"
    neo4j_driver.execute_query("CREATE (:Entity:Substation {mrid: $m, name: 'one', _label: 1})", m=mrid)
    try:
        plain = neo4j_driver.execute_query(statement, m=mrid)
        columns = plain.keys
        text = wrapped(statement, columns)
        assert text is not None
        one = neo4j_driver.execute_query(text, m=mrid)
        assert len(one.records) == 1
        expected = [_comparable(dict(r.items())) for r in plain.records]
        found = rows(one.records[0][ROWS], columns)
        assert [_comparable(r) for r in found] == expected
        if "MATCH" in statement:
            assert len(found) == 1 and found[0]["n"]["mrid"] == mrid
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity {mrid: $m}) DETACH DELETE n", m=mrid)


@pytest.mark.services
async def test_the_guard_reads_a_statement_in_one_record_once_it_knows_its_columns(settings: Any) -> None:
    driver = make_async_driver(settings)
    try:
        directory = LabelDirectory(driver, settings.neo4j_database, ttl_s=3600.0)
        auths = Caller(subject="reader", org=None, clearance="PUBLIC").authorizations
        guard = Guard(driver, settings.neo4j_database, directory, auths, 10.0, LabelCache())
        tag = uuid.uuid4().hex[:8]
        statement = (
            f"UNWIND range(1, 500) AS i WITH i WHERE NOT {visible('{_label: -1}')} "
            f"RETURN i, '{tag}' AS tag ORDER BY i DESC"
        )
        first = await guard.read(statement)
        assert guard_module._COLUMNS.prepared(statement) == (wrapped(statement, ("i", "tag")), ("i", "tag"))
        assert first == [{"i": i, "tag": tag} for i in range(500, 0, -1)]
        assert await guard.read(statement) == first

        # Valid as written, not inside a subquery: answered all the same, and read as written from then on.
        ending = f"UNWIND [2, 1] AS i WITH i WHERE size($visible) >= 0 RETURN i, '{tag}' AS tag;"
        assert await guard.read(ending) == [{"i": 2, "tag": tag}, {"i": 1, "tag": tag}]
        assert await guard.read(ending) == [{"i": 2, "tag": tag}, {"i": 1, "tag": tag}]
        assert guard_module._COLUMNS.knows(ending) and guard_module._COLUMNS.prepared(ending) is None
        assert await guard.read(ending) == [{"i": 2, "tag": tag}, {"i": 1, "tag": tag}]
    finally:
        await driver.close()


@pytest.mark.services
async def test_a_hidden_object_stays_hidden_in_one_record(settings: Any, neo4j_driver: Any) -> None:
    """The wrapped read filters as the statement does: an object the caller may not see is absent from the
    first read (as written) and from every read after it (in one record), and the answers are the same."""
    tag = uuid.uuid4().hex[:8]
    neo4j_driver.execute_query(
        "MERGE (p:SecurityLabel {id: $pub}) SET p.expr = 'classification=PUBLIC' "
        "MERGE (s:SecurityLabel {id: $sec}) SET s.expr = 'classification=SECRET' "
        "CREATE (:Entity {mrid: $a, _label: $pub, _owner: 't'}), "
        "(:Entity {mrid: $b, _label: $sec, _owner: 't'})",
        pub=-9101,
        sec=-9102,
        a=f"or-{tag}-shown",
        b=f"or-{tag}-hidden",
    )
    driver = make_async_driver(settings)
    try:
        directory = LabelDirectory(driver, settings.neo4j_database, ttl_s=3600.0)
        auths = Caller(subject="reader", org=None, clearance="PUBLIC").authorizations
        guard = Guard(driver, settings.neo4j_database, directory, auths, 10.0, LabelCache())
        statement = (
            f"MATCH (n:Entity) WHERE n.mrid STARTS WITH $p AND {visible('n')} RETURN n.mrid AS m ORDER BY m"
        )
        answers = [await guard.read(statement, {"p": f"or-{tag}"}) for _ in range(3)]
        # The later reads were in one record (the text as sent: a caller without grants reads it without
        # the grant half).
        assert guard_module._COLUMNS.prepared(without_grants(statement)) is not None
        assert answers == [[{"m": f"or-{tag}-shown"}]] * 3
    finally:
        await driver.close()
        neo4j_driver.execute_query(
            "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n "
            "WITH count(*) AS _ MATCH (s:SecurityLabel) WHERE s.id IN [-9101, -9102] DELETE s",
            p=f"or-{tag}",
        )
