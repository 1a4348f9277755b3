"""The API creates the graph's indexes when it starts: its reads hint at them (the quality pass, the name
search), and an API started on a fresh database before any worker failed those reads."""

from __future__ import annotations

import time
from typing import Any

import neo4j
from graphkit import serve

# Indexes only hinted reads need; the worker creates them too, but an API may start first.
HINTED = ("entity_class_owner", "object_version_recorded")


def _online(driver: neo4j.Driver, database: str) -> set[str]:
    records, _, _ = driver.execute_query(
        "SHOW INDEXES YIELD name, state WHERE name IN $names AND state = 'ONLINE' RETURN name",
        names=list(HINTED),
        database_=database,
    )
    return {r["name"] for r in records}


def test_the_api_creates_the_indexes_its_reads_hint_at(neo4j_driver: neo4j.Driver, settings: Any) -> None:
    database = settings.neo4j_database
    for name in HINTED:
        neo4j_driver.execute_query(f"DROP INDEX {name} IF EXISTS", database_=database)
    assert _online(neo4j_driver, database) == set()
    with serve(settings):
        deadline = time.monotonic() + 60
        while _online(neo4j_driver, database) != set(HINTED) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert _online(neo4j_driver, database) == set(HINTED)
