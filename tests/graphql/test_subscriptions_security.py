"""What a ``changes`` subscription must not reveal or allow, end to end: events through real Kafka and the
real ingest worker into Neo4j, change records on the change topic, subscribers over websockets to a real API.

- the cursor is sealed and moves only past delivered records, never with hidden changes;
- a tampered cursor, another caller's cursor and the old plain cursor are refused with one error;
- the socket is closed with 4401 when the token expires;
- an object relabelled away from a subscriber looks exactly like a deleted one;
- subscriptions are capped per socket and per caller;
- however many subscriptions, the API process is one consumer at the broker;
- a subscriber too slow for its queue gets a gap marker and reads on from it without loss, and the
  others carry on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from graphkit import Api, serve
from hubql.cursors import CursorCodec, cursor_key
from test_subscriptions import PARTITIONS, _create_topics, worker

from devstack.services.async_run import run_coroutine
from hub.kafka_clients import admin_options
from ingest.change_publisher import partition_of

pytestmark = pytest.mark.services

QUERY = """subscription($after: String, $mrids: [ID!]) {
  changes(after: $after, mrids: $mrids) { cursor mrid className change version time node { mrid label } } }"""
PUBLIC = "classification=PUBLIC"
SECRET = "classification=SECRET"


@dataclass
class Stack:
    api: Api
    topic: str
    ingest: str
    prefix: str
    bootstrap: str
    codec: CursorCodec
    settings: Any

    def mrid(self, name: str) -> str:
        return f"{self.prefix}-{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def stack(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"subsec-{uuid.uuid4().hex[:8]}"
    topic, ingest = f"{prefix}.cim.changes", f"{prefix}.cim.ingest.p1"
    run_coroutine(_create_topics(settings.kafka_bootstrap, [topic, ingest]))
    api_settings = settings.model_copy(
        update={
            "changes_topic": topic,
            # A short leeway so that the expiry test need not wait half a minute past exp.
            "oidc_leeway_s": 1.0,
            "max_subscriptions_per_socket": 2,
            "max_subscriptions_per_caller": 3,
        }
    )
    log = Path(tmp_path_factory.mktemp("subsec")) / "worker.log"
    with serve(api_settings) as api, worker(settings, prefix, log) as proc:
        codec = CursorCodec(cursor_key(api_settings))
        yield Stack(api, topic, ingest, prefix, settings.kafka_bootstrap, codec, api_settings)
        assert proc.poll() is None, log.read_text()[-3000:]


def principal(stack: Stack, subject: str) -> str:
    """The principal the API keys a token of ``subject`` from the test issuer by."""
    return f"{stack.settings.oidc_issuer} {subject}"


class Socket:
    """One graphql-transport-ws connection; collects each operation's results and errors."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[str]] = {}
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Socket:
        self._ws = await websockets.connect(
            self.url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        )
        await self._ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
        )
        ack = json.loads(await self._ws.recv())
        assert ack["type"] == "connection_ack", ack
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self._ws.close()

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = json.loads(raw)
                op = msg.get("id")
                if msg["type"] == "next" and msg["payload"].get("errors"):
                    self.errors.setdefault(op, []).extend(e["message"] for e in msg["payload"]["errors"])
                elif msg["type"] == "next":
                    self.received.setdefault(op, []).append(msg["payload"]["data"]["changes"])
                elif msg["type"] == "error":
                    self.errors.setdefault(op, []).extend(e["message"] for e in msg["payload"])
                elif msg["type"] == "ping":
                    await self._ws.send(json.dumps({"type": "pong"}))
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.closed.set_result((rcvd.code, rcvd.reason) if rcvd is not None else (0, ""))

    async def subscribe(self, op: str, variables: dict[str, Any], query: str = QUERY) -> None:
        self.received.setdefault(op, [])
        payload = {"query": query, "variables": variables}
        await self._ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))

    async def complete(self, op: str) -> None:
        await self._ws.send(json.dumps({"id": op, "type": "complete"}))


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def event(mrid: str, version: int, label: str = PUBLIC, kind: str = "upsert") -> dict[str, Any]:
    return {
        "id": f"{mrid}-v{version}",
        "source": "p1",
        "type": kind,
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": "ACLineSegment",
        "label": label,
        "attributes": {"IdentifiedObject.name": f"{mrid} v{version}"} if kind == "upsert" else {},
    }


async def publish(stack: Stack, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**admin_options(stack.bootstrap))
    await producer.start()
    try:
        for ev in events:
            await producer.send_and_wait(stack.ingest, json.dumps(ev).encode(), key=ev["subject"].encode())
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def topic_reader(stack: Stack) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(**admin_options(stack.bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(stack.topic, p) for p in range(PARTITIONS)])
        yield consumer
    finally:
        await consumer.stop()


async def end_offsets(stack: Stack) -> dict[int, int]:
    async with topic_reader(stack) as consumer:
        ends = await consumer.end_offsets([TopicPartition(stack.topic, p) for p in range(PARTITIONS)])
    return {tp.partition: offset for tp, offset in ends.items()}


async def locate(stack: Stack, mrids: list[str], timeout_s: float = 120) -> dict[str, tuple[int, int]]:
    """Partition and offset of the last change record of each mRID, once the worker has written them all."""
    found: dict[str, tuple[int, int]] = {}
    async with topic_reader(stack) as consumer:
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while not set(mrids) <= set(found):
            assert time.monotonic() < deadline, f"no change records for {sorted(set(mrids) - set(found))}"
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                for msg in messages:
                    mrid = json.loads(msg.value)["mrid"]
                    if mrid in mrids:
                        found[mrid] = (tp.partition, msg.offset)
    return found


def spread_over_partitions(stack: Stack, each: int) -> list[str]:
    """New mRIDs, ``each`` of them keyed to every partition of the change topic (chosen by Kafka's own
    partitioner, so that the hidden changes fall on every partition whatever the random names)."""
    by_partition: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    while any(len(found) < each for found in by_partition.values()):
        mrid = stack.mrid("h")
        found = by_partition[partition_of(mrid.encode(), PARTITIONS)]
        if len(found) < each:
            found.append(mrid)
    return [mrid for found in by_partition.values() for mrid in found]


# ----------------------------------------------------------------------------------------------- tests


async def test_cursor_is_sealed_and_moves_only_past_delivered_changes(stack: Stack) -> None:
    start = await end_offsets(stack)
    a, b = stack.mrid("a"), stack.mrid("b")
    hidden = spread_over_partitions(stack, 4)
    async with Socket(stack.api.ws_url, stack.api.token("pub-1", None, "PUBLIC")) as ws:
        await ws.subscribe("1", {"after": stack.codec.seal(stack.topic, principal(stack, "pub-1"), start)})
        await publish(stack, [event(a, 1)])
        await until(lambda: len(ws.received["1"]) >= 1, 120, "the first visible change")
        await publish(stack, [event(h, 1, SECRET) for h in hidden])
        await locate(stack, hidden)  # the hidden changes are on the topic, between a and b
        await publish(stack, [event(b, 1)])
        await until(lambda: len(ws.received["1"]) >= 2, 120, "the second visible change")
        await asyncio.sleep(1.5)  # anything beyond would arrive now
    got = ws.received["1"]
    assert [(c["mrid"], c["change"]) for c in got] == [(a, "upsert"), (b, "upsert")]
    assert not ws.errors

    # Opaque: neither the topic nor any JSON (the old cursor was base64 of {"t": topic, "o": offsets}).
    for c in got:
        raw = base64.urlsafe_b64decode(c["cursor"] + "=" * (-len(c["cursor"]) % 4))
        assert stack.topic.encode() not in raw
        with pytest.raises(ValueError):
            json.loads(raw)
    # Sealed positions: the start, moved only where a delivered change was; the twelve hidden changes
    # (spread over the partitions between a and b) moved nothing.
    where = await locate(stack, [a, b, *hidden])
    assert {where[h][0] for h in hidden} == set(range(PARTITIONS))
    after_a = {**start, where[a][0]: where[a][1] + 1}
    after_b = {**after_a, where[b][0]: where[b][1] + 1}
    assert stack.codec.open(got[0]["cursor"], stack.topic, principal(stack, "pub-1")) == after_a
    assert stack.codec.open(got[1]["cursor"], stack.topic, principal(stack, "pub-1")) == after_b

    # Resuming after a: b and nothing else, the hidden changes re-read and withheld again.
    async with Socket(stack.api.ws_url, stack.api.token("pub-1", None, "PUBLIC")) as ws:
        await ws.subscribe("1", {"after": got[0]["cursor"]})
        await until(lambda: len(ws.received["1"]) >= 1, 60, "the resumed change")
        await asyncio.sleep(1.5)
    assert [(c["mrid"], c["version"]) for c in ws.received["1"]] == [(b, 1)]


async def test_tampered_foreign_and_plain_cursors_get_one_error(stack: Stack) -> None:
    start = await end_offsets(stack)
    good = stack.codec.seal(stack.topic, principal(stack, "alice"), start)
    middle = len(good) // 2
    tampered = good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1 :]
    plain = (
        base64.urlsafe_b64encode(
            json.dumps({"t": stack.topic, "o": {str(p): o for p, o in start.items()}}).encode()
        )
        .decode()
        .rstrip("=")
    )
    other_topic = stack.codec.seal(f"{stack.topic}.other", principal(stack, "alice"), start)
    # The same subject without its issuer: a namesake from another issuer must not use alice's cursor.
    namesake = stack.codec.seal(stack.topic, "alice", start)
    mallory = f"mallory-{uuid.uuid4().hex[:6]}"
    cases = [
        ("alice", tampered),
        (mallory, good),
        ("alice", plain),
        ("alice", other_topic),
        ("alice", namesake),
    ]
    messages = []
    for user, cursor in cases:
        async with Socket(stack.api.ws_url, stack.api.token(user, None, "PUBLIC")) as ws:
            await ws.subscribe("1", {"after": cursor})
            await until(lambda: bool(ws.errors.get("1")), 30, f"the refusal of {user}'s cursor")
            assert ws.received["1"] == []
            [message] = ws.errors["1"]
            assert repr(cursor[:80]) in message  # names the value
            messages.append(message.replace(repr(cursor[:80]), "<cursor>"))
    assert len(set(messages)) == 1, messages
    # The refusal of another caller's cursor is on the audit topic under the caller who tried it.
    [refused] = await audit_records(
        stack,
        lambda e: (
            e.get("action") == "subscription.cursor_refused"
            and e.get("principal") == principal(stack, mallory)
        ),
        1,
    )
    assert refused["reason"] == "cursor does not open"
    # The cursor issued to alice works for alice.
    async with Socket(stack.api.ws_url, stack.api.token("alice", None, "PUBLIC")) as ws:
        await ws.subscribe("1", {"after": good})
        x = stack.mrid("x")
        await publish(stack, [event(x, 1)])
        await until(lambda: len(ws.received["1"]) >= 1, 120, "alice's change")
    assert not ws.errors
    assert ws.received["1"][0]["mrid"] == x


async def test_socket_is_closed_with_4401_when_the_token_expires(stack: Stack) -> None:
    started = time.time()
    token = stack.api.token("brief", None, "PUBLIC", ttl=3)
    async with Socket(stack.api.ws_url, token) as ws:
        await ws.subscribe("1", {})
        code, reason = await asyncio.wait_for(ws.closed, 20)
    # exp is whole seconds after minting; the API closes at exp plus its leeway (1 s here).
    assert time.time() - started >= 2.0
    assert (code, reason) == (4401, "token has expired")


async def test_relabelled_away_looks_exactly_like_deleted(stack: Stack) -> None:
    start = await end_offsets(stack)
    x, y, z = stack.mrid("x"), stack.mrid("y"), stack.mrid("z")
    async with (
        Socket(stack.api.ws_url, stack.api.token("pub-2", None, "PUBLIC")) as pub,
        Socket(stack.api.ws_url, stack.api.token("sec-2", None, "SECRET")) as sec,
    ):
        await pub.subscribe("1", {"after": stack.codec.seal(stack.topic, principal(stack, "pub-2"), start)})
        await sec.subscribe("1", {"after": stack.codec.seal(stack.topic, principal(stack, "sec-2"), start)})
        await publish(stack, [event(x, 1), event(y, 1), event(z, 1, SECRET)])
        await until(lambda: len(pub.received["1"]) >= 2 and len(sec.received["1"]) >= 3, 120, "version 1")
        # x is relabelled away from pub, y is deleted, z (never visible to pub) is deleted
        await publish(stack, [event(x, 2, SECRET), event(y, 2, kind="delete"), event(z, 2, kind="delete")])
        await until(lambda: len(pub.received["1"]) >= 4 and len(sec.received["1"]) >= 6, 120, "version 2")
        # x comes back into view
        await publish(stack, [event(x, 3)])
        await until(lambda: len(pub.received["1"]) >= 5, 120, "version 3")
        await asyncio.sleep(2.0)  # anything beyond would arrive now
    assert not pub.errors and not sec.errors
    seen = pub.received["1"]
    assert z not in {c["mrid"] for c in seen}
    [gone_x] = [c for c in seen if c["mrid"] == x and c["version"] == 2]
    [gone_y] = [c for c in seen if c["mrid"] == y and c["version"] == 2]
    assert gone_y["change"] == "delete" and gone_y["node"] is None

    def shown(c: dict[str, Any]) -> dict[str, Any]:
        # What may differ between two objects' changes: identity, position and commit time.
        return {k: v for k, v in c.items() if k not in ("mrid", "cursor", "time")}

    assert set(gone_x) == set(gone_y)
    assert shown(gone_x) == shown(gone_y)
    assert isinstance(gone_x["time"], str) and isinstance(gone_y["time"], str)
    assert [(c["mrid"], c["change"], c["version"]) for c in seen if c["mrid"] == x] == [
        (x, "upsert", 1),
        (x, "delete", 2),
        (x, "upsert", 3),
    ]
    assert [c["node"]["label"] for c in seen if c["mrid"] == x and c["version"] == 3] == [PUBLIC]
    # Whoever may still see x gets the relabel as it is.
    [relabel] = [c for c in sec.received["1"] if c["mrid"] == x and c["version"] == 2]
    assert relabel["change"] == "upsert" and relabel["node"]["label"] == SECRET


async def audit_records(stack: Stack, want: Callable[[dict[str, Any]], bool], n: int) -> list[dict[str, Any]]:
    """The API's audit records that ``want``, from its audit topic, until there are ``n`` (60 s at most)."""
    consumer = AIOKafkaConsumer(
        stack.settings.audit_topic,
        **admin_options(stack.bootstrap),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while len(found) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(e for e in (json.loads(r.value) for r in records) if want(e))
    finally:
        await consumer.stop()
    return found


async def test_subscriptions_are_capped_per_socket_and_per_caller(stack: Stack) -> None:
    capper = f"capper-{uuid.uuid4().hex[:6]}"
    token = stack.api.token(capper, None, "PUBLIC")
    async with Socket(stack.api.ws_url, token) as s1, Socket(stack.api.ws_url, token) as s2:
        for op in ("1", "2"):
            await s1.subscribe(op, {})
        await asyncio.sleep(1.0)
        assert not s1.errors
        await s1.subscribe("3", {})
        await until(lambda: bool(s1.errors.get("3")), 30, "the per-socket refusal")
        assert s1.errors["3"] == [
            "max_subscriptions_per_socket = 2: this connection has 2 subscriptions open"
        ]

        await s2.subscribe("1", {})
        await asyncio.sleep(1.0)
        assert not s2.errors
        await s2.subscribe("2", {})
        await until(lambda: bool(s2.errors.get("2")), 30, "the per-caller refusal")
        assert s2.errors["2"] == ["max_subscriptions_per_caller = 3: you have 3 subscriptions open"]

        # Another caller is not affected; a finished subscription frees its place.
        async with Socket(stack.api.ws_url, stack.api.token("other", None, "PUBLIC")) as s3:
            await s3.subscribe("1", {})
            await asyncio.sleep(1.0)
            assert not s3.errors
        await s1.complete("1")
        await asyncio.sleep(1.0)
        await s2.subscribe("3", {})
        await asyncio.sleep(1.5)
        assert set(s2.errors) == {"2"}
    # Each refusal is on the audit topic, with the caller and the limit it met.
    refused = await audit_records(
        stack, lambda e: e.get("action") == "subscription.refused" and e.get("subject") == capper, 2
    )
    assert sorted(r["reason"] for r in refused) == [
        "max_subscriptions_per_caller = 3: you have 3 subscriptions open",
        "max_subscriptions_per_socket = 2: this connection has 2 subscriptions open",
    ]


async def _members(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        if not groups:
            return []
        described = await admin.describe_consumer_groups(groups)
        return [m for r in described for g in r.to_object()["groups"] for m in g["members"]]
    finally:
        await admin.close()


async def test_many_subscriptions_are_one_consumer_at_the_broker(stack: Stack) -> None:
    sockets = [Socket(stack.api.ws_url, stack.api.token(f"many-{i}", None, "PUBLIC")) for i in range(3)]
    async with contextlib.AsyncExitStack() as opened:
        for ws in sockets:
            await opened.enter_async_context(ws)
            for op in ("1", "2"):
                await ws.subscribe(op, {})
        group_prefix = f"hub-api.{stack.topic}."
        deadline = time.monotonic() + 30
        members = await _members(stack.bootstrap, group_prefix)
        while not members and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            members = await _members(stack.bootstrap, group_prefix)
        await asyncio.sleep(2.0)
        members = await _members(stack.bootstrap, group_prefix)
        assert [m["client_id"] for m in members] == ["hub-api-changes"]
        # And the six subscriptions are live on it: each gets the next change.
        m = stack.mrid("m")
        await publish(stack, [event(m, 1)])
        await until(
            lambda: all(len(ws.received[op]) >= 1 for ws in sockets for op in ("1", "2")), 120, "the change"
        )
    assert not any(ws.errors for ws in sockets)
    assert {c["mrid"] for ws in sockets for op in ("1", "2") for c in ws.received[op]} == {m}


async def test_a_slow_subscriber_gets_a_gap_marker_reads_on_without_loss_and_the_others_carry_on(
    stack: Stack,
) -> None:
    # A second API process on the same topic, with room for three waiting changes per subscription: the
    # shared reader hands a fetched batch to the queues at once, so forty changes overflow "slow".
    with serve(stack.settings.model_copy(update={"subscription_queue_size": 3})) as api:
        mrids = [stack.mrid(f"s{i:02d}") for i in range(40)]
        async with (
            Socket(api.ws_url, api.token("slow", None, "PUBLIC")) as slow,
            Socket(api.ws_url, api.token("calm", None, "PUBLIC")) as calm,
        ):
            warm = stack.mrid("warm")
            await slow.subscribe("1", {})
            await calm.subscribe("1", {"mrids": [warm, mrids[7]]})
            # Both are on the shared reader once a first change reaches them (live subscriptions).
            version = 0
            while not (slow.received["1"] and calm.received["1"]):
                version += 1
                await publish(stack, [event(warm, version)])
                with contextlib.suppress(AssertionError):
                    await until(lambda: bool(slow.received["1"] and calm.received["1"]), 5, "warm-up")
            await publish(stack, [event(m, 1) for m in mrids])

            def slow_has_all() -> bool:
                return set(mrids) <= {c["mrid"] for c in slow.received["1"]}

            await until(slow_has_all, 120, "every change, through the gap, to the slow subscriber")
            await until(
                lambda: any(c["mrid"] == mrids[7] for c in calm.received["1"]), 120, "the calm one's change"
            )
            # Still live on the shared reader afterwards.
            after = stack.mrid("after")
            await publish(stack, [event(after, 1)])
            await until(lambda: any(c["mrid"] == after for c in slow.received["1"]), 120, "a later change")
    assert not slow.errors and not calm.errors
    rows = slow.received["1"]
    gaps = [i for i, c in enumerate(rows) if c["change"] == "gap"]
    assert gaps, [c["change"] for c in rows]
    for i in gaps:
        marker = rows[i]
        assert marker["mrid"] == "" and marker["className"] == "" and marker["node"] is None
        # The marker's cursor is the position after the last change delivered before it.
        before = [c for c in rows[:i] if c["change"] != "gap"]
        assert before, "the warm-up change came first"
        assert stack.codec.open(marker["cursor"], stack.topic, principal(stack, "slow")) == stack.codec.open(
            before[-1]["cursor"], stack.topic, principal(stack, "slow")
        )
    # Nothing lost, nothing twice: every published change exactly once (order is per partition).
    told = [c["mrid"] for c in rows if c["change"] != "gap" and c["mrid"] != warm]
    assert sorted(told) == sorted([*mrids, after])
    assert [c["mrid"] for c in calm.received["1"] if c["mrid"] != warm] == [mrids[7]]


async def test_a_subscription_completed_by_its_client_is_audited_as_ok_with_its_rows(stack: Stack) -> None:
    from structlog.testing import capture_logs

    user = f"closer-{uuid.uuid4().hex[:6]}"
    with capture_logs() as logs:
        async with Socket(stack.api.ws_url, stack.api.token(user, None, "PUBLIC")) as ws:
            await ws.subscribe("1", {})
            await asyncio.sleep(1.0)
            x = stack.mrid("x")
            await publish(stack, [event(x, 1)])
            await until(lambda: bool(ws.received.get("1")), 120, "the change")
            await ws.complete("1")
            await until(
                lambda: any(e["event"] == "subscription ended" and e.get("subject") == user for e in logs),
                30,
                "the end of the subscription",
            )
    [ended] = [e for e in logs if e["event"] == "subscription ended" and e.get("subject") == user]
    assert ended["rows"] >= 1
    [operation] = [
        e
        for e in logs
        if e["event"] == "graphql operation"
        and e.get("subject") == user
        and e["operation_type"] == "subscription"
    ]
    assert operation["outcome"] == "ok" and operation["errors"] == []


async def test_two_api_instances_deliver_the_same_records_and_honour_each_others_cursors(
    stack: Stack,
) -> None:
    # Scaling out: a second API on the same change topic (its own shared reader and consumer group) gives
    # an equivalent subscriber exactly what the first gives, hidden and relabelled-away objects included,
    # and a cursor received from one resumes on the other (same HUB_CURSOR_KEY).
    with serve(stack.settings) as second:
        user = f"twin-{uuid.uuid4().hex[:6]}"
        seen, hidden, moved = stack.mrid("seen"), stack.mrid("hidden"), stack.mrid("moved")
        async with (
            Socket(stack.api.ws_url, stack.api.token(user, None, "PUBLIC")) as one,
            Socket(second.ws_url, second.token(user, None, "PUBLIC")) as two,
        ):
            mrids = [seen, hidden, moved]
            await one.subscribe("1", {"mrids": mrids})
            await two.subscribe("1", {"mrids": mrids})
            # Both are live once a first change reaches them.
            version = 0
            while not (one.received["1"] and two.received["1"]):
                version += 1
                await publish(stack, [event(seen, version)])
                with contextlib.suppress(AssertionError):
                    await until(lambda: bool(one.received["1"] and two.received["1"]), 5, "warm-up")

            def told(ws: Socket) -> list[tuple[str, str, int]]:
                return [(c["mrid"], c["change"], int(c["version"])) for c in ws.received["1"]]

            def both(change: tuple[str, str, int]) -> Callable[[], bool]:
                return lambda: change in told(one) and change in told(two)

            # In two steps: the worker folds the changes to one object within a batch into one.
            await publish(stack, [event(hidden, 1, SECRET), event(moved, 1)])
            await until(both((moved, "upsert", 1)), 120, "the first changes on both instances")
            second_step = [event(moved, 2, SECRET), event(seen, version + 1)]
            await publish(stack, [*second_step, event(hidden, 2, SECRET, kind="delete")])
            await until(both((moved, "delete", 2)), 120, "the relabel away on both instances")
            await until(both((seen, "upsert", version + 1)), 120, "the last change on both instances")
            cursor = one.received["1"][-1]["cursor"]
        assert not one.errors and not two.errors

        # Per object, the same changes in the same order (across objects, order is per partition). The
        # warm-up's changes are left out: one socket may have been live for more of them than the other.
        def after_warm_up(ws: Socket, mrid: str) -> list[tuple[str, str, int]]:
            return [t for t in told(ws) if t[0] == mrid and (mrid != seen or t[2] > version)]

        for mrid in mrids:
            assert after_warm_up(one, mrid) == after_warm_up(two, mrid)
        assert after_warm_up(one, seen) == [(seen, "upsert", version + 1)]
        assert [t for t in told(one) if t[0] == moved] == [(moved, "upsert", 1), (moved, "delete", 2)]
        assert not [t for t in told(one) if t[0] == hidden]

        # A cursor from the first instance resumes on the second: only what came after it.
        later = stack.mrid("later")
        await publish(stack, [event(later, 1)])
        async with Socket(second.ws_url, second.token(user, None, "PUBLIC")) as resumed:
            await resumed.subscribe("1", {"after": cursor, "mrids": [*mrids, later]})
            await until(
                lambda: any(c["mrid"] == later for c in resumed.received["1"]), 120, "the resumed change"
            )
            await asyncio.sleep(1.0)
        assert not resumed.errors
        assert [c["mrid"] for c in resumed.received["1"]] == [later]


async def test_hidden_changes_never_fill_a_subscribers_queue(stack: Stack) -> None:
    # Room for three waiting changes, as in the slow subscriber's test: forty changes the subscriber may
    # not see go by, then one it may. Were hidden changes queued, it would get a gap marker, and when it
    # does would tell it how many hidden changes there were.
    # The hidden label is in the label table before the API reads it (a label written since is queued,
    # and decided on delivery).
    first = stack.mrid("h-first")
    await publish(stack, [event(first, 1, SECRET)])
    await locate(stack, [first])
    with serve(stack.settings.model_copy(update={"subscription_queue_size": 3})) as api:
        async with Socket(api.ws_url, api.token("blind", None, "PUBLIC")) as ws:
            warm = stack.mrid("warm")
            await ws.subscribe("1", {})
            version = 0
            while not ws.received["1"]:
                version += 1
                await publish(stack, [event(warm, version)])
                with contextlib.suppress(AssertionError):
                    await until(lambda: bool(ws.received["1"]), 5, "warm-up")
            hidden = [stack.mrid(f"h{i:02d}") for i in range(40)]
            await publish(stack, [event(h, 1, SECRET) for h in hidden])
            await locate(stack, hidden)
            seen = stack.mrid("seen")
            await publish(stack, [event(seen, 1)])
            await until(lambda: any(c["mrid"] == seen for c in ws.received["1"]), 120, "the visible change")
            await asyncio.sleep(1.0)
    assert not ws.errors
    assert [c["change"] for c in ws.received["1"] if c["change"] == "gap"] == []
    assert {c["mrid"] for c in ws.received["1"]} == {warm, seen}
