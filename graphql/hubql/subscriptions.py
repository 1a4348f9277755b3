"""The ``changes`` subscription: the ``cim.changes`` topic, filtered per subscriber through the access guard.

Each subscription reads the topic with its own consumer (manual assignment, no consumer group), so it can
start at the live end or resume exactly where an earlier connection stopped. Its cursor is the position
after the last record it *read* on every partition (delivered or filtered out alike); resuming seeks each
partition there, so nothing is missed and nothing repeated. Order is Kafka's: per partition, hence per
object (the record key is the mRID).

A record is delivered only if the subscriber may see its label *now* (the label table is followed while
the subscription lives, and a label id never seen before makes the guard read the table again).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.changes import ChangeRecord
from hub.kafka_clients import API, aiokafka_options
from hub.reader import ReadError
from hubql.context import HubContext
from hubql.generic import graph_node

log = structlog.get_logger(__name__)


def encode_cursor(topic: str, positions: dict[int, int]) -> str:
    body = json.dumps(
        {"t": topic, "o": {str(p): o for p, o in sorted(positions.items())}}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, topic: str) -> dict[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if data["t"] != topic:
            raise ValueError
        return {int(p): int(o) for p, o in data["o"].items()}
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise ReadError(f"after {cursor!r} is not a change cursor of this API") from None


@dataclass(frozen=True)
class ChangeFilter:
    classes: frozenset[str] | None
    domain: str | None
    mrids: frozenset[str] | None

    def matches(self, record: ChangeRecord, domain_of: Mapping[str, str]) -> bool:
        if self.mrids is not None and record.mrid not in self.mrids:
            return False
        if self.classes is not None and record.class_ not in self.classes:
            return False
        return self.domain is None or domain_of.get(record.class_) == self.domain


def make_filter(
    ctx: HubContext, class_names: Sequence[str] | None, domain: str | None, mrids: Sequence[str] | None
) -> ChangeFilter:
    ontology = ctx.services.ontology
    classes: set[str] | None = None
    if class_names is not None:
        classes = set()
        for name in class_names:
            if name not in ontology.classes:
                raise ReadError(f"classNames contains {name!r}, which is not a class of the ontology")
            classes |= ontology.descendants(name)
    return ChangeFilter(
        classes=frozenset(classes) if classes is not None else None,
        domain=domain,
        mrids=frozenset(mrids) if mrids is not None else None,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    while True:
        # ``consumer.topics()`` does not refresh the consumer's own metadata, so ask the client for a
        # fresh snapshot: a topic created after the consumer started must be found too.
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await asyncio.sleep(1.0)  # the topic appears when the first worker publishes


async def change_stream(
    ctx: HubContext,
    class_names: Sequence[str] | None,
    domain: str | None,
    mrids: Sequence[str] | None,
    after: str | None,
) -> AsyncIterator[dict[str, Any]]:
    """Change rows (dicts for the ``Change`` type) this subscriber may see, forever."""
    services = ctx.services
    settings = services.settings
    topic = settings.changes_topic
    flt = make_filter(ctx, class_names, domain, mrids)
    positions = decode_cursor(after, topic) if after else None
    caller = ctx.require_caller()
    guard = services.guard(caller, follow_labels=True)
    reader = services.reader(guard)
    domain_of = {name: c.domain for name, c in services.ontology.classes.items()}
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings, API),
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        client_id=f"hub-api-changes-{caller.subject}"[:100],
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        if positions is None:
            await consumer.seek_to_end(*tps)
            positions = {tp.partition: await consumer.position(tp) for tp in tps}
        else:
            for tp in tps:
                # A partition the cursor does not know was added later: all of it is new.
                consumer.seek(tp, positions.get(tp.partition, 0))
        log.info("subscription started", subject=caller.subject, topic=topic, positions=positions)
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, messages in batch.items():
                for msg in messages:
                    positions[tp.partition] = msg.offset + 1
                    try:
                        record = ChangeRecord.from_json(msg.value)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning(
                            "unreadable change record skipped",
                            partition=tp.partition,
                            offset=msg.offset,
                            error=str(exc),
                        )
                        continue
                    if not flt.matches(record, domain_of):
                        continue
                    if not await guard.may_see_label(record.label_id):
                        guard.stats.withheld += 1
                        continue
                    node = None
                    if record.change != "delete":
                        found = await reader.root(record.mrid)
                        node = graph_node(found, guard.label_text) if found is not None else None
                    guard.stats.rows += 1
                    yield {
                        "cursor": encode_cursor(topic, positions),
                        "mrid": record.mrid,
                        "class_name": record.class_,
                        "change": record.change,
                        "version": record.version,
                        "time": record.time,
                        "node": node,
                    }
    finally:
        await consumer.stop()
