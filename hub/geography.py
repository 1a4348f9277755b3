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
objects it may see. The cost is one statement per request level for all its objects at once (see
:class:`hubql.context.HubContext`): it reads every visible object within :data:`MAX_HOPS` placement
steps of them, and the rules run on that in Python (:meth:`Geography.geometries`). An object the
statement can tell in Cypher is placed by its own location (:func:`wgs84_cypher`, :func:`number_cypher`,
never true where the Python rules would refuse the location) is read alone, without its ends and
containers: for a class load of 3,168 lines with locations of their own that was 34,000 rows against
3,168 (3.7 s against 1.2-1.5 s for ``PlacesAndRelations``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from hub.guard import Guard, visible
from hub.network_level import NetworkLevel, NetworkLevels
from ontology.model import Ontology

# Coordinate systems whose positions are WGS84 longitude (x) and latitude (y).
_WGS84_URN: Final = re.compile(r"EPSG:+(?:[0-9.]*:)?4326$|CRS84$", re.IGNORECASE)
_WGS84_NAME: Final = re.compile(r"^\s*WGS\s*-?\s*84\s*$", re.IGNORECASE)
# The same tests in Cypher (Java regular expressions, whole-string match), narrower where the two
# languages differ (Java's ``\s`` and case folding match less than Python's; no ``trim``, which may strip
# what Python's ``strip`` keeps), so that whatever passes them passes :func:`is_wgs84`; and a decimal that
# Python's ``float`` reads as Java does. Used by :func:`wgs84_cypher` and :func:`number_cypher`.
_WGS84_URN_CYPHER: Final = r"(?is)\s*.*(?:EPSG:+(?:[0-9.]*:)?4326|CRS84)\s*"
_WGS84_NAME_CYPHER: Final = r"(?i)\s*WGS\s*-?\s*84\s*"
_NONBLANK_CYPHER: Final = r"(?s).*\S.*"
_DECIMAL_CYPHER: Final = r"\s*[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*"
CYPHER_TEST_PARAMS: Final = {
    "wgs84_urn": _WGS84_URN_CYPHER,
    "wgs84_name": _WGS84_NAME_CYPHER,
    "nonblank": _NONBLANK_CYPHER,
    "decimal": _DECIMAL_CYPHER,
}


def wgs84_cypher(urn: str, name: str) -> str:
    """Cypher true only where :func:`is_wgs84` of ``urn`` and ``name`` (two expressions) is (parameters
    :data:`CYPHER_TEST_PARAMS`); false, never null, for values of any type."""
    has_urn = f"({urn} IS :: STRING AND {urn} =~ $nonblank)"
    named = f"({name} IS :: STRING AND {name} =~ $wgs84_name)"
    either = f"({has_urn} AND {urn} =~ $wgs84_urn) OR (NOT coalesce({has_urn}, false) AND {named})"
    return f"coalesce({either}, false)"


def number_cypher(value: str, bound: int) -> str:
    """Cypher true only where Python reads ``value`` as a finite number within ``bound`` of zero, as
    :func:`_lon_lat` does: integers and floats as they are (NaN fails the range), strings when decimal;
    false, never null or an error, for values of any other type."""
    # In a CASE, so that toFloat never sees a value of another type (it would fail the statement).
    number = (
        f"CASE WHEN {value} IS :: INTEGER OR {value} IS :: FLOAT THEN {value} "
        f"WHEN {value} IS :: STRING AND {value} =~ $decimal THEN toFloat({value}) END"
    )
    return f"coalesce(-{bound} <= {number} <= {bound}, false)"


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


def _own_geometry(row: dict[str, Any]) -> Geometry | None:
    """An object's own geometry (rule 1) from the items :meth:`Geography._own_parts` returned: the first
    WGS84 location (by mRID) with a valid point, else a position point's own location, else its own
    longitude and latitude."""
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
                return found
    for i in range(len(OWN_LON_LAT)):
        pair = row.get(f"lonlat{i}")
        ll = _lon_lat(pair[0], pair[1]) if pair else None
        if ll is not None:
            return Geometry("Point", (ll,), "own")
    return None


class _LocationNames(NamedTuple):
    """Relationship types and property keys of an object's location and its points, from the ontology:
    (relationship type, owner class, target class) of each association, then the property keys."""

    loc_psr: tuple[str, str, str]
    loc_cs: tuple[str, str, str]
    pp_loc: tuple[str, str, str]
    x: str
    y: str
    seq: str
    urn: str


@dataclass(frozen=True)
class _Step:
    """One step from an object to another: from an object of class ``cls`` along relationship type
    ``rel``, going out (or in), to an object of class ``other``; ``order`` is the key of the attribute of
    the object reached that orders the step's objects (None: by mRID only)."""

    index: int
    cls: str
    rel: str
    out: bool
    other: str
    order: str | None

    def takes(self, labels: frozenset[str], near: dict[str, Any]) -> bool:
        """Whether this step goes from an object with ``labels`` along the relationship ``near`` (as the
        geometry statement returns it) to the object at its other end."""
        return (
            self.rel == near["t"]
            and bool(near["s"] if self.out else near["e"])
            and self.cls in labels
            and self.other in near["labels"]
        )


def _cypher_order(value: Any) -> tuple[int, Any]:
    """A sort key ordering values as Cypher's ``ORDER BY`` does for the types an order attribute holds:
    strings, then booleans, then numbers, then null."""
    if value is None:
        return (3, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    return (0, str(value))


def _taken(labels: frozenset[str], nears: Sequence[dict[str, Any]], steps: Sequence[_Step]) -> list[str]:
    """The mRIDs of the objects one of ``steps`` reaches from an object with ``labels`` (its visible
    neighbours ``nears``): in step order, then by the step's order attribute, then by mRID; each once."""
    found = {
        (step.index, _cypher_order(near["o"].get(step.order) if step.order else 0), near["m"])
        for near in nears
        for step in steps
        if step.takes(labels, near)
    }
    return list(dict.fromkeys(m for _, _, m in sorted(found)))


@dataclass(frozen=True)
class _Surroundings:
    """What the geometry statement read: per visible object reached, its own geometry (when it has one),
    its ends and the objects one placement step away, each list in step order, without repeats."""

    own: dict[str, Geometry]
    ends: dict[str, list[str]]
    up: dict[str, list[str]]

    @staticmethod
    def of(
        rows: Sequence[dict[str, Any]], ends: Sequence[_Step], placement: Sequence[_Step]
    ) -> _Surroundings:
        own: dict[str, Geometry] = {}
        ends_of: dict[str, list[str]] = {}
        up: dict[str, list[str]] = {}
        for row in rows:
            mrid, labels, nears = row["mrid"], frozenset(row["labels"]), row["near"]
            g = _own_geometry(row)
            if g is not None:
                own[mrid] = g
            ends_of[mrid] = _taken(labels, nears, ends)
            up[mrid] = _taken(labels, nears, placement)
        return _Surroundings(own, ends_of, up)


def _placed_points(area: _Surroundings, mrids: Sequence[str], own: dict[str, Geometry]) -> dict[str, LonLat]:
    """A point for each object: the centre of its own geometry (``own``), else of the first placed object
    up the placement associations, level by level (at each level the first in step order), never
    through an object met before on the way, up to :data:`MAX_HOPS` steps."""
    out = {m: g.centre for m, g in own.items()}
    # origin -> objects reached at the current level; seen per origin keeps cycles out
    frontier = {m: [m] for m in mrids if m not in out}
    seen = {m: {m} for m in frontier}
    for _ in range(MAX_HOPS):
        if not frontier:
            break
        new_frontier: dict[str, list[str]] = {}
        for origin, nodes in frontier.items():
            candidates = [o for n in nodes for o in area.up.get(n, []) if o not in seen[origin]]
            hit = next((o for o in candidates if o in area.own), None)
            if hit is not None:
                out[origin] = area.own[hit].centre
                continue
            if candidates:
                seen[origin].update(candidates)
                new_frontier[origin] = list(dict.fromkeys(candidates))
        frontier = new_frontier
    return out


def _derive(ids: Sequence[str], area: _Surroundings) -> dict[str, Geometry]:
    """Rules 1-3 for ``ids`` on what the geometry statement read."""
    out = {m: area.own[m] for m in ids if m in area.own}
    rest = [m for m in ids if m not in out]
    if rest:
        ends = {m: area.ends[m] for m in rest if area.ends.get(m)}
        reached = sorted({e for es in ends.values() for e in es})
        end_points = _placed_points(area, reached, {e: area.own[e] for e in reached if e in area.own})
        for m, es in ends.items():
            line = Geometry.of([end_points[e] for e in es if e in end_points], "ends")
            if line is not None and line.type == "LineString":
                out[m] = line
        rest = [m for m in rest if m not in out]
    if rest:
        # Their own geometry was looked at above (they have none): start climbing at once.
        for m, point in _placed_points(area, rest, {}).items():
            out[m] = Geometry("Point", (point,), "placement")
    return out


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

    def _location_names(self) -> _LocationNames | None:
        """The ontology's names for an object's location and its points, or None when it lacks one."""
        loc_psr = self._assoc("Location.PowerSystemResources")
        loc_cs = self._assoc("Location.CoordinateSystem")
        pp_loc = self._assoc("PositionPoint.Location")
        x, y = self._key("PositionPoint.xPosition"), self._key("PositionPoint.yPosition")
        seq, urn = self._key("PositionPoint.sequenceNumber"), self._key("CoordinateSystem.crsUrn")
        if not (loc_psr and loc_cs and pp_loc and x and y and seq and urn):
            return None
        return _LocationNames(loc_psr, loc_cs, pp_loc, x, y, seq, urn)

    def _own_parts(self, var: str) -> list[str]:
        """RETURN items with the raw data of node ``var``'s own geometry (rule 1): ``located`` (its
        visible WGS84-candidate locations' visible points), ``self_point`` (a position point's own
        location) and ``lonlat<i>`` (:data:`OWN_LON_LAT`); :func:`_own_geometry` reads them."""
        names = self._location_names()
        parts = []
        if names is not None:
            loc_psr, loc_cs, pp_loc, x, y, seq, urn = names
            point = f"{{loc: loc.mrid, urn: cs.`{urn}`, cs: cs.name, x: p.`{x}`, y: p.`{y}`, seq: p.`{seq}`}}"
            cs_match = f"(loc)-[:`{loc_cs[0]}`]->(cs:`{loc_cs[2]}`) WHERE {visible('cs')}"
            parts.append(
                f"COLLECT {{ MATCH ({var})<-[:`{loc_psr[0]}`]-(loc:`{loc_psr[1]}`) WHERE {visible('loc')} "
                f"MATCH {cs_match} "
                f"MATCH (p:`{pp_loc[1]}`)-[:`{pp_loc[0]}`]->(loc) WHERE {visible('p')} "
                f"WITH loc, cs, p ORDER BY loc.mrid, p.`{seq}`, p.mrid RETURN {point} }} AS located"
            )
            # A position point of a WGS84 location is placed itself.
            parts.append(
                f"COLLECT {{ MATCH ({var}:`{pp_loc[1]}`)-[:`{pp_loc[0]}`]->(loc:`{pp_loc[2]}`) "
                f"WHERE {visible('loc')} MATCH {cs_match} "
                f"RETURN {{loc: loc.mrid, urn: cs.`{urn}`, cs: cs.name, x: {var}.`{x}`, y: {var}.`{y}`, "
                "seq: 0} } AS self_point"
            )
        for i, (cls, lon_q, lat_q) in enumerate(OWN_LON_LAT):
            lon, lat = self._key(lon_q), self._key(lat_q)
            if cls in self.ontology.classes and lon and lat:
                parts.append(f"CASE WHEN {var}:`{cls}` THEN [{var}.`{lon}`, {var}.`{lat}`] END AS lonlat{i}")
        return parts

    def _surely_located(self, var: str) -> str | None:
        """A Cypher condition true only when node ``var`` certainly has an own geometry from a location
        (rule 1): a visible location whose visible coordinate system passes the WGS84 test, with a
        visible point whose coordinates are numbers in range, as :func:`_own_geometry` would accept them.
        Where it is false the object may still have one (Python decides); where true, Python agrees, so
        the statement need not read the object's ends and containers. None without the associations."""
        names = self._location_names()
        if names is None:
            return None
        loc_psr, loc_cs, pp_loc, x, y, _, urn = names
        return (
            f"EXISTS {{ MATCH ({var})<-[:`{loc_psr[0]}`]-(loc:`{loc_psr[1]}`) WHERE {visible('loc')} "
            f"MATCH (loc)-[:`{loc_cs[0]}`]->(cs:`{loc_cs[2]}`) WHERE {visible('cs')} "
            f"AND {wgs84_cypher(f'cs.`{urn}`', 'cs.name')} "
            f"MATCH (p:`{pp_loc[1]}`)-[:`{pp_loc[0]}`]->(loc) WHERE {visible('p')} "
            f"AND {number_cypher(f'p.`{x}`', 180)} AND {number_cypher(f'p.`{y}`', 90)} }}"
        )

    # --- steps to other objects ---------------------------------------------------------------------

    def _steps(self, steps: Sequence[tuple[str, str, str, str | None]]) -> list[_Step]:
        """``steps`` ((class of the object, association qname, direction, order attribute qname)) in
        the ontology's names, leaving out those it lacks."""
        out: list[_Step] = []
        for i, (cls, qname, direction, order_q) in enumerate(steps):
            assoc = self._assoc(qname)
            if assoc is None or cls not in self.ontology.classes:
                continue
            rel, owner, target = assoc
            order = self._key(order_q) if order_q else None
            out.append(_Step(i, cls, rel, direction == "out", target if direction == "out" else owner, order))
        return out

    def _placement(self) -> list[_Step]:
        """:data:`PLACEMENT` as steps: the placed object is the owner going out, the target coming in."""
        steps: list[tuple[str, str, str, str | None]] = []
        for qname, direction in PLACEMENT:
            assoc = self._assoc(qname)
            if assoc is not None:
                steps.append((assoc[1] if direction == "out" else assoc[2], qname, direction, None))
        return self._steps(steps)

    def _surroundings_query(
        self, ends: Sequence[_Step], placement: Sequence[_Step], extra: Sequence[str] = ()
    ) -> tuple[str, dict[str, Any]]:
        """The one statement :meth:`geometries` sends, with its fixed parameters.

        From each requested visible object and each visible object at the other end of one of its ends'
        relationships (:data:`ENDS`), every visible object up to :data:`MAX_HOPS` placement relationships
        away, each relationship taken only the way some placement step takes it and every object on the
        way visible. That is a superset of what the rules reach (a step also asks for the classes at its
        two ends, which :func:`_taken` checks); for each object it returns its labels, the raw data of its
        own geometry and its visible neighbours along the ends' and placement's relationships.
        """

        def directions(steps: Sequence[_Step]) -> tuple[list[str], list[str]]:
            return sorted({s.rel for s in steps if s.out}), sorted({s.rel for s in steps if not s.out})

        def along(steps: Sequence[_Step], x: str, up: str, down: str) -> tuple[str, str]:
            """The relationship types of ``steps`` (``A|B``), and the condition that relationship ``r``
            is taken from ``x`` the way one of them takes it (types ``$up`` going out, ``$down`` in)."""
            types = "|".join(f"`{t}`" for t in sorted({s.rel for s in steps}))
            return types, (
                f"((startNode(r) = {x} AND type(r) IN ${up}) OR (endNode(r) = {x} AND type(r) IN ${down}))"
            )

        up, down = directions(placement)
        ends_up, ends_down = directions(ends)
        near_up, near_down = directions([*ends, *placement])
        params: dict[str, Any] = {"up": up, "down": down, "ends_up": ends_up, "ends_down": ends_down}
        params.update(near_up=near_up, near_down=near_down)
        # An object asked for its level only, or surely placed by its own location (lines and
        # substations usually are), needs no ends and no containers: reading them for every line of a
        # class load was nine tenths of the statement's rows.
        located = self._surely_located("a")
        settled = "NOT a.mrid IN $geo_ids" + (f" OR {located}" if located else "")
        if located:
            params.update(CYPHER_TEST_PARAMS)
        starts = "RETURN a AS s, settled AS done"
        if ends:
            types, cond = along(ends, "a", "ends_up", "ends_down")
            starts += (
                f" UNION MATCH (a)-[r:{types}]-(b) WHERE NOT settled AND {cond} AND {visible('b')} "
                "RETURN b AS s, false AS done"
            )
        climb = "WITH s AS n "
        if placement:
            types, cond = along(placement, "x", "up", "down")
            climb = (
                "CALL (s, done) { WITH s WHERE done RETURN s AS n UNION WITH s WHERE NOT done "
                f"MATCH (s) ((x)-[r:{types}]-(y) WHERE {cond} AND {visible('y')}){{0,{MAX_HOPS}}} (n) "
                "RETURN n } "
            )
        orders = sorted({s.order for s in [*ends, *placement] if s.order})
        order_map = "{" + ", ".join(f".`{k}`" for k in orders) + "}"
        near_of = (
            "RETURN {m: b.mrid, t: type(r), s: startNode(r) = n, e: endNode(r) = n, labels: labels(b), "
            f"o: b {order_map}}}"
        )
        branches = [
            f"MATCH (n){arrow}(b) WHERE {visible('b')} {near_of}"
            for types, arrow in ((near_up, "-[r:{}]->"), (near_down, "<-[r:{}]-"))
            if types
            for arrow in [arrow.format("|".join(f"`{t}`" for t in types))]
        ]
        near = f"COLLECT {{ {' UNION '.join(branches)} }}" if branches else "[]"
        returned = ["n.mrid AS mrid", "labels(n) AS labels", *self._own_parts("n"), f"{near} AS near", *extra]
        cypher = (
            f"UNWIND $ids AS id MATCH (a:Entity {{mrid: id}}) WHERE {visible('a')} "
            f"WITH a, {settled} AS settled "
            f"CALL (a, settled) {{ {starts} }} WITH DISTINCT s, done "
            f"{climb}WITH DISTINCT n RETURN {', '.join(returned)}"
        )
        return cypher, params

    async def geometries(self, mrids: Sequence[str]) -> dict[str, Geometry]:
        """The WGS84 geometry of each object that has one (rules 1-3); objects the caller may not see,
        and objects placed only through objects it may not see, have none.

        One guarded statement reads every visible object the rules may reach (:meth:`_surroundings_query`);
        the rules then run on what it returned, so a page's geometry costs one round trip whatever the
        depth of its containers."""
        return (await self.with_levels(mrids, (), None))[0]

    async def with_levels(
        self, mrids: Sequence[str], level_mrids: Sequence[str], levels: NetworkLevels | None
    ) -> tuple[dict[str, Geometry], dict[str, NetworkLevel]]:
        """:meth:`geometries` of ``mrids`` and the network levels (:class:`hub.network_level.NetworkLevels`)
        of ``level_mrids``, in the one statement: a page that shows both sends one statement for them."""
        ids = list(dict.fromkeys(mrids))
        level_ids = list(dict.fromkeys(level_mrids)) if levels is not None else []
        if not ids:
            return {}, (await levels.levels(level_ids) if levels is not None and level_ids else {})
        ends, placement = self._steps(ENDS), self._placement()
        extra = levels.returned(only="n.mrid IN $level_ids") if levels is not None and level_ids else []
        cypher, params = self._surroundings_query(ends, placement, extra)
        starts = list(dict.fromkeys([*ids, *level_ids]))
        rows = await self.guard.read(
            cypher, {**params, "ids": starts, "geo_ids": ids, "level_ids": level_ids}
        )
        found = _derive(ids, _Surroundings.of(rows, ends, placement))
        if not extra or levels is None:
            return found, {}
        wanted = set(level_ids)
        return found, {
            row["mrid"]: level
            for row in rows
            if row["mrid"] in wanted and (level := levels.of_row(row)) is not None
        }

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
