"""Helpers for the GraphQL tests: a client for the live API and a writer of test graphs that follows
the contract's graph model (the labels, bookkeeping properties and security-label nodes the worker writes)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from hub import count_keys
from hub.auth import mint_token
from hub.graph_schema import cypher
from hub.labels import intern


@dataclass
class Api:
    base: str
    settings: Any
    # One client for all calls: httpx.post builds a client, and with it an SSL context, on every call,
    # which was four fifths of a leak-test example's time; the client also keeps its connection alive, but
    # for less than the server's keep-alive timeout (uvicorn's 5 s): a connection reused just as the server
    # closes it is reset.
    client: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=60, limits=httpx.Limits(keepalive_expiry=2.0))
    )

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"

    def token(
        self,
        user: str = "tester",
        org: str | None = None,
        clearance: str = "PUBLIC",
        roles: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
        ttl: float = 3600,
    ) -> str:
        return mint_token(user, org, clearance, roles, groups, ttl, settings=self.settings)

    def query(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
        raw: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name:
            body["operationName"] = operation_name
        response = self.client.post(f"{self.base}/graphql", json=body, headers=headers)
        if raw:
            return response
        assert response.status_code == 200, response.text
        return response.json()


@dataclass
class Obj:
    mrid: str
    cls: str
    label: str
    name: str | None = None
    props: dict[str, Any] | None = None
    x: float | None = None
    y: float | None = None
    version: int = 1


@dataclass
class Rel:
    source: str
    rel_type: str
    target: str


def write_graph(
    driver: Any,
    ontology: Any,
    objects: list[Obj],
    rels: list[Rel],
    *,
    producer: str = "test",
    label_ttl_s: float = 0.0,
) -> None:
    """Write objects and relationships following the contract's graph model (as the worker does)."""
    labels: dict[int, str] = {}
    by_class: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        lid, text = intern(o.label)
        labels[lid] = text
        props = dict(o.props or {})
        if o.name is not None:
            props["name"] = o.name
        by_class.setdefault(o.cls, []).append(
            {"mrid": o.mrid, "props": props, "label": lid, "x": o.x, "y": o.y, "version": o.version}
        )
    with driver.session() as session:
        created = session.run(
            "UNWIND $labels AS l OPTIONAL MATCH (old:SecurityLabel {id: l.id}) "
            "MERGE (s:SecurityLabel {id: l.id}) SET s.expr = l.expr RETURN count(old) < count(l) AS new",
            labels=[{"id": k, "expr": v} for k, v in labels.items()],
        ).single()
        for cls, rows in by_class.items():
            neo_labels = ":".join(f"`{n}`" for n in ontology.neo4j_labels(cls))
            session.run(
                cypher(
                    f"UNWIND $rows AS row MERGE (n:Entity {{mrid: row.mrid}}) SET n:{neo_labels} "
                    "SET n += row.props, n.@class = $cls, n.@domain = $domain, n.@version = row.version, "
                    "n.@owner = $producer, n.@producer = $producer, n.@event_id = row.mrid, "
                    "n.@updated = datetime(), n.@event_time = datetime(), n.@label = row.label, "
                    f"n.@x = row.x, n.@y = row.y SET {count_keys.assignment('n')} {count_keys.listed('n')}"
                ),
                rows=rows,
                cls=cls,
                domain=ontology.domain(cls),
                producer=producer,
            ).consume()
        by_type: dict[str, list[dict[str, str]]] = {}
        for r in rels:
            by_type.setdefault(r.rel_type, []).append({"s": r.source, "t": r.target})
        for rel_type, pairs in by_type.items():
            session.run(
                f"UNWIND $pairs AS p MATCH (a:Entity {{mrid: p.s}}), (b:Entity {{mrid: p.t}}) "
                f"MERGE (a)-[:`{rel_type}`]->(b)",
                pairs=pairs,
            ).consume()
    if created is not None and created["new"] and label_ttl_s:
        # The API reads the label table at most every label_cache_ttl_s: a label it has never seen is
        # hidden until then (fail closed), as it would be for a producer's first object with a new label.
        time.sleep(label_ttl_s + 0.2)


def delete_prefix(driver: Any, prefix: str) -> None:
    driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def _create_app(settings: Any) -> Any:
    from hubql.app import create_app

    return create_app(settings, frontend_dist=None)


@contextlib.contextmanager
def serve(settings: Any) -> Iterator[Api]:
    from devstack.services import kafka

    # The API signs in as its principal, whose ACLs follow the settings' topic names.
    kafka.apply_service_acls(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    from hubql.serving import server_config

    server = uvicorn.Server(
        server_config(_create_app(settings), settings, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.05)
    try:
        yield Api(base=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
