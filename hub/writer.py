"""Apply one batch of validated events to the graph in one Neo4j transaction.

The batch is first folded in Python into its net effect per object (:func:`fold`), starting from the
stored state of every object the batch names (one read at the start of the transaction). The net effect
is then written with a handful of parameterised ``UNWIND`` statements grouped by class (labels cannot be
parameters) and by relationship type, never one statement per event. The folding reproduces, exactly,
what applying the events one after another would leave behind:

* upsert (PATCH): applies only when its version is newer than the stored ``_version``. Given attributes are
  set (``None`` removes), given references replace that association's edges, the rest is kept. The node's
  labels become the class's ontology labels. The first producer to publish an mRID owns it (``_owner``).
* delete: removes every relationship and all attributes and class labels, and leaves ``Entity:Tombstone``
  holding the version, so an older upsert that arrives late cannot resurrect the object. A *newer* upsert
  after a delete does recreate it: versions only grow per object, so a producer that publishes a higher
  version means the object is back (it starts empty; other objects' references to it are not restored).
* measurement: attributes only, and only on a live node (not on a stub or tombstone, nor before the node
  exists); otherwise the event is ignored and counted.
* a reference to an mRID that is not live creates a stub (``Entity:Stub`` plus the association target's
  labels, version 0, admin-only label) that the owner's later upsert completes. A reference to a deleted
  object creates no edge (the target is gone; an edge to a tombstone would resurrect it in every path).

Stale events (version not newer) are ignored and counted. Events of a producer that does not own the
object are returned as rejected so the caller can dead-letter them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import neo4j

from hub.changes import ChangeKind
from hub.graph import ENTITY, STUB, STUB_LABEL_TEXT, TOMBSTONE, cypher_name, label_clause
from hub.labels import label_id

UPSERT: Final[ChangeKind] = "upsert"
DELETE: Final[ChangeKind] = "delete"
MEASUREMENT: Final[ChangeKind] = "measurement"

ABSENT: Final = 0
STUBBED: Final = 1
LIVE: Final = 2
DEAD: Final = 3

STUB_LABEL_ID: Final = label_id(STUB_LABEL_TEXT)

# A managed (``execute_write``) or explicit transaction: the writer only runs statements in it.
AsyncTx = neo4j.AsyncManagedTransaction | neo4j.AsyncTransaction
_NEVER_DROPPED: Final = frozenset({ENTITY, TOMBSTONE})
_STATIC: Final = frozenset({STUB, TOMBSTONE})


class OntologyView(Protocol):
    """What the writer needs from :class:`ontology.model.Ontology`."""

    def neo4j_labels(self, name: str) -> tuple[str, ...]: ...

    def ancestors(self, name: str) -> tuple[str, ...]: ...

    def domain(self, name: str) -> str: ...


@dataclass(slots=True)
class Accepted:
    """A valid, authorised event, reduced to what the graph needs.

    ``props`` maps ontology property keys (plus ``_x``/``_y`` for a point) to values, ``None`` removing.
    ``rels`` maps a relationship type to (target class, target mRIDs) and replaces that type's edges.
    ``ref`` is an opaque handle the caller uses to find the source message again.
    """

    mrid: str
    kind: str
    version: int
    cls: str
    props: dict[str, Any]
    rels: dict[str, tuple[str, list[str]]]
    label_id: int | None
    label_text: str | None
    producer: str
    event_id: str
    event_time: datetime
    ref: Any = None


@dataclass(frozen=True, slots=True)
class Stored:
    """An object's state in the graph before the batch."""

    status: int
    version: int
    owner: str | None
    cls: str | None
    labels: tuple[str, ...]
    label_id: int | None


@dataclass(frozen=True, slots=True)
class PendingChange:
    mrid: str
    cls: str
    change: ChangeKind
    version: int
    label_id: int | None
    event_time: datetime | None
    event_id: str | None
    producer: str | None


@dataclass
class Plan:
    """The net effect of a batch, ready to be written."""

    deletes: dict[frozenset[str], list[dict[str, Any]]] = field(default_factory=dict)
    upserts: dict[tuple[str, frozenset[str]], list[dict[str, Any]]] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    stubs: dict[str, list[str]] = field(default_factory=dict)
    rels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    changes: list[PendingChange] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)
    stale: Counter[str] = field(default_factory=Counter)
    ignored: int = 0
    rejected: list[tuple[Accepted, str]] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return (
            sum(map(len, self.deletes.values()))
            + sum(map(len, self.upserts.values()))
            + len(self.measurements)
            + sum(map(len, self.stubs.values()))
        )


class _Track:
    """One object's evolution through the batch."""

    __slots__ = (
        "cls",
        "delete",
        "has_upsert",
        "label",
        "last",
        "owner",
        "props",
        "refs",
        "rels",
        "status",
        "transitions",
        "version",
    )

    def __init__(self, stored: Stored | None) -> None:
        self.status = stored.status if stored else ABSENT
        self.version = stored.version if stored else 0
        self.owner = stored.owner if stored else None
        self.cls = stored.cls if stored else None
        self.label: int | None = stored.label_id if stored else None
        self.delete: Accepted | None = None
        self.has_upsert = False
        self.props: dict[str, Any] | None = None
        self.rels: dict[str, tuple[int, list[str]]] = {}
        self.last: Accepted | None = None
        # (batch index, became a tombstone?) whenever the object enters or leaves the tombstone state;
        # decides whether an edge set at some index to this object survives the batch.
        self.transitions: list[tuple[int, bool]] = []
        self.refs = 0


def fold(
    events: Sequence[Accepted],
    stored: Mapping[str, Stored],
    ontology: OntologyView,
    droppable: frozenset[str],
) -> Plan:
    """Net effect of ``events`` (in consumption order) on the objects in ``stored``.

    ``droppable`` is the set of labels the writer may remove from a node (the ontology's labels plus
    ``Stub``): labels read back from the graph are only ever echoed into Cypher through this filter.
    """
    plan = Plan()
    tracks: dict[str, _Track] = {}
    targets: dict[str, str] = {}
    for index, ev in enumerate(events):
        mrid = ev.mrid
        tr = tracks.get(mrid)
        if tr is None:
            tr = tracks[mrid] = _Track(stored.get(mrid))
        if tr.owner is not None and tr.owner != ev.producer:
            plan.rejected.append((ev, f"ownership: mRID {mrid!r} is owned by producer {tr.owner!r}"))
            continue
        kind = ev.kind
        if ev.version <= tr.version:
            plan.stale[kind] += 1
            continue
        if kind == MEASUREMENT:
            if tr.status != LIVE:
                plan.ignored += 1
                continue
            if tr.props is None:
                tr.props = dict(ev.props)
            else:
                tr.props.update(ev.props)
        elif kind == UPSERT:
            if tr.status == DEAD:
                tr.transitions.append((index, False))
            if tr.owner is None:
                tr.owner = ev.producer
            tr.status = LIVE
            tr.cls = ev.cls
            tr.has_upsert = True
            tr.label = ev.label_id
            if ev.label_id is not None and ev.label_text is not None:
                plan.labels[ev.label_id] = ev.label_text
            if tr.props is None:
                tr.props = dict(ev.props)
            else:
                tr.props.update(ev.props)
            for rel_type, (target_cls, mrids) in ev.rels.items():
                tr.rels[rel_type] = (index, mrids)
                for target in mrids:
                    targets.setdefault(target, target_cls)
        else:
            if tr.status != DEAD:
                tr.transitions.append((index, True))
            if tr.owner is None:
                tr.owner = ev.producer
            tr.status = DEAD
            tr.delete = ev
            tr.has_upsert = False
            tr.props = None
            tr.rels = {}
            tr.label = None
        tr.version = ev.version
        tr.last = ev
        plan.applied[kind] += 1

    def survives(target: str, index: int) -> bool:
        """Whether an edge set at ``index`` to ``target`` is still there at the end of the batch."""
        tr = tracks.get(target)
        if tr is None:
            found = stored.get(target)
            return found is None or found.status != DEAD
        state = stored[target].status == DEAD if target in stored else False
        for at, dead in tr.transitions:
            if at < index:
                state = dead
            elif dead:
                return False
        return not state

    for mrid, tr in tracks.items():
        last = tr.last
        if last is None:
            continue
        before = stored.get(mrid)
        # Stub and Tombstone are removed by name in every statement, so they never split a group.
        old_labels = frozenset(before.labels).intersection(droppable) - _STATIC if before else frozenset()
        if tr.delete is not None:
            d = tr.delete
            plan.deletes.setdefault(old_labels, []).append(
                {
                    "mrid": mrid,
                    "v": d.version,
                    "c": d.cls,
                    "pr": d.producer,
                    "e": d.event_id,
                    "t": _millis(d.event_time),
                }
            )
        if tr.status == LIVE:
            props = tr.props or {}
            change: ChangeKind
            if tr.has_upsert:
                cls = tr.cls or last.cls
                kept = old_labels if tr.delete is None else frozenset()
                drop = kept.difference(ontology.neo4j_labels(cls))
                plan.upserts.setdefault((cls, drop), []).append(
                    {
                        "mrid": mrid,
                        "v": tr.version,
                        "p": props,
                        "pr": last.producer,
                        "e": last.event_id,
                        "t": _millis(last.event_time),
                        "l": tr.label,
                    }
                )
                change = UPSERT
            else:
                plan.measurements.append(
                    {
                        "mrid": mrid,
                        "v": tr.version,
                        "p": props,
                        "pr": last.producer,
                        "e": last.event_id,
                        "t": _millis(last.event_time),
                    }
                )
                change = MEASUREMENT
            for rel_type, (index, mrids) in tr.rels.items():
                alive = [t for t in dict.fromkeys(mrids) if survives(t, index)]
                plan.rels.setdefault(rel_type, []).append({"s": mrid, "t": alive})
            plan.changes.append(
                PendingChange(
                    mrid,
                    tr.cls or last.cls,
                    change,
                    tr.version,
                    tr.label,
                    last.event_time,
                    last.event_id,
                    last.producer,
                )
            )
        elif tr.status == DEAD:
            plan.changes.append(
                PendingChange(
                    mrid, last.cls, DELETE, tr.version, None, last.event_time, last.event_id, last.producer
                )
            )

    for target, target_cls in targets.items():
        tr = tracks.get(target)
        before = stored.get(target)
        status = tr.status if tr is not None else (before.status if before else ABSENT)
        if status in (ABSENT, STUBBED):
            plan.stubs.setdefault(target_cls, []).append(target)
            if before is None:
                plan.labels[STUB_LABEL_ID] = STUB_LABEL_TEXT
                plan.changes.append(
                    PendingChange(target, target_cls, "stub", 0, STUB_LABEL_ID, None, None, None)
                )
    return plan


def _millis(moment: datetime) -> int:
    # Rows carry epoch milliseconds, turned into a datetime by Cypher: the driver packs an int far faster
    # than a datetime, and this is on the per-event path.
    return int(moment.timestamp() * 1000)


# ------------------------------------------------------------------------------------------ Cypher

READ_STATE: Final = """
UNWIND $mrids AS m
MATCH (n:Entity {mrid: m})
RETURN n.mrid AS mrid, n._version AS v, n._owner AS o, n._class AS c, labels(n) AS ls, n._label AS l
"""

MERGE_LABELS: Final = """
UNWIND $labels AS x
MERGE (s:SecurityLabel {id: x.id})
ON CREATE SET s.expr = x.expr
"""

MEASURE: Final = """
UNWIND $rows AS r
MATCH (n:Entity {mrid: r.mrid})
WHERE n._version < r.v AND NOT n:Stub AND NOT n:Tombstone
SET n += r.p, n._version = r.v, n._producer = r.pr, n._event_id = r.e,
    n._event_time = datetime({epochMillis: r.t}), n._updated = datetime()
"""


def _upsert_cypher(labels: tuple[str, ...], drop: frozenset[str]) -> str:
    removed = label_clause("n", drop | {STUB, TOMBSTONE})
    return f"""
UNWIND $rows AS r
MERGE (n:Entity {{mrid: r.mrid}})
WITH n, r WHERE coalesce(n._version, -1) < r.v
SET n += r.p, {label_clause("n", labels)}, n._class = $cls, n._domain = $domain, n._version = r.v,
    n._owner = coalesce(n._owner, r.pr), n._producer = r.pr, n._event_id = r.e,
    n._event_time = datetime({{epochMillis: r.t}}), n._updated = datetime(), n._label = r.l
REMOVE {removed}
"""


def _delete_cypher(drop: frozenset[str]) -> str:
    remove = label_clause("n", drop | {STUB})
    return f"""
UNWIND $rows AS r
MERGE (n:Entity {{mrid: r.mrid}})
WITH n, r WHERE coalesce(n._version, -1) < r.v
CALL (n) {{ MATCH (n)-[x]-() DELETE x }}
SET n = {{mrid: r.mrid, _version: r.v, _class: r.c, _owner: coalesce(n._owner, r.pr), _producer: r.pr,
          _event_id: r.e, _event_time: datetime({{epochMillis: r.t}}), _updated: datetime()}}
SET n:Tombstone
REMOVE {remove}
"""


def _stub_cypher(labels: tuple[str, ...]) -> str:
    return f"""
UNWIND $mrids AS m
MERGE (n:Entity {{mrid: m}})
ON CREATE SET n:Stub, n._version = 0, n._label = $stub_label, n._class = $cls, n._domain = $domain,
    n._updated = datetime()
WITH n WHERE n:Stub
SET {label_clause("n", labels)}, n._class = CASE WHEN n._class IN $ancestors THEN $cls ELSE n._class END
"""


def _rel_cypher(rel_type: str) -> str:
    name = cypher_name(rel_type)
    return f"""
UNWIND $rows AS r
MATCH (s:Entity {{mrid: r.s}})
CALL (s) {{ MATCH (s)-[x:{name}]->() DELETE x }}
WITH s, r
UNWIND r.t AS t
MATCH (d:Entity {{mrid: t}})
CREATE (s)-[:{name}]->(d)
"""


def _stored_from_record(record: Mapping[str, Any]) -> Stored:
    labels = tuple(record["ls"])
    status = DEAD if TOMBSTONE in labels else STUBBED if STUB in labels else LIVE
    return Stored(status, int(record["v"] or 0), record["o"], record["c"], labels, record["l"])


class GraphWriter:
    """Writes batches; statements are built once per class / relationship type and cached."""

    def __init__(self, ontology: Any, *, database: str | None = None) -> None:
        self.ontology = ontology
        self.database = database
        labels: set[str] = {STUB}
        for name in ontology.classes:
            labels.update(ontology.neo4j_labels(name))
        self.droppable = frozenset(labels - _NEVER_DROPPED)
        self._upsert: dict[tuple[str, frozenset[str]], str] = {}
        self._delete: dict[frozenset[str], str] = {}
        self._stub: dict[str, str] = {}
        self._rel: dict[str, str] = {}

    def mrids_of(self, events: Iterable[Accepted]) -> list[str]:
        seen: dict[str, None] = {}
        for ev in events:
            seen[ev.mrid] = None
            for _cls, targets in ev.rels.values():
                for t in targets:
                    seen[t] = None
        return list(seen)

    async def read_state(self, tx: AsyncTx, mrids: list[str]) -> dict[str, Stored]:
        result = await tx.run(READ_STATE, mrids=mrids)
        return {rec["mrid"]: _stored_from_record(rec) async for rec in result}

    async def apply(self, tx: AsyncTx, events: Sequence[Accepted]) -> Plan:
        """Read, fold and write ``events`` inside ``tx`` (the caller commits)."""
        stored = await self.read_state(tx, self.mrids_of(events))
        plan = fold(events, stored, self.ontology, self.droppable)
        await self.write(tx, plan)
        return plan

    async def write(self, tx: AsyncTx, plan: Plan) -> None:
        ont = self.ontology
        if plan.labels:
            await _run(tx, MERGE_LABELS, labels=[{"id": k, "expr": v} for k, v in plan.labels.items()])
        for drop, rows in plan.deletes.items():
            query = self._delete.get(drop)
            if query is None:
                query = self._delete[drop] = _delete_cypher(drop)
            await _run(tx, query, rows=rows)
        for (cls, drop), rows in plan.upserts.items():
            query = self._upsert.get((cls, drop))
            if query is None:
                query = self._upsert[(cls, drop)] = _upsert_cypher(ont.neo4j_labels(cls), drop)
            await _run(tx, query, rows=rows, cls=cls, domain=ont.domain(cls))
        if plan.measurements:
            await _run(tx, MEASURE, rows=plan.measurements)
        for cls, mrids in plan.stubs.items():
            query = self._stub.get(cls)
            if query is None:
                query = self._stub[cls] = _stub_cypher(ont.neo4j_labels(cls))
            await _run(
                tx,
                query,
                mrids=mrids,
                cls=cls,
                domain=ont.domain(cls),
                stub_label=STUB_LABEL_ID,
                ancestors=list(ont.ancestors(cls)[1:]),
            )
        for rel_type, rows in plan.rels.items():
            query = self._rel.get(rel_type)
            if query is None:
                query = self._rel[rel_type] = _rel_cypher(rel_type)
            await _run(tx, query, rows=rows)


async def _run(tx: AsyncTx, query: str, **params: Any) -> None:
    result = await tx.run(query, params)
    await result.consume()
