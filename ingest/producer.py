"""A small producer client: validate events locally, then publish them to the producer's own topic.

Producers may use any Kafka client; this one saves them the details the hub relies on:

* the topic is ``<ingest_topic_prefix><producer id>`` and is created (with ``topic_partitions``
  partitions) when the cluster does not have it yet;
* the message key is the object's mRID, so every change to one object stays in order on one partition;
* every event is checked against the ontology before it leaves (``hub.validation.validate_event``), and its
  ``source`` must be the producer's id, so a mistake is reported to the producer at once rather than
  turning up later in the hub's dead-letter topic;
* an optional ``Security-Label`` header covers a whole message (the event's own ``label`` wins);
* sends are pipelined in batches (``batch_size`` awaited together) and may be paced to ``rate`` events
  per second, which is how benchmarks hold a steady load.

``HubProducer`` is the asyncio client; :func:`produce` is the blocking one-call form.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from aiokafka import AIOKafkaProducer

from hub.events import SCENARIO_ID_PATTERN, Event, normalise_mrid
from hub.kafka_clients import ADMIN, aiokafka_options, producer_principal
from hub.kafka_topics import ensure_topics, topic_admin
from hub.labels import LabelError, parse
from hub.settings import Settings, get_settings
from hub.validation import EventRejected, validate_event

LABEL_HEADER: Final = "Security-Label"
# The envelope's rule for ``source``, which is the producer id.
PRODUCER_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")
# How many local rejections a summary keeps verbatim (the count is always exact).
MAX_KEPT_REJECTIONS: Final = 50

EventLike = Event | Mapping[str, Any] | bytes | str
Progress = Callable[[int], None]


class Encoded(NamedTuple):
    """One event ready to send: the message key and value, and what a summary says about it."""

    key: bytes  # the object's mRID, normalised
    value: bytes  # the envelope as compact JSON, exactly the message's value
    subject: str
    class_name: str
    version: int | None  # None only for an unchecked event (validate=False) without an integer version


class ProducerError(ValueError):
    """The client is misconfigured (bad producer id, label, rate, ...); the message names key and value."""


class LocalRejection(ValueError):
    """One event failed the local checks; ``subject`` and ``reason`` say which and why."""

    def __init__(self, subject: str | None, reason: str) -> None:
        super().__init__(f"{subject or '<no subject>'}: {reason}")
        self.subject = subject
        self.reason = reason


@dataclass
class ProduceStats:
    """What one publication did: the summary a producer's operator sees."""

    topic: str = ""
    sent: int = 0
    rejected: int = 0
    bytes: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    rejections: list[LocalRejection] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed_s
        return self.sent / elapsed if elapsed > 0 else 0.0

    def reject(self, rejection: LocalRejection) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_KEPT_REJECTIONS:
            self.rejections.append(rejection)


def topic_for(producer_id: str, settings: Settings | None = None) -> str:
    return f"{(settings or get_settings()).ingest_topic_prefix}{producer_id}"


def _check_label(text: str, key: str) -> str:
    try:
        parse(text)
    except LabelError as exc:
        raise ProducerError(f"{key} = {text!r} is not a valid security label: {exc}") from None
    return text


class Pacer:
    """Holds a steady event rate: the n-th event may leave at ``start + n / rate``, never earlier."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ProducerError(f"rate = {rate!r} must be a positive number of events per second")
        self.rate = rate
        self.count = 0
        self.start = time.monotonic()

    def delay(self) -> float:
        """Seconds to wait before the next event (0 when behind or unpaced); counts the event."""
        self.count += 1
        if self.rate is None:
            return 0.0
        ahead = self.start + self.count / self.rate - time.monotonic()
        # Sleeping for less than a millisecond costs more than it paces.
        return ahead if ahead > 0.001 else 0.0


class HubProducer:
    """Publishes one producer's events to its topic; use ``async with HubProducer(...) as p``."""

    def __init__(
        self,
        producer_id: str,
        *,
        settings: Settings | None = None,
        bootstrap: str | None = None,
        ontology: Any | None = None,
        validate: bool = True,
        label_header: str | None = None,
        batch_size: int = 500,
        rate: float | None = None,
        create_topic: bool = True,
        linger_ms: int = 5,
        compression: str | None = None,
        principal: str | None = None,
        scenario: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        if scenario is not None and not re.match(SCENARIO_ID_PATTERN, scenario):
            raise ProducerError(
                f"scenario = {scenario!r} is not a scenario id ('scn-' and 32 hex digits, as createScenario "
                "returns it)"
            )
        # Every event goes into this scenario (hub/scenarios.py) instead of the live graph.
        self.scenario = scenario
        if not PRODUCER_ID.match(producer_id or ""):
            raise ProducerError(
                f"producer_id = {producer_id!r} must be lower-case letters, digits, '-' or '_' "
                "(it names the topic and is the events' source)"
            )
        if batch_size < 1:
            raise ProducerError(f"batch_size = {batch_size!r} must be at least 1")
        self.producer_id = producer_id
        self.topic = topic_for(producer_id, self.settings)
        self.bootstrap = bootstrap or self.settings.kafka_bootstrap
        self.validate = validate
        if validate and ontology is None:
            from ontology.loader import load_ontology

            ontology = load_ontology()
        self.ontology: Any = ontology
        self.label_header = _check_label(label_header, "label_header") if label_header else None
        self.batch_size = batch_size
        self.pacer = Pacer(rate)
        self.create_topic = create_topic
        self.stats = ProduceStats(topic=self.topic)
        # A producer signs in as itself (producer-<id>), which may write its own topic only.
        self.principal = principal or producer_principal(producer_id)
        # The credentials are read in start(): checking events (encode, a dry run) needs no Kafka at all.
        self._producer_options: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "max_batch_size": 256 * 1024,
            "compression_type": compression,
            "request_timeout_ms": 30_000,
        }
        # aiokafka binds its producer to the running loop, so it is made in start().
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[Awaitable[Any]] = []
        self._started = False

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        if self.create_topic:
            await ensure_topic(
                self.bootstrap,
                self.topic,
                self.settings.topic_partitions,
                settings=self.settings,
                principal=self.principal,
            )
        self._producer = AIOKafkaProducer(
            **aiokafka_options(self.settings, self.principal, bootstrap=self.bootstrap),
            **self._producer_options,
        )
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        self._started = True
        self.stats = ProduceStats(topic=self.topic)
        self.pacer = Pacer(self.pacer.rate)

    async def stop(self) -> None:
        if not self._started:
            return
        try:
            await self.flush()
        finally:
            if self._producer is not None:
                await self._producer.stop()
            self._started = False
            self.stats.finished = time.monotonic()

    async def __aenter__(self) -> HubProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------ encoding

    def encode(self, event: EventLike) -> Encoded:
        """One event as it will be sent, after the local checks; LocalRejection if any fails."""
        if isinstance(event, Event):
            body: Any = event.to_json_dict()
        elif isinstance(event, bytes | str):
            try:
                body = json.loads(event)
            except ValueError as exc:
                raise LocalRejection(None, f"value is not JSON: {exc}") from None
        elif isinstance(event, Mapping):
            body = dict(event)
        else:
            raise LocalRejection(None, f"event of type {type(event).__name__} is not an event")
        if not isinstance(body, dict):
            raise LocalRejection(None, f"event must be a JSON object, got {type(body).__name__}")
        if self.scenario is not None:
            body["scenario"] = self.scenario
        subject = body.get("subject")
        subject_text = subject if isinstance(subject, str) else None
        source = body.get("source")
        if source != self.producer_id:
            raise LocalRejection(
                subject_text, f"source {source!r} is not this producer's id {self.producer_id!r}"
            )
        value = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        if len(value) > self.settings.max_event_bytes:
            raise LocalRejection(
                subject_text,
                f"size {len(value)} bytes exceeds max_event_bytes={self.settings.max_event_bytes}",
            )
        if self.validate:
            try:
                valid = validate_event(value, self.ontology, max_bytes=self.settings.max_event_bytes)
            except EventRejected as exc:
                raise LocalRejection(subject_text, str(exc)) from None
            mrid, class_name = valid.mrid, valid.class_name
            label = valid.event.label
            version: int | None = valid.event.version
        else:
            if subject_text is None:
                raise LocalRejection(None, f"subject {subject!r} is not a string")
            mrid, class_name = normalise_mrid(subject_text), str(body.get("class"))
            label = body.get("label")
            raw_version = body.get("version")
            version = (
                raw_version if isinstance(raw_version, int) and not isinstance(raw_version, bool) else None
            )
        if isinstance(label, str):
            try:
                parse(label)
            except LabelError as exc:
                raise LocalRejection(subject_text, f"label {label!r} is not a valid label: {exc}") from None
        return Encoded(mrid.encode(), value, subject_text or mrid, class_name, version)

    # -------------------------------------------------------------------------------------- sending

    async def send(self, event: EventLike, *, label_header: str | None = None) -> bool:
        """Queue one event; True if it passed the local checks (else it is counted as rejected)."""
        if not self._started or self._producer is None:
            raise ProducerError("the producer is not started (use 'async with HubProducer(...)')")
        try:
            encoded = self.encode(event)
        except LocalRejection as rejection:
            self.stats.reject(rejection)
            return False
        await self.send_encoded(encoded, label_header=label_header)
        return True

    async def send_encoded(self, encoded: Encoded, *, label_header: str | None = None) -> Awaitable[Any]:
        """Queue one event that :meth:`encode` has already checked (to see what is sent as it is sent).

        Returns its delivery: once :meth:`flush` returns it holds the record's metadata (partition and
        offset), by which the worker's dead letter names the event."""
        if not self._started or self._producer is None:
            raise ProducerError("the producer is not started (use 'async with HubProducer(...)')")
        key, value, class_name = encoded.key, encoded.value, encoded.class_name
        header = _check_label(label_header, "label_header") if label_header else self.label_header
        headers = [(LABEL_HEADER, header.encode())] if header else None
        delay = self.pacer.delay()
        if delay:
            await asyncio.sleep(delay)
        delivery = await self._producer.send(self.topic, value=value, key=key, headers=headers)
        self._pending.append(delivery)
        self.stats.sent += 1
        self.stats.bytes += len(value)
        self.stats.classes[class_name] += 1
        if len(self._pending) >= self.batch_size:
            await self.flush()
        return delivery

    async def flush(self) -> None:
        """Wait until every queued event is acknowledged by the cluster."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    async def send_all(
        self, events: Iterable[EventLike] | AsyncIterable[EventLike], progress: Progress | None = None
    ) -> ProduceStats:
        """Send every event, calling ``progress(n)`` after each batch with the events handled since."""
        handled = 0
        if isinstance(events, AsyncIterable):
            async for event in events:
                await self.send(event)
                handled += 1
                if progress is not None and handled >= self.batch_size:
                    progress(handled)
                    handled = 0
        else:
            for event in events:
                await self.send(event)
                handled += 1
                if progress is not None and handled >= self.batch_size:
                    progress(handled)
                    handled = 0
        await self.flush()
        if progress is not None and handled:
            progress(handled)
        self.stats.finished = time.monotonic()
        return self.stats


async def ensure_topic(
    bootstrap: str, topic: str, partitions: int, *, settings: Settings | None = None, principal: str = ADMIN
) -> None:
    """Create ``topic`` when missing; a cluster that forbids auto-creation still gets the right partitions.

    A producer's own principal may not create topics (``hub producers add`` did); for it this only checks."""
    options = aiokafka_options(settings or get_settings(), principal, bootstrap=bootstrap)
    async with topic_admin(options) as admin:
        await ensure_topics(admin, [topic], partitions)


def produce(
    events: Iterable[EventLike],
    producer_id: str,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> ProduceStats:
    """Blocking form: publish ``events`` as ``producer_id`` and return the summary."""

    async def run() -> ProduceStats:
        async with HubProducer(producer_id, **options) as producer:
            return await producer.send_all(events, progress)

    return asyncio.run(run())
