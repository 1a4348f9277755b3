"""Where objects are on the earth: WGS84 geometries derived at query time, through the access guard.

A CIM model places few objects itself. The geographical location profile gives a ``Location`` (with a
``CoordinateSystem`` and ordered ``PositionPoint``s) to some substations and line segments; generating
units, breakers, terminals and voltage levels have none, yet a planner expects to see them where their
substation is. A gas node states its own longitude and latitude. Diagram-layout coordinates
(``DiagramObjectPoint``) are schematic x/y on a drawing and never a position on the earth: they are kept
apart (:meth:`Geography.diagram_points`), tied to their ``Diagram``.

How an object's geometry is found, first match wins:

1. **Its own.** A visible ``Location`` of the object whose visible ``CoordinateSystem`` is WGS84
   (``crsUrn`` names EPSG 4326, or the system is named WGS84), with its visible position points in
   ``sequenceNumber`` order: one point is a ``Point``, more a ``LineString``. A gas node's own longitude
   and latitude. A position point of such a location is itself placed.
2. **Through its ends** (lines and pipes): a conductor's terminals in ``sequenceNumber`` order, or a gas
   connection's from- and to-node, each placed by these rules; two or more placed ends make a
   ``LineString``.
3. **Where it sits**: the first placed object up the placement associations (:data:`PLACEMENT`):
   equipment in its bay, voltage level or substation, a terminal at its connectivity node, a generating
   unit at its machine (and a machine at its unit), an offtake at its gas node. Up to :data:`MAX_HOPS`
   steps; the centre of that object's geometry becomes a ``Point``.

Why at query time rather than stored by the writer: a derived position is information *about another
object* (the substation's Location), and the hub's rule is that nothing a caller gets may depend on what
it may not see. A position stored on a breaker would reveal a hidden substation's whereabouts to anyone
who may see the breaker, and would have to be rewritten whenever a container, location or label changes.
Derived here, every step is a guarded read: each node on the way (container, terminal, node, location,
coordinate system, position point) must be visible, so a caller gets a derived position only through
objects it may see. The cost is a few batched queries per request (one per hop for all objects of the
request at once, see :class:`hubql.context.HubContext`), bounded by :data:`MAX_HOPS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.guard import Guard, visible
from ontology.model import Ontology

# Coordinate systems whose positions are WGS84 longitude (x) and latitude (y).
_WGS84_URN: Final = re.compile(r"EPSG:+(?:[0-9.]*:)?4326$|CRS84$", re.IGNORECASE)
_WGS84_NAME: Final = re.compile(r"^\s*WGS\s*-?\s*84\s*$", re.IGNORECASE)
# Placement steps: (association qname, direction from the placed object). Order is preference.
PLACEMENT: Final[tuple[tuple[str, str], ...]] = (
    ("Equipment.EquipmentContainer", "out"),
    ("Bay.VoltageLevel", "out"),
    ("VoltageLevel.Substation", "out"),
    ("Terminal.ConnectivityNode", "out"),
    ("Terminal.TopologicalNode", "out"),
    ("ConnectivityNode.ConnectivityNodeContainer", "out"),
    ("TopologicalNode.ConnectivityNodeContainer", "out"),
    ("Terminal.ConductingEquipment", "out"),
    ("TransformerEnd.Terminal", "out"),
    ("PowerTransformerEnd.PowerTransformer", "out"),
    ("RotatingMachine.GeneratingUnit", "in"),
    ("RotatingMachine.GeneratingUnit", "out"),
    ("GasOfftake.Node", "out"),
    ("GasStorage.Node", "out"),
    ("GasTerminal.Node", "out"),
)
# Ends of objects drawn as lines: (class, association qname, direction, qname of the order attribute).
ENDS: Final[tuple[tuple[str, str, str, str | None], ...]] = (
    ("Conductor", "Terminal.ConductingEquipment", "in", "ACDCTerminal.sequenceNumber"),
    ("GasConnection", "GasConnection.FromNode", "out", None),
    ("GasConnection", "GasConnection.ToNode", "out", None),
)
# Geographic attributes of an object's own (class, longitude qname, latitude qname).
OWN_LON_LAT: Final[tuple[tuple[str, str, str], ...]] = (("GasNode", "GasNode.longitude", "GasNode.latitude"),)
MAX_HOPS: Final = 6
# Classes whose published x/y are diagram-layout coordinates: never a position on the earth, so a
# geographic filter (``objects(bbox:)``) never matches them.
DIAGRAM_LAYOUT_CLASSES: Final = ("DiagramObjectPoint",)

LonLat = tuple[float, float]


def is_wgs84(crs_urn: Any, name: Any) -> bool:
    """Whether a coordinate system with this ``crsUrn`` and name gives WGS84 longitude/latitude."""
    if isinstance(crs_urn, str) and crs_urn.strip():
        return bool(_WGS84_URN.search(crs_urn.strip()))
    return isinstance(name, str) and bool(_WGS84_NAME.match(name))


@dataclass(frozen=True)
class Geometry:
    """A WGS84 geometry: ``Point`` (one coordinate) or ``LineString``; ``basis`` says how it was found
    (``own``, ``ends``, ``placement``)."""

    type: str
    coordinates: tuple[LonLat, ...]
    basis: str

    @property
    def centre(self) -> LonLat:
        n = len(self.coordinates)
        return (sum(c[0] for c in self.coordinates) / n, sum(c[1] for c in self.coordinates) / n)

    @staticmethod
    def of(points: Sequence[LonLat], basis: str) -> Geometry | None:
        distinct: list[LonLat] = []
        for p in points:
            if not distinct or distinct[-1] != p:
                distinct.append(p)
        if not distinct:
            return None
        return Geometry("Point" if len(distinct) == 1 else "LineString", tuple(distinct), basis)


@dataclass(frozen=True)
class DiagramPoint:
    """A diagram-layout point of an object on one diagram (schematic x/y, never geographic)."""

    diagram_mrid: str
    diagram_name: str | None
    diagram_object: str
    sequence_number: int | None
    x: float
    y: float


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and abs(out) != float("inf") else None


def _lon_lat(x: Any, y: Any) -> LonLat | None:
    lon, lat = _number(x), _number(y)
    if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return (lon, lat)


class Geography:
    """Geometries and diagram points for one caller; every query goes through the caller's guard."""

    def __init__(self, guard: Guard, ontology: Ontology) -> None:
        self.guard = guard
        self.ontology = ontology

    # --- ontology names -----------------------------------------------------------------------------

    def _assoc(self, qname: str) -> tuple[str, str, str] | None:
        """(relationship type, owner class, target class) of an association the ontology has."""
        a = self.ontology.association_by_qname(qname)
        return None if a is None else (a.rel_type, a.owner, a.target)

    def _key(self, qname: str) -> str | None:
        a = self.ontology.attribute_by_qname(qname)
        return None if a is None else a.key

    # --- own geometry -------------------------------------------------------------------------------

    async def own(self, mrids: Sequence[str]) -> dict[str, Geometry]:
        """Objects' own WGS84 geometry (rule 1), for those that have one and the caller may see."""
        if not mrids:
            return {}
        loc_psr = self._assoc("Location.PowerSystemResources")
        loc_cs = self._assoc("Location.CoordinateSystem")
        pp_loc = self._assoc("PositionPoint.Location")
        keys = {q: self._key(q) for q in ("PositionPoint.xPosition", "PositionPoint.yPosition")}
        seq, urn = self._key("PositionPoint.sequenceNumber"), self._key("CoordinateSystem.crsUrn")
        parts = ["n.mrid AS mrid"]
        if (
            loc_psr
            and loc_cs
            and pp_loc
            and keys["PositionPoint.xPosition"]
            and keys["PositionPoint.yPosition"]
        ):
            x, y = keys["PositionPoint.xPosition"], keys["PositionPoint.yPosition"]
            point = f"{{loc: loc.mrid, urn: cs.`{urn}`, cs: cs.name, x: p.`{x}`, y: p.`{y}`, seq: p.`{seq}`}}"
            cs_match = f"(loc)-[:`{loc_cs[0]}`]->(cs:`{loc_cs[2]}`) WHERE {visible('cs')}"
            parts.append(
                f"COLLECT {{ MATCH (n)<-[:`{loc_psr[0]}`]-(loc:`{loc_psr[1]}`) WHERE {visible('loc')} "
                f"MATCH {cs_match} "
                f"MATCH (p:`{pp_loc[1]}`)-[:`{pp_loc[0]}`]->(loc) WHERE {visible('p')} "
                f"WITH loc, cs, p ORDER BY loc.mrid, p.`{seq}`, p.mrid RETURN {point} }} AS located"
            )
            # A position point of a WGS84 location is placed itself.
            parts.append(
                f"COLLECT {{ MATCH (n:`{pp_loc[1]}`)-[:`{pp_loc[0]}`]->(loc:`{pp_loc[2]}`) "
                f"WHERE {visible('loc')} MATCH {cs_match} "
                f"RETURN {{loc: loc.mrid, urn: cs.`{urn}`, cs: cs.name, x: n.`{x}`, y: n.`{y}`, seq: 0}} }} "
                "AS self_point"
            )
        for i, (cls, lon_q, lat_q) in enumerate(OWN_LON_LAT):
            lon, lat = self._key(lon_q), self._key(lat_q)
            if cls in self.ontology.classes and lon and lat:
                parts.append(f"CASE WHEN n:`{cls}` THEN [n.`{lon}`, n.`{lat}`] END AS lonlat{i}")
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} RETURN {', '.join(parts)}",
            {"ids": list(mrids)},
        )
        out: dict[str, Geometry] = {}
        for row in rows:
            found: Geometry | None = None
            for key in ("located", "self_point"):
                by_loc: dict[str, list[LonLat]] = {}
                for p in row.get(key) or []:
                    if not is_wgs84(p["urn"], p["cs"]):
                        continue
                    ll = _lon_lat(p["x"], p["y"])
                    if ll is not None:
                        by_loc.setdefault(p["loc"], []).append(ll)
                for loc in sorted(by_loc):
                    found = Geometry.of(by_loc[loc], "own")
                    if found is not None:
                        break
                if found is not None:
                    break
            if found is None:
                for i in range(len(OWN_LON_LAT)):
                    pair = row.get(f"lonlat{i}")
                    ll = _lon_lat(pair[0], pair[1]) if pair else None
                    if ll is not None:
                        found = Geometry("Point", (ll,), "own")
                        break
            if found is not None:
                out[row["mrid"]] = found
        return out

    # --- steps to other objects ---------------------------------------------------------------------

    async def _steps(
        self, mrids: Sequence[str], steps: Sequence[tuple[str, str, str, str | None]]
    ) -> dict[str, list[str]]:
        """For each object, the visible objects one step away along ``steps`` ((class of the object,
        association qname, direction, order attribute qname)), in step order then by the order value."""
        branches = []
        for i, (cls, qname, direction, order_q) in enumerate(steps):
            assoc = self._assoc(qname)
            if assoc is None or cls not in self.ontology.classes:
                continue
            rel, owner, target = assoc
            other = target if direction == "out" else owner
            arrow = f"-[:`{rel}`]->" if direction == "out" else f"<-[:`{rel}`]-"
            order_key = self._key(order_q) if order_q else None
            order = f"b.`{order_key}`" if order_key else "0"
            branches.append(
                f"MATCH (a:`{cls}`){arrow}(b:`{other}`) WHERE {visible('b')} "
                f"RETURN b.mrid AS other, {i} AS step, {order} AS ord"
            )
        if not branches or not mrids:
            return {}
        rows = await self.guard.read(
            "UNWIND $ids AS id MATCH (a:Entity {mrid: id}) WHERE " + visible("a") + " "
            f"CALL (a) {{ {' UNION '.join(branches)} }} "
            "WITH id, other, step, ord ORDER BY id, step, ord, other "
            "RETURN id, collect(other) AS others",
            {"ids": list(mrids)},
        )
        return {r["id"]: list(dict.fromkeys(r["others"])) for r in rows}

    async def _placed_points(
        self, mrids: Sequence[str], own: dict[str, Geometry] | None = None
    ) -> dict[str, LonLat]:
        """A point for each object: the centre of its own geometry (``own``, when the caller already
        read it), else of the first placed object up the placement associations (level by level, every
        object on the way visible)."""
        placement = self._placement()
        if own is None:
            own = await self.own(list(mrids))
        out = {m: g.centre for m, g in own.items()}
        # origin -> objects reached at the current level; seen per origin keeps cycles out
        frontier = {m: [m] for m in mrids if m not in out}
        seen = {m: {m} for m in frontier}
        for _ in range(MAX_HOPS):
            if not frontier:
                break
            current = sorted({n for nodes in frontier.values() for n in nodes})
            nxt = await self._steps(current, placement)
            reached = sorted({o for n in current for o in nxt.get(n, [])})
            placed = await self.own(reached)
            new_frontier: dict[str, list[str]] = {}
            for origin, nodes in frontier.items():
                candidates = [o for n in nodes for o in nxt.get(n, []) if o not in seen[origin]]
                hit = next((o for o in candidates if o in placed), None)
                if hit is not None:
                    out[origin] = placed[hit].centre
                    continue
                if candidates:
                    seen[origin].update(candidates)
                    new_frontier[origin] = list(dict.fromkeys(candidates))
            frontier = new_frontier
        return out

    def _placement(self) -> list[tuple[str, str, str, str | None]]:
        """:data:`PLACEMENT` as steps: the placed object is the owner going out, the target coming in."""
        steps: list[tuple[str, str, str, str | None]] = []
        for qname, direction in PLACEMENT:
            assoc = self._assoc(qname)
            if assoc is not None:
                steps.append((assoc[1] if direction == "out" else assoc[2], qname, direction, None))
        return steps

    async def geometries(self, mrids: Sequence[str]) -> dict[str, Geometry]:
        """The WGS84 geometry of each object that has one (rules 1-3); objects the caller may not see,
        and objects placed only through objects it may not see, have none."""
        ids = list(dict.fromkeys(mrids))
        out = await self.own(ids)
        rest = [m for m in ids if m not in out]
        if rest:
            ends = await self._steps(rest, ENDS)
            end_points = await self._placed_points(sorted({e for es in ends.values() for e in es}))
            for m, es in ends.items():
                line = Geometry.of([end_points[e] for e in es if e in end_points], "ends")
                if line is not None and line.type == "LineString":
                    out[m] = line
            rest = [m for m in rest if m not in out]
        if rest:
            # Their own geometry was read above (they have none): start climbing at once.
            for m, point in (await self._placed_points(rest, own={})).items():
                out[m] = Geometry("Point", (point,), "placement")
        return out

    # --- diagram layout -----------------------------------------------------------------------------

    async def diagram_points(self, mrids: Sequence[str]) -> dict[str, list[DiagramPoint]]:
        """Diagram-layout points of each object (through its visible diagram objects), and of a visible
        diagram object point itself, each with its visible diagram."""
        dop_do = self._assoc("DiagramObjectPoint.DiagramObject")
        do_obj = self._assoc("DiagramObject.IdentifiedObject")
        do_dia = self._assoc("DiagramObject.Diagram")
        x, y = self._key("DiagramObjectPoint.xPosition"), self._key("DiagramObjectPoint.yPosition")
        seq = self._key("DiagramObjectPoint.sequenceNumber")
        if not (dop_do and do_obj and do_dia and x and y and seq) or not mrids:
            return {}
        point = f"{{do: do.mrid, d: d.mrid, dname: d.name, seq: p.`{seq}`, x: p.`{x}`, y: p.`{y}`}}"
        dia = f"MATCH (do)-[:`{do_dia[0]}`]->(d:`{do_dia[2]}`) WHERE {visible('d')}"
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} "
            "RETURN n.mrid AS mrid, "
            f"COLLECT {{ MATCH (n)<-[:`{do_obj[0]}`]-(do:`{do_obj[1]}`) WHERE {visible('do')} {dia} "
            f"MATCH (p:`{dop_do[1]}`)-[:`{dop_do[0]}`]->(do) WHERE {visible('p')} "
            f"WITH do, d, p ORDER BY d.mrid, do.mrid, p.`{seq}`, p.mrid RETURN {point} }} AS drawn, "
            f"COLLECT {{ MATCH (n:`{dop_do[1]}`)-[:`{dop_do[0]}`]->(do:`{dop_do[2]}`) "
            f"WHERE {visible('do')} {dia} WITH do, d, n AS p RETURN {point} }} AS itself",
            {"ids": list(mrids)},
        )
        out: dict[str, list[DiagramPoint]] = {}
        for row in rows:
            pts = []
            for p in [*(row["drawn"] or []), *(row["itself"] or [])]:
                px, py = _number(p["x"]), _number(p["y"])
                if px is None or py is None:
                    continue
                s = p["seq"]
                pts.append(
                    DiagramPoint(p["d"], p["dname"], p["do"], int(s) if s is not None else None, px, py)
                )
            if pts:
                out[row["mrid"]] = pts
        return out
