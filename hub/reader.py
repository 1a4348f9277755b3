"""Read-side queries over the labelled graph, each filtered through the access guard.

Every query here is built from the guard's fragments and run by :meth:`hub.guard.Guard.read`; labels,
relationship types and property keys come only from the ontology (validated before they reach Cypher).
Results are plain dicts: for objects, the properties the caller's selection asks for (a :data:`Fields`
projection, ``n {.mrid, .`_class`, .name}``; ``None`` reads every property, ``n {.*}``), and a light
projection for graph views. A page of 5,000 rows with four fields reads those four fields, not all.

Traversals (neighbourhood, containment, dependency regions) expand level by level and never step onto a
hidden node, so what lies behind a hidden node is unreachable as well as unseen.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hub import count_keys
from hub.geography import DIAGRAM_LAYOUT_CLASSES
from hub.graph_schema import BOOKKEEPING, CLASS, COUNT_KEY, DOMAIN, LABEL, OWNER, X, Y, cypher
from hub.guard import Guard, visible
from hub.name_search import NameSearch, SearchTextError
from ontology.connectivity import physical_network
from ontology.model import Association, Ontology

DOMAINS: Final = ("Electricity", "Gas")
# Ontology names the dependency analysis follows: gas flows along connections from their from-node to
# their to-node; the generating capacity at stake is the sum of the dependents' maximum operating power.
FLOW_FROM: Final = "GasConnection.FromNode"
FLOW_TO: Final = "GasConnection.ToNode"
CAPACITY: Final = "GeneratingUnit.maxOperatingP"

# One expansion step: relationship types (None = any) and direction ("out", "in", "both").
Step = tuple[Sequence[str] | None, str]

# The light projection of a node used by graph views (neighbourhood, paths, search, subscriptions).
LITE: Final = cypher(
    "{{mrid: {v}.mrid, name: {v}.name, @class: {v}.@class, @domain: {v}.@domain, "
    "@label: {v}.@label, @x: {v}.@x, @y: {v}.@y}}"
)


# An edge as a map (the relationship variable is ``r``).
EDGE: Final = "{source: startNode(r).mrid, target: endNode(r).mrid, type: type(r)}"


# Of the light projection, what the hub itself needs of every node of a graph view (the id; the class for
# edge keys and the path check; the domain for dependencies; the label for the path check) and what only
# the selection may ask for (the name, the raw point).
VIEW_CORE: Final = frozenset({"mrid", CLASS, DOMAIN, LABEL})
VIEW_SELECTABLE: Final = frozenset({"name", X, Y})


def lite(var: str, fields: frozenset[str] | None = None) -> str:
    """The light projection of node ``var``: all of it, or its core and the selected ``fields``."""
    if fields is None:
        return LITE.format(v=var)
    keys = sorted(VIEW_CORE | (fields & VIEW_SELECTABLE))
    return "{" + ", ".join(f"`{k}`: {var}.`{k}`" for k in keys) + "}"


# The properties of an object a read returns: ``None`` for all of them, else these keys (plus
# :data:`ALWAYS`). Keys are ontology attribute keys or bookkeeping keys, never request text.
Fields = frozenset[str] | None
# Every row carries its id and class: cursors, batch loaders and the GraphQL type of a row need them.
ALWAYS: Final = frozenset({"mrid", CLASS})


def merge_fields(a: Fields, b: Fields) -> Fields:
    """What two selections of the same objects need together."""
    return None if a is None or b is None else a | b


class ReadError(ValueError):
    """Bad query input; the message names the argument and the value and never mentions data."""


@dataclass(frozen=True)
class Prefetch:
    """An association a GraphQL selection asks for, fetched in the same query as its source objects.

    ``owner`` is the class whose objects have the field (others get an empty list); ``children`` are the
    associations selected on the objects at the other end.
    """

    rel_type: str
    direction: str  # "out": source -> other; "in": other -> source
    other: str
    owner: str
    children: tuple[Prefetch, ...] = ()
    # The properties selected on the objects at the other end (None: all).
    fields: Fields = None

    @functools.cached_property  # read for every row fetched with it
    def key(self) -> str:
        return f"{PREFETCH_PREFIX}{self.direction}_{self.rel_type}_{self.other}_{self.owner}"


PREFETCH_PREFIX: Final = "__pf_"
MAX_PREFETCH_DEPTH: Final = 4


@dataclass
class Edge:
    source: str
    target: str
    type: str


@dataclass
class Subgraph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add_edges(self, rows: Iterable[dict[str, Any]]) -> None:
        seen = {(e.source, e.target, e.type) for e in self.edges}
        for row in rows:
            key = (row["source"], row["target"], row["type"])
            if key not in seen:
                seen.add(key)
                self.edges.append(Edge(*key))


@dataclass
class Page:
    rows: list[dict[str, Any]]
    has_next: bool


def _prefetched_count(row: dict[str, Any], prefetch: Sequence[Prefetch]) -> int:
    """Objects returned inside a row by prefetched associations (for the audit's row count); the plan
    names the keys, so rows of a plain selection are not scanned."""
    total = 0
    for p in prefetch:
        value = row.get(p.key)
        if isinstance(value, list):
            total += len(value) + sum(_prefetched_count(v, p.children) for v in value)
    return total


# ------------------------------------------------------------------------------------------- cursors


def encode_page_cursor(mrid: str) -> str:
    return base64.urlsafe_b64encode(f"mrid:{mrid}".encode()).decode()


def decode_page_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ReadError(f"after {cursor!r} is not a cursor returned by this API") from None
    if not text.startswith("mrid:"):
        raise ReadError(f"after {cursor!r} is not a cursor returned by this API")
    return text[5:]


@dataclass
class DependencyStep:
    """One step of a dependency report: the objects of ``domain`` first reached at ``depth`` couplings
    from the start, and the generating capacity at stake among them (None: none states one)."""

    depth: int
    domain: str
    dependents: list[dict[str, Any]]
    capacity_mw: float | None


# ------------------------------------------------------------------------------------------- reader


@functools.cache
def _ontology_terms(ontology: Ontology) -> tuple[NameSearch, frozenset[str]]:
    """The name index and every property key of ``ontology``, derived once per ontology (a reader is made
    for every request, and deriving them walked every attribute of every class each time)."""
    keys = (
        frozenset(a.key for c in ontology.classes.values() for a in c.attributes.values())
        | BOOKKEEPING
        | ALWAYS
        | {"name"}
    )
    return NameSearch(ontology), keys


def checked_rel_types(ontology: Ontology, types: Sequence[str] | None) -> list[str] | None:
    """``types`` (None: any), each checked against the ontology's relationship types."""
    if types is None:
        return None
    known = ontology.rel_types()
    for t in types:
        if t not in known:
            raise ReadError(f"types contains {t!r}, which is not a relationship type of the ontology")
    return list(types)


class Reader:
    """Query methods for one caller; the ontology decides which labels and types may appear in Cypher."""

    def __init__(
        self,
        guard: Guard,
        ontology: Ontology,
        *,
        max_page_size: int,
        max_depth: int,
        max_path_length: int,
        max_subgraph_nodes: int,
    ) -> None:
        self.guard = guard
        self.ontology = ontology
        self.max_page_size = max_page_size
        self.max_depth = max_depth
        self.max_path_length = max_path_length
        self.max_subgraph_nodes = max_subgraph_nodes
        self.names, self._property_keys = _ontology_terms(ontology)

    # --- argument checks ----------------------------------------------------------------------------

    def class_label(self, class_name: str) -> str:
        if class_name not in self.ontology.classes:
            raise ReadError(f"className {class_name!r} is not a class of the ontology")
        return class_name

    def rel_types(self, types: Sequence[str] | None) -> list[str] | None:
        return checked_rel_types(self.ontology, types)

    def page_size(self, first: int | None, default: int = 100) -> int:
        size = default if first is None else first
        if size < 0:
            raise ReadError(f"first must not be negative, got {size}")
        if size > self.max_page_size:
            raise ReadError(f"first={size} exceeds the maximum page size {self.max_page_size}")
        return size

    # --- single objects -----------------------------------------------------------------------------

    async def object(
        self, mrid: str, prefetch: Sequence[Prefetch] = (), fields: Fields = None
    ) -> dict[str, Any] | None:
        rows = await self.guard.read(
            "OPTIONAL MATCH (n:Entity {mrid: $mrid}) "
            f"RETURN CASE WHEN {visible('n')} THEN n {{{self._projection('n', prefetch, fields)}}} END AS n, "
            f"n IS NOT NULL AND NOT coalesce({visible('n')}, false) AS withheld",
            {"mrid": mrid},
        )
        row: dict[str, Any] = rows[0] if rows else {"n": None, "withheld": False}
        if row["withheld"]:
            self.guard.stats.withheld += 1
        found: dict[str, Any] | None = row["n"]
        if found is not None:
            self.guard.stats.rows += 1 + _prefetched_count(found, prefetch)
        return found

    def properties(self, fields: Fields) -> str:
        """The map projection items reading ``fields`` (``.*`` for all); every key is checked against the
        ontology's attribute keys and the bookkeeping keys before it is written into Cypher."""
        if fields is None:
            return ".*"
        # For a caller with grants, the label and owner too: the evidence of which grant showed what.
        keys = sorted(fields | ALWAYS | ({LABEL, OWNER} if self.guard.grant_scopes else set()))
        for key in keys:
            if key not in self._property_keys:
                raise ReadError(f"property {key!r} is not an attribute of the ontology")
        return ", ".join(f".`{key}`" for key in keys)

    def _projection(
        self, var: str, prefetch: Sequence[Prefetch], fields: Fields = None, depth: int = 0
    ) -> str:
        """The selected properties plus one pattern comprehension per prefetched association, nested for
        its children; every object reached is filtered by the guard like any other read."""
        parts = [self.properties(fields)]
        if depth >= MAX_PREFETCH_DEPTH:
            return parts[0]
        known = self.ontology.rel_types()
        for i, p in enumerate(prefetch):
            if p.rel_type not in known:
                raise ReadError(f"relationship type {p.rel_type!r} is not in the ontology")
            other, owner = self.class_label(p.other), self.class_label(p.owner)
            m = f"{var}_{i}"
            arrow = f"-[:`{p.rel_type}`]->" if p.direction == "out" else f"<-[:`{p.rel_type}`]-"
            inner = self._projection(m, p.children, p.fields, depth + 1)
            parts.append(
                f"`{p.key}`: [({var}){arrow}({m}:`{other}`) WHERE {var}:`{owner}` AND {visible(m)} "
                f"| {m} {{{inner}}}]"
            )
        return ", ".join(parts)

    async def objects_by_mrid(self, mrids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self.guard.read(
            f"UNWIND $mrids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} RETURN n {{.*}} AS n",
            {"mrids": list(mrids)},
        )
        self.guard.stats.rows += len(rows)
        return {r["n"]["mrid"]: r["n"] for r in rows}

    async def related(
        self, mrids: Sequence[str], rel_type: str, direction: str, other_class: str, fields: Fields = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Visible objects at the other end of one association for many source objects (one query)."""
        if rel_type not in self.ontology.rel_types():
            raise ReadError(f"relationship type {rel_type!r} is not in the ontology")
        label = self.class_label(other_class)
        pattern = f"-[:`{rel_type}`]->" if direction == "out" else f"<-[:`{rel_type}`]-"
        rows = await self.guard.read(
            f"UNWIND $mrids AS id MATCH (a:Entity {{mrid: id}}){pattern}(b:`{label}`) WHERE {visible('b')} "
            f"WITH id, b ORDER BY b.mrid RETURN id, collect(b {{{self.properties(fields)}}}) AS items",
            {"mrids": list(mrids)},
        )
        out = {r["id"]: r["items"] for r in rows}
        self.guard.stats.rows += sum(len(v) for v in out.values())
        return out

    async def nodes_lite(self, mrids: Sequence[str], fields: Fields = None) -> dict[str, dict[str, Any]]:
        rows = await self.guard.read(
            f"UNWIND $mrids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} "
            f"RETURN {lite('n', fields)} AS n",
            {"mrids": list(mrids)},
        )
        return {r["n"]["mrid"]: r["n"] for r in rows}

    async def labelled(
        self,
        pairs: Iterable[tuple[str, int]],
        classes: Iterable[str] | None,
        domain: str | None,
        mrids: Iterable[str] | None,
    ) -> list[dict[str, Any]]:
        """Objects the caller may see that belong to one of ``pairs`` (producer, label id), within a
        subscription's filter: the light projection and the version, by mRID (a subscription whose caller's
        grants changed is told of them as if they had been relabelled)."""
        wanted = sorted(pairs)
        # The label alone first, so that the label index finds the candidates.
        where = [visible("n"), cypher("n.@label IN $labels AND [n.@owner, n.@label] IN $pairs")]
        params: dict[str, Any] = {
            "labels": sorted({lid for _, lid in wanted}),
            "pairs": [[p, lid] for p, lid in wanted],
        }
        if classes is not None:
            where.append(cypher("n.@class IN $classes"))
            params["classes"] = sorted(classes)
        if domain is not None:
            where.append(cypher("n.@domain = $domain"))
            params["domain"] = domain
        if mrids is not None:
            where.append("n.mrid IN $mrids")
            params["mrids"] = sorted(mrids)
        rows = await self.guard.read(
            f"MATCH (n:Entity) WHERE {' AND '.join(where)} "
            + cypher(f"RETURN {lite('n')} AS n, n.@version AS version ORDER BY n.mrid"),
            params,
        )
        return [{**r["n"], "version": r["version"]} for r in rows]

    # --- lists --------------------------------------------------------------------------------------

    def _list_filter(
        self, class_name: str | None, domain: str | None, name: str | None, bbox: Sequence[float] | None
    ) -> tuple[str, list[str], dict[str, Any]]:
        label = self.class_label(class_name) if class_name else "Entity"
        where: list[str] = []
        params: dict[str, Any] = {}
        if domain is not None:
            if domain not in DOMAINS:
                raise ReadError(f"domain {domain!r} is not one of {', '.join(DOMAINS)}")
            where.append(f"n:`{domain}`")
        if name:
            where.append("toLower(n.name) CONTAINS $name")
            params["name"] = name.lower()
        if bbox is not None:
            if len(bbox) != 4:
                raise ReadError(f"bbox must be [minX, minY, maxX, maxY], got {list(bbox)!r}")
            x0, y0, x1, y1 = (float(v) for v in bbox)
            if x0 > x1 or y0 > y1:
                raise ReadError(f"bbox {list(bbox)!r} has min greater than max")
            where.append(cypher("n.@x >= $x0 AND n.@x <= $x1 AND n.@y >= $y0 AND n.@y <= $y1"))
            params.update(x0=x0, y0=y0, x1=x1, y1=y1)
            # A box on the earth: schematic diagram coordinates are not in it, whatever their values.
            for cls in DIAGRAM_LAYOUT_CLASSES:
                if cls in self.ontology.classes:
                    where.append(f"NOT n:`{cls}`")
        return label, where, params

    async def objects(
        self,
        *,
        class_name: str | None = None,
        domain: str | None = None,
        name: str | None = None,
        bbox: Sequence[float] | None = None,
        first: int | None = None,
        after: str | None = None,
        prefetch: Sequence[Prefetch] = (),
        fields: Fields = None,
    ) -> Page:
        size = self.page_size(first)
        label, where, params = self._list_filter(class_name, domain, name, bbox)
        if after:
            where.append("n.mrid > $after")
            params["after"] = decode_page_cursor(after)
        where.append(visible("n"))
        params["limit"] = size + 1
        rows = await self.guard.read(
            f"MATCH (n:`{label}`) WHERE {' AND '.join(where)} "
            "WITH n ORDER BY n.mrid LIMIT $limit "
            f"RETURN n {{{self._projection('n', prefetch, fields)}}} AS n",
            params,
        )
        has_next = len(rows) > size
        out = [r["n"] for r in rows[:size]]
        nested = sum(_prefetched_count(r, prefetch) for r in out) if prefetch else 0
        self.guard.stats.rows += len(out) + nested
        return Page(out, has_next)

    async def count_objects(
        self,
        *,
        class_name: str | None = None,
        domain: str | None = None,
        name: str | None = None,
        bbox: Sequence[float] | None = None,
    ) -> int:
        label, where, params = self._list_filter(class_name, domain, name, bbox)
        cond = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self.guard.read(
            f"MATCH (n:`{label}`) {cond}"
            f"RETURN count(CASE WHEN {visible('n')} THEN 1 END) AS visible, count(n) AS all",
            params,
        )
        self.guard.stats.withheld += rows[0]["all"] - rows[0]["visible"]
        return int(rows[0]["visible"])

    async def search(
        self,
        text: str,
        first: int,
        *,
        class_name: str | None = None,
        fuzzy: bool = False,
        fields: Fields = None,
    ) -> list[dict[str, Any]]:
        """Visible objects whose mRID is ``text``, then those whose identifying strings match its words
        through the full-text index (:mod:`hub.name_search`), of ``class_name`` (subclasses included)
        when given; ordered by the exact match, the length of the name and the mRID (never by the
        index's score, which counts hidden objects)."""
        size = self.page_size(first, default=20)
        exact = text.strip()
        label = self.class_label(class_name) if class_name else "Entity"
        try:
            query = self.names.query(text, fuzzy=fuzzy)
        except SearchTextError as exc:
            raise ReadError(str(exc)) from None
        if not exact or size == 0:
            return []
        branches = ["MATCH (n:Entity {mrid: $exact}) RETURN n, 0 AS rank"]
        if query is not None:
            # The object matched by its mRID (unique) is left to the first branch, so each object comes
            # once and no grouping over every hit of the index is needed.
            branches.append(
                "CALL db.index.fulltext.queryNodes($index, $query) YIELD node "
                "WHERE node.mrid <> $exact RETURN node AS n, 1 AS rank"
            )
        rows = await self.guard.read(
            f"CALL () {{ {' UNION ALL '.join(branches)} }} "
            f"WITH n, rank WHERE n:`{label}` AND {visible('n')} "
            # Ordered before the projection: the returned map need not hold the name.
            "WITH n ORDER BY rank, size(coalesce(n.name, '')), n.mrid LIMIT $limit "
            f"RETURN {lite('n', fields)} AS n",
            {"exact": exact, "index": self.names.index, "query": query, "limit": size},
        )
        self.guard.stats.rows += len(rows)
        return [r["n"] for r in rows]

    async def counts(self, domain: str | None) -> list[tuple[str, int]]:
        """Per class (of ``domain`` when given), the live objects the caller may see. The count keys'
        index is grouped by key, one entry per object and no node read, and the guard decides once per
        key (:mod:`hub.count_keys`): the same decision as per object, since a key is what it looks at."""
        params: dict[str, Any] = {"sep": count_keys.SEPARATOR}
        cond = ""
        if domain is not None:
            if domain not in DOMAINS:
                raise ReadError(f"domain {domain!r} is not one of {', '.join(DOMAINS)}")
            params["classes"] = sorted(c for c in self.ontology.classes if self.ontology.domain(c) == domain)
            cond = f"WHERE k.{CLASS} IN $classes "
        rows = await self.guard.read(
            f"MATCH (n:Entity) WHERE n.{COUNT_KEY} IS NOT NULL "
            f"WITH n.{COUNT_KEY} AS key, count(*) AS c "
            "WITH key, split(key, $sep) AS p, c "
            f"WITH {count_keys.unpacked('key', 'p')} AS k, c {cond}"
            f"WITH k.{CLASS} AS cls, sum(CASE WHEN {visible('k')} THEN c ELSE 0 END) AS visible, "
            "sum(c) AS all RETURN cls, visible, all ORDER BY cls",
            params,
        )
        self.guard.stats.withheld += sum(r["all"] - r["visible"] for r in rows)
        return [(r["cls"], int(r["visible"])) for r in rows if r["visible"] > 0]

    # --- traversals ---------------------------------------------------------------------------------

    async def _expand(
        self,
        frontier: Sequence[str],
        steps: Sequence[Step],
        node_label: str | None = None,
        fields: Fields = None,
    ) -> list[dict[str, Any]]:
        """Visible and hidden neighbours of ``frontier`` along ``steps`` (one query per level).

        A hidden neighbour comes back as a null row (counted as withheld, never expanded or shown).
        """
        target = f"b:`{node_label}`" if node_label else "b"
        branches = []
        for rel_types, direction in steps:
            left, right = {"both": ("-", "-"), "out": ("-", "->"), "in": ("<-", "-")}[direction]
            rel = "[r]" if rel_types is None else "[r:" + "|".join(f"`{t}`" for t in rel_types) + "]"
            branches.append(f"MATCH (a){left}{rel}{right}({target}) RETURN r, b")
        return await self.guard.read(
            "UNWIND $frontier AS id MATCH (a:Entity {mrid: id}) "
            f"CALL (a) {{ {' UNION '.join(branches)} }} "
            f"WITH r, b, {visible('b')} AS ok "
            f"RETURN CASE WHEN ok THEN {EDGE} END AS edge, CASE WHEN ok THEN {lite('b', fields)} END AS node",
            {"frontier": list(frontier)},
        )

    async def _bfs(
        self,
        root: dict[str, Any],
        depth: int,
        steps: Sequence[Step],
        node_label: str | None = None,
        graph: Subgraph | None = None,
        fields: Fields = None,
    ) -> Subgraph:
        """Breadth-first from ``root`` through visible nodes only: a hidden node is never expanded."""
        graph = graph or Subgraph()
        graph.nodes.setdefault(root["mrid"], root)
        frontier = [root["mrid"]]
        for _ in range(depth):
            if not frontier or len(graph.nodes) >= self.max_subgraph_nodes:
                break
            rows = await self._expand(frontier, steps, node_label, fields)
            next_frontier: list[str] = []
            edges = []
            for row in rows:
                node = row["node"]
                if node is None:
                    self.guard.stats.withheld += 1
                    continue
                edges.append(row["edge"])
                if node["mrid"] not in graph.nodes and len(graph.nodes) < self.max_subgraph_nodes:
                    graph.nodes[node["mrid"]] = node
                    next_frontier.append(node["mrid"])
            graph.add_edges(e for e in edges if e["source"] in graph.nodes and e["target"] in graph.nodes)
            frontier = next_frontier
        return graph

    async def _induced_edges(self, graph: Subgraph, rel_types: Sequence[str] | None) -> None:
        """Add every relationship between nodes already in the subgraph (all of them visible)."""
        if len(graph.nodes) < 2:
            return
        rel = "[r]" if rel_types is None else "[r:" + "|".join(f"`{t}`" for t in rel_types) + "]"
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (a:Entity {{mrid: id}})-{rel}->(b:Entity) "
            f"WHERE b.mrid IN $ids AND {visible('a')} AND {visible('b')} "
            "RETURN a.mrid AS source, b.mrid AS target, type(r) AS type",
            {"ids": list(graph.nodes)},
        )
        graph.add_edges(rows)

    async def root(self, mrid: str, fields: Fields = None) -> dict[str, Any] | None:
        found = await self.nodes_lite([mrid], fields)
        return found.get(mrid)

    async def neighbourhood(
        self, mrid: str, depth: int, types: Sequence[str] | None, fields: Fields = None
    ) -> Subgraph:
        if depth < 0 or depth > self.max_depth:
            raise ReadError(f"depth must be between 0 and {self.max_depth}, got {depth}")
        rel_types = self.rel_types(types)
        root = await self.root(mrid, fields)
        if root is None:
            return Subgraph()
        graph = await self._bfs(root, depth, [(rel_types, "both")], fields=fields)
        await self._induced_edges(graph, rel_types)
        self.guard.stats.rows += len(graph.nodes)
        return graph

    async def relations_among(
        self, mrids: Sequence[str], types: Sequence[str] | None, fields: Fields = None
    ) -> Subgraph:
        """The objects of ``mrids`` the caller may see and the relationships among them, in two queries
        whatever the number of objects: an object that is hidden is left out exactly as one that does not
        exist, and so is every relationship touching it."""
        rel_types = self.rel_types(types)
        graph = Subgraph(nodes=await self.nodes_lite(mrids, fields))
        await self._induced_edges(graph, rel_types)
        self.guard.stats.rows += len(graph.nodes) + len(graph.edges)
        return graph

    async def shortest_path(
        self, source: str, target: str, physical: bool = True, fields: Fields = None
    ) -> Subgraph | None:
        """The shortest path between two objects through objects the caller may see. ``physical``: only
        along the physical network (:mod:`ontology.connectivity`), never through reference data; else
        along any relationship."""
        ends = await self.nodes_lite([source, target], fields)
        if source not in ends or target not in ends:
            return None
        if source == target:
            return Subgraph(nodes={source: ends[source]})
        step, on_network = "[]", ""
        if physical:
            network = physical_network(self.ontology)
            for end in (ends[source], ends[target]):
                if not network.admits(self.ontology, end[CLASS]):
                    raise ReadError(
                        f"{end['mrid']!r} is a {end[CLASS]}, which is not on the physical network "
                        "(equipment, terminals, nodes, gas connections and what is attached to them); "
                        "ask with via: ANY for a path along any relationship"
                    )
            step = "[:" + "|".join(f"`{t}`" for t in network.rel_types) + "]"
            on_network = " AND v:" + "|".join(f"`{c}`" for c in network.classes)
        # The quantified pattern checks every node as it is reached, so the search never expands a hidden
        # node (nor, for a physical path, a node off the network) and the shortest such path is found
        # (not the shortest path, then filtered).
        rows = await self.guard.read(
            "MATCH (a:Entity {mrid: $source}), (b:Entity {mrid: $target}) "
            f"WHERE {visible('a')} AND {visible('b')} "
            f"MATCH p = ANY SHORTEST (a)((u)-{step}-(v) WHERE {visible('v')}{on_network})"
            f"{{1,{self.max_path_length:d}}}(b) "
            f"RETURN [x IN nodes(p) | {lite('x', fields)}] AS nodes, "
            f"[r IN relationships(p) | {EDGE}] AS edges, [x IN nodes(p) | x.{OWNER}] AS owners",
            {"source": source, "target": target},
        )
        if not rows:
            return None
        nodes = rows[0]["nodes"]
        owners = rows[0]["owners"]
        # Defence in depth: never return such a path.
        if not all(self.guard.sees(n[LABEL], o) for n, o in zip(nodes, owners, strict=True)):
            raise RuntimeError("shortest path crossed a node outside the caller's visible labels")
        graph = Subgraph(nodes={n["mrid"]: n for n in nodes})
        graph.add_edges(rows[0]["edges"])
        self.guard.stats.rows += len(graph.nodes)
        return graph

    # --- containment --------------------------------------------------------------------------------

    def containment_associations(self) -> list[Association]:
        """To-one associations from a member to the container holding it (Equipment.EquipmentContainer,
        VoltageLevel.Substation, Bay.VoltageLevel, ...): the target is some kind of *Container."""
        out = []
        for cls in self.ontology.classes.values():
            for assoc in cls.associations.values():
                if assoc.many:
                    continue
                if any(a.endswith("Container") for a in self.ontology.ancestors(assoc.target)):
                    out.append(assoc)
        return sorted(out, key=lambda a: a.qname)

    async def containment(self, mrid: str, depth: int, fields: Fields = None) -> Subgraph:
        if depth < 0 or depth > self.max_depth:
            raise ReadError(f"depth must be between 0 and {self.max_depth}, got {depth}")
        root = await self.root(mrid, fields)
        if root is None:
            return Subgraph()
        types = sorted({a.rel_type for a in self.containment_associations()})
        if not types:
            return Subgraph(nodes={root["mrid"]: root})
        graph = await self._bfs(root, depth, [(types, "in")], fields=fields)
        self.guard.stats.rows += len(graph.nodes)
        return graph

    # --- cross-domain dependencies ------------------------------------------------------------------

    def couplings(self) -> list[Association]:
        """Associations joining the two domains; the owner supplies the target (offtake -> generating unit,
        electricity supply -> compressor station)."""
        out = []
        for cls in self.ontology.classes.values():
            for assoc in cls.associations.values():
                if self.ontology.domain(assoc.owner) != self.ontology.domain(assoc.target):
                    out.append(assoc)
        return sorted(out, key=lambda a: a.qname)

    def gas_flow(self) -> tuple[list[Step], list[Step]] | None:
        """Steps that follow gas downstream, from the ontology: a node feeds the connections leaving it
        (``GasConnection.FromNode``) and the objects attached at it; a connection feeds its to-node
        (``GasConnection.ToNode``). The second list climbs from an attached supplier (storage, terminal)
        to its node, used from the start object only."""
        frm = self.ontology.association_by_qname(FLOW_FROM)
        to = self.ontology.association_by_qname(FLOW_TO)
        if frm is None or to is None:
            return None
        attach = sorted(
            {
                a.rel_type
                for c in self.ontology.classes.values()
                for a in c.associations.values()
                if self.ontology.domain(a.owner) == "Gas"
                and self.ontology.is_a(a.target, frm.target)
                and not self.ontology.is_a(a.owner, frm.owner)
            }
        )
        steps: list[Step] = [([frm.rel_type], "in"), ([to.rel_type], "out")]
        if attach:
            steps.append((attach, "in"))
        return steps, ([(attach, "out")] if attach else [])

    async def _region(
        self,
        starts: Sequence[dict[str, Any]],
        domain: str,
        graph: Subgraph,
        fields: Fields = None,
        *,
        upstream: bool = False,
    ) -> Subgraph:
        """What the ``starts`` (all of ``domain``) supply within their domain, added to ``graph``: gas
        downstream along the flow (an attached supplier first climbs to its node), or the whole gas network
        when the ontology gives no flow; in electricity, what the starts contain. ``upstream``: what
        supplies them instead: gas upstream against the flow (anything attached first climbs to its node),
        in electricity what contains them."""
        region = Subgraph(nodes={s["mrid"]: s for s in starts})
        couplings = [c for c in self.couplings() if self.ontology.domain(c.owner) == domain]
        flow = self.gas_flow() if domain == "Gas" else None
        if flow is not None:
            steps, climb = flow
            if upstream:
                # Against the flow: a node is fed by the connections arriving at it and by what is
                # attached at it; a connection by its from-node.
                steps = [(types, "out" if d == "in" else "in") for types, d in steps[:2]] + steps[2:]
            for start in starts:
                is_coupling_owner = start[CLASS] in self.ontology.classes and any(
                    self.ontology.is_a(start[CLASS], c.owner) for c in couplings
                )
                tops = [start]
                if climb and (upstream or not is_coupling_owner):
                    # A storage or terminal supplies the node it is attached to, and so all downstream.
                    up = await self._bfs(start, 1, climb, node_label="Gas", graph=Subgraph(), fields=fields)
                    tops = list(up.nodes.values())
                for top in tops:
                    await self._bfs(
                        top, self.max_subgraph_nodes, steps, node_label="Gas", graph=region, fields=fields
                    )
        elif domain == "Gas":
            network = [(self.network_rel_types("Gas"), "both")]
            for start in starts:
                await self._bfs(
                    start, self.max_subgraph_nodes, network, node_label="Gas", graph=region, fields=fields
                )
        else:
            types = sorted({a.rel_type for a in self.containment_associations()})
            if types:
                way = "out" if upstream else "in"
                for start in starts:
                    await self._bfs(start, self.max_depth, [(types, way)], graph=region, fields=fields)
        graph.nodes.update(region.nodes)
        graph.add_edges({"source": e.source, "target": e.target, "type": e.type} for e in region.edges)
        return region

    async def dependencies(
        self, mrid: str, fields: Fields = None, *, upstream: bool = False
    ) -> tuple[dict[str, Any] | None, list[DependencyStep], Subgraph]:
        """What depends on ``mrid`` across the domains, step by step and transitively: from gas, the
        generating units supplied downstream; from electricity, the compressor stations and terminals it
        powers, then what those supply in turn (electricity -> compressor -> gas downstream -> offtake ->
        generating unit ...). Each step holds the objects newly reached and the capacity at stake among
        them; an object is reached once, so cycles end. Only objects the caller may see are walked.

        ``upstream``: what ``mrid`` depends on instead, the same way against the supply: the gas that
        reaches a gas-fired unit through its offtakes, the network upstream of them, the electricity supply
        points powering the compressors on it, and what contains those (generating unit -> offtake -> gas
        upstream -> compressor -> electricity supply ...)."""
        root = await self.root(mrid, fields)
        if root is None:
            return None, [], Subgraph()
        graph = Subgraph(nodes={root["mrid"]: root})
        reached = {root["mrid"]}
        frontier, domain = [root], root[DOMAIN]
        steps: list[DependencyStep] = []
        while frontier and domain in DOMAINS and len(graph.nodes) < self.max_subgraph_nodes:
            region = await self._region(frontier, domain, graph, fields, upstream=upstream)
            # Downstream the couplings this domain owns (it supplies their targets); upstream those
            # targeting it, walked back to their owners.
            side = self.ontology.domain
            coupling_types = sorted(
                {c.rel_type for c in self.couplings() if side(c.target if upstream else c.owner) == domain}
            )
            if not coupling_types:
                break
            other = "Electricity" if domain == "Gas" else "Gas"
            way = "in" if upstream else "out"
            rows = await self._expand(list(region.nodes), [(coupling_types, way)], other, fields)
            found: dict[str, dict[str, Any]] = {}
            for row in rows:
                if row["node"] is None:
                    self.guard.stats.withheld += 1
                    continue
                graph.nodes.setdefault(row["node"]["mrid"], row["node"])
                if row["node"]["mrid"] not in reached:
                    found[row["node"]["mrid"]] = row["node"]
            graph.add_edges(r["edge"] for r in rows if r["edge"] is not None)
            if not found:
                break
            reached.update(found)
            dependents = sorted(found.values(), key=lambda n: n["mrid"])
            steps.append(DependencyStep(len(steps) + 1, other, dependents, await self._capacity(found)))
            frontier, domain = dependents, other
        self.guard.stats.rows += len(graph.nodes)
        return root, steps, graph

    async def _capacity(self, nodes: dict[str, dict[str, Any]]) -> float | None:
        """Generating capacity (MW) among ``nodes``; None when none of them states one."""
        capacity_attr = self.ontology.attribute_by_qname(CAPACITY)
        if capacity_attr is None:
            return None
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} "
            f"RETURN sum(coalesce(toFloat(n.`{capacity_attr.key}`), 0.0)) AS mw, "
            f"count(n.`{capacity_attr.key}`) AS known",
            {"ids": list(nodes)},
        )
        return float(rows[0]["mw"]) if rows and rows[0]["known"] else None

    def network_rel_types(self, domain: str) -> list[str]:
        """Relationship types inside one domain that carry the network (not couplings)."""
        types = set()
        for cls in self.ontology.classes.values():
            for assoc in cls.associations.values():
                if self.ontology.domain(assoc.owner) == domain == self.ontology.domain(assoc.target):
                    types.add(assoc.rel_type)
        return sorted(types)
