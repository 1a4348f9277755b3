"""The access record for a period: the audit topic's ``access.*`` records (requests, decisions, expiries,
uses; see :mod:`hub.grants` and :mod:`hub.audit`) whose time falls in ``[start, end)``, for operators.

The topic is read from the offsets of ``start`` (Kafka's offsets-for-times, so older records are not
fetched) up to its end as it was when the read began, as the operator principal; a record is kept when its
``action`` starts with ``access.`` and its own ``time`` is in the period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.kafka_clients import ADMIN, aiokafka_options
from hub.kafka_topics import partition_ids, topic_admin
from hub.settings import Settings

PREFIX: Final = "access."
POLL_MS: Final = 500


async def access_records(settings: Settings, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
    """The access records of ``[start, end)`` in topic order per partition."""
    options = aiokafka_options(settings, ADMIN)
    async with topic_admin(options) as admin:
        ids = await partition_ids(admin, settings.audit_topic)
    tps = [TopicPartition(settings.audit_topic, p) for p in ids]
    if not tps:
        return
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in tps})
        todo: dict[TopicPartition, int] = {}
        for tp in tps:
            at = found.get(tp)
            if at is not None and at.offset < ends[tp]:
                consumer.seek(tp, at.offset)
                todo[tp] = ends[tp]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=POLL_MS)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= todo.get(tp, -1):
                        break
                    entry = _entry(record.value)
                    if entry is not None and start <= datetime.fromisoformat(entry["time"]) < end:
                        yield entry
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    todo.pop(tp)
    finally:
        await consumer.stop()


def _entry(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        entry = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(entry, dict)
        or not str(entry.get("action", "")).startswith(PREFIX)
        or "time" not in entry
    ):
        return None
    return entry
