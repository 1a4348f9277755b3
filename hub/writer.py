"""Apply one batch of validated events to the graph in one Neo4j transaction.

The batch is first folded in Python into its net effect per object (:func:`fold`), starting from the
stored state of every object the batch names (one read at the start of the transaction). The net effect
is then written with one parameterised statement, whatever the mix of classes and relationship types:
an ``UNWIND`` each for security labels, deletes, upserts, measurements, stubs, relationships and the
source offsets, as unit subqueries run in that order. Neo4j labels and relationship types are dynamic
(``SET n:$(...)``, ``CREATE ()-[:$(...)]->()``) and their values come only from the ontology (class
labels, association types) or from stored labels filtered through the ontology's, never from event
text. Every lookup goes through the ``Entity.mrid`` uniqueness constraint, as a seek whatever the statistics
the statement was planned on (see ``REPLAN_SKIP``).

The folding reproduces, exactly, what applying the events one after another would leave behind:

* upsert (PATCH): applies only when its version is newer than the stored ``_version``. Given attributes are
  set (``None`` removes), given references replace that association's edges, the rest is kept. The node's
  labels become the class's ontology labels. The first producer to publish an mRID owns it (``_owner``);
  a stub belongs to nobody until then.
* delete: of an object that is absent or only a stub, is ignored and claims nothing: no owner and no
  tombstone, so nobody can reserve an mRID or block its owner's first publication with a high version.
  Of a published object, removes every relationship and all attributes and class labels, and leaves
  ``Entity:Tombstone`` holding the version, so an older upsert that arrives late cannot resurrect the
  object. A *newer* upsert after a delete does recreate it: versions only grow per object, so a producer
  that publishes a higher version means the object is back (it starts empty; other objects' references
  to it are not restored).
* measurement: attributes only, and only on a live node (not on a stub or tombstone, nor before the node
  exists); otherwise the event is ignored and counted.
* a reference to an mRID that is not live creates a stub (``Entity:Stub`` plus the association target's
  labels, version 0, admin-only label) that the owner's later upsert completes. A reference to a deleted
  object creates no edge (the target is gone; an edge to a tombstone would resurrect it in every path).

History: every upsert and delete the fold applies is also kept as a version node, whole (the object's
previous version with the event's patch applied), by the same statement (see :mod:`hub.history` and the
history parts below); measurements and stubs are not versions. Measurements are kept as samples instead
(:mod:`hub.measurement_history`): per object and interval of ``sample_ms`` the last numeric readings, in
the same statement, labelled as their object is. The fold builds each version itself when
it knows the previous one (a new object, one after a delete, or one whose latest version this writer
wrote: ``Stored.kept``, carried by the state cache), so the statement only creates it; otherwise the
statement reads the previous version and applies the batch's patches to it.

Stale events (version not newer) are ignored and counted. Events of a producer that does not own the
object, and writes the write check refuses (:mod:`hub.write_policy`: the writer must satisfy the object's
current label and its new one, and may widen who sees it only with the declassification right), are
returned as rejected so the caller can dead-letter them. The fold also lists the audit records of its
decisions (ownership claimed or refused, labels changed, writes refused), for the caller to write once the
batch has committed.

Replays change nothing: events that name their Kafka position (``source`` = topic and partition,
``offset``) are skipped when the graph already holds that partition at or past their offset. The position
is an ``(:IngestOffset {source, offset})`` node written in the batch's own transaction, so it moves exactly
when the batch commits. Versions alone cannot make every replay harmless: a measurement ignored because
its object did not exist yet would be applied when replayed after an older-versioned upsert created the
object. (A topic deleted and created again under the same name restarts its offsets: remove its
``IngestOffset`` nodes then.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

import neo4j

from hub import count_keys
from hub.changes import ChangeKind, ChangeRecord
from hub.graph import ENTITY, STUB, STUB_LABEL_ID, STUB_LABEL_TEXT, TOMBSTONE, cypher_name
from hub.graph_schema import cypher
from hub.labels import Label
from hub.scenarios import OverlayWriter
from hub.state_cache import StateCache, Stored, VersionState
from hub.write_input import Accepted, LabelBook, OntologyView
from hub.write_policy import check_all

UPSERT: Final[ChangeKind] = "upsert"
DELETE: Final[ChangeKind] = "delete"
MEASUREMENT: Final[ChangeKind] = "measurement"

ABSENT: Final = 0
STUBBED: Final = 1
LIVE: Final = 2
DEAD: Final = 3


# A managed (``execute_write``) or explicit transaction: the writer only runs statements in it.
AsyncTx = neo4j.AsyncManagedTransaction | neo4j.AsyncTransaction
_NEVER_DROPPED: Final = frozenset({ENTITY, TOMBSTONE})


# Claims per ``ownership.claimed`` audit record. A record per claim cost the worker a log line and an audit
# message per created object, which at bulk-load rates was more than the graph write itself; a record per
# batch keeps every claim while one record stays far below Kafka's message size limit.
CLAIMS_PER_AUDIT_RECORD: Final = 100


class Refusal(NamedTuple):
    """An event the fold refused: why (naming the mRID and values), and a word for metrics."""

    event: Accepted
    reason: str
    reason_class: str
    # Further dead-letter headers (a contract breach names its contract, version and clause).
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Plan:
    """The net effect of a batch, ready to be written: one row per object and statement.

    The statement removes the labels a new state does not carry from the node itself, under its lock
    (see "Locks" below); ``stubs`` maps a stub's mRID to the class its referrer expects;
    ``rels`` rows replace a source's edges per relationship type (``{"s": mrid, "v": version,
    "r": {type: [mrid]}}``), only on a source at the version the plan leaves it at.
    """

    deletes: list[dict[str, Any]] = field(default_factory=list)
    upserts: list[dict[str, Any]] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    # Per object, the versions it gains, for hub.history's version nodes: whole, built here, when the
    # object's latest kept version is known (``versions``, see _whole_versions), else as patches on that
    # version, which the statement reads (``history``, see _history_row).
    versions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Per measured object, its samples for hub.measurement_history: ``{"m": mrid, "v": version the plan
    # leaves it at, "s": [{"b": interval start, "t": time (both epoch ms), "p": numeric readings}]}``.
    samples: list[dict[str, Any]] = field(default_factory=list)
    stubs: dict[str, str] = field(default_factory=dict)
    rels: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    changes: list[ChangeRecord] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)
    stale: Counter[str] = field(default_factory=Counter)
    ignored: int = 0
    rejected: list[Refusal] = field(default_factory=list)
    # (action, fields) of each security decision, for hub.audit.record once the plan has committed.
    audits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Events skipped because the graph already holds their partition past their offset.
    replayed: int = 0
    # Source partition -> highest offset the batch covers, stored with the batch.
    positions: dict[str, int] = field(default_factory=dict)
    # The state of every object the plan writes, as it will be read once the plan has committed: what
    # the next batch may be folded against before this one is confirmed (see :meth:`GraphWriter.prepare`).
    after: dict[str, Stored] = field(default_factory=dict)
    # Events that name a scenario (hub/scenarios.py): written as overlay versions, never to the live graph.
    scenario_events: list[Accepted] = field(default_factory=list)
    # Seconds the database reports for the write statement (available plus consumed): its own time,
    # without the network or the worker's, so a slow plan shows here first. Set by GraphWriter.write.
    db_seconds: float = 0.0

    @property
    def writes(self) -> int:
        return len(self.deletes) + len(self.upserts) + len(self.measurements) + len(self.stubs)


class _Track:
    """One object's evolution through the batch."""

    __slots__ = (
        "cls",
        "delete",
        "gone_label",
        "has_upsert",
        "history",
        "label",
        "last",
        "owner",
        "props",
        "rels",
        "samples",
        "status",
        "transitions",
        "version",
    )

    def __init__(self, stored: Stored | None) -> None:
        if stored is None:
            self.status = ABSENT
            self.version = 0
            self.owner: str | None = None
            self.cls: str | None = None
            self.label: int | None = None
        else:
            self.status, self.version, self.owner, self.cls, _, self.label, _ = stored
        # The label the object had just before its last delete: who could see it learns it is gone.
        self.gone_label: int | None = None
        self.delete: Accepted | None = None
        self.has_upsert = False
        self.props: dict[str, Any] | None = None
        self.rels: dict[str, tuple[int, list[str]]] = {}
        self.last: Accepted | None = None
        # (batch index, became a tombstone?) whenever the object enters or leaves the tombstone state;
        # decides whether an edge set at some index to this object survives the batch.
        self.transitions: list[tuple[int, bool]] = []
        # Every upsert and delete applied, in order, with the label of the version it leaves (a delete's
        # is the label of what it deleted): the versions history keeps (see _history_row).
        self.history: list[tuple[Accepted, int | None]] = []
        # The numeric readings of each measurement applied since the last delete: (time in epoch ms, values).
        self.samples: list[tuple[int, dict[str, float]]] = []


def _refuse(
    plan: Plan,
    ev: Accepted,
    reason: str,
    reason_class: str,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> None:
    plan.rejected.append(Refusal(ev, reason, reason_class, headers))
    action = "ownership.refused" if reason_class == "ownership" else "write.refused"
    plan.audits.append(
        (
            action,
            {
                "reason": reason,
                "reason_class": reason_class,
                "producer": ev.producer,
                "subject": ev.on_behalf_of,
                "mrid": ev.mrid,
                "class": ev.cls,
                "kind": ev.kind,
                "version": ev.version,
                "event_id": ev.event_id,
            },
        )
    )


def fold(
    events: Sequence[Accepted],
    stored: Mapping[str, Stored],
    ontology: OntologyView,
    book: LabelBook | None = None,
    *,
    history: bool = True,
    sample_ms: int = 0,
) -> Plan:
    """Net effect of ``events`` (in consumption order) on the objects in ``stored``.

    ``book`` holds the texts of the stored objects' labels (the events' own are learned here);
    ``history``: list the versions to keep in ``Plan.history``; ``sample_ms``: the interval of the
    measurement samples to keep in ``Plan.samples`` (0: none).
    """
    plan = Plan()
    book = book if book is not None else LabelBook()
    for ev in events:
        if ev.label_id is not None and ev.label_text is not None and ev.label_id not in book:
            book.learn(ev.label_id, ev.label_text)
    tracks: dict[str, _Track] = {}
    targets: dict[str, str] = {}
    # Ownership claimed, by (producer, HTTP caller): every first publication claims its mRID, so a bulk
    # load claims one per event; one audit record per batch and caller, not per event (see below).
    claims: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    # Labels a live object or a new stub of a class ends with, for Plan.after (per class, not per object).
    live_labels: dict[str, tuple[str, ...]] = {}
    stub_labels: dict[str, tuple[str, ...]] = {}
    for index, ev in enumerate(events):
        mrid = ev.mrid
        tr = tracks.get(mrid)
        if tr is None:
            tr = tracks[mrid] = _Track(stored.get(mrid))
        if tr.owner is not None and tr.owner != ev.producer:
            _refuse(
                plan,
                ev,
                f"ownership: mRID {mrid!r} is owned by producer {tr.owner!r}, not {ev.producer!r}",
                "ownership",
            )
            continue
        kind = ev.kind
        if ev.version <= tr.version:
            plan.stale[kind] += 1
            continue
        if kind != UPSERT and tr.status != LIVE and not (kind == DELETE and tr.status == DEAD):
            # A measurement of nothing, or a delete of an object nobody has published: nothing to change,
            # and nothing claimed (a tombstone here would let anyone reserve an mRID, or block its owner's
            # first versions).
            plan.ignored += 1
            continue
        # The write check: the current label only binds a published object (a stub's is the hub's own
        # placeholder, a tombstone's object is gone); an upsert sets its new label.
        current: Label | None = None
        if tr.status == LIVE and tr.label is not None:
            current = book.tree(tr.label)
            if current is None:
                _refuse(
                    plan,
                    ev,
                    f"label: the stored label (id {tr.label}) of mRID {mrid!r} is unknown or unreadable, "
                    "so no write to it can be judged",
                    "label",
                )
                continue
        new: Label | None = None
        if kind == UPSERT and ev.label_id is not None:
            new = book.tree(ev.label_id)
            if new is None:
                _refuse(plan, ev, f"label: the event's label {ev.label_text!r} does not parse", "label")
                continue
        verdict = check_all(ev.rights, current, new)
        if verdict.reason is not None:
            _refuse(plan, ev, f"{verdict.reason} (mRID {mrid!r}, producer {ev.producer!r})", "label")
            continue
        if kind == UPSERT and tr.status != LIVE and ev.on_create is not None:
            # The upsert creates the object (or brings it back): its contract's required attributes must
            # all be in it.
            breach = ev.on_create.missing(ev.props)
            if breach is not None:
                _refuse(plan, ev, f"{breach.reason} (mRID {mrid!r})", "contract", breach.headers)
                continue
        if kind == UPSERT and tr.status == LIVE and tr.label != ev.label_id:
            plan.audits.append(
                (
                    "label.changed",
                    {
                        "mrid": mrid,
                        "class": ev.cls,
                        "old_label": book.text(tr.label),
                        "new_label": ev.label_text,
                        "producer": ev.producer,
                        "subject": ev.on_behalf_of,
                        "declassified": verdict.widens,
                        "version": ev.version,
                        "event_id": ev.event_id,
                    },
                )
            )
        if kind == MEASUREMENT:
            if sample_ms > 0:
                readings = _readings(ev.props)
                if readings:
                    tr.samples.append((_millis(ev.event_time), readings))
            if tr.props is None:
                tr.props = dict(ev.props)
            else:
                tr.props.update(ev.props)
        elif kind == UPSERT:
            if tr.status == DEAD:
                tr.transitions.append((index, False))
            if tr.owner is None:
                tr.owner = ev.producer
                claims.setdefault((ev.producer, ev.on_behalf_of), []).append(
                    {
                        "mrid": mrid,
                        "class": ev.cls,
                        "label": ev.label_text,
                        "was_stub": tr.status == STUBBED,
                        "version": ev.version,
                        "event_id": ev.event_id,
                    }
                )
            tr.status = LIVE
            tr.cls = ev.cls
            tr.has_upsert = True
            tr.label = ev.label_id
            tr.history.append((ev, ev.label_id))
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
                    # From here on a missing target is a stub (admin-only), should it be deleted later on.
                    target_tr = tracks.get(target)
                    if target_tr is None:
                        if target in stored:
                            continue
                        target_tr = tracks[target] = _Track(None)
                    if target_tr.status == ABSENT:
                        target_tr.status = STUBBED
                        target_tr.label = STUB_LABEL_ID
        else:
            if tr.status != DEAD:
                tr.transitions.append((index, True))
            tr.gone_label = tr.label
            tr.history.append((ev, tr.label))
            tr.status = DEAD
            tr.delete = ev
            tr.has_upsert = False
            tr.props = None
            tr.rels = {}
            tr.samples = []
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
        # The object's latest kept version after the batch, when known here (see Stored.kept).
        kept = before.kept if before is not None else None
        if history and tr.history:
            base = _base(before, tr.history[0][0])
            if base is None:
                plan.history.append(_history_row(mrid, tr.history))
                kept = None
            else:
                label_before = before.label_id if base is not _NO_VERSION and before is not None else None
                row, kept = _whole_versions(mrid, tr.history, base, label_before)
                plan.versions.append(row)
        if tr.delete is not None:
            d = tr.delete
            plan.deletes.append(
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
                plan.upserts.append(
                    {
                        "mrid": mrid,
                        "v": tr.version,
                        "c": cls,
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
            if tr.samples:
                plan.samples.append({"m": mrid, "v": tr.version, "s": _samples(tr.samples, sample_ms)})
            if tr.rels:
                plan.rels.append(
                    {
                        "s": mrid,
                        "v": tr.version,
                        "r": {
                            rel_type: [t for t in dict.fromkeys(mrids) if survives(t, index)]
                            for rel_type, (index, mrids) in tr.rels.items()
                        },
                    }
                )
            plan.changes.append(
                ChangeRecord(
                    mrid,
                    tr.cls or last.cls,
                    change,
                    tr.version,
                    tr.label,
                    None,
                    last.event_time,
                    last.event_id,
                    last.producer,
                    before.label_id if before is not None else None,
                )
            )
            if tr.has_upsert:
                live_cls = tr.cls or last.cls
                labels = live_labels.get(live_cls) or live_labels.setdefault(
                    live_cls, (ENTITY, *ontology.neo4j_labels(live_cls))
                )
            else:
                # A measurement: class and labels stay as they were.
                live_cls = before.cls if before is not None and before.cls else last.cls
                labels = before.labels if before is not None else (ENTITY,)
            plan.after[mrid] = Stored(LIVE, tr.version, tr.owner, live_cls, labels, tr.label, kept)
        elif tr.status == DEAD:
            plan.after[mrid] = Stored(DEAD, tr.version, tr.owner, last.cls, (ENTITY, TOMBSTONE), None)
            plan.changes.append(
                ChangeRecord(
                    mrid,
                    last.cls,
                    DELETE,
                    tr.version,
                    tr.gone_label,
                    None,
                    last.event_time,
                    last.event_id,
                    last.producer,
                    before.label_id if before is not None else None,
                )
            )

    for target, target_cls in targets.items():
        tr = tracks.get(target)
        before = stored.get(target)
        status = tr.status if tr is not None else (before.status if before else ABSENT)
        if status in (ABSENT, STUBBED):
            plan.stubs[target] = target_cls
            # As the stub statement leaves it: the referrer's class labels added, the class narrowed
            # when the referrer expects a subclass of the stub's.
            if before is not None and before.status == STUBBED:
                narrowed = before.cls in ontology.ancestors(target_cls)[1:]
                stub_cls = target_cls if narrowed or before.cls is None else before.cls
                grown = tuple(dict.fromkeys((*before.labels, *ontology.neo4j_labels(target_cls))))
                plan.after[target] = Stored(
                    STUBBED, before.version, before.owner, stub_cls, grown, before.label_id
                )
            else:
                plan.after[target] = Stored(
                    STUBBED,
                    0,
                    None,
                    target_cls,
                    stub_labels.get(target_cls)
                    or stub_labels.setdefault(target_cls, (ENTITY, STUB, *ontology.neo4j_labels(target_cls))),
                    STUB_LABEL_ID,
                )
            if before is None:
                plan.labels[STUB_LABEL_ID] = STUB_LABEL_TEXT
                plan.changes.append(
                    ChangeRecord(target, target_cls, "stub", 0, STUB_LABEL_ID, None, None, None, None)
                )
    for (producer, subject), claimed in claims.items():
        for start in range(0, len(claimed), CLAIMS_PER_AUDIT_RECORD):
            plan.audits.append(
                (
                    "ownership.claimed",
                    {
                        "producer": producer,
                        "subject": subject,
                        "claims": claimed[start : start + CLAIMS_PER_AUDIT_RECORD],
                    },
                )
            )
    return plan


_NO_VERSION: Final = VersionState({}, {})


def _base(before: Stored | None, first: Accepted) -> VersionState | None:
    """The version the batch's first applied event builds on, if known without reading it (None: read
    it). Stubs, tombstones and absent objects have none (a delete closes the history; a stub is no
    version), nor does anything a delete replaces; a live object's is known when this writer wrote it."""
    if first.kind == DELETE or before is None or before.status != LIVE:
        return _NO_VERSION
    return before.kept


def _whole_versions(
    mrid: str, applied: Sequence[tuple[Accepted, int | None]], base: VersionState, label_before: int | None
) -> tuple[dict[str, Any], VersionState | None]:
    """One object's new versions, each whole (``p``: every attribute, none ``None``; ``rt``/``rg``: every
    reference), built on ``base`` (whose label is ``label_before``; None: no base); and the last of them
    (None if it is a delete). ``lo`` is the lowest new version: those at or below a version already kept
    are skipped (a race with another writer of the object; replays are folded away before). ``x``: the
    version's references go to the reference index (see _indexes_references)."""
    versions: list[dict[str, Any]] = []
    props: Mapping[str, Any] = base.props
    refs: Mapping[str, list[str]] = base.refs
    previous = label_before
    for ev, label in applied:
        indexed = _indexes_references(ev, label, previous)
        previous = None if ev.kind == DELETE else label
        if ev.kind == DELETE:
            props, refs = {}, {}
        else:
            if ev.props:
                merged = {**props, **ev.props}
                props = {k: v for k, v in merged.items() if v is not None}
            if ev.rels:
                # Replaced types go last, as the statement that patches a stored version lists them.
                refs = {
                    **{t: m for t, m in refs.items() if t not in ev.rels},
                    **{t: list(dict.fromkeys(m)) for t, (_c, m) in ev.rels.items()},
                }
        versions.append(
            {
                "v": ev.version,
                "d": ev.kind == DELETE,
                "c": ev.cls,
                "l": label,
                "pr": ev.producer,
                "e": ev.event_id,
                "t": _millis(ev.event_time),
                "p": props,
                "rt": [t for t, targets in refs.items() for _ in targets],
                "rg": [m for targets in refs.values() for m in targets],
                "x": indexed,
            }
        )
    last = None if applied[-1][0].kind == DELETE else VersionState(props, refs)
    return {"m": mrid, "lo": applied[0][0].version, "vs": versions}, last


def _history_row(mrid: str, applied: Sequence[tuple[Accepted, int | None]]) -> dict[str, Any]:
    """One object's new versions, in order, for the history statement.

    Upserts are patches, so each version is written as the object's latest version before the batch
    (the base) with the batch's patches up to that version applied: ``p`` holds the attributes set or
    removed (``None``) since the batch began, ``rk`` the relationship types whose references were
    replaced and ``rt``/``rg`` those references. After a delete in the batch the base is empty (``f``),
    as the current graph's recreated object starts empty.
    """
    versions: list[dict[str, Any]] = []
    props: dict[str, Any] = {}
    refs: dict[str, list[str]] = {}
    fresh = False
    # The first version's label is compared with the base's by the statement (``i`` = 0), which reads it.
    previous: int | None = None
    for i, ev_label in enumerate(applied):
        ev, label = ev_label
        indexed = (
            _indexes_references(ev, label, previous) if i or fresh else ev.kind != DELETE and bool(ev.rels)
        )
        previous = None if ev.kind == DELETE else label
        if ev.kind == DELETE:
            fresh = True
            props, refs = {}, {}
        else:
            props = {**props, **ev.props} if props else ev.props
            if ev.rels:
                refs = {**refs, **{t: list(dict.fromkeys(m)) for t, (_c, m) in ev.rels.items()}}
        versions.append(
            {
                "v": ev.version,
                "d": ev.kind == DELETE,
                "f": fresh,
                "c": ev.cls,
                "l": label,
                "pr": ev.producer,
                "e": ev.event_id,
                "t": _millis(ev.event_time),
                "p": props,
                "rk": list(refs),
                "rt": [t for t, targets in refs.items() for _ in targets],
                "rg": [m for targets in refs.values() for m in targets],
                "x": indexed,
                "i": i,
            }
        )
    return {"m": mrid, "vs": versions}


def _indexes_references(ev: Accepted, label: int | None, previous: int | None) -> bool:
    """Whether a version's references go to the reference index (``VersionReference``, read by
    hub.history's walks in the past to find what referred to an object then): when the event states
    references, or the version starts the object's state (``previous`` None: created, recreated, or no
    version before), or its label is not the version before's. A version that does none of these has the
    references and label of the version before, which is indexed or has the same from the one before it,
    so every version the caller may see that refers to an object has an entry the caller may see with the
    same source and target. Description and measurement-like patches, the bulk of updates, add nothing."""
    if ev.kind == DELETE or label is None:
        return False
    return bool(ev.rels) or previous is None or label != previous


def _readings(props: Mapping[str, Any]) -> dict[str, float]:
    """The numeric values of a measurement (booleans and texts are states, not series)."""
    return {k: v for k, v in props.items() if type(v) in (int, float)}


def _samples(readings: Sequence[tuple[int, dict[str, float]]], sample_ms: int) -> list[dict[str, Any]]:
    """One sample per interval of ``sample_ms``: the readings in it merged in order (the last wins), at
    the time of the last of them."""
    by_bucket: dict[int, dict[str, Any]] = {}
    for t, values in readings:
        bucket = t - t % sample_ms
        found = by_bucket.get(bucket)
        if found is None:
            by_bucket[bucket] = {"b": bucket, "t": t, "p": dict(values)}
        else:
            found["t"] = max(found["t"], t)
            found["p"].update(values)
    return list(by_bucket.values())


def _millis(moment: datetime) -> int:
    # Rows carry epoch milliseconds, turned into a datetime by Cypher: the driver packs an int far faster
    # than a datetime, and this is on the per-event path.
    return int(moment.timestamp() * 1000)


# ------------------------------------------------------------------------------------------ Cypher
# Class labels, domains and ancestors travel as maps keyed by class name ($labels, $domains, $ancestors),
# holding only the batch's classes; rows name their class. Dynamic labels and types are parameters, so
# the statements' text never changes and each is planned once.

# The writer's statements find every node through the Entity.mrid uniqueness constraint, whatever the
# graph's size, so a plan made once is as good as any: REPLAN_SKIP keeps Neo4j from planning and
# compiling them again each time the label counts move (after a new plan, the write statement cost the
# database about twice its usual CPU for the next forty batches).
#
# Every MATCH by key says USING INDEX SEEK, because a plan is only as good as the statistics it was made
# on, and REPLAN_SKIP keeps it. A new database's mrid index is created empty by ensure_schema and sampled
# again only some seconds after it has changed; a statement planned in between, with nodes in the graph
# but the index said to be empty, estimates every lookup at 0 rows, and Neo4j (5.26, with a 512 MB page
# cache) then found an edge's target by scanning the whole index, a cost the same as a seek's at 0 rows.
# Pinned, that plan scanned the index once per edge for as long as the worker ran: 15.2 million db hits
# for a 500-event batch's 1,009 edges at 15,000 nodes, seconds a batch and growing with the graph
# (docs/performance.md, "Plans"). MERGE takes no hints; its lookups are the constraint's locking seeks.
REPLAN_SKIP: Final = "CYPHER replan=skip\n"

# Locks. Neo4j reads at read committed: a statement that checks a node (its version, Stub, Tombstone)
# and then writes it can have the check overtaken by another transaction that commits in between, and
# then writes on top of a state it never saw. With one worker nothing else writes the nodes; in a
# rebalance two workers briefly may (the new owner of a partition and the old one finishing a batch), and
# a reference from one partition may stub an object another partition is deleting. So every part that
# checks a node first takes its write lock (``SET n.@lock = true REMOVE n.@lock``: the documented way to
# lock in Cypher; nothing is stored), and the check then reads the state committed before the lock was
# granted. The labels a write removes are likewise read from the node under the lock, not taken from the
# fold's earlier view of it; only labels in $droppable (the ontology's and Stub) are ever removed. It is a
# map (label -> true), so each of a node's labels is one lookup, not a scan of the ontology's labels.
# Found by the two-worker test (tests/ingest/test_worker.py): a delete committed between a stub part's
# "WHERE n:Stub" and its SET, which then put a referrer's class labels on the new tombstone.

# One row holding every state: the driver streams a record far slower than it unpacks a list entry. The
# texts of the objects' labels come along (those the writer does not know yet; labels are few, so that is
# mostly none): the write check judges every write against the object's current label.
READ_STATE: Final = cypher(
    """
CALL () {
  UNWIND $mrids AS m
  MATCH (n:Entity {mrid: m}) USING INDEX SEEK n:Entity(mrid)
  RETURN collect([n.mrid, n.@version, n.@owner, n.@class, labels(n), n.@label]) AS states,
         collect(DISTINCT n.@label) AS ids
}
CALL (ids) {
  UNWIND ids AS i
  WITH i WHERE NOT i IN $known_labels
  MATCH (s:SecurityLabel {id: i}) USING INDEX SEEK s:SecurityLabel(id)
  RETURN collect([s.id, s.expr]) AS texts
}
CALL () {
  UNWIND $sources AS k
  MATCH (o:IngestOffset {source: k}) USING INDEX SEEK o:IngestOffset(source)
  RETURN collect([o.source, o.offset]) AS positions
}
RETURN states, texts, positions
"""
)

# The writing statement: one part per kind of row, each a unit subquery over its own parameter, run in
# this order (an object is deleted before it is recreated; stubs and edges come after the nodes they
# name). One statement, not one per part: every statement costs a round trip to the database.
_WRITE_PARTS: Final = (
    # Security labels, interned.
    """
    UNWIND $security AS x
    MERGE (s:SecurityLabel {id: x.id})
    ON CREATE SET s.expr = x.expr
    """,
    # Deletes: a tombstone keeps mrid, version and bookkeeping; edges, class labels and the count key go.
    """
    UNWIND $deletes AS r
    MERGE (n:Entity {mrid: r.mrid})
    SET n.@lock = true REMOVE n.@lock
    WITH n, r WHERE coalesce(n.@version, -1) < r.v
    CALL (n) { MATCH (n)-[x]-() DELETE x }
    WITH n, r, [l IN labels(n) WHERE $droppable[l]] AS drop
    SET n = {mrid: r.mrid, @version: r.v, @class: r.c, @owner: coalesce(n.@owner, r.pr), @producer: r.pr,
             @event_id: r.e, @event_time: datetime({epochMillis: r.t}), @updated: datetime()}
    SET n:Tombstone
    REMOVE n:$(drop)
    """,
    # Upserts of every class at once: the class's labels come from $class_labels by class name. The count
    # key (hub/count_keys.py) follows the class, label and owner just set, and is listed if it is new.
    """
    UNWIND $upserts AS r
    MERGE (n:Entity {mrid: r.mrid})
    SET n.@lock = true REMOVE n.@lock
    WITH n, r WHERE coalesce(n.@version, -1) < r.v
    WITH n, r, [l IN labels(n) WHERE $droppable[l] AND NOT l IN $class_labels[r.c]] AS drop
    SET n += r.p, n.@class = r.c, n.@domain = $domains[r.c], n.@version = r.v,
        n.@owner = coalesce(n.@owner, r.pr), n.@producer = r.pr, n.@event_id = r.e,
        n.@event_time = datetime({epochMillis: r.t}), n.@updated = datetime(), n.@label = r.l
    SET n:$($class_labels[r.c])
    REMOVE n:Tombstone
    REMOVE n:$(drop)
    SET """
    + count_keys.assignment("n")
    + "\n    "
    + count_keys.listed("n"),
    # Measurements: attributes of live nodes only.
    """
    UNWIND $measurements AS r
    MATCH (n:Entity {mrid: r.mrid}) USING INDEX SEEK n:Entity(mrid)
    SET n.@lock = true REMOVE n.@lock
    WITH n, r WHERE n.@version < r.v AND NOT n:Stub AND NOT n:Tombstone
    SET n += r.p, n.@version = r.v, n.@producer = r.pr, n.@event_id = r.e,
        n.@event_time = datetime({epochMillis: r.t}), n.@updated = datetime()
    """,
    # Measurement samples (hub/measurement_history.py): one node per object and interval, merged, with
    # the object's label, owner and class as the node has them now, only where the node is at the version
    # the plan leaves it at (the measurement applied).
    """
    UNWIND $samples AS r
    MATCH (n:Entity {mrid: r.m}) USING INDEX SEEK n:Entity(mrid)
    WITH n, r WHERE n.@version = r.v AND NOT n:Stub AND NOT n:Tombstone
    UNWIND r.s AS x
    MERGE (s:MeasurementSample {mrid: r.m, @bucket: x.b})
    SET s += x.p, s.@time = datetime({epochMillis: x.t}), s.@label = n.@label, s.@owner = n.@owner,
        s.@class = n.@class
    """,
    # Stubs: a stub gains the labels of every class it is referenced as; its class is narrowed when a
    # referrer expects a subclass of what it was created as (and its count key with it).
    """
    UNWIND $stubs AS r
    MERGE (n:Entity {mrid: r.m})
    ON CREATE SET n:Stub, n.@version = 0, n.@label = $stub_label, n.@class = r.c,
        n.@domain = $domains[r.c], n.@updated = datetime()
    SET n.@lock = true REMOVE n.@lock
    WITH n, r WHERE n:Stub
    SET n:$($class_labels[r.c]),
        n.@class = CASE WHEN n.@class IN $ancestors[r.c] THEN r.c ELSE n.@class END
    SET """
    + count_keys.assignment("n")
    + "\n    "
    + count_keys.listed("n"),
    # Edges: per source, those of every relationship type its events named are replaced. Like the node
    # statements, only where the source is at the version this plan writes, and never to a tombstone: a
    # worker that lost its partitions in a rebalance may finish a batch the new owner has already passed.
    """
    UNWIND $rels AS r
    MATCH (s:Entity {mrid: r.s}) USING INDEX SEEK s:Entity(mrid)
    SET s.@lock = true REMOVE s.@lock
    WITH s, r WHERE s.@version = r.v
    CALL (s, r) { MATCH (s)-[x]->() WHERE type(x) IN keys(r.r) DELETE x }
    WITH s, r
    UNWIND keys(r.r) AS ty
    UNWIND r.r[ty] AS t
    MATCH (d:Entity {mrid: t}) USING INDEX SEEK d:Entity(mrid)
    SET d.@lock = true REMOVE d.@lock
    WITH s, ty, d WHERE NOT d:Tombstone
    CREATE (s)-[:$(ty)]->(d)
    """,
    # History, whole versions (hub/history.py): built by the fold, written as they are, after the node
    # writes. Every object with versions had its node locked by the delete or upsert part above (before
    # any check), and the lock is held to the commit, so two writers of one object keep its versions in
    # order. One at or below a version already kept is there already (only versions from the row's
    # lowest up are looked at: none, for a new object).
    """
    UNWIND $versions AS h
    CALL (h) {
      OPTIONAL MATCH (p:ObjectVersion {mrid: h.m}) USING INDEX SEEK p:ObjectVersion(mrid)
      WHERE p.@version >= h.lo
      RETURN max(p.@version) AS top
    }
    UNWIND h.vs AS r
    WITH h, r, top WHERE top IS NULL OR top < r.v
    CREATE (v:ObjectVersion)
    SET v += r.p, v.mrid = h.m, v.@version = r.v, v.@deleted = r.d, v.@class = r.c,
        v.@domain = $domains[r.c], v.@label = r.l, v.@owner = r.pr, v.@producer = r.pr, v.@event_id = r.e,
        v.@valid_from = r.t, v.@recorded = timestamp(), v.@ref_types = r.rt,
        v.@ref_targets = r.rg
    WITH v, r WHERE r.x
    UNWIND r.rg AS target
    WITH DISTINCT v, target
    MERGE (:VersionReference {target: target, source: v.mrid, @label: v.@label, @owner: v.@owner})
    """,
    # History, patched versions: the same (under the same lock) for objects whose latest kept version
    # the fold did not know (read from the graph, not written by this writer). A version is that latest
    # kept version (the base) with the batch's patches so far applied; one at or below it is there
    # already. References are kept as stated.
    """
    UNWIND $history AS h
    CALL (h) {
      OPTIONAL MATCH (p:ObjectVersion {mrid: h.m}) USING INDEX SEEK p:ObjectVersion(mrid)
      RETURN p ORDER BY p.@version DESC LIMIT 1
    }
    UNWIND h.vs AS r
    WITH h, p, r WHERE p IS NULL OR p.@version < r.v
    WITH h, r, CASE WHEN p IS NULL OR p.@deleted OR r.f THEN null ELSE p END AS b
    WITH h, r, b, coalesce(b.@ref_types, []) AS bt, coalesce(b.@ref_targets, []) AS bg
    WITH h, r, b, bt, bg, [i IN range(0, size(bt) - 1) WHERE NOT bt[i] IN r.rk] AS kept
    CREATE (v:ObjectVersion)
    SET v = CASE WHEN b IS NULL THEN {} ELSE properties(b) END
    SET v += r.p
    SET v.mrid = h.m, v.@version = r.v, v.@deleted = r.d, v.@class = r.c, v.@domain = $domains[r.c],
        v.@label = r.l, v.@owner = r.pr, v.@producer = r.pr, v.@event_id = r.e,
        v.@valid_from = r.t, v.@recorded = timestamp(),
        v.@ref_types = [i IN kept | bt[i]] + r.rt, v.@ref_targets = [i IN kept | bg[i]] + r.rg
    WITH v, r, b WHERE v.@label IS NOT NULL AND NOT r.d
      AND (r.x OR (r.i = 0 AND (b IS NULL OR b.@label <> v.@label)))
    UNWIND v.@ref_targets AS target
    WITH DISTINCT v, target
    MERGE (:VersionReference {target: target, source: v.mrid, @label: v.@label, @owner: v.@owner})
    """,
    # How far each source partition is, for the replay check; never moved back.
    """
    UNWIND $positions AS x
    MERGE (o:IngestOffset {source: x.s})
    SET o.offset = CASE WHEN o.offset IS NULL OR o.offset < x.o THEN x.o ELSE o.offset END
    """,
)
WRITE_BATCH: Final = cypher("\n".join(f"CALL () {{{part}}}" for part in _WRITE_PARTS))


def positions_of(events: Iterable[Accepted]) -> dict[str, int]:
    """Source partition -> the highest offset among ``events`` read there."""
    positions: dict[str, int] = {}
    for ev in events:
        if ev.source is not None and ev.offset > positions.get(ev.source, -1):
            positions[ev.source] = ev.offset
    return positions


def _stored(state: Sequence[Any]) -> Stored:
    _mrid, version, owner, cls, labels, label = state
    labels = tuple(labels)
    status = DEAD if TOMBSTONE in labels else STUBBED if STUB in labels else LIVE
    return Stored(status, int(version or 0), owner, cls, labels, label)


class GraphWriter:
    """Writes batches with a fixed set of statements; per-class label lists are computed once."""

    def __init__(
        self,
        ontology: Any,
        *,
        database: str | None = None,
        replan_skip: bool = True,
        history: bool = True,
        sample_interval_s: float = 0.0,
    ) -> None:
        self.ontology = ontology
        self.database = database
        # Whether plans list the versions to keep (settings.writer_history); off, the history part of the
        # statement gets no rows.
        self.history = history
        # The interval of measurement samples (settings.measurement_history_interval_s; 0: none kept).
        self.sample_ms = int(sample_interval_s * 1000)
        # The statements as sent: pinned to their first plan unless ``replan_skip`` is off
        # (settings.writer_replan_skip), when Neo4j plans them again as its statistics move.
        prefix = REPLAN_SKIP if replan_skip else ""
        self.read_state_query = prefix + READ_STATE
        self.write_query = prefix + WRITE_BATCH
        labels: set[str] = {STUB}
        for name in ontology.classes:
            labels.update(ontology.neo4j_labels(name))
        # Labels and relationship types reach Cypher as parameter values; still, only identifiers.
        for name in labels:
            cypher_name(name)
        for assoc_type in ontology.rel_types() if hasattr(ontology, "rel_types") else ():
            cypher_name(assoc_type)
        self.droppable = frozenset(labels - _NEVER_DROPPED)
        self.droppable_map = dict.fromkeys(sorted(self.droppable), True)
        self._labels: dict[str, list[str]] = {}
        # Label texts by id, for the write check (see LabelBook).
        self.book = LabelBook()
        # Scenario events' overlay versions (hub/scenarios.py).
        self.overlay = OverlayWriter(ontology)
        self._domains: dict[str, str] = {}
        self._ancestors: dict[str, list[str]] = {}

    def mrids_of(self, events: Iterable[Accepted]) -> list[str]:
        seen: dict[str, None] = {}
        for ev in events:
            seen[ev.mrid] = None
            for _cls, targets in ev.rels.values():
                for t in targets:
                    seen[t] = None
        return list(seen)

    async def read_state(
        self, tx: AsyncTx | neo4j.AsyncSession, mrids: list[str], sources: Iterable[str] = ()
    ) -> tuple[dict[str, Stored], dict[str, int]]:
        """Stored state of ``mrids`` and the stored offsets of ``sources`` (in ``tx``, or in an
        auto-commit transaction of a session)."""
        result = await tx.run(
            self.read_state_query,
            mrids=Rows(mrids),
            sources=list(sources),
            known_labels=self.book.known(),
        )
        record = await result.single(strict=True)
        states = {state[0]: _stored(state) for state in record["states"]}
        for lid, text in record["texts"]:
            self.book.learn(int(lid), str(text))
        return states, {source: int(offset) for source, offset in record["positions"]}

    def plan(self, events: Sequence[Accepted], stored: Mapping[str, Stored], done: Mapping[str, int]) -> Plan:
        """The batch's net effect on ``stored``, skipping events at or below the offsets in ``done``."""
        positions = positions_of(events)
        fresh = events
        if done:
            fresh = [ev for ev in events if ev.source is None or ev.offset > done.get(ev.source, -1)]
        scenario_events = [ev for ev in fresh if ev.scenario is not None]
        live = [ev for ev in fresh if ev.scenario is None] if scenario_events else fresh
        plan = fold(live, stored, self.ontology, self.book, history=self.history, sample_ms=self.sample_ms)
        plan.scenario_events = scenario_events
        plan.replayed = len(events) - len(fresh)
        plan.positions = positions
        return plan

    async def apply(self, tx: AsyncTx, events: Sequence[Accepted]) -> Plan:
        """Read, fold and write ``events`` inside ``tx`` (the caller commits)."""
        stored, done = await self.read_state(tx, self.mrids_of(events), positions_of(events))
        plan = self.plan(events, stored, done)
        await self.write(tx, plan)
        return plan

    async def prepare(
        self,
        session: neo4j.AsyncSession,
        events: Sequence[Accepted],
        pending: Plan | None,
        cache: StateCache | None = None,
    ) -> Plan:
        """Fold ``events`` ahead of their transaction, while ``pending`` (the batch before, not yet
        committed) is still being written.

        The state is read outside any transaction and overlaid with what ``pending`` will leave
        behind, so the result holds only if ``pending`` commits exactly as planned; the caller writes
        this plan only then, and otherwise applies the events afresh (:meth:`apply`). Objects of one
        partition have one writer, which is what makes the read-ahead sound; the statements themselves
        still check versions, so a write that raced with another writer cannot go backwards.

        With a ``cache`` (only while this is the graph's only writer: :mod:`hub.state_cache`), objects
        it knows are not read, and what is read goes into it.
        """
        mrids = self.mrids_of(events)
        if pending is not None:
            # What ``pending`` writes is known already, and would be overlaid on what is read anyway.
            mrids = [m for m in mrids if m not in pending.after]
        known: dict[str, Stored] = {}
        epoch = 0
        if cache is not None:
            epoch = cache.epoch
            known, mrids = cache.split(mrids)
        stored, done = await self.read_state(session, mrids, positions_of(events))
        if cache is not None:
            # Objects ``pending`` writes were not read, so what was read is what the graph holds.
            cache.remember({m: stored.get(m) for m in mrids}, epoch)
            stored.update(known)
        if pending is not None:
            stored.update(pending.after)
            for source, offset in pending.positions.items():
                if offset > done.get(source, -1):
                    done[source] = offset
        return self.plan(events, stored, done)

    def _class_maps(self, classes: Iterable[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
        labels: dict[str, list[str]] = {}
        domains: dict[str, str] = {}
        for cls in classes:
            if cls in labels:
                continue
            found = self._labels.get(cls)
            if found is None:
                found = self._labels[cls] = list(self.ontology.neo4j_labels(cls))
                self._domains[cls] = self.ontology.domain(cls)
                self._ancestors[cls] = list(self.ontology.ancestors(cls)[1:])
            labels[cls] = found
            domains[cls] = self._domains[cls]
        return labels, domains

    async def write(self, tx: AsyncTx | neo4j.AsyncSession, plan: Plan) -> None:
        """Write ``plan`` with one statement: in ``tx``, or as an auto-commit transaction of a session
        (the plan is one statement, so that is as atomic as an explicit transaction). The database's
        time for the statement goes into ``plan.db_seconds``. A plan with scenario events is written
        with their overlay versions in one transaction (an explicit one, given a session)."""
        if plan.scenario_events:
            if isinstance(tx, neo4j.AsyncSession):
                explicit = await tx.begin_transaction()
                try:
                    await self._write_all(explicit, plan)
                    await explicit.commit()
                finally:
                    if not explicit.closed():
                        await explicit.close()
            else:
                await self._write_all(tx, plan)
            return
        await self._write_live(tx, plan)

    async def _write_all(self, tx: AsyncTx, plan: Plan) -> None:
        await self._write_live(tx, plan)
        outcome = await self.overlay.write(tx, plan.scenario_events, self.book)
        for ev, reason, reason_class in outcome.refused:
            _refuse(plan, ev, reason, reason_class)
        if outcome.applied:
            plan.applied["scenario"] += outcome.applied
        if outcome.stale:
            plan.stale["scenario"] += outcome.stale
        plan.ignored += outcome.ignored

    async def _write_live(self, tx: AsyncTx | neo4j.AsyncSession, plan: Plan) -> None:
        stubs = [{"m": m, "c": c} for m, c in plan.stubs.items()]
        classes = {r["c"] for r in plan.upserts}
        classes.update(plan.stubs.values())
        classes.update(v["c"] for h in plan.history for v in h["vs"])
        classes.update(v["c"] for h in plan.versions for v in h["vs"])
        class_labels, domains = self._class_maps(classes)
        plan.db_seconds = await _run(
            tx,
            self.write_query,
            security=[{"id": k, "expr": v} for k, v in plan.labels.items()],
            deletes=plan.deletes,
            upserts=plan.upserts,
            measurements=plan.measurements,
            stubs=stubs,
            rels=plan.rels,
            versions=plan.versions,
            history=plan.history,
            samples=plan.samples,
            positions=[{"s": k, "o": v} for k, v in plan.positions.items()],
            class_labels=class_labels,
            domains=domains,
            ancestors={c: self._ancestors[c] for c in plan.stubs.values()},
            stub_label=STUB_LABEL_ID,
            droppable=self.droppable_map,
        )


class Rows(list[Any]):
    """A statement's parameter list that prints as its length.

    The driver formats every statement's parameters for a debug log line before it looks at the log
    level, so each batch's rows would be turned into text (about 2 ms of the worker's CPU per 500-event
    batch) and thrown away. The rows themselves go to the database unchanged: the driver packs a list
    subclass as a list."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} rows>"


async def _run(tx: AsyncTx | neo4j.AsyncSession, query: str, **params: Any) -> float:
    """Run ``query``; returns the seconds the database reports for it (0.0 when it reports none)."""
    result = await tx.run(query, {k: Rows(v) if type(v) is list else v for k, v in params.items()})
    summary = await result.consume()
    return ((summary.result_available_after or 0) + (summary.result_consumed_after or 0)) / 1000.0
