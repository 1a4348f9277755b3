"""The dead-letter record of a rejected event, made to fit what the producer and broker accept.

A rejected record's copy carries its key, its value and headers saying why and where it came from. The
source record may be as large as the broker took on the ingest topic (and larger than
``max_event_bytes``: that is one reason to reject it), so key, value and headers together may exceed
the worker's largest request (Faust's ``producer_max_request_size``). A copy that cannot be sent would
stop the stream behind it, so the copy is made to fit by construction: the ``reason`` header is cut to
:data:`MAX_REASON_BYTES`; then, if the record is still too large, the value (and if need be the key) is
cut to what fits, and a ``value-truncated`` (``key-truncated``) header gives the original's size and
SHA-256. The whole original stays where the ``source-topic``, ``source-partition`` and
``source-offset`` headers point.

Who reads them. Every dead letter goes to the shared topic ``HUB_DEADLETTER_TOPIC``, which only the
operator (and the API, for HTTP ingest's batch outcomes) may read; a dead letter of a configured
producer's topic goes, with the same headers, to that producer's own topic
``<HUB_DEADLETTER_TOPIC>.<producer id>`` as well, which that producer's principal may read and nothing
else (:mod:`hub.kafka_access`). Both, rather than the producers' topics alone: the operator keeps one topic
holding every refusal in one order, read with one consumer and one ACL, whatever producers come and go,
and the records nobody owns (a topic no configured producer owns) have a place; the second copy costs
one more record per refused event, and refused events are few. A record whose producer is not known
goes to the shared topic only, since no producer may be told about it. The two copies differ only where
the writer refused an event against the object's stored label or owner, which the producer may not be
able to see: its copy's ``reason`` then says so without naming them
(:data:`hub.dead_letter_headers.SENDER_REASONS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

# The headers are read back by `hub deadletters`, `hub produce --wait` and the API's batch outcomes.
from hub.dead_letter_headers import (
    OMITTED,
    REASON,
    REASON_CLASS,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
)

MAX_REASON_BYTES: Final = 4096

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: Headers


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The producer's own upper bound of a record's size, the one it checks against its request limit."""
    sized: list[tuple[str, bytes | None]] = list(headers)
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, sized))


def _cut_reason(reason: str) -> bytes:
    data = reason.encode("utf-8", "backslashreplace")
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."


def _mark(name: str, data: bytes) -> tuple[str, bytes]:
    return (f"{name}-truncated", f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}".encode())


def build(
    key: bytes | None,
    value: bytes | None,
    reason: str,
    reason_class: str,
    source: tuple[str, int, int],
    limit: int,
    extra: Sequence[tuple[str, bytes]] = (),
) -> DeadLetter:
    """The dead-letter record for a rejected record at ``source`` (topic, partition, offset), no larger
    than ``limit`` bytes as the producer measures it; ``extra`` headers (a contract breach's
    ``contract-id``, ``-version`` and ``-clause``, each short) follow the standard ones."""
    topic, partition, offset = source
    headers: Headers = [
        (REASON, _cut_reason(reason)),
        (REASON_CLASS, reason_class.encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        *((name, value[:MAX_REASON_BYTES]) for name, value in extra),
    ]
    if record_size(key, value, headers) <= limit:
        return DeadLetter(key, value, headers)
    # The value gives way first, then the key; each part that is cut says so. The markers go in before
    # the cut so that the room left is measured with them.
    if value:
        headers.append(_mark("value", value))
    if key and record_size(key, b"" if value is not None else None, headers) > limit:
        headers.append(_mark("key", key))
    key, value = _fit(key, value, headers, limit)
    return DeadLetter(key, value, headers)


def _fit(
    key: bytes | None, value: bytes | None, headers: Headers, limit: int
) -> tuple[bytes | None, bytes | None]:
    # Lengths are varints, so each cut may leave a byte or two over; a few rounds settle it.
    while True:
        excess = record_size(key, value, headers) - limit
        if excess <= 0:
            return key, value
        if value:
            value = value[: max(0, len(value) - excess)]
        elif key:
            key = key[: max(0, len(key) - excess)]
        else:
            # Headers alone over the limit: only for a limit below a few kilobytes, never the producer's.
            raise ValueError(f"dead-letter limit={limit} bytes is too small for the record's headers")


def minimal(letter: DeadLetter) -> DeadLetter:
    """The record with neither key nor value, for a topic that refuses even the fitted one (its own
    ``max.message.bytes`` below the producer's limit): the headers still say why and where from."""
    headers = [
        *letter.headers,
        (OMITTED, b"key and value: the dead-letter topic refused the record with them"),
    ]
    return DeadLetter(None, None, headers)


def send_retriable(exc: BaseException) -> bool:
    """Whether a failed send may succeed as it is if tried again (the broker unreachable or busy), as
    opposed to a refusal of this record (too large, not allowed)."""
    if isinstance(exc, KafkaTimeoutError | OSError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)
