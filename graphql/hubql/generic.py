"""The generic part of the schema: types every client (the planners' page included) relies on.

Objects of the ontology's classes are generated (:mod:`hubql.types`); these types are fixed. Most values
are plain dicts produced from Cypher maps and read by the schema's default resolver
(:func:`resolve_from_source`), so a large result costs one dict look-up per field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types.info import Info

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
    issuer: str | None = strawberry.field(description="The token's issuer (with the subject, who you are).")
    granted: list[str] = strawberry.field(
        description="Label attributes your live access grants add to your token's, now."
    )
    data_officer_of: list[str] = strawberry.field(
        default_factory=list,
        description="Organisations whose access requests you decide, as their data officer (empty: none).",
    )


@strawberry.type(description="One attribute of an object: ontology key, qualified name, value and unit.")
class AttributeValue:
    key: str
    qname: str
    value: JSON | None
    unit: str | None


@strawberry.type(
    description="The raw x/y an object was published with: a WGS84 position point, a gas node's "
    "longitude/latitude, or a diagram-layout point. Deprecated: see geometry and diagramPoints."
)
class Point:
    x: float
    y: float


@strawberry.type(description="A position on the earth in WGS84 degrees.")
class LonLat:
    longitude: float
    latitude: float


@strawberry.type(
    description="Where an object is on the earth, in WGS84 (EPSG:4326), shaped like a GeoJSON geometry: "
    "a Point or a LineString. Derived by the server through objects the caller may see only: the object's "
    "own Location (or longitude/latitude), else a line's or pipe's ends, else the object it sits in "
    "(bay, voltage level, substation, node)."
)
class Geometry:
    type: str = strawberry.field(description="Point or LineString.")
    coordinates: JSON = strawberry.field(
        description="GeoJSON coordinates: [longitude, latitude] for a Point, a list of them for a LineString."
    )
    points: list[LonLat] = strawberry.field(description="The vertices, in order.")
    centre: LonLat = strawberry.field(description="The mean of the vertices (a point to put a marker at).")
    basis: str = strawberry.field(
        description="How it was found: own (the object's own location), ends (through a line's or pipe's "
        "ends), placement (where the object sits: its container, node or machine)."
    )


@strawberry.type(description="A diagram of the diagram-layout profile.")
class DiagramRef:
    mrid: strawberry.ID
    name: str | None


@strawberry.type(
    description="A point of an object on a schematic diagram (diagram-layout x/y, never a position on "
    "the earth)."
)
class DiagramPoint:
    diagram: DiagramRef
    diagram_object: strawberry.ID = strawberry.field(description="The DiagramObject the point belongs to.")
    sequence_number: int | None
    x: float
    y: float


@strawberry.type(
    description="The level of the network an object belongs to, derived through objects the caller may "
    "see: nominal voltage in electricity, maximum pressure in gas."
)
class NetworkLevel:
    nominal_voltage: float | None = strawberry.field(
        description="Nominal voltage in kV: the object's base voltage, else its transformer ends', "
        "substation's voltage levels' (highest) or container's."
    )
    pressure_max: float | None = strawberry.field(
        description="Maximum pressure in bar: the object's own, else the highest of the gas nodes it joins."
    )


def geometry_value(found: Any) -> Geometry | None:
    """A :class:`hub.geography.Geometry` as the GraphQL type."""
    if found is None:
        return None
    coords = [list(c) for c in found.coordinates]
    centre = found.centre
    return Geometry(
        type=found.type,
        coordinates=cast(JSON, coords[0] if found.type == "Point" else coords),
        points=[LonLat(longitude=c[0], latitude=c[1]) for c in found.coordinates],
        centre=LonLat(longitude=centre[0], latitude=centre[1]),
        basis=found.basis,
    )


def diagram_point_value(p: Any) -> DiagramPoint:
    """A :class:`hub.geography.DiagramPoint` as the GraphQL type."""
    return DiagramPoint(
        diagram=DiagramRef(mrid=strawberry.ID(p.diagram_mrid), name=p.diagram_name),
        diagram_object=strawberry.ID(p.diagram_object),
        sequence_number=p.sequence_number,
        x=p.x,
        y=p.y,
    )


async def resolve_geometry(root: Any, info: Info) -> Geometry | None:
    return geometry_value(await info.context.geometry(root["mrid"]))


async def resolve_diagram_points(root: Any, info: Info) -> list[DiagramPoint]:
    return [diagram_point_value(p) for p in await info.context.diagram_points.load(root["mrid"])]


async def resolve_level(root: Any, info: Info) -> NetworkLevel | None:
    found = await info.context.level(root["mrid"])
    if found is None:
        return None
    return NetworkLevel(nominal_voltage=found.nominal_voltage_kv, pressure_max=found.pressure_max_bar)


GEOMETRY_DESCRIPTION = (
    "Where the object is on the earth (WGS84), derived through objects you may see; null when unknown."
)
DIAGRAM_POINTS_DESCRIPTION = "The object's points on schematic diagrams (diagram-layout x/y), by diagram."
LEVEL_DESCRIPTION = "Nominal voltage or gas pressure of the network the object belongs to, when known."
POINT_DEPRECATION = (
    "Mixes geographic and diagram-layout coordinates: use geometry (WGS84) or diagramPoints (diagrams)."
)


@strawberry.type(description="An object as a node of a graph view.")
class GraphNode:
    mrid: strawberry.ID
    class_name: str
    domain: Domain
    name: str | None
    label: str
    point: Point | None = strawberry.field(deprecation_reason=POINT_DEPRECATION)
    geometry: Geometry | None = strawberry.field(resolver=resolve_geometry, description=GEOMETRY_DESCRIPTION)
    diagram_points: list[DiagramPoint] = strawberry.field(
        resolver=resolve_diagram_points, description=DIAGRAM_POINTS_DESCRIPTION
    )
    level: NetworkLevel | None = strawberry.field(resolver=resolve_level, description=LEVEL_DESCRIPTION)


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


@strawberry.enum(description="Which way dependencies are followed from an object.")
class DependencyDirection(Enum):
    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"


@strawberry.type(
    description="What depends on an object across the domains, transitively (electricity -> compressor "
    "-> gas downstream -> offtake -> generating unit ...), or upstream what it depends on, and the "
    "generating capacity at stake."
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
    {
        "mrid",
        "className",
        "domain",
        "name",
        "label",
        "producer",
        "version",
        "updated",
        "point",
        "geometry",
        "diagramPoints",
        "level",
        "attributes",
    }
)
GENERIC_TYPE_NAMES = frozenset(
    {
        "Domain",
        "Caller",
        "AttributeValue",
        "Point",
        "LonLat",
        "Geometry",
        "DiagramRef",
        "DiagramPoint",
        "NetworkLevel",
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
