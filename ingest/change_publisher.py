"""Publishing change records to ``cim.changes``: the worker's side of the change feed.

The records themselves (:class:`hub.changes.ChangeRecord`) belong to the core, since the API reads them
too; only the worker publishes them, so the publisher lives here.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from hub.changes import ChangeRecord
from hub.kafka_clients import WORKER, aiokafka_options
from hub.settings import Settings, get_settings

# (topic, key, value) -> a future that resolves when the broker has the record.
SendFn = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]

_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key, as its default partitioner computes it (the Java client's
    ``Utils.murmur2``); reads the key four bytes at a time, which the pure-Python reference does not."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & ~3
    rest = length & 3
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def publish(send: SendFn, topic: str, records: Iterable[ChangeRecord]) -> list[Awaitable[Any]]:
    """Hand every record to the producer; returns the delivery futures, which the caller must await."""
    return [await send(topic, r.mrid.encode(), r.to_json()) for r in records]


class ChangePublisher:
    """Sends a batch's change records as one Kafka record batch per partition.

    A client's per-message path (partitioning, accumulator, a future per record) costs more than the
    graph write of the same object; a worker publishes hundreds of records per transaction. Partitions
    follow the key exactly as Kafka's default partitioner does, so one object's changes stay in order on
    one partition, whoever produced them. The producer starts on first use.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        max_batch_bytes: int = 512 * 1024,
        settings: Settings | None = None,
        principal: str = WORKER,
    ) -> None:
        self.bootstrap = bootstrap
        self.max_batch_bytes = max_batch_bytes
        self.settings = settings or get_settings()
        self.principal = principal
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **aiokafka_options(self.settings, self.principal, bootstrap=self.bootstrap),
                acks="all",
                linger_ms=0,
                max_batch_size=self.max_batch_bytes,
                max_request_size=self.max_batch_bytes + 64 * 1024,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, topic: str, records: Sequence[ChangeRecord]) -> list[asyncio.Future[Any]]:
        """Queue ``records`` in order; returns the delivery futures, which the caller must await."""
        if not records:
            return []
        producer = await self._started()
        partitions = sorted(await producer.partitions_for(topic))
        count = len(partitions)
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        times: dict[datetime | None, str] = {}
        for record in records:
            key = record.mrid.encode()
            partition = partitions[(murmur2(key) & 0x7FFFFFFF) % count]
            time_text = times.get(record.time)
            if time_text is None:
                time_text = times[record.time] = record._time_text()
            by_partition.setdefault(partition, []).append((key, record.to_json_fast(time_text)))
        futures: list[asyncio.Future[Any]] = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(
                            f"change record of {len(value)} bytes for mRID {key.decode()!r} exceeds "
                            f"max_batch_bytes={self.max_batch_bytes}"
                        )
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
