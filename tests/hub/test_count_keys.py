"""Count keys (hub/count_keys.py): what the counts group by, kept on every live object and stub and
listed, set and listed once for objects written before the keys existed, and read back into the class,
label and owner the guard decides on. The writer's keys are checked against the reference model with every
other property (tests/hub/test_writer.py, tests/ingest/test_worker.py); the counts against the visible set
in tests/graphql/test_leaks.py."""

from __future__ import annotations

import uuid
from typing import Any

import neo4j
import pytest

from hub import count_keys
from hub.graph import ensure_schema
from hub.graph_schema import CLASS, COUNT_KEY, LABEL, OWNER, cypher

pytestmark = pytest.mark.services

MIGRATION = "count_keys_listed"


def test_objects_written_before_count_keys_get_theirs_once(neo4j_driver: neo4j.Driver, settings: Any) -> None:
    db = settings.neo4j_database
    ensure_schema(neo4j_driver, db)
    p = f"ck{uuid.uuid4().hex[:8]}-"
    # As an earlier hub left them: a live object, a stub (no owner) and a tombstone (no label), no keys.
    neo4j_driver.execute_query(
        cypher(
            "CREATE (:Entity {mrid: $p + 'live', @class: 'Substation', @label: 7, @owner: 'ngt'}), "
            "(:Entity:Stub {mrid: $p + 'stub', @class: 'BaseVoltage', @label: 8}), "
            "(:Entity:Tombstone {mrid: $p + 'dead', @class: 'Substation', @owner: 'ngt'})"
        ),
        p=p,
        database_=db,
    )
    try:
        neo4j_driver.execute_query("MATCH (m:SchemaMigration {id: $id}) DELETE m", id=MIGRATION, database_=db)
        ensure_schema(neo4j_driver, db)
        records, _, _ = neo4j_driver.execute_query(
            f"MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS m, n.{COUNT_KEY} AS k",
            p=p,
            database_=db,
        )
        assert {r["m"].removeprefix(p): r["k"] for r in records} == {
            "live": count_keys.key("Substation", 7, "ngt"),
            "stub": count_keys.key("BaseVoltage", 8, None),
            "dead": None,
        }
        listed, _, _ = neo4j_driver.execute_query(
            f"MATCH (k:CountKey) WHERE k.key IN $keys "
            f"RETURN k.key AS key, [k.{CLASS}, k.{LABEL}, k.{OWNER}] AS m",
            keys=[r["k"] for r in records if r["k"] is not None],
            database_=db,
        )
        assert {r["key"]: r["m"] for r in listed} == {
            count_keys.key("Substation", 7, "ngt"): ["Substation", 7, "ngt"],
            count_keys.key("BaseVoltage", 8, None): ["BaseVoltage", 8, None],
        }
        marked, _, _ = neo4j_driver.execute_query(
            "MATCH (m:SchemaMigration {id: $id}) RETURN count(m) AS n", id=MIGRATION, database_=db
        )
        assert marked[0]["n"] == 1
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DELETE n", p=p, database_=db)


@pytest.mark.parametrize(
    ("cls", "label", "owner"),
    [
        ("ACLineSegment", 9_223_372_036_854_775_807, "ngt"),
        ("BaseVoltage", 0, None),
        ("Substation", 42, "a|b"),
    ],
)
def test_a_key_reads_back_as_the_class_label_and_owner_it_was_made_of(
    neo4j_driver: neo4j.Driver, cls: str, label: int, owner: str | None
) -> None:
    node = {CLASS: cls, LABEL: label, OWNER: owner}
    records, _, _ = neo4j_driver.execute_query(
        f"WITH $node AS n WITH {count_keys.expression('n')} AS key "
        f"WITH key, split(key, $sep) AS p RETURN key, {count_keys.unpacked('key', 'p')} AS back",
        node=node,
        sep=count_keys.SEPARATOR,
    )
    assert records[0]["key"] == count_keys.key(cls, label, owner)
    assert records[0]["back"] == {CLASS: cls, LABEL: label, OWNER: owner or ""}
