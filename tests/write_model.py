"""The reference model of the write rules: each event applied on its own, in order, straight from the rules.

The writer folds a batch into its net effect and the worker overlaps batches; both must leave exactly what
this model leaves when it applies the same events one at a time (see the rules in :mod:`hub.writer`). The
writer's tests feed it the events they fold, the worker's tests the valid events of the stream they
publish; both compare the graph in Neo4j with :func:`expected_graph`.

The write check (:mod:`hub.write_policy`) is the one rule given from outside: ``allowed`` says whether an
event may write the node as it stands (by default every write may), so a test states the labels and
rights of its writers by hand instead of calling the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub import count_keys
from hub.graph_schema import CLASS, COUNT_KEY, EVENT_ID, LABEL, OWNER, PRODUCER, VERSION
from hub.writer import STUB_LABEL_ID, Accepted, OntologyView


@dataclass
class Node:
    status: str  # live | stub | dead
    version: int
    labels: set[str]
    props: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    label: int | None = None
    cls: str | None = None
    producer: str | None = None
    event_id: str | None = None
    # For a tombstone: the label the object had just before it was deleted (its delete record's label).
    gone_label: int | None = None


# Whether ``event`` may write ``node`` (None: absent) under the write check.
WriteCheck = Callable[[Accepted, "Node | None"], bool]


def _every_write_allowed(event: Accepted, node: Node | None) -> bool:
    return True


class Model:
    """The graph the rules leave after :meth:`apply` of each event in turn."""

    def __init__(self, ontology: OntologyView, allowed: WriteCheck = _every_write_allowed) -> None:
        self.ontology = ontology
        self.allowed = allowed
        self.nodes: dict[str, Node] = {}
        self.edges: set[tuple[str, str, str]] = set()

    def apply(self, e: Accepted) -> None:
        node = self.nodes.get(e.mrid)
        if node is not None and node.owner is not None and node.owner != e.producer:
            return
        if e.version <= (node.version if node else 0):
            return
        if e.kind == "delete" and (node is None or node.status == "stub"):
            return  # nothing published to delete: nothing claimed, no tombstone
        if not self.allowed(e, node):
            return
        if e.kind == "measurement":
            if node is None or node.status != "live":
                return
            _patch(node, e.props)
        elif e.kind == "delete":
            self.edges = {x for x in self.edges if e.mrid not in (x[0], x[2])}
            self.nodes[e.mrid] = Node(
                "dead",
                e.version,
                {"Entity", "Tombstone"},
                owner=node.owner if node is not None else None,
                cls=e.cls,
                gone_label=node.label if node is not None and node.status != "dead" else None,
            )
            node = self.nodes[e.mrid]
        else:
            if node is None or node.status != "live":
                node = self.nodes[e.mrid] = Node("live", e.version, set(), owner=node.owner if node else None)
            node.labels = {"Entity", *self.ontology.neo4j_labels(e.cls)}
            node.owner = node.owner or e.producer
            node.cls = e.cls
            node.label = e.label_id
            _patch(node, e.props)
            for rel_type, (target_cls, targets) in e.rels.items():
                self.edges = {x for x in self.edges if not (x[0] == e.mrid and x[1] == rel_type)}
                for t in targets:
                    tn = self.nodes.get(t)
                    if tn is None:
                        tn = self.nodes[t] = Node(
                            "stub", 0, {"Entity", "Stub"}, label=STUB_LABEL_ID, cls=target_cls
                        )
                    if tn.status == "dead":
                        continue
                    if tn.status == "stub":
                        tn.labels |= set(self.ontology.neo4j_labels(target_cls))
                        if tn.cls in self.ontology.ancestors(target_cls)[1:]:
                            tn.cls = target_cls
                    self.edges.add((e.mrid, rel_type, t))
        node.version = e.version
        node.producer = e.producer
        node.event_id = e.event_id


def _patch(node: Node, props: Mapping[str, Any]) -> None:
    for k, v in props.items():
        if v is None:
            node.props.pop(k, None)
        else:
            node.props[k] = v


def expected_graph(nodes: Mapping[str, Node], prefix: str = "") -> dict[str, tuple[set[str], dict[str, Any]]]:
    """Each node's Neo4j labels and the properties it must hold: its attributes and the bookkeeping the
    rules decide (not the times, which the database sets)."""
    out = {}
    for mrid, n in nodes.items():
        props: dict[str, Any] = {"mrid": prefix + mrid, VERSION: n.version, CLASS: n.cls}
        if n.status == "live":
            props.update(n.props)
            props.update({LABEL: n.label, OWNER: n.owner, PRODUCER: n.producer, EVENT_ID: n.event_id})
        elif n.status == "stub":
            props[LABEL] = n.label
        if n.status != "dead":
            # What the counts group by (hub/count_keys.py); a tombstone is not counted.
            assert n.label is not None and n.cls is not None
            props[COUNT_KEY] = count_keys.key(n.cls, n.label, n.owner if n.status == "live" else None)
        else:
            props.update({OWNER: n.owner, PRODUCER: n.producer, EVENT_ID: n.event_id})
        out[prefix + mrid] = (n.labels, props)
    return out


def expected_last_changes(
    nodes: Mapping[str, Node], prefix: str = ""
) -> dict[str, tuple[str | None, int, int | None]]:
    """The last change record per object: its kind (for a live object upsert or measurement, depending on
    how the events were batched, so not compared), version and label (a delete's: the label the object
    had before it)."""
    out: dict[str, tuple[str | None, int, int | None]] = {}
    for mrid, n in nodes.items():
        if n.status == "dead":
            out[prefix + mrid] = ("delete", n.version, n.gone_label)
        elif n.status == "stub":
            out[prefix + mrid] = ("stub", 0, STUB_LABEL_ID)
        else:
            out[prefix + mrid] = (None, n.version, n.label)
    return out
