"""The guard's statement for a caller without grants: the grant half of each visibility check is taken out,
and nothing else (what such a caller may see is unchanged; the leak tests in tests/graphql/ check that through
the API, for callers with grants and without); and that a label the process has not read yet hides its objects
(against Neo4j)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import neo4j
import pytest

from hub.caller import Caller
from hub.graph import _auth, make_async_driver
from hub.graph_schema import LABEL
from hub.guard import (
    GRANTED_PARAM,
    VISIBLE_PARAM,
    Guard,
    LabelDirectory,
    all_visible,
    visible,
    without_grants,
)
from hub.labels import LabelCache, intern


def _label_only(var: str) -> str:
    return f"({var}.{LABEL} IN ${VISIBLE_PARAM})"


def test_every_grant_half_is_taken_out_and_nothing_else() -> None:
    statement = (
        f"MATCH p = (n)-[*1..2]-(m) WHERE {visible('n')} AND {all_visible('p')} "
        f"RETURN n, CASE WHEN {visible('m')} THEN m END AS m, $granted AS kept"
    )
    expected = (
        f"MATCH p = (n)-[*1..2]-(m) WHERE {_label_only('n')} AND all(x IN nodes(p) WHERE {_label_only('x')}) "
        f"RETURN n, CASE WHEN {_label_only('m')} THEN m END AS m, $granted AS kept"
    )
    assert without_grants(statement) == expected


def test_the_readers_statements_keep_no_grant_half() -> None:
    # Statements written with the fragments, as modules hold them: with the grant half out, $granted is
    # gone from each.
    import hub.history
    import hub.name_search
    import hub.quality
    import hub.scenarios

    checked = 0
    for module in (hub.history, hub.name_search, hub.quality, hub.scenarios):
        for text in vars(module).values():
            if isinstance(text, str) and f"${VISIBLE_PARAM}" in text:
                assert not re.search(rf"\${GRANTED_PARAM}\b", without_grants(text)), text
                checked += 1
    assert checked >= 3


# ------------------------------------------------------------------------- labels the table has not read yet


@pytest.mark.services
async def test_a_label_written_after_the_table_was_read_hides_its_objects_until_the_next_read(
    settings: Any, neo4j_driver: Any
) -> None:
    """Fail closed: an object whose label the process's label table does not hold yet (a producer's first
    object with a new label) is hidden from every request until the table is read again, never shown by
    default; a change record's check (``may_see_label``) reads the table at once instead."""
    mrid = f"newlabel-{uuid.uuid4().hex[:8]}"
    lid, text = intern(f"classification=PUBLIC | org=new-{uuid.uuid4().hex[:8]}")
    driver = make_async_driver(settings)
    try:
        directory = LabelDirectory(driver, settings.neo4j_database, ttl_s=3600.0)
        auths = Caller(subject="reader", org=None, clearance="PUBLIC").authorizations

        def guard() -> Guard:  # one per request, sharing the process's table
            return Guard(driver, settings.neo4j_database, directory, auths, 10.0, LabelCache())

        query = f"MATCH (n:Entity {{mrid: $m}}) WHERE {visible('n')} RETURN n.mrid AS mrid"
        await guard().visible_ids()  # the table is read now, before the label exists
        neo4j_driver.execute_query(
            "MERGE (s:SecurityLabel {id: $lid}) SET s.expr = $text "
            "CREATE (:Entity {mrid: $m, _class: 'Substation', _label: $lid, _owner: 'test'})",
            lid=lid,
            text=text,
            m=mrid,
        )
        try:
            assert await guard().read(query, {"m": mrid}) == []
            assert await guard().read(query, {"m": mrid}) == []  # still, until the table is read again
            assert await guard().may_see_label(lid, "test")  # read at once for a change record
            assert await guard().read(query, {"m": mrid}) == [{"mrid": mrid}]
        finally:
            neo4j_driver.execute_query("MATCH (n:Entity {mrid: $m}) DETACH DELETE n", m=mrid)
    finally:
        await driver.close()


@pytest.mark.services
async def test_a_read_on_a_connection_the_server_closed_is_made_once_more(
    settings: Any, neo4j_driver: Any
) -> None:
    """A read is one auto-commit transaction, without the driver's retries: on a pooled connection that
    the server has closed (a restart, an operator's kill), it is sent once more on a fresh connection."""
    agent = f"hub-test-guard-{uuid.uuid4().hex[:8]}"
    driver = neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri, auth=_auth(settings), user_agent=agent)
    try:
        directory = LabelDirectory(driver, settings.neo4j_database, ttl_s=3600.0)
        auths = Caller(subject="reader", org=None, clearance="PUBLIC").authorizations
        guard = Guard(driver, settings.neo4j_database, directory, auths, 10.0, LabelCache())
        query = f"MATCH (n:Entity {{mrid: 'none'}}) WHERE {visible('n')} RETURN count(n) AS n"
        first = await guard.read(query)
        records, _, _ = neo4j_driver.execute_query(
            "CALL dbms.listConnections() YIELD connectionId, userAgent WHERE userAgent CONTAINS $agent "
            "CALL dbms.killConnection(connectionId) YIELD connectionId AS killed RETURN count(killed) AS n",
            agent=agent,
        )
        assert records[0]["n"] >= 1  # the pooled connection the first read left
        assert await guard.read(query) == first
    finally:
        await driver.close()
