"""Quality of each data product, measured live and through the caller's guard.

Every figure is computed when it is asked for, from stores that outlive any process, and over what the
asking caller may see:

* **Freshness and rate** come from the kept history (:mod:`hub.history`): the writer keeps one
  ``ObjectVersion`` per applied upsert and delete, stamped with the event's time (``_valid_from``) and the
  commit's (``_recorded``). A product's versions recorded within the window (``settings.quality_window_s``,
  an hour) give its applied events per minute, and ``_recorded - _valid_from`` of each is the event's
  freshness: p50 and p99 are nearest-rank percentiles (``percentileDisc``) over those versions. Each
  version is filtered by its own label like every history read, so a caller's figures count only the
  events whose result it may see. Measurements are not versions and do not count; with
  ``HUB_WRITER_HISTORY`` off there is nothing to measure and the figures are null.
* **Dead letters** come from the shared dead-letter topic (``settings.deadletter_topic``), read from the
  broker's offset for the window's start on (``offsets_for_times``), then tailed: the letters whose source
  topic is the product's ingest topic and that the worker decided on the event alone (header
  ``decided-on: event``), each counted for a caller only when the caller may see what the event was
  labelled: its stated label, the contract's default label when it states none, and the contract's maximum
  label when its label cannot be read (a letter of a SECRET event tells a PUBLIC caller nothing, not even
  that it happened). Those decided against the graph's stored state (ownership, the stored label, the
  graph's own refusal) are left out, as their occurrence depends on objects a consumer may not see. Reasons
  are given as the reason class and, for a contract breach, the clause broken: never the event's text.
  What is read is the same for every caller and cached for ``settings.quality_dead_letter_cache_s``.
* **Completeness, counts, last update and coverage** come from the current graph, in one pass over the
  caller-visible objects the product owns (``_owner``) of the promised classes and their subclasses (found
  by the ``(_class, _owner)`` index): per promised class (by its Neo4j label,
  so subclasses count), how
  many carry each promised attribute, the latest ``_updated``, the span of event times (``_event_time``)
  and the box around point coordinates (``_x``/``_y``, taken as WGS84 longitude and latitude as the
  ``objects(bbox:)`` filter takes them; diagram-layout points left out).

Why these stores: the history and the current graph already hold every figure per object with its label,
so the guard filters them like any read and nothing new is written in the worker's transaction; dead
letters never reach the graph, and the dead-letter topic is where the worker already records each one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub.contracts import Contract
from hub.dead_letter_headers import DECIDED_ON, DECIDED_ON_EVENT, Received, read
from hub.geography import DIAGRAM_LAYOUT_CLASSES
from hub.graph import cypher_name
from hub.graph_schema import cypher
from hub.guard import Guard, visible
from hub.kafka_clients import API, aiokafka_options
from hub.kafka_topics import partition_ids
from hub.labels import Label, LabelError, parse
from hub.settings import Settings
from ontology.model import Ontology

# How many dead-letter reasons a product's quality names, most frequent first.
TOP_REASONS: Final = 5

_FRESHNESS: Final = cypher(
    f"""
MATCH (v:ObjectVersion) WHERE v.@recorded >= $since AND v.@producer = $producer AND {visible("v")}
WITH (v.@recorded - v.@valid_from) / 1000.0 AS f
RETURN count(f) AS events, percentileDisc(f, 0.5) AS p50, percentileDisc(f, 0.99) AS p99
"""
)


@dataclass(frozen=True, slots=True)
class Completeness:
    """How many of a promised class's visible objects carry one promised attribute."""

    class_name: str
    attribute: str
    present: int
    total: int

    @property
    def ratio(self) -> float | None:
        return self.present / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class ClassCount:
    class_name: str
    count: int


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """The span of event times and the WGS84 box of point coordinates of the visible objects."""

    start: datetime | None
    end: datetime | None
    west: float | None
    south: float | None
    east: float | None
    north: float | None

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        if None in (self.west, self.south, self.east, self.north):
            return None
        return (self.west or 0.0, self.south or 0.0, self.east or 0.0, self.north or 0.0)


@dataclass(frozen=True, slots=True)
class Quality:
    """One product's figures as one caller sees them."""

    producer: str
    window_s: float
    events: int
    freshness_p50_s: float | None
    freshness_p99_s: float | None
    dead_letters: int
    top_reasons: tuple[ReasonCount, ...]
    completeness: tuple[Completeness, ...]
    counts: tuple[ClassCount, ...]
    objects: int
    last_update: datetime | None
    coverage: Coverage

    @property
    def events_per_minute(self) -> float:
        return self.events / (self.window_s / 60.0)

    @property
    def dead_letters_per_minute(self) -> float:
        return self.dead_letters / (self.window_s / 60.0)

    @property
    def dead_letter_rate(self) -> float | None:
        """Dead letters among the events the window saw (applied and visible, or dead-lettered)."""
        seen = self.events + self.dead_letters
        return self.dead_letters / seen if seen else None


@dataclass(frozen=True, slots=True)
class ProductQuality:
    """What every view of a product (GraphQL, the DCAT catalogue, CKAN) tells one caller of its quality:
    the measured figures, and the consumers' data-quality flags still open as
    :meth:`hub.feedback.FeedbackDesk.open_count` counts them for that caller (product-wide flags, and those
    on objects it may see)."""

    measured: Quality
    open_flags: int


# A dead letter's label as far as it can be told: the event's own, or that it stated none (the contract's
# default applies) or that it could not be read (the contract's maximum applies).
ABSENT: Final = "absent"
UNREADABLE: Final = "unreadable"
LetterLabel = Label | Literal["absent", "unreadable"]


@dataclass(frozen=True, slots=True)
class LetterSummary:
    """The window's dead letters decided on the event alone, per producer: each with its label and reason."""

    letters: Mapping[str, list[tuple[LetterLabel, str]]]

    def seen_by(self, guard: Guard, contract: Contract) -> tuple[int, Counter[str]]:
        """How many of the product's letters, and which reasons, the caller may be told of."""
        fallback = {ABSENT: parse(contract.default_label), UNREADABLE: parse(contract.maximum_label)}
        reasons: Counter[str] = Counter()
        for label, reason in self.letters.get(contract.producer, ()):
            judged = fallback[label] if isinstance(label, str) else label
            if guard.satisfies(judged, contract.producer):
                reasons[reason] += 1
        return sum(reasons.values()), reasons


def _letter_label(letter: Received) -> LetterLabel:
    if letter.cut or letter.value is None:
        return UNREADABLE
    try:
        event = json.loads(letter.value)
    except ValueError:
        return UNREADABLE
    if not isinstance(event, dict) or event.get("label") is None:
        return ABSENT if isinstance(event, dict) else UNREADABLE
    try:
        return parse(event["label"]) if isinstance(event["label"], str) else UNREADABLE
    except LabelError:
        return UNREADABLE


class DeadLetterWindow:
    """Tails the shared dead-letter topic with one long-lived consumer and keeps the window's letters.

    A summary catches up from where the last one stopped (at most once per cache period): one request
    each for the topic's partitions, their ends and the letters written since. A new admin client,
    consumer and seek per summary cost about a second each time, and went past the operation's deadline
    on a busy machine. The first catch-up starts from the broker's offset for the window's start; letters
    older than the window are dropped as it moves on.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._summary: LetterSummary | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        # Where each assigned partition's next unread letter is.
        self._next: dict[TopicPartition, int] = {}
        # (broker timestamp in ms, producer, label, reason) of each kept letter, in reading order.
        self._kept: list[tuple[int, str, LetterLabel, str]] = []

    async def summary(self) -> LetterSummary:
        async with self._lock:
            if time.monotonic() - self._read_at >= self.settings.quality_dead_letter_cache_s:
                await self._catch_up()
                self._summary = self._window()
                self._read_at = time.monotonic()
        assert self._summary is not None
        return self._summary

    async def close(self) -> None:
        async with self._lock:
            if self._consumer is not None:
                await self._consumer.stop()
                self._consumer = None
            if self._admin is not None:
                await self._admin.close()
                self._admin = None

    def producer_of(self, topic: str) -> str | None:
        prefix = self.settings.ingest_topic_prefix
        return topic[len(prefix) :] if topic.startswith(prefix) and len(topic) > len(prefix) else None

    def _window(self) -> LetterSummary:
        since_ms = int((time.time() - self.settings.quality_window_s) * 1000)
        self._kept = [k for k in self._kept if k[0] >= since_ms]
        letters: dict[str, list[tuple[LetterLabel, str]]] = {}
        for _, producer, label, reason in self._kept:
            letters.setdefault(producer, []).append((label, reason))
        return LetterSummary(letters)

    async def _catch_up(self) -> None:
        s = self.settings
        if self._admin is None:
            admin = AIOKafkaAdminClient(**aiokafka_options(s, API), request_timeout_ms=10_000)
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**aiokafka_options(s, API), group_id=None, enable_auto_commit=False)
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        # Asked each time, so that a topic or partition created since the last catch-up is found.
        ids = await partition_ids(self._admin, s.deadletter_topic)
        if not ids:
            return  # no dead letter was ever written
        tps = [TopicPartition(s.deadletter_topic, p) for p in ids]
        new = [tp for tp in tps if tp not in self._next]
        if new:
            # Assigning replaces the assignment and forgets positions: each known partition is sought back
            # to where its reading stopped, each new one to the window's start.
            consumer.assign(tps)
            # Paused but while catching up: an idle fetch waits on the broker (``fetch_max_wait_ms``) and
            # an offset request queues behind it, half a second per summary.
            consumer.pause(*tps)
            since_ms = int((time.time() - s.quality_window_s) * 1000)
            starts = await consumer.offsets_for_times(dict.fromkeys(new, since_ms))
            ends = await consumer.end_offsets(new)
            for tp in new:
                found = starts.get(tp)
                self._next[tp] = ends[tp] if found is None else found.offset
            for tp in tps:
                consumer.seek(tp, self._next[tp])
        ends = await consumer.end_offsets(tps)
        todo = {tp: ends[tp] for tp in tps if self._next[tp] < ends[tp]}
        consumer.resume(*todo)
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for messages in batch.values():
                for msg in messages:  # a letter past the end asked for is new too, and kept
                    self._count(msg)
            for tp in list(todo):
                self._next[tp] = await consumer.position(tp)
                if self._next[tp] >= todo[tp]:
                    consumer.pause(tp)
                    todo.pop(tp)

    def _count(self, msg: Any) -> None:
        headers = [(k, v) for k, v in msg.headers]
        if dict(headers).get(DECIDED_ON) != DECIDED_ON_EVENT.encode():
            return
        letter = read(msg.key, msg.value, headers)
        producer = self.producer_of(letter.source[0]) if letter.source else None
        if producer is None:
            return
        reason = letter.reason_class or "unknown"
        if letter.contract is not None and letter.contract.get("clause"):
            reason = f"{reason}: {letter.contract['clause']}"
        self._kept.append((msg.timestamp, producer, _letter_label(letter), reason))


class QualityMeter:
    """Measures products for one caller's guard (see the module's text for where each figure comes
    from)."""

    def __init__(self, settings: Settings, ontology: Ontology, letters: DeadLetterWindow) -> None:
        self.settings = settings
        self.ontology = ontology
        self.letters = letters

    async def measure(self, guard: Guard, contract: Contract) -> Quality:
        window = self.settings.quality_window_s
        since = datetime.now().astimezone() - timedelta(seconds=window)
        since_ms = int(since.timestamp() * 1000)
        fresh = (await guard.read(_FRESHNESS, {"since": since_ms, "producer": contract.producer}))[0]
        graph = await self._graph(guard, contract)
        dead_letters, reasons = (await self.letters.summary()).seen_by(guard, contract)
        return Quality(
            producer=contract.producer,
            window_s=window,
            events=int(fresh["events"]),
            freshness_p50_s=_float(fresh["p50"]),
            freshness_p99_s=_float(fresh["p99"]),
            dead_letters=dead_letters,
            top_reasons=tuple(
                ReasonCount(r, n) for r, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))
            )[:TOP_REASONS],
            **graph,
        )

    def _statement(self, contract: Contract) -> tuple[str, list[list[str]]]:
        """One pass over the product's objects the caller may see (by the composite index): per promised
        class the ontology knows, how many there are and, per promised attribute, how many carry it; over
        all of them, the count, the latest update and the coverage. The classes with the qualified names
        of their attributes, in the order the counts come back."""
        promised: list[list[str]] = []
        columns: list[str] = []
        classes = [c for c in sorted(contract.classes) if c in self.ontology.classes]
        for cls in classes:
            is_cls = f"n:{cypher_name(cls)}"
            qnames: list[str] = []
            counts = [f"count(CASE WHEN {is_cls} THEN 1 END)"]
            for qname in sorted(contract.classes[cls].attributes):
                attr = self.ontology.attribute(cls, qname)
                if attr is not None:
                    qnames.append(qname)
                    key = cypher_name(attr.key)
                    counts.append(f"count(CASE WHEN {is_cls} AND n.{key} IS NOT NULL THEN 1 END)")
            columns.append(f"[{', '.join(counts)}]")
            promised.append([cls, *qnames])
        if not classes:
            return "", promised
        # Diagram-layout points are schematic, never a place on the earth (as for objects(bbox:)).
        layout = " OR ".join(f"n:{cypher_name(c)}" for c in DIAGRAM_LAYOUT_CLASSES) or "false"
        statement = cypher(
            f"MATCH (n:Entity) USING INDEX n:Entity(@class, @owner) "
            f"WHERE n.@class IN $classes AND n.@owner = $producer AND {visible('n')} "
            f"WITH n, CASE WHEN {layout} THEN null ELSE n.@x END AS x, "
            f"CASE WHEN {layout} THEN null ELSE n.@y END AS y "
            f"RETURN [{', '.join(columns)}] AS classes, count(n) AS total, max(n.@updated) AS last, "
            "min(n.@event_time) AS start, max(n.@event_time) AS end, min(x) AS west, min(y) AS south, "
            "max(x) AS east, max(y) AS north"
        )
        return statement, promised

    async def _graph(self, guard: Guard, contract: Contract) -> dict[str, Any]:
        statement, promised = self._statement(contract)
        # The promised classes and their subclasses, found by the (_class, _owner) index.
        concrete = sorted({d for c, *_ in promised for d in (c, *self.ontology.descendants(c))})
        params = {"producer": contract.producer, "classes": concrete}
        rows = await guard.read(statement, params) if statement else []
        whole: Mapping[str, Any] = rows[0] if rows else {}
        per_class = whole.get("classes") or [[0] * len(p) for p in promised]
        completeness: list[Completeness] = []
        counts: list[ClassCount] = []
        for (cls, *qnames), (total, *present) in zip(promised, per_class, strict=True):
            counts.append(ClassCount(cls, int(total)))
            completeness.extend(
                Completeness(cls, q, int(n), int(total)) for q, n in zip(qnames, present, strict=True)
            )
        return {
            "completeness": tuple(completeness),
            "counts": tuple(counts),
            "objects": int(whole.get("total") or 0),
            "last_update": _native(whole.get("last")),
            "coverage": Coverage(
                start=_native(whole.get("start")),
                end=_native(whole.get("end")),
                west=_float(whole.get("west")),
                south=_float(whole.get("south")),
                east=_float(whole.get("east")),
                north=_float(whole.get("north")),
            ),
        }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _native(value: Any) -> Any:
    """A Neo4j temporal value as a Python datetime; anything else as it is."""
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value
