"""The security tests' fixtures.

APIs to attack: real uvicorn servers with the hub's secure defaults, against the test Kafka and Neo4j.
The suite's settings turn development mode and anonymous access on (tests/conftest.py); the servers here
turn them back off, so they run as a production API would. Tokens still come from the development
issuer's key, given to the API as a plain JWKS file, as an identity provider's keys would be. The
write-path stack is in writepath.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The API client and graph writer of the GraphQL tests, and this folder's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "graphql"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from graphkit import Api, Obj, Rel, serve, write_graph
from hardening import secure
from writepath import stack

__all__ = ["stack"]


@pytest.fixture(scope="module")
def hardened(settings: Any) -> Iterator[Api]:
    """An API with the secure defaults."""
    with serve(secure(settings)) as api:
        yield api


@pytest.fixture
def graph_writer(neo4j_driver: Any, settings: Any) -> Iterator[Callable[[list[Obj], list[Rel]], None]]:
    """Writes test graphs and deletes what it wrote afterwards."""
    from ontology.loader import load_ontology

    ontology = load_ontology()
    written: list[str] = []

    def write(objects: list[Obj], rels: list[Rel]) -> None:
        write_graph(neo4j_driver, ontology, objects, rels, label_ttl_s=settings.label_cache_ttl_s)
        written.extend(o.mrid for o in objects)

    yield write
    if written:
        neo4j_driver.execute_query(
            "UNWIND $ids AS id MATCH (n:Entity {mrid: id}) DETACH DELETE n", ids=written
        )


@pytest.fixture
def run_id() -> str:
    return "s" + uuid.uuid4().hex[:10]
