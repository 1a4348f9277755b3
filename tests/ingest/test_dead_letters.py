"""Dead-letter records always fit the producer's request limit, and the real broker takes them."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts import Breach
from hub.dead_letter_headers import read
from hub.kafka_clients import admin_options
from ingest.dead_letters import MAX_REASON_BYTES, build, minimal, record_size

FAUST_LIMIT = 1_000_000  # Faust's producer_max_request_size, the worker's


def _blob(size: int, byte: bytes = b"x") -> bytes:
    return byte * size


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(4 * MAX_REASON_BYTES, 60_000),
    key_size=st.none() | st.integers(0, 120_000),
    value_size=st.none() | st.integers(0, 120_000),
    reason_size=st.integers(0, 3 * MAX_REASON_BYTES),
)
def test_a_dead_letter_never_exceeds_the_limit_and_keeps_what_fits(
    limit: int, key_size: int | None, value_size: int | None, reason_size: int
) -> None:
    key = None if key_size is None else _blob(key_size, b"k")
    value = None if value_size is None else _blob(value_size, b"v")
    letter = build(key, value, "é" * (reason_size // 2), "size", ("cim.ingest.ngt", 3, 42), limit)
    assert record_size(letter.key, letter.value, letter.headers) <= limit
    headers = dict(letter.headers)
    assert len(headers["reason"]) <= MAX_REASON_BYTES
    assert headers["source-topic"] == b"cim.ingest.ngt"
    assert (headers["source-partition"], headers["source-offset"]) == (b"3", b"42")
    for name, original, kept in (("value", value, letter.value), ("key", key, letter.key)):
        if original is None:
            assert kept is None
            continue
        assert kept is not None and original.startswith(kept)
        if kept != original:
            marker = headers[f"{name}-truncated"].decode()
            assert marker == f"{len(original)} bytes, sha256 {hashlib.sha256(original).hexdigest()}"
        else:
            assert f"{name}-truncated" not in headers
    if key is not None and len(key) < limit // 4:
        # A short key is kept whole; a value that is cut gets all the room left.
        assert letter.key == key
        if letter.value != value:
            assert len(letter.value or b"") > limit - len(key) - 2 * MAX_REASON_BYTES - 1_000


def test_a_record_that_fits_is_sent_whole() -> None:
    letter = build(b"k", b"{}", "why", "json", ("t", 0, 1), FAUST_LIMIT)
    assert (letter.key, letter.value) == (b"k", b"{}")
    assert not any(name.endswith("-truncated") for name, _ in letter.headers)


def test_the_minimal_letter_keeps_the_headers_and_drops_key_and_value() -> None:
    letter = minimal(build(b"k" * 10, b"v" * 10, "why", "json", ("t", 0, 1), 200))
    assert (letter.key, letter.value) == (None, None)
    assert dict(letter.headers)["reason"] == b"why"
    assert "omitted" in dict(letter.headers)


def test_a_dead_letter_reads_back_as_built_and_says_when_it_was_cut() -> None:
    whole = build(b"mrid-1", b'{"id":"e"}', "why", "label", ("cim.ingest.a", 2, 41), FAUST_LIMIT)
    got = read(whole.key, whole.value, whole.headers)
    assert (got.reason, got.reason_class, got.source) == ("why", "label", ("cim.ingest.a", 2, 41))
    assert (got.key, got.value, got.cut) == (b"mrid-1", b'{"id":"e"}', False)
    cut = build(b"k", b"v" * 1_000, "why", "size", ("t", 0, 1), 600)
    assert read(cut.key, cut.value, cut.headers).cut
    assert read(None, None, minimal(whole).headers).cut
    # A record someone else wrote to the topic: shown, without an origin.
    assert read(b"k", b"v", [("reason", b"odd")]).source is None
    assert got.contract is None


def test_a_contract_breach_reads_back_with_its_contract() -> None:
    breach = Breach("urn:c:pipes", "2.1.0", "schema[GasPipe].properties[GasPipe.length].required", "missing")
    letter = build(b"m", b"{}", breach.reason, "contract", ("t", 0, 7), FAUST_LIMIT, breach.headers)
    got = read(letter.key, letter.value, letter.headers)
    assert got.reason_class == "contract" and got.reason == breach.reason
    assert got.contract == {"id": "urn:c:pipes", "version": "2.1.0", "clause": breach.clause}
    assert got.source == ("t", 0, 7)


async def _send_and_read(bootstrap: str, topic: str, letters: list[Any]) -> list[Any]:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", max_request_size=FAUST_LIMIT)
    await producer.start()
    try:
        for letter in letters:
            await (await producer.send(topic, letter.value, key=letter.key, headers=letter.headers))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        **admin_options(bootstrap),
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=2 * FAUST_LIMIT,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        for _ in range(30):
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(msgs)
            if len(out) >= len(letters):
                break
        return out
    finally:
        await consumer.stop()


def test_the_broker_takes_dead_letters_of_records_at_and_beyond_its_limit(
    kafka_bootstrap: str, fresh_topic: str
) -> None:
    letters = [
        # An event just under max_event_bytes with long headers.
        build(b"m-1", _blob(FAUST_LIMIT - 10), "r" * 10_000, "key", (fresh_topic, 0, 1), FAUST_LIMIT),
        # As large as the broker takes on an ingest topic, with a long key.
        build(_blob(200_000, b"k"), _blob(1_048_000), "size", "size", (fresh_topic, 0, 2), FAUST_LIMIT),
    ]
    got = asyncio.new_event_loop().run_until_complete(_send_and_read(kafka_bootstrap, fresh_topic, letters))
    assert [(m.key, m.value) for m in got] == [(x.key, x.value) for x in letters]
    assert all(dict(m.headers)["value-truncated"] for m in got)
