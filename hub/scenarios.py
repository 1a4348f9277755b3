"""Scenarios: a base (the live graph as it stood at a time) with changes applied on top of it, apart from
the live graph.

A scenario is a ``(:Scenario {id})`` record beside the network graph. Its ``id`` is assigned by the hub when
it is created (``scn-`` and a random uuid4's hex digits: unguessable, so that nobody learns anything by
naming one) and is what every reference uses (events, reads, ``compare``, deletion, overlay versions); its
``name`` is a display name only, not unique (two callers may each have a "plan-2027", and creating one
never depends on the scenarios a caller may not see). The record holds its ``owner`` (the subject that
created it, who may delete it), its own security label (``_label``, interned like every other; a caller who
may not see it is told the scenario does not exist, in the same words as for a missing one), the data
products that may publish into it (``producers``) and its ``base`` time. The base is the live graph as the
hub had recorded it at that time: of each object's kept versions (:mod:`hub.history`) those recorded by
then, the highest version, as the current graph then held it.

Events that name a scenario's id in their envelope (``scenario``, see :mod:`hub.events`) are written by
the worker's writer (:class:`OverlayWriter`, called from :class:`hub.writer.GraphWriter` in the batch's own
transaction) as overlay versions, ``(:ScenarioVersion {scenario, mrid})`` (``scenario``: the id): the
object's whole state after the event (the scenario's latest version of it if any, else its base version,
with the event's patch applied), with its own label, owner, producer and event id, as an ``ObjectVersion``
holds them. Nothing of the live
graph changes. The same write check as a live write applies (the producer owns what it writes: the base or
overlay version's owner must be the producer; the producer satisfies the object's label there and the new
one, and widens it only with the declassification right), and the scenario must exist, list the producer,
and carry a label the producer satisfies.

A read in a scenario takes, per object, the scenario's latest version of it if there is one (a delete
removes the object), else its base version; each state is judged by its own version's label through the
guard (:func:`hub.guard.visible`), as every as-of read is (see :mod:`hub.history`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import neo4j

from hub.events import SCENARIO_ID_PATTERN
from hub.graph import SideStore
from hub.graph_schema import (
    BOOKKEEPING,
    CLASS,
    DELETED,
    DOMAIN,
    EVENT_ID,
    LABEL,
    OWNER,
    PRODUCER,
    REF_TARGETS,
    REF_TYPES,
    VALID_FROM,
    VERSION,
    X,
    Y,
    cypher,
)
from hub.guard import Guard, visible
from hub.labels import Label, LabelError, canonical, label_id, parse
from hub.write_policy import check_all, may_assign

if TYPE_CHECKING:
    from hub.labels import Authorizations
    from hub.write_input import Accepted, LabelBook, OntologyView

SCENARIO_ID: Final = re.compile(SCENARIO_ID_PATTERN)
SCENARIO_ID_PREFIX: Final = "scn-"
# How long a scenario's display name may be.
MAX_NAME: Final = 100
# Reason class of a write refused for its scenario (dead letters and metrics).
SCENARIO_REASON: Final = "scenario"
# How many producers one scenario may list.
MAX_PRODUCERS: Final = 50


class ScenarioError(ValueError):
    """A scenario request the hub refuses; the message is safe to show the caller."""


# The one answer for a scenario that is missing and for one the caller may not see, whatever id was given
# (it does not repeat the id, so that answers about two ids are byte-identical).
NOT_FOUND: Final = "the scenario does not exist"


def refused_scenario(scenario: str | None, producer: str) -> str:
    """A dead letter's reason for an event its scenario does not take, whichever rule refused it."""
    return f"scenario: {scenario!r} does not exist or producer {producer!r} may not publish into it"


def new_id() -> str:
    """A fresh scenario id: unguessable, and unrelated to anything the caller or other scenarios chose."""
    return SCENARIO_ID_PREFIX + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario record as the caller sees it."""

    id: str
    name: str
    owner: str
    label_id: int
    producers: tuple[str, ...]
    base: datetime
    created: datetime
    description: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Scenario:
        return cls(
            id=row["id"],
            name=row["name"],
            owner=row["owner"],
            label_id=int(row[LABEL]),
            producers=tuple(row.get("producers") or ()),
            base=_native(row["base"]),
            created=_native(row["created"]),
            description=row.get("description") or "",
        )


def _native(value: Any) -> datetime:
    return value.to_native() if hasattr(value, "to_native") else value


# The scenario ``$id`` if the caller may see it.
_FIND: Final = cypher(f"MATCH (s:Scenario {{id: $id}}) WHERE {visible('s')} RETURN s {{.*}} AS s")
_LIST: Final = cypher(
    f"MATCH (s:Scenario) WHERE {visible('s')} RETURN s {{.*}} AS s ORDER BY s.name, s.created, s.id"
)


class ScenarioStore(SideStore):
    """Creating and deleting scenario records (and a scenario's overlay versions); reads of records go
    through the guard (:func:`find`)."""

    async def create(self, props: Mapping[str, Any], label_text: str) -> None:
        """Create the record (its label interned); ``props`` holds its fresh ``id``. Nothing about other
        scenarios is consulted: names are not unique."""
        await self._run(
            cypher(
                "MERGE (l:SecurityLabel {id: $props.@label}) ON CREATE SET l.expr = $expr "
                "CREATE (s:Scenario) SET s = $props, s.base = coalesce($props.base, datetime()), "
                "s.created = datetime()"
            ),
            write=True,
            props=dict(props),
            expr=label_text,
        )

    async def delete(self, scenario_id: str) -> None:
        """Remove the record and every overlay version of the scenario."""
        await self._run(
            "MATCH (v:ScenarioVersion {scenario: $id}) DETACH DELETE v", write=True, id=scenario_id
        )
        await self._run("MATCH (s:Scenario {id: $id}) DETACH DELETE s", write=True, id=scenario_id)


async def find(guard: Guard, scenario_id: str) -> Scenario | None:
    """The scenario, if it exists and the caller may see it (None either way otherwise)."""
    if not SCENARIO_ID.match(scenario_id):
        return None
    rows = await guard.read(_FIND, {"id": scenario_id})
    return Scenario.from_row(rows[0]["s"]) if rows else None


async def listed(guard: Guard) -> list[Scenario]:
    """The scenarios the caller may see, by name (then creation)."""
    return [Scenario.from_row(r["s"]) for r in await guard.read(_LIST, {})]


async def require(guard: Guard, scenario_id: str) -> Scenario:
    """The scenario, or :class:`ScenarioError` saying it does not exist (hidden or missing alike)."""
    found = await find(guard, scenario_id)
    if found is None:
        raise ScenarioError(NOT_FOUND)
    return found


async def create(
    store: ScenarioStore,
    guard: Guard,
    *,
    name: str,
    owner: str,
    authorizations: Authorizations,
    label: str,
    producers: Sequence[str],
    base: datetime | None,
    description: str = "",
) -> Scenario:
    """Create a scenario named ``name`` (a display name: any other scenario may have it too), owned by
    ``owner`` (holding ``authorizations``), labelled ``label`` (which the owner must satisfy: nobody labels
    data so that they could not see it), into which ``producers`` may publish; ``base``: the live graph's
    time it starts from (None: now). It gets a fresh id (:func:`new_id`), which the result carries."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ScenarioError(f"scenario name must be 1 to {MAX_NAME} printable characters")
    try:
        tree = parse(label)
    except LabelError as exc:
        raise ScenarioError(f"label {label!r} is not a valid label: {exc}") from None
    text = canonical(tree)
    if not may_assign(authorizations, tree):
        raise ScenarioError(f"you do not satisfy the label {text!r}, so you may not assign it")
    wanted = sorted(dict.fromkeys(p.strip() for p in producers))
    if len(wanted) > MAX_PRODUCERS or not all(wanted):
        raise ScenarioError(f"producers must be at most {MAX_PRODUCERS} non-empty names")
    if base is not None and base.utcoffset() is None:
        raise ScenarioError("baseTime must have a time zone")
    if base is not None and base > datetime.now(UTC):
        # A base in the future would move as the live graph does until then.
        raise ScenarioError("baseTime must not be in the future")
    lid = label_id(text)
    scenario_id = new_id()
    props = {
        "id": scenario_id,
        "name": name,
        "owner": owner,
        LABEL: lid,
        "producers": wanted,
        "base": base,
        "description": description.strip()[:500],
    }
    await store.create(props, text)
    await guard.refresh()
    return await require(guard, scenario_id)


async def delete(store: ScenarioStore, guard: Guard, scenario_id: str, owner: str) -> None:
    """Delete the scenario: only its owner may, and only one the owner may see."""
    found = await find(guard, scenario_id)
    if found is None:
        raise ScenarioError(NOT_FOUND)
    if found.owner != owner:
        raise ScenarioError(f"only the owner may delete scenario {scenario_id!r}")
    await store.delete(scenario_id)


# --------------------------------------------------------------------------------------- the overlay

# Per (scenario, mRID): the scenario record, the scenario's latest version of the object, and (when the
# scenario holds none) the object's base version, as the live graph had it at the scenario's base time.
_READ_OVERLAY: Final = cypher(
    """
UNWIND $keys AS k
OPTIONAL MATCH (sc:Scenario {id: k.s})
CALL (k) {
  OPTIONAL MATCH (o:ScenarioVersion {scenario: k.s, mrid: k.m})
  RETURN o ORDER BY o.@version DESC LIMIT 1
}
CALL (k, o, sc) {
  OPTIONAL MATCH (x:ObjectVersion {mrid: k.m}) USING INDEX SEEK x:ObjectVersion(mrid)
  WHERE o IS NULL AND sc IS NOT NULL AND x.@recorded <= sc.base.epochMillis
  RETURN x ORDER BY x.@version DESC LIMIT 1
}
RETURN k.s AS s, k.m AS m, sc {.*} AS sc, o {.*} AS o, x {.*} AS x
"""
)
_READ_LABELS: Final = "UNWIND $ids AS i MATCH (l:SecurityLabel {id: i}) RETURN l.id AS id, l.expr AS expr"
_WRITE_OVERLAY: Final = cypher(
    """
CALL () {
  UNWIND $security AS x
  MERGE (l:SecurityLabel {id: x.id})
  ON CREATE SET l.expr = x.expr
}
UNWIND $rows AS r
CREATE (v:ScenarioVersion)
SET v = r, v.@recorded = datetime()
"""
)
# Properties of a version that are the object's state (its attributes and point), not bookkeeping.
_STATE_KEYS_KEPT: Final = frozenset({X, Y})


def state_props(version: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes (and point) of a kept or overlay version."""
    return {
        k: v
        for k, v in version.items()
        if k not in ("mrid", "scenario") and (k not in BOOKKEEPING or k in _STATE_KEYS_KEPT)
    }


@dataclass
class OverlayOutcome:
    """What writing a batch's scenario events did: refusals as (event, reason, reason class)."""

    refused: list[tuple[Accepted, str, str]] = field(default_factory=list)
    applied: int = 0
    stale: int = 0
    ignored: int = 0


class OverlayWriter:
    """Writes scenario events as overlay versions, never touching the live graph (see the module text)."""

    def __init__(self, ontology: OntologyView) -> None:
        self.ontology = ontology

    async def write(
        self,
        tx: neo4j.AsyncManagedTransaction | neo4j.AsyncTransaction,
        events: Sequence[Accepted],
        book: LabelBook,
    ) -> OverlayOutcome:
        """Check and write ``events`` (each naming a scenario), in order, inside ``tx``."""
        out = OverlayOutcome()
        if not events:
            return out
        keys = list(dict.fromkeys((ev.scenario or "", ev.mrid) for ev in events))
        result = await tx.run(_READ_OVERLAY, keys=[{"s": s, "m": m} for s, m in keys])
        found = {(r["s"], r["m"]): r async for r in result}
        wanted = set()
        for r in found.values():
            for part in (r["sc"], r["o"], r["x"]):
                if part is not None and part.get(LABEL) is not None and part[LABEL] not in book:
                    wanted.add(part[LABEL])
        if wanted:
            labels = await tx.run(_READ_LABELS, ids=sorted(wanted))
            async for r in labels:
                book.learn(int(r["id"]), str(r["expr"]))
        # Per (scenario, mRID): the state the next event builds on (None: absent there) and the
        # scenario's latest version number of it (None: it holds none yet).
        state: dict[tuple[str, str], dict[str, Any] | None] = {}
        top: dict[tuple[str, str], int | None] = {}
        for key, r in found.items():
            prev = r["o"] if r["o"] is not None else r["x"]
            state[key] = None if prev is None or prev.get(DELETED) else prev
            top[key] = None if r["o"] is None else int(r["o"][VERSION])
        rows: list[dict[str, Any]] = []
        security: dict[int, str] = {}
        for ev in events:
            key = (ev.scenario or "", ev.mrid)
            reason = self._check_scenario(ev, found[key]["sc"], book)
            if reason is not None:
                out.refused.append((ev, reason, SCENARIO_REASON))
                continue
            if ev.kind not in ("upsert", "delete"):
                out.refused.append(
                    (
                        ev,
                        f"scenario: {ev.kind} events are not kept in scenarios (only upserts and deletes)",
                        SCENARIO_REASON,
                    )
                )
                continue
            latest = top[key]
            if latest is not None and ev.version <= latest:
                out.stale += 1
                continue
            live = state[key]
            if ev.kind == "delete" and live is None:
                out.ignored += 1
                continue
            if live is not None and live.get(OWNER) != ev.producer:
                out.refused.append(
                    (
                        ev,
                        f"ownership: {ev.mrid!r} belongs to another data product in scenario {ev.scenario!r}",
                        "ownership",
                    )
                )
                continue
            current = self._tree(book, live.get(LABEL)) if live is not None else None
            if live is not None and current is None:
                out.refused.append((ev, f"label: the label of {ev.mrid!r} cannot be read", "label"))
                continue
            new = None
            if ev.kind == "upsert":
                if ev.label_id is None or ev.label_text is None:
                    out.refused.append((ev, "label: the upsert carries no label", "label"))
                    continue
                book.learn(ev.label_id, ev.label_text)
                new = self._tree(book, ev.label_id)
            verdict = check_all(ev.rights, current, new)
            if not verdict.allowed:
                out.refused.append((ev, f"{verdict.reason} (in scenario {ev.scenario!r})", "label"))
                continue
            row = self._version(ev, live)
            if ev.kind == "upsert" and ev.label_id is not None and ev.label_text is not None:
                security[ev.label_id] = ev.label_text
            rows.append(row)
            state[key] = None if ev.kind == "delete" else row
            top[key] = ev.version
            out.applied += 1
        if rows:
            await tx.run(
                _WRITE_OVERLAY, rows=rows, security=[{"id": k, "expr": v} for k, v in security.items()]
            )
        return out

    @staticmethod
    def _tree(book: LabelBook, lid: Any) -> Label | None:
        return None if lid is None else book.tree(int(lid))

    def _check_scenario(
        self, ev: Accepted, scenario: Mapping[str, Any] | None, book: LabelBook
    ) -> str | None:
        """Why ``ev`` may not be written into its scenario (None: it may). Missing, not listing the
        producer and a label the producer does not satisfy are told in the same words: a producer learns
        nothing of a scenario it may not publish into, not even that it exists."""
        tree = None if scenario is None else self._tree(book, scenario.get(LABEL))
        if (
            scenario is None
            or ev.producer not in (scenario.get("producers") or ())
            or tree is None
            or not check_all(ev.rights, tree, None).allowed
        ):
            return refused_scenario(ev.scenario, ev.producer)
        return None

    def _version(self, ev: Accepted, live: Mapping[str, Any] | None) -> dict[str, Any]:
        """The overlay version ``ev`` leaves: ``live`` (the state it builds on) with its patch applied."""
        props: dict[str, Any] = {}
        refs: dict[str, list[str]] = {}
        label = ev.label_id
        if ev.kind == "delete":
            assert live is not None
            label = live.get(LABEL)
        else:
            if live is not None:
                props = state_props(live)
                for t, m in zip(live.get(REF_TYPES) or (), live.get(REF_TARGETS) or (), strict=True):
                    refs.setdefault(t, []).append(m)
            merged = {**props, **ev.props}
            props = {k: v for k, v in merged.items() if v is not None}
            for t, (_c, targets) in ev.rels.items():
                refs.pop(t, None)
                refs[t] = list(dict.fromkeys(targets))
        return {
            **props,
            "mrid": ev.mrid,
            "scenario": ev.scenario,
            VERSION: ev.version,
            DELETED: ev.kind == "delete",
            CLASS: ev.cls,
            DOMAIN: self.ontology.domain(ev.cls),
            LABEL: label,
            OWNER: ev.producer,
            PRODUCER: ev.producer,
            EVENT_ID: ev.event_id,
            VALID_FROM: ev.event_time,
            REF_TYPES: [t for t, targets in refs.items() for _ in targets],
            REF_TARGETS: [m for targets in refs.values() for m in targets],
        }
