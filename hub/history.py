"""Kept history: every applied version of every object, and the graph as it was at a valid time and a
recorded time (bitemporal reads), each filtered through the access guard.

The writer keeps, beside the current graph and in the same write statement, one ``(:ObjectVersion)`` node
per applied upsert or delete (hub/writer.py, the history part): the object's whole state after that event
(attributes, references as stated, class, label, producer, event id), its ``version``, its valid-from time
(the event's ``time``) and its recorded time (the write's transaction time). A delete is a version too
(``deleted``), labelled with the label of what it deleted. Version nodes are linked to nothing, so no
current read ever meets them; measurements are not versions (their readings belong to the bounded
measurement history), though a later upsert's version carries nothing of them either.

State at valid time ``T`` and recorded time ``R``: of the object's versions with valid-from <= T and
recorded <= R, the one with the highest version, as the current graph keeps the highest version whatever
the order events arrive in (an event with a newer version but an earlier time corrects from its time on;
one with an older version is stale and kept nowhere). Without ``T`` and ``R`` that is the current graph.

Labels apply to every version by that version's own label and the caller's attributes now: a state whose
version the caller may not see is absent, whatever the object's labels before or after, and so is a
deleted state. Hidden and absent give the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from hub.graph_schema import REF_TARGETS, REF_TYPES, cypher
from hub.guard import Guard, visible
from hub.reader import DOMAINS, ReadError, Subgraph
from ontology.model import Ontology

# The state of object ``m`` at ($t, $r) (either may be null: no bound) as ``v`` (null: none).
_STATE_AT: Final = cypher(
    """
CALL (m) {{
  OPTIONAL MATCH (x:ObjectVersion {{mrid: m}}) USING INDEX SEEK x:ObjectVersion(mrid)
  WHERE (${t} IS NULL OR x.@valid_from <= ${t}) AND ($r IS NULL OR x.@recorded <= $r)
  RETURN x AS {out} ORDER BY x.@version DESC LIMIT 1
}}
"""
)


def _state_at(time_param: str, out: str) -> str:
    return _STATE_AT.format(t=time_param, out=out)


def _shown(var: str) -> str:
    """``var`` if it is a state the caller may see (not deleted, its version's label visible), else null."""
    return cypher(f"CASE WHEN {var} IS NOT NULL AND NOT {var}.@deleted AND {visible(var)} THEN {var} END")


@dataclass
class AsOfPage:
    rows: list[dict[str, Any]]
    has_next: bool


@dataclass
class ObjectChange:
    """One object whose state, as the caller may see it, differs between two times."""

    mrid: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "created"
        if self.after is None:
            return "deleted"
        return "updated"


class History:
    """History reads for one caller (the guard); class names and domains are checked against the ontology."""

    def __init__(self, guard: Guard, ontology: Ontology, *, max_page_size: int) -> None:
        self.guard = guard
        self.ontology = ontology
        self.max_page_size = max_page_size

    # --- arguments ----------------------------------------------------------------------------------

    def _classes(self, class_name: str | None) -> list[str] | None:
        """The class and its subclasses (None: any class)."""
        if class_name is None:
            return None
        if class_name not in self.ontology.classes:
            raise ReadError(f"className {class_name!r} is not a class of the ontology")
        return [c for c in self.ontology.classes if class_name in self.ontology.ancestors(c)]

    def _domain(self, domain: str | None) -> str | None:
        if domain is not None and domain not in DOMAINS:
            raise ReadError(f"domain {domain!r} is not one of {', '.join(DOMAINS)}")
        return domain

    def _size(self, first: int | None) -> int:
        size = 100 if first is None else first
        if size < 0:
            raise ReadError(f"first must not be negative, got {size}")
        if size > self.max_page_size:
            raise ReadError(f"first={size} exceeds the maximum page size {self.max_page_size}")
        return size

    # --- reads --------------------------------------------------------------------------------------

    async def versions(
        self,
        mrid: str,
        recorded_as_of: datetime | None = None,
        *,
        first: int | None = None,
        after_version: int | None = None,
    ) -> list[dict[str, Any]]:
        """The object's versions the caller may see, oldest version first (a delete is seen by those who
        could see what it deleted): at most ``first``, after version ``after_version``."""
        rows = await self.guard.read(
            cypher(
                "MATCH (v:ObjectVersion {mrid: $mrid}) USING INDEX SEEK v:ObjectVersion(mrid) "
                "WHERE ($r IS NULL OR v.@recorded <= $r) AND ($after IS NULL OR v.@version > $after) "
                f"AND {visible('v')} RETURN v {{.*}} AS v ORDER BY v.@version LIMIT $limit"
            ),
            {"mrid": mrid, "r": recorded_as_of, "after": after_version, "limit": self._size(first)},
        )
        found = [r["v"] for r in rows]
        self.guard.stats.rows += len(found)
        return await self._with_visible_references(found)

    async def object_at(
        self, mrid: str, as_of: datetime | None, recorded_as_of: datetime | None
    ) -> dict[str, Any] | None:
        """The object's state at ``as_of`` as known at ``recorded_as_of`` (None: absent or hidden)."""
        rows = await self.guard.read(
            "WITH $mrid AS m " + _state_at("t", "s") + f"WITH {_shown('s')} AS v RETURN v {{.*}} AS v",
            {"mrid": mrid, "t": as_of, "r": recorded_as_of},
        )
        found = rows[0]["v"] if rows else None
        if found is None:
            return None
        self.guard.stats.rows += 1
        return (await self._with_visible_references([found]))[0]

    def _object_filter(
        self, class_name: str | None, domain: str | None, name: str | None
    ) -> tuple[list[str], dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}
        classes = self._classes(class_name)
        if classes is not None:
            where.append(cypher("s.@class IN $classes"))
            params["classes"] = classes
        if self._domain(domain) is not None:
            where.append(cypher("s.@domain = $domain"))
            params["domain"] = domain
        if name:
            where.append("toLower(s.name) CONTAINS $name")
            params["name"] = name.lower()
        return where, params

    # Every object's state at ($t, $r) as ``s`` (null when absent, deleted or hidden), one row per mRID.
    _STATES: Final = cypher(
        """
MATCH (x:ObjectVersion)
WHERE ($t IS NULL OR x.@valid_from <= $t) AND ($r IS NULL OR x.@recorded <= $r)
  AND ($after IS NULL OR x.mrid > $after)
WITH x ORDER BY x.mrid, x.@version DESC
WITH x.mrid AS m, head(collect(x)) AS top
WITH m, {shown} AS s
"""
    )

    async def objects_at(
        self,
        *,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
        class_name: str | None = None,
        domain: str | None = None,
        name: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AsOfPage:
        """Objects at ``as_of`` as known at ``recorded_as_of``, by mRID, a page at a time."""
        size = self._size(first)
        where, params = self._object_filter(class_name, domain, name)
        conditions = " AND ".join(["s IS NOT NULL", *where])
        rows = await self.guard.read(
            self._STATES.format(shown=_shown("top"))
            + f"WITH m, s WHERE {conditions} RETURN s {{.*}} AS v ORDER BY m LIMIT $limit",
            {**params, "t": as_of, "r": recorded_as_of, "after": after, "limit": size + 1},
        )
        found = [r["v"] for r in rows[:size]]
        self.guard.stats.rows += len(found)
        return AsOfPage(await self._with_visible_references(found), len(rows) > size)

    async def count_at(
        self,
        *,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
        class_name: str | None = None,
        domain: str | None = None,
        name: str | None = None,
    ) -> int:
        where, params = self._object_filter(class_name, domain, name)
        conditions = " AND ".join(["s IS NOT NULL", *where])
        rows = await self.guard.read(
            self._STATES.format(shown=_shown("top")) + f"WITH m, s WHERE {conditions} RETURN count(m) AS n",
            {**params, "t": as_of, "r": recorded_as_of, "after": None},
        )
        return int(rows[0]["n"]) if rows else 0

    async def changes(
        self,
        start: datetime,
        end: datetime,
        *,
        recorded_as_of: datetime | None = None,
        class_name: str | None = None,
        domain: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> tuple[list[ObjectChange], bool]:
        """Objects whose state, as the caller may see it, differs between ``start`` and ``end`` (valid
        times), by mRID: what the caller could see at each end, nothing else (an object whose every
        version in between is hidden and whose two ends look alike to the caller is not listed)."""
        if end < start:
            raise ReadError(f"to ({end.isoformat()}) is before from ({start.isoformat()})")
        size = self._size(first)
        classes = self._classes(class_name)
        self._domain(domain)
        filters = []
        if classes is not None:
            filters.append(cypher("(b.@class IN $classes OR a.@class IN $classes)"))
        if domain is not None:
            filters.append(cypher("(b.@domain = $domain OR a.@domain = $domain)"))
        condition = " AND ".join(
            [
                cypher("((b IS NULL) <> (a IS NULL) OR b.@version <> a.@version)"),
                *filters,
            ]
        )
        rows = await self.guard.read(
            cypher(
                """
MATCH (c:ObjectVersion)
WHERE c.@valid_from > $from AND c.@valid_from <= $to AND ($r IS NULL OR c.@recorded <= $r)
  AND ($after IS NULL OR c.mrid > $after)
WITH DISTINCT c.mrid AS m
"""
            )
            + _state_at("from", "b0")
            + _state_at("to", "a0")
            + f"WITH m, {_shown('b0')} AS b, {_shown('a0')} AS a "
            + f"WITH m, b, a WHERE {condition} "
            + "RETURN m, b {.*} AS b, a {.*} AS a ORDER BY m LIMIT $limit",
            {
                "from": start,
                "to": end,
                "r": recorded_as_of,
                "after": after,
                "limit": size + 1,
                "classes": classes,
                "domain": domain,
            },
        )
        kept = rows[:size]
        states = [s for r in kept for s in (r["b"], r["a"]) if s is not None]
        await self._with_visible_references(states)
        self.guard.stats.rows += len(kept)
        return [ObjectChange(r["m"], r["b"], r["a"]) for r in kept], len(rows) > size

    async def states_at(
        self, mrids: Sequence[str], as_of: datetime | None, recorded_as_of: datetime | None
    ) -> dict[str, dict[str, Any]]:
        """The states at (``as_of``, ``recorded_as_of``) the caller may see, by mRID, references raw."""
        if not mrids:
            return {}
        rows = await self.guard.read(
            "UNWIND $mrids AS m "
            + _state_at("t", "s")
            + f"WITH m, {_shown('s')} AS v WHERE v IS NOT NULL RETURN m, v {{.*}} AS v",
            {"mrids": list(mrids), "t": as_of, "r": recorded_as_of},
        )
        return {r["m"]: r["v"] for r in rows}

    async def neighbourhood_at(
        self,
        mrid: str,
        depth: int,
        types: Sequence[str] | None,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
        *,
        max_depth: int,
        max_nodes: int,
        inward: bool = False,
    ) -> Subgraph:
        """Objects within ``depth`` references of ``mrid`` at that time, through objects the caller may
        see then only, and the references among them. A reference holds at a time when its source's
        state then states it and its target exists then (as the current graph keeps no edge to a
        deleted object). ``inward``: only against references (from the objects referring to each
        reached one), with only the references walked (as :meth:`hub.reader.Reader.containment`)."""
        if depth < 0 or depth > max_depth:
            raise ReadError(f"depth must be between 0 and {max_depth}, got {depth}")
        if types is not None:
            known = self.ontology.rel_types()
            for t in types:
                if t not in known:
                    raise ReadError(f"types contains {t!r}, which is not a relationship type of the ontology")
        wanted = None if types is None else set(types)

        def refs(state: Mapping[str, Any]) -> list[tuple[str, str]]:
            pairs = zip(state.get(REF_TYPES) or (), state.get(REF_TARGETS) or (), strict=True)
            return [(t, m) for t, m in pairs if wanted is None or t in wanted]

        nodes = await self.states_at([mrid], as_of, recorded_as_of)
        frontier = list(nodes)
        walked: list[dict[str, str]] = []
        for _ in range(depth):
            if not frontier or len(nodes) >= max_nodes:
                break
            reached = set() if inward else {m for f in frontier for _t, m in refs(nodes[f])}
            # Objects whose state then refers to the frontier: found among the visible kept versions (no
            # index holds references; a state the caller may see is such a version), each then judged by
            # its own state at that time.
            rows = await self.guard.read(
                cypher(
                    "MATCH (x:ObjectVersion) WHERE any(t IN x.@ref_targets WHERE t IN $frontier) "
                    "AND ($t IS NULL OR x.@valid_from <= $t) AND ($r IS NULL OR x.@recorded <= $r) "
                    f"AND {visible('x')} RETURN DISTINCT x.mrid AS m"
                ),
                {"frontier": frontier, "t": as_of, "r": recorded_as_of},
            )
            referrers = {r["m"] for r in rows}
            candidates = sorted((reached | referrers) - nodes.keys())
            found = await self.states_at(candidates, as_of, recorded_as_of)
            if inward:
                # The references walked at this level, also from objects reached before.
                for m in sorted(referrers & nodes.keys()):
                    walked += [
                        {"source": m, "target": t, "type": ty} for ty, t in refs(nodes[m]) if t in frontier
                    ]
            edge_ends = set(frontier)
            next_frontier: list[str] = []
            for m in candidates:
                state = found.get(m)
                if state is None or len(nodes) >= max_nodes:
                    continue
                linked = m in reached or any(t in edge_ends for _ty, t in refs(state))
                if linked:
                    nodes[m] = state
                    next_frontier.append(m)
                    if inward:
                        walked += [
                            {"source": m, "target": t, "type": ty} for ty, t in refs(state) if t in edge_ends
                        ]
            frontier = next_frontier
        graph = Subgraph()
        for m, state in nodes.items():
            graph.nodes[m] = {k: v for k, v in state.items() if k not in (REF_TYPES, REF_TARGETS)}
        graph.add_edges(
            walked
            if inward
            else (
                {"source": m, "target": t, "type": ty}
                for m, state in nodes.items()
                for ty, t in refs(state)
                if t in nodes
            )
        )
        self.guard.stats.rows += len(graph.nodes)
        return graph

    async def _with_visible_references(self, states: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``states`` with their references as (type, target) pairs under ``references``, keeping only
        targets the caller may see now (the current graph shows no edge to a hidden or deleted object)."""
        targets = {t for s in states for t in s.get(REF_TARGETS) or ()}
        seen: set[str] = set()
        if targets:
            rows = await self.guard.read(
                "UNWIND $ids AS id MATCH (n:Entity {mrid: id}) USING INDEX SEEK n:Entity(mrid) "
                f"WHERE {visible('n')} RETURN n.mrid AS m",
                {"ids": sorted(targets)},
            )
            seen = {r["m"] for r in rows}
        for s in states:
            pairs = zip(s.pop(REF_TYPES, None) or (), s.pop(REF_TARGETS, None) or (), strict=True)
            s["references"] = [(t, m) for t, m in pairs if m in seen]
        return list(states)


def attribute_keys(state: Mapping[str, Any]) -> set[str]:
    """The ontology attribute keys a state holds (bookkeeping and references left out)."""
    return {k for k in state if not k.startswith("_") and k not in ("mrid", "references")}
