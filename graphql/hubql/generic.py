"""The generic part of the schema: types every client (the planners' page included) relies on.

Objects of the ontology's classes are generated (:mod:`hubql.types`); these types are fixed. Most values
are plain dicts produced from Cypher maps and read by the schema's default resolver
(:func:`resolve_from_source`), so a large result costs one dict look-up per field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from hub.graph_schema import CLASS, DOMAIN, LABEL, X, Y
from hubql.scalars import Long


def resolve_from_source(source: Any, name: str) -> Any:
    """Default field resolver: dict rows by key, anything else by attribute."""
    if source.__class__ is dict:
        return source.get(name)
    return getattr(source, name)


@strawberry.enum(description="The two energy domains of the hub.")
class Domain(Enum):
    ELECTRICITY = "Electricity"
    GAS = "Gas"


DOMAIN_BY_NAME: dict[str | None, Domain] = {d.value: d for d in Domain}


@strawberry.enum(description="Which relationships a path may follow.")
class PathVia(Enum):
    PHYSICAL = strawberry.enum_value(
        "physical",
        description="Only the physical network: equipment, terminals, connectivity and topological nodes, "
        "gas connections and nodes, and the couplings between gas and electricity; never reference data "
        "(coordinate systems, base voltages, regions, containers, measurements, diagrams).",
    )
    ANY = strawberry.enum_value("any", description="Any relationship.")


@strawberry.type(description="The verified caller of this request, as the access guard sees them.")
class Caller:
    subject: str
    org: str | None
    clearance: str | None
    roles: list[str]
    groups: list[str]
    anonymous: bool


@strawberry.type(description="One attribute of an object: ontology key, qualified name, value and unit.")
class AttributeValue:
    key: str
    qname: str
    value: JSON | None
    unit: str | None


@strawberry.type(description="A geographic point (longitude/latitude where the source is WGS84).")
class Point:
    x: float
    y: float


@strawberry.type(description="An object as a node of a graph view.")
class GraphNode:
    mrid: strawberry.ID
    class_name: str
    domain: Domain
    name: str | None
    label: str
    point: Point | None


@strawberry.type(
    description="A relationship between two visible objects; key is its field on the source type."
)
class GraphEdge:
    source: strawberry.ID
    target: strawberry.ID
    type: str
    key: str


@strawberry.type(description="Visible objects and the relationships between them.")
class Subgraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]


@strawberry.type(description="A search result.")
class SearchHit:
    mrid: strawberry.ID
    class_name: str
    domain: Domain
    name: str | None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="How many visible objects of one class there are.")
class ClassCount:
    class_name: str
    count: int


@strawberry.type(description="A class of the ontology.")
class OntologyClass:
    name: str
    domain: Domain
    parents: list[str]
    abstract: bool
    description: str


@strawberry.type(
    description="One step of a dependency report: the objects first reached across one more coupling, "
    "and the generating capacity at stake among them."
)
class DependencyStep:
    depth: int = strawberry.field(description="Couplings crossed from the start (1: directly coupled).")
    domain: Domain
    dependents: list[GraphNode]
    capacity_mw: float | None = strawberry.field(name="capacityMW")


@strawberry.type(
    description="What depends on an object across the domains, transitively (electricity -> compressor "
    "-> gas downstream -> offtake -> generating unit ...), and the generating capacity at stake."
)
class DependencyReport:
    root: GraphNode | None
    dependents: list[GraphNode] = strawberry.field(description="Every step's dependents, step by step.")
    capacity_mw: float | None = strawberry.field(
        name="capacityMW", description="The generating capacity at stake over all steps."
    )
    steps: list[DependencyStep]
    subgraph: Subgraph


@strawberry.type(
    description="A committed change to an object the subscriber may see, or the marker of a subscriber "
    "that fell behind."
)
class Change:
    cursor: str
    mrid: strawberry.ID = strawberry.field(description="The object (empty in a gap marker).")
    class_name: str
    change: str = strawberry.field(
        description="upsert, measurement, stub or delete (also for an object relabelled out of your "
        "sight); or gap: more changes were waiting for this subscriber than "
        "HUB_SUBSCRIPTION_QUEUE_SIZE, and the subscription now reads on from this marker's cursor at the "
        "subscriber's pace (nothing is lost)."
    )
    version: Long
    time: datetime
    node: GraphNode | None


GENERIC_FIELD_NAMES = frozenset(
    {"mrid", "className", "domain", "name", "label", "producer", "version", "updated", "point", "attributes"}
)
GENERIC_TYPE_NAMES = frozenset(
    {
        "Domain",
        "Caller",
        "AttributeValue",
        "Point",
        "GraphNode",
        "GraphEdge",
        "Subgraph",
        "SearchHit",
        "PageInfo",
        "ClassCount",
        "OntologyClass",
        "DependencyReport",
        "Change",
        "ObjectConnection",
        "ObjectEdge",
        "Query",
        "Subscription",
        "JSON",
        "DateTime",
        "Long",
        "ID",
        "String",
        "Int",
        "Float",
        "Boolean",
    }
)


def graph_node(props: dict[str, Any], label_text: Callable[[int | None], str]) -> dict[str, Any]:
    """A light projection (:data:`hub.reader.LITE`) of a visible node as a ``GraphNode`` row."""
    x, y = props.get(X), props.get(Y)
    return {
        "mrid": props["mrid"],
        "class_name": props.get(CLASS) or "",
        "domain": DOMAIN_BY_NAME.get(props.get(DOMAIN), Domain.ELECTRICITY),
        "name": props.get("name"),
        "label": label_text(props.get(LABEL)),
        "point": {"x": x, "y": y} if x is not None and y is not None else None,
    }
