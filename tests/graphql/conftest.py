"""The API served by a real uvicorn on a free port, against the test Kafka and Neo4j, plus graph helpers."""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

# The helpers sit next to the tests; with importlib import mode the folder is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from graphkit import Api, Obj, Rel, write_graph


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def api(settings: Any, neo4j_driver: Any) -> Iterator[Api]:
    from hubql.app import create_app
    from hubql.serving import server_config

    from hub.graph import ensure_schema

    # The constraints and indexes a worker creates at start, the name search's full-text index included.
    ensure_schema(neo4j_driver, settings.neo4j_database)

    port = _free_port()
    # The session's API serves its metrics on a port of its own, as in production.
    settings = settings.model_copy(update={"api_metrics_port": _free_port()})
    app = create_app(settings, frontend_dist=None)
    config = server_config(app, settings, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API server did not start", pytrace=False)
        time.sleep(0.05)
    yield Api(base=f"http://127.0.0.1:{port}", settings=settings)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def run_id() -> str:
    return "t" + uuid.uuid4().hex[:10]


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
