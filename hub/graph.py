"""Neo4j connection and the schema every writer and reader relies on.

The unique constraint on ``Entity.mrid`` is both the identity rule and the index every ``MERGE`` of the
writer looks up, so it must exist before the first batch; :func:`ensure_schema` is idempotent and every
worker runs it at start. It also creates the name search's full-text index (:mod:`hub.name_search`),
generated from the ontology, drops one generated from an earlier ontology, and waits until it is online.
"""

from __future__ import annotations

import re
from typing import Any, Final

import neo4j

from hub import count_keys
from hub.graph_schema import cypher
from hub.labels import label_id
from hub.name_search import INDEX_PREFIX, NameSearch
from hub.settings import Settings, get_settings
from ontology.loader import load_ontology

ENTITY: Final = "Entity"
STUB: Final = "Stub"
TOMBSTONE: Final = "Tombstone"
SECURITY_LABEL: Final = "SecurityLabel"
# A kept version of an object (hub/history.py): apart from the Entity nodes, linked to nothing.
OBJECT_VERSION: Final = "ObjectVersion"
# The references of kept versions by target (hub/writer.py, _indexes_references): what referred to an object
# at some time, for the walks in the past (hub/history.py). Linked to nothing either.
VERSION_REFERENCE: Final = "VersionReference"
STUB_LABEL_TEXT: Final = "role=admin"
STUB_LABEL_ID: Final = label_id(STUB_LABEL_TEXT)

SCHEMA_STATEMENTS: Final[tuple[str, ...]] = (
    "CREATE CONSTRAINT entity_mrid IF NOT EXISTS FOR (n:Entity) REQUIRE n.mrid IS UNIQUE",
    "CREATE CONSTRAINT security_label_id IF NOT EXISTS FOR (s:SecurityLabel) REQUIRE s.id IS UNIQUE",
    # The count keys in use (hub/count_keys.py).
    "CREATE CONSTRAINT count_key_key IF NOT EXISTS FOR (k:CountKey) REQUIRE k.key IS UNIQUE",
    # The writer's record of how far each ingest partition is in the graph (replays are skipped).
    "CREATE CONSTRAINT ingest_offset_source IF NOT EXISTS FOR (o:IngestOffset) REQUIRE o.source IS UNIQUE",
    # The access guard filters every read by label id; the API lists objects by class.
    cypher("CREATE INDEX entity_label IF NOT EXISTS FOR (n:Entity) ON (n.@label)"),
    cypher("CREATE INDEX entity_class IF NOT EXISTS FOR (n:Entity) ON (n.@class)"),
    # Counts per class as a caller may see them, from the index alone (hub/count_keys.py).
    cypher("CREATE INDEX entity_count_key IF NOT EXISTS FOR (n:Entity) ON (n.@count_key)"),
    # The typed queries' filters and sorts on the name and the update time (hub/typed_pages.py).
    "CREATE INDEX entity_name IF NOT EXISTS FOR (n:Entity) ON (n.name)",
    cypher("CREATE INDEX entity_updated IF NOT EXISTS FOR (n:Entity) ON (n.@updated)"),
    # Data product quality: a product's objects of its promised classes (hub/quality.py). Composite, so
    # that only a read naming both a class and an owner uses it (an index on the owner alone changed the
    # plans of other reads).
    cypher("CREATE INDEX entity_class_owner IF NOT EXISTS FOR (n:Entity) ON (n.@class, n.@owner)"),
    # History: an object's versions by mRID (and in version order), and the versions of a time span.
    cypher("CREATE INDEX object_version_mrid IF NOT EXISTS FOR (v:ObjectVersion) ON (v.mrid)"),
    cypher("CREATE INDEX object_version_valid_from IF NOT EXISTS FOR (v:ObjectVersion) ON (v.@valid_from)"),
    # History: which kept versions referred to an object (no index holds the elements of a list property).
    # Composite, so that the writer's MERGE of an entry seeks its (target, source) pair: on the target
    # alone it would read every entry of a target many objects refer to (a base voltage, a region), a
    # cost growing with the graph. The walks read it by target, with the source's existence.
    "DROP INDEX version_reference_target IF EXISTS",
    "CREATE INDEX version_reference_pair IF NOT EXISTS FOR (r:VersionReference) ON (r.target, r.source)",
    # Measurement history: an object's samples by interval (the writer merges on it, reads take a span of
    # it), and the samples past retention (the worker's prune).
    cypher(
        "CREATE INDEX measurement_sample_bucket IF NOT EXISTS "
        "FOR (s:MeasurementSample) ON (s.mrid, s.@bucket)"
    ),
    cypher("CREATE INDEX measurement_sample_time IF NOT EXISTS FOR (s:MeasurementSample) ON (s.@time)"),
    # Data product quality: the versions recorded in the last window (hub/quality.py).
    cypher("CREATE INDEX object_version_recorded IF NOT EXISTS FOR (v:ObjectVersion) ON (v.@recorded)"),
    # Scenarios (hub/scenarios.py): one record per id (names are display names, not unique), and a
    # scenario's overlay versions by object.
    "DROP CONSTRAINT scenario_name IF EXISTS",
    "CREATE CONSTRAINT scenario_id IF NOT EXISTS FOR (s:Scenario) REQUIRE s.id IS UNIQUE",
    "CREATE INDEX scenario_version_mrid IF NOT EXISTS FOR (v:ScenarioVersion) ON (v.scenario, v.mrid)",
)

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def cypher_name(name: str) -> str:
    """Backticked label or relationship type; only ontology identifiers get here, this is the last check."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid Neo4j label or relationship type")
    return f"`{name}`"


def label_clause(variable: str, labels: tuple[str, ...] | list[str] | frozenset[str]) -> str:
    """``n:`A`:`B``` for SET/REMOVE; empty string when there is nothing to name."""
    if not labels:
        return ""
    return variable + "".join(":" + cypher_name(label) for label in sorted(labels))


def _auth(settings: Settings) -> tuple[str, str]:
    return (settings.neo4j_user, settings.neo4j_password)


def make_driver(settings: Settings | None = None) -> neo4j.Driver:
    settings = settings or get_settings()
    return neo4j.GraphDatabase.driver(settings.neo4j_uri, auth=_auth(settings))


# The async driver's type, for the layers that hold a driver but must not import the Neo4j package (the
# API: only this module, the guard and the reader speak to Neo4j).
AsyncDriver = neo4j.AsyncDriver


class SideStore:
    """Base of the stores of nodes kept beside the network graph (access requests, quality flags): one
    driver, one database, and statements run as managed transactions, every one parameterised."""

    def __init__(self, driver: neo4j.AsyncDriver, database: str) -> None:
        self._driver = driver
        self._database = database

    async def _run(self, statement: str, *, write: bool, **params: Any) -> list[dict[str, Any]]:
        records, _, _ = await self._driver.execute_query(
            statement,
            params,
            database_=self._database,
            routing_=neo4j.RoutingControl.WRITE if write else neo4j.RoutingControl.READ,
        )
        return [dict(r.items()) for r in records]


def make_async_driver(settings: Settings | None = None, *, fail_fast: bool = True) -> neo4j.AsyncDriver:
    """The async driver of the worker (``fail_fast``) or of the API (the driver's own timeouts)."""
    settings = settings or get_settings()
    if not fail_fast:
        # The API answers each request once and keeps the driver's defaults. Unknown relationship types
        # (ontology types with no data yet) are normal here, not warnings.
        return neo4j.AsyncGraphDatabase.driver(
            settings.neo4j_uri, auth=_auth(settings), notifications_min_severity="OFF"
        )
    return neo4j.AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=_auth(settings),
        # A worker waiting out a Neo4j restart retries on its own schedule; fail fast instead of
        # hanging inside the driver so the retry loop stays in control.
        connection_acquisition_timeout=10.0,
        connection_timeout=5.0,
        # Managed transactions (the schema check, execute_query) give up after a second rather than the
        # driver's 30 s of growing waits (up to a minute and more in all): the worker's own loop then
        # logs the outage and backs off, and a SIGTERM is not held up inside the driver.
        max_transaction_retry_time=1.0,
        notifications_min_severity="OFF",
    )


# Full-text indexes of the name search other than the current one (an earlier ontology's).
_STALE_NAME_INDEXES: Final = (
    "SHOW FULLTEXT INDEXES YIELD name WHERE name STARTS WITH $prefix AND name <> $current RETURN name"
)
_AWAIT_INDEX: Final = "CALL db.awaitIndex($name, $timeout)"


def schema_statements() -> list[str]:
    """The constraints and indexes, the name search's full-text index (from the ontology) included."""
    return [*SCHEMA_STATEMENTS, NameSearch(load_ontology()).create_statement()]


# Version nodes written before their times were kept as epoch milliseconds (hub/history.py) kept them as
# datetimes: converted here, a chunk at a time, so that every reader compares milliseconds only. Once done,
# a marker node says so, and later starts skip the scan.
_VERSION_TIMES_MIGRATED: Final = "version_times_millis"
_MIGRATION_DONE: Final = "MATCH (m:SchemaMigration {id: $id}) RETURN count(m) AS n"
_MIGRATION_MARK: Final = "MERGE (:SchemaMigration {id: $id})"
_VERSION_TIMES_TO_MILLIS: Final = cypher(
    """
MATCH (v:ObjectVersion) WHERE v.@valid_from IS :: ZONED DATETIME OR v.@recorded IS :: ZONED DATETIME
WITH v LIMIT $chunk
SET v.@valid_from = CASE WHEN v.@valid_from IS :: ZONED DATETIME THEN v.@valid_from.epochMillis
                         ELSE v.@valid_from END,
    v.@recorded = CASE WHEN v.@recorded IS :: ZONED DATETIME THEN v.@recorded.epochMillis ELSE v.@recorded END
RETURN count(v) AS n
"""
)
_MIGRATION_CHUNK: Final = 10_000
# Version nodes kept before the reference index existed get their entries, once (every version with
# references: more than the writer indexes, never fewer). In transactions of its own, so that a large
# history is not one transaction.
_VERSION_REFERENCES_INDEXED: Final = "version_references"
_INDEX_VERSION_REFERENCES: Final = cypher(
    """
MATCH (v:ObjectVersion)
WHERE NOT v.@deleted AND v.@label IS NOT NULL AND size(coalesce(v.@ref_targets, [])) > 0
CALL (v) {
  UNWIND v.@ref_targets AS target
  WITH DISTINCT v, target
  MERGE (:VersionReference {target: target, source: v.mrid, @label: v.@label, @owner: v.@owner})
} IN TRANSACTIONS OF 2000 ROWS
"""
)

# Objects written before count keys existed get theirs (hub/count_keys.py), in transactions of their own,
# and the keys in use are listed from the keys' index; once, and the writer keeps both from then on.
_COUNT_KEYS_SET: Final = "count_keys_listed"
_SET_COUNT_KEYS: Final = cypher(
    f"""
MATCH (n:Entity) WHERE n.@count_key IS NULL AND n.@label IS NOT NULL AND n.@class IS NOT NULL
CALL (n) {{ SET {count_keys.assignment("n")} }} IN TRANSACTIONS OF 10000 ROWS
"""
)
_LIST_COUNT_KEYS: Final = cypher(
    f"""
MATCH (n:Entity) WHERE n.@count_key IS NOT NULL
WITH DISTINCT n.@count_key AS key
WITH key, split(key, $sep) AS p
WITH key, {count_keys.unpacked("key", "p")} AS m
MERGE (k:{count_keys.COUNT_KEY_NODE} {{key: key}})
ON CREATE SET k.@class = m.@class, k.@label = m.@label,
              k.@owner = CASE m.@owner WHEN '' THEN null ELSE m.@owner END
"""
)


def ensure_schema(driver: neo4j.Driver, database: str | None = None) -> None:
    settings = get_settings()
    database = database or settings.neo4j_database
    for statement in schema_statements():
        driver.execute_query(statement, database_=database)
    done, _, _ = driver.execute_query(_MIGRATION_DONE, id=_VERSION_TIMES_MIGRATED, database_=database)
    while not done[0]["n"]:
        records, _, _ = driver.execute_query(
            _VERSION_TIMES_TO_MILLIS, chunk=_MIGRATION_CHUNK, database_=database
        )
        if records[0]["n"] < _MIGRATION_CHUNK:
            driver.execute_query(_MIGRATION_MARK, id=_VERSION_TIMES_MIGRATED, database_=database)
            break
    done, _, _ = driver.execute_query(_MIGRATION_DONE, id=_VERSION_REFERENCES_INDEXED, database_=database)
    if not done[0]["n"]:
        with driver.session(database=database) as session:
            session.run(_INDEX_VERSION_REFERENCES).consume()
        driver.execute_query(_MIGRATION_MARK, id=_VERSION_REFERENCES_INDEXED, database_=database)
    done, _, _ = driver.execute_query(_MIGRATION_DONE, id=_COUNT_KEYS_SET, database_=database)
    if not done[0]["n"]:
        with driver.session(database=database) as session:
            session.run(_SET_COUNT_KEYS).consume()
        driver.execute_query(_LIST_COUNT_KEYS, sep=count_keys.SEPARATOR, database_=database)
        driver.execute_query(_MIGRATION_MARK, id=_COUNT_KEYS_SET, database_=database)
    current = NameSearch(load_ontology()).index
    records, _, _ = driver.execute_query(
        _STALE_NAME_INDEXES, prefix=INDEX_PREFIX, current=current, database_=database
    )
    for record in records:
        driver.execute_query(f"DROP INDEX {cypher_name(record['name'])} IF EXISTS", database_=database)
    driver.execute_query(
        _AWAIT_INDEX, name=current, timeout=int(settings.search_index_wait_s), database_=database
    )


async def ensure_schema_async(driver: neo4j.AsyncDriver, database: str | None = None) -> None:
    settings = get_settings()
    database = database or settings.neo4j_database
    for statement in schema_statements():
        await driver.execute_query(statement, database_=database)
    done, _, _ = await driver.execute_query(_MIGRATION_DONE, id=_VERSION_TIMES_MIGRATED, database_=database)
    while not done[0]["n"]:
        records, _, _ = await driver.execute_query(
            _VERSION_TIMES_TO_MILLIS, chunk=_MIGRATION_CHUNK, database_=database
        )
        if records[0]["n"] < _MIGRATION_CHUNK:
            await driver.execute_query(_MIGRATION_MARK, id=_VERSION_TIMES_MIGRATED, database_=database)
            break
    done, _, _ = await driver.execute_query(
        _MIGRATION_DONE, id=_VERSION_REFERENCES_INDEXED, database_=database
    )
    if not done[0]["n"]:
        async with driver.session(database=database) as session:
            await (await session.run(_INDEX_VERSION_REFERENCES)).consume()
        await driver.execute_query(_MIGRATION_MARK, id=_VERSION_REFERENCES_INDEXED, database_=database)
    done, _, _ = await driver.execute_query(_MIGRATION_DONE, id=_COUNT_KEYS_SET, database_=database)
    if not done[0]["n"]:
        async with driver.session(database=database) as session:
            await (await session.run(_SET_COUNT_KEYS)).consume()
        await driver.execute_query(_LIST_COUNT_KEYS, sep=count_keys.SEPARATOR, database_=database)
        await driver.execute_query(_MIGRATION_MARK, id=_COUNT_KEYS_SET, database_=database)
    current = NameSearch(load_ontology()).index
    records, _, _ = await driver.execute_query(
        _STALE_NAME_INDEXES, prefix=INDEX_PREFIX, current=current, database_=database
    )
    for record in records:
        await driver.execute_query(f"DROP INDEX {cypher_name(record['name'])} IF EXISTS", database_=database)
    await driver.execute_query(
        _AWAIT_INDEX, name=current, timeout=int(settings.search_index_wait_s), database_=database
    )
