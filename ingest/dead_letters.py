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
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from hub.contracts import CONTRACT_CLAUSE_HEADER, CONTRACT_ID_HEADER, CONTRACT_VERSION_HEADER

MAX_REASON_BYTES: Final = 4096
# The headers of a dead letter, read back by `hub deadletters` and `hub produce --wait`.
REASON: Final = "reason"
REASON_CLASS: Final = "reason-class"
SOURCE_TOPIC: Final = "source-topic"
SOURCE_PARTITION: Final = "source-partition"
SOURCE_OFFSET: Final = "source-offset"
OMITTED: Final = "omitted"

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


@dataclass(frozen=True, slots=True)
class Received:
    """A dead letter as read back from its topic: why the worker refused the event, and where it was.

    ``source`` is None for a record without the source headers (written by something other than the
    worker); ``cut`` says the key or value is not the original's whole (see the module's notes).
    """

    reason: str
    reason_class: str
    source: tuple[str, int, int] | None
    key: bytes | None
    value: bytes | None
    cut: bool
    # The contract an event broke: {"id", "version", "clause"} (reason class ``contract``), else None.
    contract: dict[str, str] | None = None


def read(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Received:
    """The dead letter of a consumed record's key, value and headers."""
    found = {name: data.decode("utf-8", "replace") for name, data in headers}
    source: tuple[str, int, int] | None = None
    # A record without them is not one of the worker's: it is still shown, without its origin.
    with contextlib.suppress(KeyError, ValueError):
        source = (found[SOURCE_TOPIC], int(found[SOURCE_PARTITION]), int(found[SOURCE_OFFSET]))
    cut = OMITTED in found or any(name.endswith("-truncated") for name in found)
    contract: dict[str, str] | None = None
    if CONTRACT_ID_HEADER in found:
        contract = {
            "id": found[CONTRACT_ID_HEADER],
            "version": found.get(CONTRACT_VERSION_HEADER, ""),
            "clause": found.get(CONTRACT_CLAUSE_HEADER, ""),
        }
    return Received(found.get(REASON, ""), found.get(REASON_CLASS, ""), source, key, value, cut, contract)


def send_retriable(exc: BaseException) -> bool:
    """Whether a failed send may succeed as it is if tried again (the broker unreachable or busy), as
    opposed to a refusal of this record (too large, not allowed)."""
    if isinstance(exc, KafkaTimeoutError | OSError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)
