"""Kept history: every applied version of every object, and the graph as it was at a valid time and a
recorded time (bitemporal reads), each filtered through the access guard.

The writer keeps, beside the current graph and in the same write statement, one ``(:ObjectVersion)`` node
per applied upsert or delete (hub/writer.py, the history part): the object's whole state after that event
(attributes, references as stated, class, label, producer, event id, and ``_owner``: the data product it
belongs to, which is its producer, as only an object's owner may write it), its ``version``, its
valid-from time (the event's ``time``) and its recorded time (the write's statement time), both kept as
epoch milliseconds (integers: cheaper to store and index than datetimes; readers pass their bounds as
milliseconds and turn the two back into UTC datetimes; versions kept as datetimes by an older hub are
converted once by the schema step, hub/graph.py). Measured (docs/performance.md, "Kept history"; small
runs on a busy two-core machine): a version alone cost Neo4j a median 64-79 us of CPU with datetimes,
56-61 with milliseconds; the ingest pipeline ran at 0.64x the raw loader before and 0.70x after, with
Neo4j CPU 556 and 380 us/event (raw 325), too noisy a run to say it reaches 0.8x.
A delete is a version too (``deleted``), labelled with the label of what it deleted. Version nodes are
linked to nothing, so no current read ever meets them; nor are the entries of the reference index,
``(:VersionReference {target, source})`` with the label and owner of the version that wrote them, by which
a walk in the past finds what referred to an object (hub/writer.py, ``_indexes_references``).
Measurements are not versions (their readings belong to the bounded measurement history), though a later
upsert's version carries nothing of them either.

State at valid time ``T`` and recorded time ``R``: of the object's versions with valid-from <= T and
recorded <= R, the one with the highest version, as the current graph keeps the highest version whatever
the order events arrive in (an event with a newer version but an earlier time corrects from its time on;
one with an older version is stale and kept nowhere). Without ``T`` and ``R`` that is the current graph.

Labels apply to every version by that version's own label and the caller's attributes now: a state whose
version the caller may not see is absent, whatever the object's labels before or after, and so is a
deleted state. Versions are judged by the guard's one predicate (:func:`hub.guard.visible`), as current
nodes are: a live grant for a data product opens that product's versions too (by their ``_owner``) and no
other producer's. Hidden and absent give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from hub.filters import StateReads
from hub.graph_schema import CLASS, DOMAIN, LABEL, RECORDED, REF_TARGETS, REF_TYPES, VALID_FROM, cypher
from hub.guard import Guard, visible
from hub.reader import CAPACITY, DOMAINS, DependencyStep, Reader, ReadError, Step, Subgraph, checked_rel_types
from hub.scenarios import Scenario, state_props
from ontology.connectivity import physical_network
from ontology.model import Ontology

# The state of object ``{m}`` (a variable holding its mRID) at ($t, $r) (either may be null: no bound)
# as ``{out}`` (null: none).
_STATE_AT: Final = cypher(
    """
CALL ({m}) {{
  OPTIONAL MATCH (x:ObjectVersion {{mrid: {m}}}) USING INDEX SEEK x:ObjectVersion(mrid)
  WHERE (${t} IS NULL OR x.@valid_from <= ${t}) AND ($r IS NULL OR x.@recorded <= $r)
  RETURN x AS {out} ORDER BY x.@version DESC LIMIT 1
}}
"""
)


# The same in scenario ``$scenario`` (hub/scenarios.py): the scenario's latest version of ``m`` if it holds
# one (a delete included), else the base's state at ($t, $r).
_SCENARIO_STATE_AT: Final = cypher(
    """
CALL ({m}) {{
  OPTIONAL MATCH (o:ScenarioVersion {{scenario: $scenario, mrid: {m}}})
  WITH {m}, o ORDER BY o.@version DESC LIMIT 1
  CALL ({m}, o) {{
    OPTIONAL MATCH (x:ObjectVersion {{mrid: {m}}}) USING INDEX SEEK x:ObjectVersion(mrid)
    WHERE o IS NULL AND (${t} IS NULL OR x.@valid_from <= ${t}) AND ($r IS NULL OR x.@recorded <= $r)
    RETURN x ORDER BY x.@version DESC LIMIT 1
  }}
  RETURN coalesce(o, x) AS {out}
}}
"""
)


# Objects with a kept version the caller may see that referred to any of $frontier (the reference index).
REFERRERS: Final = cypher(
    "UNWIND $frontier AS f "
    "MATCH (x:VersionReference {target: f}) USING INDEX SEEK x:VersionReference(target, source) "
    f"WHERE x.source IS NOT NULL AND {visible('x')} RETURN DISTINCT x.source AS m"
)


def _state_at(time_param: str, out: str, scenario: str | None = None, m: str = "m") -> str:
    template = _STATE_AT if scenario is None else _SCENARIO_STATE_AT
    return template.format(t=time_param, out=out, m=m)


def _as_state(var: str) -> str:
    """Version ``var`` (null stays null) as a state map: its properties, with ``@updated`` set to when
    the hub recorded it (kept versions hold that as epoch milliseconds, a scenario's as a datetime)."""
    return cypher(
        f"CASE WHEN {var} IS NULL THEN null ELSE {var} {{.*, @updated: CASE WHEN {var}:ScenarioVersion "
        f"THEN {var}.@recorded ELSE datetime({{epochMillis: {var}.@recorded}}) END}} END"
    )


def _ms(moment: datetime | None) -> int | None:
    """A time as a version node keeps it: epoch milliseconds (None: no bound)."""
    return None if moment is None else int(moment.timestamp() * 1000)


def _as_times(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its valid-from and recorded times as datetimes (kept as epoch milliseconds; a
    scenario's overlay versions keep datetimes)."""
    for key in (VALID_FROM, RECORDED):
        value = state.get(key)
        if isinstance(value, int):
            state[key] = datetime.fromtimestamp(value / 1000, UTC)
    return state


def _shown(var: str) -> str:
    """``var`` if it is a state the caller may see (not deleted, its version's label visible), else null."""
    return cypher(f"CASE WHEN {var} IS NOT NULL AND NOT {var}.@deleted AND {visible(var)} THEN {var} END")


@dataclass(frozen=True)
class States:
    """Cypher yielding, as ``n``, the state of every object the caller may see in a scenario, one row
    per object: a map of its version's properties with ``@updated`` set to when the hub recorded that
    version (as an object's row shows it), so the typed filters, sorts and cursors read it as they read
    a live node. ``text`` ends in a ``WHERE`` clause a statement may extend with ``AND``; ``params``
    are its parameters."""

    text: str
    params: dict[str, Any]
    # What reads related objects' states there (relationship filters, hub/filters.py).
    reads: StateReads


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
    """History reads for one caller (the guard); class names and domains are checked against the ontology.

    With ``scenario`` (one the caller may see, hub/scenarios.py), every state is read in that
    scenario: its latest overlay version of the object if any, else the base's state at the time given
    (the scenario's base: ``recorded_as_of`` its base time)."""

    def __init__(
        self, guard: Guard, ontology: Ontology, *, max_page_size: int, scenario: Scenario | None = None
    ) -> None:
        self.guard = guard
        self.ontology = ontology
        self.max_page_size = max_page_size
        self.in_scenario = scenario
        # The scenario's id, the statements' ``$scenario`` (None: no scenario).
        self.scenario = None if scenario is None else scenario.id

    def _at(self, time_param: str, out: str) -> str:
        return _state_at(time_param, out, self.scenario)

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
        could see what it deleted): at most ``first``, after version ``after_version``.

        In a scenario: its base's versions (those the hub had recorded by the scenario's base time, or
        by ``recorded_as_of`` if that is earlier), then the scenario's own versions of the object, each
        part by version, every version judged by its own label; ``after_version`` skips versions up to
        it in both parts (the scenario's versions follow its base's when numbered above them, as a
        producer numbers later versions). References are shown as in the scenario."""
        kept = (
            "MATCH (v:ObjectVersion {mrid: $mrid}) USING INDEX SEEK v:ObjectVersion(mrid) "
            "WHERE ($r IS NULL OR v.@recorded <= $r) AND ($after IS NULL OR v.@version > $after) "
            f"AND {visible('v')} "
        )
        if self.in_scenario is None:
            statement = kept + "RETURN v {.*} AS v ORDER BY v.@version LIMIT $limit"
        else:
            base = self.in_scenario.base
            recorded_as_of = base if recorded_as_of is None else min(recorded_as_of, base)
            statement = (
                f"CALL () {{ {kept} RETURN v, 0 AS part UNION "
                "MATCH (v:ScenarioVersion {scenario: $scenario, mrid: $mrid}) "
                f"WHERE ($after IS NULL OR v.@version > $after) AND {visible('v')} RETURN v, 1 AS part }} "
                "RETURN v {.*} AS v ORDER BY part, v.@version LIMIT $limit"
            )
        rows = await self.guard.read(
            cypher(statement),
            {
                "mrid": mrid,
                "r": _ms(recorded_as_of),
                "after": after_version,
                "limit": self._size(first),
                "scenario": self.scenario,
            },
        )
        found = [r["v"] for r in rows]
        self.guard.stats.rows += len(found)
        return await self._with_visible_references(found)

    async def object_at(
        self, mrid: str, as_of: datetime | None, recorded_as_of: datetime | None
    ) -> dict[str, Any] | None:
        """The object's state at ``as_of`` as known at ``recorded_as_of`` (None: absent or hidden)."""
        rows = await self.guard.read(
            "WITH $mrid AS m " + self._at("t", "s") + f"WITH {_shown('s')} AS v RETURN v {{.*}} AS v",
            {"mrid": mrid, "t": _ms(as_of), "r": _ms(recorded_as_of), "scenario": self.scenario},
        )
        found = rows[0]["v"] if rows else None
        if found is None:
            return None
        self.guard.stats.rows += 1
        return (await self._with_visible_references([found]))[0]

    def _object_filter(
        self, class_name: str | None, domain: str | None, name: str | None, var: str = "s"
    ) -> tuple[list[str], dict[str, Any]]:
        """Conditions on state ``var`` (and their parameters) for a class, domain and name."""
        where: list[str] = []
        params: dict[str, Any] = {}
        classes = self._classes(class_name)
        if classes is not None:
            where.append(cypher(f"{var}.@class IN $classes"))
            params["classes"] = classes
        if self._domain(domain) is not None:
            where.append(cypher(f"{var}.@domain = $domain"))
            params["domain"] = domain
        if name:
            where.append(f"toLower({var}.name) CONTAINS $name")
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

    # The same in scenario ``$scenario``: every object the base or the scenario holds, each by its state
    # in the scenario.
    _SCENARIO_STATES: Final = cypher(
        """
CALL () {
  MATCH (x:ObjectVersion)
  WHERE ($t IS NULL OR x.@valid_from <= $t) AND ($r IS NULL OR x.@recorded <= $r)
    AND ($after IS NULL OR x.mrid > $after) AND ($pre IS NULL OR x.@class IN $pre)
  RETURN x.mrid AS m
  UNION
  MATCH (x:ScenarioVersion {scenario: $scenario})
  WHERE ($after IS NULL OR x.mrid > $after) AND ($pre IS NULL OR x.@class IN $pre)
  RETURN x.mrid AS m
}
WITH m
"""
    )

    # A page of objects' states at ($t, $r), in mRID order, one row per mRID: the candidates come from
    # the version index in mRID order (the index gives the order, so the page's LIMIT stops the scan
    # once the page is full), each one's state is then found as for one object. ``{candidates}`` narrows
    # the candidates by the page's own conditions on any of their versions: the state is one of the
    # versions, so an object whose state meets them has a version that does. The grouping form above
    # reads and sorts every version kept (seconds, with millions of versions) before the first row.
    _PAGE_STATES: Final = cypher(
        """
MATCH (x:ObjectVersion) USING INDEX x:ObjectVersion(mrid)
WHERE x.mrid > coalesce($after, '') {candidates}
WITH DISTINCT x.mrid AS m ORDER BY m
"""
    )

    def _states(self, candidates: Sequence[str] | None = None) -> str:
        """States at ($t, $r) as ``s`` per mRID ``m``: every object's (for counts) or, given the page's
        conditions on a version ``x`` (``candidates``), only those that may meet them, in mRID order."""
        if self.scenario is not None:
            return self._SCENARIO_STATES + self._at("t", "top") + f"WITH m, {_shown('top')} AS s "
        if candidates is None:
            return self._STATES.format(shown=_shown("top"))
        narrowed = "".join(f" AND {c}" for c in candidates)
        return (
            self._PAGE_STATES.format(candidates=narrowed)
            + self._at("t", "top")
            + f"WITH m, {_shown('top')} AS s "
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
        candidates, _ = self._object_filter(class_name, domain, name, "x")
        conditions = " AND ".join(["s IS NOT NULL", *where])
        rows = await self.guard.read(
            self._states(candidates)
            + f"WITH m, s WHERE {conditions} RETURN s {{.*}} AS v ORDER BY m LIMIT $limit",
            {
                **params,
                "t": _ms(as_of),
                "r": _ms(recorded_as_of),
                "after": after,
                "limit": size + 1,
                "scenario": self.scenario,
                "pre": params.get("classes"),
            },
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
            self._states() + f"WITH m, s WHERE {conditions} RETURN count(m) AS n",
            {
                **params,
                "t": _ms(as_of),
                "r": _ms(recorded_as_of),
                "after": None,
                "scenario": self.scenario,
                "pre": params.get("classes"),
            },
        )
        return int(rows[0]["n"]) if rows else 0

    # --- the typed queries, counts and search in a scenario --------------------------------------------

    def visible_states(self, class_name: str | None = None) -> States:
        """Every object's state in the scenario that the caller may see, as ``n`` (see :class:`States`),
        of ``class_name`` (subclasses included) when given: the one building block the typed pages, their
        aggregates, ``counts`` and ``search`` read a scenario through, so each reads the same states, by
        the same guard, as ``objects(scenario:)`` does."""
        scenario = self.in_scenario
        if scenario is None:
            raise ReadError("reading the states of a scenario needs a scenario")
        classes = self._classes(class_name)
        text = (
            self._states()
            + f"WITH s WHERE s IS NOT NULL WITH {_as_state('s')} AS n "
            + cypher("WHERE ($pre IS NULL OR n.@class IN $pre)")
        )
        params = {"t": None, "r": _ms(scenario.base), "after": None, "scenario": scenario.id, "pre": classes}
        return States(text, params, self)

    def related_states(self, var: str, rel: str, direction: str, other: str) -> str:
        """Clauses for a subquery of a statement over :meth:`visible_states` (whose parameters it uses):
        one row per object related to state ``var`` by a reference of type ``rel`` (a Cypher expression,
        a parameter) from it (``direction`` "out") or to it ("in"), with ``other`` bound to that
        object's state in the scenario the caller may see (as a map, as ``n`` is), ending in a ``WHERE``
        clause a filter may extend with ``AND``; ``var`` is carried along. A reference counts when the
        referring state states it and the referred object's state exists there, as the live graph keeps
        no edge to what is absent; each related object counts once."""
        ident, found, shown = f"{other}_id", f"{other}_v", f"{other}_s"
        if direction == "out":
            ids = cypher(
                f"UNWIND reduce(acc = [], i IN range(0, size(coalesce({var}.@ref_types, [])) - 1) | "
                f"CASE WHEN {var}.@ref_types[i] = {rel} AND NOT {var}.@ref_targets[i] IN acc "
                f"THEN acc + {var}.@ref_targets[i] ELSE acc END) AS {ident} "
            )
            refers = ""
        else:
            # Objects whose version (of the base by its time, or of the scenario) names ``var``: each
            # then judged by its own state in the scenario (no index holds references).
            ids = cypher(
                f"CALL ({var}) {{ MATCH (x:ObjectVersion) WHERE {var}.mrid IN x.@ref_targets "
                "AND ($t IS NULL OR x.@valid_from <= $t) AND ($r IS NULL OR x.@recorded <= $r) "
                f"RETURN x.mrid AS {ident} UNION "
                f"MATCH (x:ScenarioVersion {{scenario: $scenario}}) WHERE {var}.mrid IN x.@ref_targets "
                f"RETURN x.mrid AS {ident} }} "
            )
            refers = cypher(
                f" AND any(i IN range(0, size(coalesce({other}.@ref_types, [])) - 1) "
                f"WHERE {other}.@ref_types[i] = {rel} AND {other}.@ref_targets[i] = {var}.mrid)"
            )
        return (
            ids
            + _state_at("t", found, self.scenario, m=ident)
            + f"WITH {var}, {_shown(found)} AS {shown} "
            + f"WITH {var}, {_as_state(shown)} AS {other} WHERE {other} IS NOT NULL{refers}"
        )

    async def readable(self, states: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """States read through :meth:`visible_states` as the API shows them: references to objects the
        caller may see in the scenario only, times as datetimes."""
        return await self._with_visible_references(states)

    async def counts(self, domain: str | None) -> list[tuple[str, int]]:
        """The objects the caller may see in the scenario, per class (classes with none left out), as
        :meth:`hub.reader.Reader.counts` on the live graph."""
        states = self.visible_states()
        rows = await self.guard.read(
            states.text
            + cypher(" AND ($domain IS NULL OR n.@domain = $domain) ")
            + cypher("RETURN n.@class AS cls, count(n) AS n ORDER BY cls"),
            {**states.params, "domain": self._domain(domain)},
        )
        return [(r["cls"], int(r["n"])) for r in rows if r["cls"] is not None]

    async def search(
        self,
        text: str,
        size: int,
        patterns: Sequence[str] | None,
        name_keys: Sequence[str],
        class_name: str | None,
    ) -> list[dict[str, Any]]:
        """Objects the caller may see in the scenario whose mRID is ``text``, then those with a name (of
        ``name_keys``) matching every one of ``patterns`` (:meth:`hub.name_search.NameSearch.patterns`;
        None: the text has no words), ordered as :meth:`hub.reader.Reader.search` orders: the exact match,
        the length of the name, the mRID. The live graph's full-text index does not hold a scenario's
        states, so the words are matched against each state's names."""
        exact = text.strip()
        if not exact or size == 0:
            return []
        states = self.visible_states(class_name)
        names = "[" + ", ".join(f"n.`{k}`" for k in name_keys) + "]"
        named = (
            f"all(p IN $patterns WHERE any(v IN {names} WHERE v IS :: STRING AND toLower(v) =~ p))"
            if patterns is not None
            else "false"
        )
        rows = await self.guard.read(
            states.text
            + f" AND (n.mrid = $exact OR {named}) "
            + "WITH n, CASE WHEN n.mrid = $exact THEN 0 ELSE 1 END AS rank "
            + "RETURN n {.*} AS n ORDER BY rank, size(coalesce(n.name, '')), n.mrid LIMIT $limit",
            {**states.params, "exact": exact, "patterns": list(patterns or []), "limit": size},
        )
        found = [r["n"] for r in rows]
        self.guard.stats.rows += len(found)
        return found

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
                "from": _ms(start),
                "to": _ms(end),
                "r": _ms(recorded_as_of),
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

    async def compare(
        self, *, first: int | None = None, after: str | None = None
    ) -> tuple[list[ObjectChange], bool]:
        """Objects whose state in the scenario differs from their base state, as the caller may see each
        (by its own version's label), by mRID: added (no base state the caller may see), removed (none in
        the scenario) or changed (attributes, references, class or label), with both states."""
        scenario = self.in_scenario
        if scenario is None:
            raise ReadError("compare needs a scenario")
        size = self._size(first)
        found: list[ObjectChange] = []
        cursor = after
        while len(found) <= size:
            rows = await self.guard.read(
                "MATCH (o:ScenarioVersion {scenario: $scenario}) WHERE $after IS NULL OR o.mrid > $after "
                "WITH DISTINCT o.mrid AS m ORDER BY m LIMIT $chunk "
                + _state_at("t", "b0")
                + self._at("t", "a0")
                + f"WITH m, {_shown('b0')} AS b, {_shown('a0')} AS a "
                + "RETURN m, b {.*} AS b, a {.*} AS a ORDER BY m",
                {
                    "scenario": scenario.id,
                    "t": None,
                    "r": _ms(scenario.base),
                    "after": cursor,
                    "chunk": size + 1,
                },
            )
            found += [ObjectChange(r["m"], r["b"], r["a"]) for r in rows if _differs(r["b"], r["a"])]
            if len(rows) <= size:
                break
            cursor = rows[-1]["m"]
        kept = found[:size]
        # A base state shows its references as the base had them; a scenario state as the scenario has.
        base = History(self.guard, self.ontology, max_page_size=self.max_page_size)
        await base._with_visible_references(
            [c.before for c in kept if c.before is not None], at=scenario.base
        )
        await self._with_visible_references([c.after for c in kept if c.after is not None])
        self.guard.stats.rows += len(kept)
        return kept, len(found) > size

    async def states_at(
        self, mrids: Sequence[str], as_of: datetime | None, recorded_as_of: datetime | None
    ) -> dict[str, dict[str, Any]]:
        """The states at (``as_of``, ``recorded_as_of``) the caller may see, by mRID, references raw."""
        if not mrids:
            return {}
        rows = await self.guard.read(
            "UNWIND $mrids AS m "
            + self._at("t", "s")
            + f"WITH m, {_shown('s')} AS v WHERE v IS NOT NULL RETURN m, v {{.*}} AS v",
            {"mrids": list(mrids), "t": _ms(as_of), "r": _ms(recorded_as_of), "scenario": self.scenario},
        )
        found = {r["m"]: r["v"] for r in rows}
        for state in found.values():
            state.pop("scenario", None)
            _as_times(state)
        return found

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
        wanted = self._rel_types(types)

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
            referrers = await self._referrers(frontier)
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

    def _rel_types(self, types: Sequence[str] | None) -> set[str] | None:
        """``types`` as a set (None: any), each checked against the ontology."""
        checked = checked_rel_types(self.ontology, types)
        return None if checked is None else set(checked)

    async def relations_among_at(
        self,
        mrids: Sequence[str],
        types: Sequence[str] | None,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
    ) -> Subgraph:
        """The objects of ``mrids`` whose state at that time (in a scenario: there) the caller may see, and
        the references among them, as :meth:`hub.reader.Reader.relations_among` on the current graph: an
        object hidden then is left out exactly as one absent then, with every reference touching it."""
        wanted = self._rel_types(types)
        states = await self.states_at(sorted(set(mrids)), as_of, recorded_as_of)
        edges = [
            {"source": m, "target": t, "type": ty}
            for m, state in states.items()
            for ty, t in _refs(state)
            if t in states and (wanted is None or ty in wanted)
        ]
        graph = _subgraph(states, edges)
        self.guard.stats.rows += len(graph.nodes) + len(graph.edges)
        return graph

    # --- the graph at a time: paths and dependencies ------------------------------------------------

    async def _referrers(self, frontier: Sequence[str]) -> set[str]:
        """Objects with a kept version the caller may see that refers to the frontier, at any time (from
        the reference index, hub/writer.py _indexes_references): each is then judged by its own state at
        the time asked for, so the candidates may be more than the answer, never fewer."""
        rows = await self.guard.read(REFERRERS, {"frontier": list(frontier)})
        found = {r["m"] for r in rows}
        if self.scenario is not None:
            rows = await self.guard.read(
                cypher(
                    "MATCH (x:ScenarioVersion {scenario: $scenario}) "
                    "WHERE any(t IN x.@ref_targets WHERE t IN $frontier) "
                    f"AND {visible('x')} RETURN DISTINCT x.mrid AS m"
                ),
                {"frontier": list(frontier), "scenario": self.scenario},
            )
            found.update(r["m"] for r in rows)
        return found

    async def _step(
        self, at: _GraphAt, frontier: Sequence[str], steps: Sequence[Step], domain: str | None
    ) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """The neighbours of ``frontier`` at the time along ``steps`` (relationship types, None: any; and
        direction), only objects of ``domain`` (None: any) the caller may see then: (edge, state) pairs,
        in a stable order. A reference holds at a time when its source's state then states it and its
        target exists then."""
        on = [m for m in frontier if at.known.get(m) is not None]
        outward = [set(types) if types is not None else None for types, d in steps if d in ("out", "both")]
        inward = [set(types) if types is not None else None for types, d in steps if d in ("in", "both")]

        def wanted(kinds: list[set[str] | None], ty: str) -> bool:
            return any(k is None or ty in k for k in kinds)

        targets = {m for f in on for ty, m in _refs(at.state(f)) if wanted(outward, ty)} if outward else set()
        referrers = await self._referrers(on) if inward and on else set()
        await at.load(targets | referrers)
        ends = set(on)
        pairs: list[tuple[dict[str, str], dict[str, Any]]] = []

        def admitted(m: str) -> dict[str, Any] | None:
            state = at.known.get(m)
            if state is None or (domain is not None and state.get(DOMAIN) != domain):
                return None
            return state

        for f in on:
            for ty, m in _refs(at.state(f)):
                if wanted(outward, ty) and (state := admitted(m)) is not None:
                    pairs.append(({"source": f, "target": m, "type": ty}, state))
        for m in sorted(referrers):
            state = admitted(m)
            if state is None:
                continue
            for ty, t in _refs(state):
                if t in ends and wanted(inward, ty):
                    pairs.append(({"source": m, "target": t, "type": ty}, state))
        return pairs

    async def shortest_path_at(
        self,
        source: str,
        target: str,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
        *,
        physical: bool,
        max_length: int,
        max_nodes: int,
    ) -> Subgraph | None:
        """A shortest path between two objects at that time through objects the caller may see then
        (by each one's version then), along the physical network or any reference, as
        :meth:`hub.reader.Reader.shortest_path` on the current graph; breadth first, so never through
        an object hidden or absent then."""
        at = _GraphAt(self, as_of, recorded_as_of)
        await at.load([source, target])
        ends = {m: at.known.get(m) for m in (source, target)}
        if ends[source] is None or ends[target] is None:
            return None
        if source == target:
            return _subgraph({source: at.state(source)}, [])
        types: list[str] | None = None
        admits: Any = None
        if physical:
            network = physical_network(self.ontology)
            for end in (source, target):
                cls = at.state(end).get(CLASS) or ""
                if not network.admits(self.ontology, cls):
                    raise ReadError(
                        f"{end!r} is a {cls}, which is not on the physical network "
                        "(equipment, terminals, nodes, gas connections and what is attached to them); "
                        "ask with via: ANY for a path along any relationship"
                    )
            types = list(network.rel_types)
            admits = network
        parent: dict[str, tuple[str, dict[str, str]] | None] = {source: None}
        frontier = [source]
        for _ in range(max_length):
            if not frontier or len(parent) >= max_nodes:
                break
            next_frontier: list[str] = []
            for edge, state in await self._step(at, frontier, [(types, "both")], None):
                m = state["mrid"]
                if m in parent or (
                    admits is not None and not admits.admits(self.ontology, state.get(CLASS) or "")
                ):
                    continue
                came_from = edge["target"] if edge["source"] == m else edge["source"]
                parent[m] = (came_from, edge)
                next_frontier.append(m)
                if m == target:
                    path_nodes: dict[str, dict[str, Any]] = {}
                    path_edges: list[dict[str, str]] = []
                    step: str | None = m
                    while step is not None:
                        path_nodes[step] = at.state(step)
                        back = parent[step]
                        if back is None:
                            break
                        path_edges.append(back[1])
                        step = back[0]
                    graph = _subgraph(dict(reversed(path_nodes.items())), list(reversed(path_edges)))
                    self.guard.stats.rows += len(graph.nodes)
                    return graph
            frontier = next_frontier
        return None

    async def _bfs_at(
        self,
        at: _GraphAt,
        root: str,
        depth: int,
        steps: Sequence[Step],
        domain: str | None,
        graph: dict[str, dict[str, Any]],
        edges: list[dict[str, str]],
        max_nodes: int,
    ) -> None:
        """Breadth first from ``root`` at the time, as :meth:`hub.reader.Reader._bfs`: through objects the
        caller may see then only, adding to ``graph`` and ``edges`` (edges between objects in it)."""
        graph.setdefault(root, at.state(root))
        frontier = [root]
        for _ in range(depth):
            if not frontier or len(graph) >= max_nodes:
                break
            next_frontier: list[str] = []
            found = []
            for edge, state in await self._step(at, frontier, steps, domain):
                found.append(edge)
                m = state["mrid"]
                if m not in graph and len(graph) < max_nodes:
                    graph[m] = state
                    next_frontier.append(m)
            edges.extend(e for e in found if e["source"] in graph and e["target"] in graph)
            frontier = next_frontier

    async def dependencies_at(
        self,
        mrid: str,
        as_of: datetime | None,
        recorded_as_of: datetime | None,
        reader: Reader,
        *,
        upstream: bool = False,
    ) -> tuple[dict[str, Any] | None, list[DependencyStep], Subgraph]:
        """What depends on ``mrid`` across the domains at that time (``upstream``: what it depends on), as
        :meth:`hub.reader.Reader.dependencies` on the current graph (the same steps from the ontology),
        walking only objects the caller may see then."""
        at = _GraphAt(self, as_of, recorded_as_of)
        await at.load([mrid])
        root = at.known.get(mrid)
        if root is None:
            return None, [], Subgraph()
        max_nodes = reader.max_subgraph_nodes
        nodes: dict[str, dict[str, Any]] = {mrid: root}
        edges: list[dict[str, str]] = []
        reached = {mrid}
        frontier, domain = [root], root.get(DOMAIN)
        steps: list[DependencyStep] = []
        while frontier and domain in DOMAINS and len(nodes) < max_nodes:
            region: dict[str, dict[str, Any]] = {s["mrid"]: s for s in frontier}
            couplings = [c for c in reader.couplings() if self.ontology.domain(c.owner) == domain]
            flow = reader.gas_flow() if domain == "Gas" else None
            if flow is not None:
                walk, climb = flow
                if upstream:
                    # Against the flow, as the current graph's walk (Reader._region).
                    walk = [(types, "out" if d == "in" else "in") for types, d in walk[:2]] + walk[2:]
                for start in frontier:
                    is_coupling_owner = start.get(CLASS) in self.ontology.classes and any(
                        self.ontology.is_a(start[CLASS], c.owner) for c in couplings
                    )
                    tops = [start["mrid"]]
                    if climb and (upstream or not is_coupling_owner):
                        up: dict[str, dict[str, Any]] = {}
                        await self._bfs_at(at, start["mrid"], 1, climb, "Gas", up, [], max_nodes)
                        tops = list(up)
                    for top in tops:
                        await self._bfs_at(at, top, max_nodes, walk, "Gas", region, edges, max_nodes)
            elif domain == "Gas":
                network: list[Step] = [(reader.network_rel_types("Gas"), "both")]
                for start in frontier:
                    await self._bfs_at(at, start["mrid"], max_nodes, network, "Gas", region, edges, max_nodes)
            else:
                types = sorted({a.rel_type for a in reader.containment_associations()})
                if types:
                    for start in frontier:
                        await self._bfs_at(
                            at,
                            start["mrid"],
                            reader.max_depth,
                            [(types, "out" if upstream else "in")],
                            None,
                            region,
                            edges,
                            max_nodes,
                        )
            nodes.update(region)
            # Downstream the couplings this domain owns; upstream those targeting it, back to their owners.
            side = self.ontology.domain
            coupling_types = sorted(
                {c.rel_type for c in reader.couplings() if side(c.target if upstream else c.owner) == domain}
            )
            if not coupling_types:
                break
            other = "Electricity" if domain == "Gas" else "Gas"
            found: dict[str, dict[str, Any]] = {}
            way = "in" if upstream else "out"
            for edge, state in await self._step(at, list(region), [(coupling_types, way)], other):
                nodes.setdefault(state["mrid"], state)
                edges.append(edge)
                if state["mrid"] not in reached:
                    found[state["mrid"]] = state
            if not found:
                break
            reached.update(found)
            dependents = sorted(found.values(), key=lambda n: n["mrid"])
            steps.append(DependencyStep(len(steps) + 1, other, dependents, self._capacity(found.values())))
            frontier, domain = dependents, other
        graph = _subgraph(nodes, edges)
        self.guard.stats.rows += len(graph.nodes)
        return (
            _without_references(root),
            [
                DependencyStep(
                    s.depth, s.domain, [_without_references(n) for n in s.dependents], s.capacity_mw
                )
                for s in steps
            ],
            graph,
        )

    def _capacity(self, states: Iterable[Mapping[str, Any]]) -> float | None:
        """Generating capacity (MW) among the states; None when none of them states one."""
        attr = self.ontology.attribute_by_qname(CAPACITY)
        if attr is None:
            return None
        stated = [float(s[attr.key]) for s in states if s.get(attr.key) is not None]
        return sum(stated) if stated else None

    async def _with_visible_references(
        self, states: Sequence[dict[str, Any]], *, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """``states`` with their references as (type, target) pairs under ``references``, keeping only
        targets the caller may see now (the current graph shows no edge to a hidden or deleted object);
        in a scenario, those the caller may see there; ``at``: those it may see in the live graph as
        recorded then (a scenario's base)."""
        targets = {t for s in states for t in s.get(REF_TARGETS) or ()}
        seen: set[str] = set()
        for s in states:
            s.pop("scenario", None)
            _as_times(s)
        if targets and (self.in_scenario is not None or at is not None):
            # In a scenario: targets the caller may see there (the scenario may add or remove them).
            when = at if at is not None else self.in_scenario.base if self.in_scenario is not None else None
            seen = set(await self.states_at(sorted(targets), None, when))
        elif targets:
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


class _GraphAt:
    """The states at one (valid, recorded) time that one caller may see, read as a walk needs them."""

    def __init__(self, history: History, as_of: datetime | None, recorded_as_of: datetime | None) -> None:
        self.history = history
        self.as_of = as_of
        self.recorded_as_of = recorded_as_of
        # By mRID: the state the caller may see then, or None (absent, deleted or hidden then).
        self.known: dict[str, dict[str, Any] | None] = {}

    def state(self, mrid: str) -> dict[str, Any]:
        """The state of an object known to be visible then."""
        found = self.known[mrid]
        assert found is not None, mrid
        return found

    async def load(self, mrids: Iterable[str]) -> None:
        missing = sorted(set(mrids) - self.known.keys())
        if not missing:
            return
        found = await self.history.states_at(missing, self.as_of, self.recorded_as_of)
        for m in missing:
            self.known[m] = found.get(m)


def _differs(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """Whether two states (None: absent) differ in what they hold, not in their bookkeeping."""
    if before is None or after is None:
        return before is not after
    return any(
        one != other
        for one, other in (
            (state_props(before), state_props(after)),
            (sorted(_refs(before)), sorted(_refs(after))),
            (before.get(CLASS), after.get(CLASS)),
            (before.get(LABEL), after.get(LABEL)),
        )
    )


def _refs(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    return list(zip(state.get(REF_TYPES) or (), state.get(REF_TARGETS) or (), strict=True))


def _without_references(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in (REF_TYPES, REF_TARGETS)}


def _subgraph(nodes: Mapping[str, Mapping[str, Any]], edges: Iterable[dict[str, str]]) -> Subgraph:
    graph = Subgraph()
    for m, state in nodes.items():
        graph.nodes[m] = _without_references(state)
    graph.add_edges(edges)
    return graph


def attribute_keys(state: Mapping[str, Any]) -> set[str]:
    """The ontology attribute keys a state holds (bookkeeping and references left out)."""
    return {k for k in state if not k.startswith("_") and k not in ("mrid", "references")}
