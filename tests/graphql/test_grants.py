"""Access requests, decisions and grants end to end: events through real Kafka and the real ingest worker into
Neo4j, three API processes' worth of apps on the same graph (two trusting one issuer, one trusting another),
requests and decisions through GraphQL, and a consumer's queries and open subscription watched for the
2-second bound in both directions.

The demo's contracts are the products: ``ngt``'s labels need ``org=ngt`` (beside an OFFICIAL clearance), so a
consumer at another organisation cleared OFFICIAL sees ngt's objects exactly while a grant is live; and never
the system operator's (``neso``) object labelled for ``org=neso|org=ngt``, which a grant of ``org=ngt`` would
satisfy, because a grant opens only its own product's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from graphkit import Api, serve
from test_subscriptions import Subscriber, worker

from devstack.demo.producers import PRODUCER_CONFIG
from hub.kafka_clients import admin_options
from hub.kafka_topics import ensure_topics, topic_admin

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "devstack" / "demo" / "contracts"
LICENCE = "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
GRID_LABEL = "classification=OFFICIAL&org=ngt"
# On an object of another producer (neso): satisfied by org=ngt, which a grant of ngt's product gives.
FOREIGN_LABEL = "classification=OFFICIAL&(org=neso|org=ngt)"
PUBLIC_LABEL = "classification=PUBLIC"
OTHER_ISSUER = "https://other-issuer.example/realms/energy"
BOUND_S = 2.0
LEAN = "subscription($mrids: [ID!]) { changes(mrids: $mrids) { mrid change version } }"

FIELDS = "id status product owner attributes grantedAttributes grantedUntil reason requesterSubject"
REQUEST = f"""mutation($product: String!, $until: DateTime!, $licence: String!, $attributes: [String!]) {{
  requestAccess(product: $product, purpose: "gas-to-power planning", licence: $licence, until: $until,
    attributes: $attributes) {{ {FIELDS} }} }}"""
APPROVE = f"""mutation($id: ID!, $until: DateTime) {{
  approveAccessRequest(id: $id, until: $until) {{ {FIELDS} }} }}"""
REJECT = f'mutation($id: ID!) {{ rejectAccessRequest(id: $id, reason: "not now") {{ {FIELDS} }} }}'
ASK = f'mutation($id: ID!) {{ askAboutAccessRequest(id: $id, question: "which study?") {{ {FIELDS} }} }}'
ANSWER = (
    f'mutation($id: ID!) {{ answerAccessRequest(id: $id, answer: "the 2027 winter study") {{ {FIELDS} }} }}'
)
REVOKE = f'mutation($id: ID!) {{ revokeGrant(id: $id, reason: "study over") {{ {FIELDS} }} }}'
ONE = f"query($id: ID!) {{ accessRequest(id: $id) {{ {FIELDS} }} }}"
LISTS = f"{{ accessRequests {{ {FIELDS} }} myGrants {{ {FIELDS} }} grantsHeld {{ {FIELDS} }} }}"
OBJECTS = 'query($name: String) { objects(className: "ACLineSegment", name: $name) { nodes { mrid } } }'


@dataclass
class Stack:
    a: Api  # the API the consumer queries and subscribes to
    a2: Api  # a second replica trusting the same issuer: the officers decide here
    b: Api  # an API trusting another issuer
    prefix: str
    audit_topic: str
    grid: list[str]  # ngt's objects (label needs org=ngt)
    sentinel: str  # a public object, seen by everyone
    foreign: str  # neso's object labelled FOREIGN_LABEL
    version: int = 1

    def mrids(self) -> list[str]:
        return [*self.grid, self.sentinel]


async def _topics(bootstrap: str, names: list[str]) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, names, 1)


async def publish_foreign(settings: Any, stack: Stack, version: int) -> None:
    """A version of neso's object (its own topic)."""
    event = {
        "id": f"{stack.foreign}-v{version}",
        "source": "neso",
        "type": "upsert",
        "subject": stack.foreign,
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": "ACLineSegment",
        "label": FOREIGN_LABEL,
        "attributes": {"IdentifiedObject.name": f"{stack.prefix} {stack.foreign} v{version}"},
    }
    producer = AIOKafkaProducer(**admin_options(settings.kafka_bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{stack.prefix}.cim.ingest.neso", json.dumps(event).encode(), key=stack.foreign.encode()
        )
    finally:
        await producer.stop()


async def publish(settings: Any, stack: Stack) -> None:
    """The next version of every test object: ngt's first, the public sentinel last (one partition, so a
    subscriber that received the sentinel has been handed everything before it)."""
    stack.version += 1
    now = datetime.now(UTC).isoformat()
    producer = AIOKafkaProducer(**admin_options(settings.kafka_bootstrap))
    await producer.start()
    try:
        for mrid in stack.mrids():
            event = {
                "id": f"{mrid}-v{stack.version}",
                "source": "ngt",
                "type": "upsert",
                "subject": mrid,
                "time": now,
                "version": stack.version,
                "class": "ACLineSegment",
                "label": PUBLIC_LABEL if mrid == stack.sentinel else GRID_LABEL,
                "attributes": {"IdentifiedObject.name": f"{stack.prefix} {mrid} v{stack.version}"},
            }
            await producer.send_and_wait(
                f"{stack.prefix}.cim.ingest.ngt", json.dumps(event).encode(), key=mrid.encode()
            )
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def stack(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import uuid

    prefix = f"grants-{uuid.uuid4().hex[:8]}"
    changes, audit_topic = f"{prefix}.cim.changes", f"{prefix}.audit"
    ingest = [f"{prefix}.cim.ingest.ngt", f"{prefix}.cim.ingest.neso"]
    asyncio.run(_topics(settings.kafka_bootstrap, [changes, audit_topic, *ingest]))
    common = {
        "changes_topic": changes,
        "audit_topic": audit_topic,
        "contracts_dir": CONTRACTS,
        "producers": PRODUCER_CONFIG,
        "api_metrics_port": 0,
    }
    api_settings = settings.model_copy(update=common)
    other = settings.model_copy(update={**common, "oidc_issuer": OTHER_ISSUER})
    producers = {"ngt": {**PRODUCER_CONFIG["ngt"], "declassify": True}, "neso": PRODUCER_CONFIG["neso"]}
    log = tmp_path_factory.mktemp("grants") / "worker.log"
    with (
        worker(settings, prefix, log, producers, partitions=1) as proc,
        serve(api_settings) as a2,
        serve(other) as b,
        serve(api_settings) as a,
    ):
        s = Stack(
            a,
            a2,
            b,
            prefix,
            audit_topic,
            [f"{prefix}-line{i}" for i in range(3)],
            f"{prefix}-pub",
            f"{prefix}-neso",
        )
        asyncio.run(publish(settings, s))
        asyncio.run(publish_foreign(settings, s, 1))
        owner = a.token("grid-owner", "ngt", "OFFICIAL")
        deadline = time.monotonic() + 120
        while visible(a, owner, s) != set(s.mrids()) or foreign_name(a, owner, s) is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not write the test objects"
            time.sleep(0.3)
        yield s


def visible(api: Api, token: str, stack: Stack) -> set[str]:
    got = api.query(OBJECTS, {"name": stack.prefix}, token=token)
    assert "errors" not in got, got
    return {n["mrid"] for n in got["data"]["objects"]["nodes"]} & set(stack.mrids())


def foreign_name(api: Api, token: str, stack: Stack) -> str | None:
    """The name of neso's object as ``token`` is shown it (None: it does not exist for that caller)."""
    got = api.query("query($m: ID!) { object(mrid: $m) { name } }", {"m": stack.foreign}, token=token)
    assert "errors" not in got, got
    found = got["data"]["object"]
    return None if found is None else str(found["name"])


def ok(answer: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"][field]
    return data


def error(answer: dict[str, Any]) -> str:
    assert answer.get("data") is None, answer
    return str(answer["errors"][0]["message"])


async def within(check: Callable[[], Awaitable[bool]], bound: float = BOUND_S) -> float:
    """Seconds until ``check`` holds; fails past ``bound`` (plus one poll)."""
    started = time.monotonic()
    while not await check():
        elapsed = time.monotonic() - started
        assert elapsed <= bound, f"not within {bound} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def sees(api: Api, token: str, stack: Stack) -> set[str]:
    return await asyncio.to_thread(visible, api, token, stack)


@contextlib.asynccontextmanager
async def subscribed(api: Api, token: str, stack: Stack) -> Any:
    sub = Subscriber(api.ws_url, token, {"mrids": stack.mrids()}, LEAN)
    sub.start()
    try:
        await asyncio.wait_for(sub.ready.wait(), 30)
        await asyncio.sleep(0.5)  # the subscription is registered on the shared reader
        yield sub
    finally:
        await sub.stop()


async def next_round(settings: Any, stack: Stack, sub: Subscriber) -> set[str]:
    """Publish a version of every object; the mRIDs the subscriber is told of in that version."""
    await publish(settings, stack)
    version = stack.version
    deadline = time.monotonic() + 60
    while not any(c["mrid"] == stack.sentinel and c["version"] == version for c in sub.received):
        assert not sub.errors, sub.errors
        assert time.monotonic() < deadline, "the subscriber was not told of the public object"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return {c["mrid"] for c in sub.received if c["version"] == version}


async def told(sub: Subscriber, change: str, mrids: list[str], since: int, bound: float = BOUND_S) -> float:
    """Seconds until the subscriber, among what it received after its first ``since`` changes, was told
    ``change`` for every one of ``mrids`` (with no write in between: its grants changed)."""

    async def done() -> bool:
        assert not sub.errors, sub.errors
        got = {c["mrid"] for c in sub.received[since:] if c["change"] == change}
        return set(mrids) <= got

    return await within(done, bound)


def until(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, UTC).isoformat()


async def audit_records(settings: Any, topic: str, ids: set[str], actions: set[tuple[str, str]]) -> set[Any]:
    """``(action, request)`` pairs of the audit topic about ``ids``, once all of ``actions`` are there."""
    consumer = AIOKafkaConsumer(
        topic, **admin_options(settings.kafka_bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: set[tuple[str, str]] = set()
    try:
        deadline = time.monotonic() + 30
        while not actions <= found and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    entry = json.loads(record.value)
                    for rid in {entry.get("request"), *entry.get("grants", ())} & ids:
                        found.add((entry["action"], rid))
    finally:
        await consumer.stop()
    return found


# ---------------------------------------------------------------------------------------------- tests


async def test_a_grant_shows_the_product_within_two_seconds_and_revocation_hides_it_again(
    settings: Any, stack: Stack, run_id: str
) -> None:
    a, a2, b = stack.a, stack.a2, stack.b
    subject = f"consumer-{run_id}"
    consumer = a.token(subject, "nggt", "OFFICIAL")
    namesake = b.token(subject, "nggt", "OFFICIAL")  # the same subject, from another issuer
    officer = a2.token(f"officer-{run_id}", "ngt", "OFFICIAL", roles=("data-officer",))
    stranger_officer = a2.token(f"gas-officer-{run_id}", "nggt", "OFFICIAL", roles=("data-officer",))
    public = {stack.sentinel}
    assert await sees(a, consumer, stack) == public

    async with subscribed(a, consumer, stack) as sub:
        assert await next_round(settings, stack, sub) == public

        asked = ok(
            a.query(REQUEST, {"product": "ngt", "until": until(3600), "licence": LICENCE}, token=consumer),
            "requestAccess",
        )
        rid = asked["id"]
        assert asked["status"] == "PENDING" and asked["owner"] == "ngt" and asked["attributes"] == ["org=ngt"]
        # Pending changes nothing.
        await asyncio.sleep(BOUND_S)
        assert await sees(a, consumer, stack) == public

        # An officer of another organisation cannot decide: to it the request does not exist.
        missing = error(a2.query(APPROVE, {"id": "no-such-request"}, token=stranger_officer))
        refused = error(a2.query(APPROVE, {"id": rid}, token=stranger_officer))
        assert refused == missing.replace("no-such-request", rid)
        assert ok(a2.query(ONE, {"id": rid}, token=stranger_officer), "accessRequest") is None
        assert ok(b.query(ONE, {"id": rid}, token=namesake), "accessRequest") is None
        # Nor can the requester approve its own request.
        assert "data officer" in error(a.query(APPROVE, {"id": rid}, token=consumer))

        # Approved on the other replica: the consumer's queries on this one see ngt's objects within 2 s.
        seen = len(sub.received)
        approved = ok(a2.query(APPROVE, {"id": rid}, token=officer), "approveAccessRequest")
        decided = time.monotonic()
        assert approved["status"] == "APPROVED" and approved["grantedAttributes"] == ["org=ngt"]
        everything = set(stack.mrids())

        async def granted() -> bool:
            return await sees(a, consumer, stack) == everything

        took = await within(granted)
        print(f"grant seen by a query on the other replica after {took:.2f} s")
        # The subscription is told of the objects the grant shows, as if they had been relabelled to it.
        took = await told(sub, "upsert", stack.grid, seen, BOUND_S - (time.monotonic() - decided))
        print(f"grant told to the open subscription {time.monotonic() - decided:.2f} s after the decision")
        assert {c["mrid"] for c in sub.received[seen:]} == set(stack.grid)
        # The open subscription receives them from the 2-second mark on.
        await asyncio.sleep(max(0.0, decided + BOUND_S - time.monotonic()))
        assert await next_round(settings, stack, sub) == everything
        # The same subject from another issuer holds no grant.
        assert await sees(b, namesake, stack) == public
        mine = ok(a.query(LISTS, token=consumer), "myGrants")
        assert [g["id"] for g in mine] == [rid]
        me = ok(a.query("{ me { subject issuer granted dataOfficerOf } }", token=consumer), "me")
        assert me == {
            "subject": subject,
            "issuer": a.settings.oidc_issuer,
            "granted": ["org=ngt"],
            "dataOfficerOf": [],
        }
        # Whose requests an officer decides, as the page is told it (ngt's officer: ngt's, nobody else's).
        assert ok(a2.query("{ me { dataOfficerOf } }", token=officer), "me") == {"dataOfficerOf": ["ngt"]}
        assert ok(b.query("{ me { issuer granted } }", token=namesake), "me") == {
            "issuer": OTHER_ISSUER,
            "granted": [],
        }
        held = ok(a2.query(LISTS, token=officer), "grantsHeld")
        assert rid in {g["id"] for g in held}
        assert rid not in {g["id"] for g in ok(a2.query(LISTS, token=stranger_officer), "grantsHeld")}
        assert ok(b.query(LISTS, token=namesake), "accessRequests") == []

        # Revoked on the other replica: gone from queries within 2 s, and from the subscription.
        seen = len(sub.received)
        revoked = ok(a2.query(REVOKE, {"id": rid}, token=officer), "revokeGrant")
        decided = time.monotonic()
        assert revoked["status"] == "REVOKED"

        async def hidden() -> bool:
            return await sees(a, consumer, stack) == public

        took = await within(hidden)
        print(f"revocation seen by a query on the other replica after {took:.2f} s")
        # ... and of the objects it hides, each as a delete (as for an object relabelled away).
        await told(sub, "delete", stack.grid, seen, BOUND_S - (time.monotonic() - decided))
        print(f"revocation told to the open subscription {time.monotonic() - decided:.2f} s after it")
        assert {(c["mrid"], c["change"]) for c in sub.received[seen:]} == {(m, "delete") for m in stack.grid}
        await asyncio.sleep(max(0.0, decided + BOUND_S - time.monotonic()))
        assert await next_round(settings, stack, sub) == public

        # A rejected request changes nothing.
        again = ok(
            a.query(REQUEST, {"product": "ngt", "until": until(600), "licence": LICENCE}, token=consumer),
            "requestAccess",
        )
        rejected = ok(a2.query(REJECT, {"id": again["id"]}, token=officer), "rejectAccessRequest")
        assert rejected["status"] == "REJECTED" and rejected["reason"] == "not now"
        assert "rejected" in error(a2.query(APPROVE, {"id": again["id"]}, token=officer))
        await asyncio.sleep(BOUND_S)
        assert await sees(a, consumer, stack) == public
        assert await next_round(settings, stack, sub) == public

    found = await audit_records(
        settings,
        stack.audit_topic,
        {rid, again["id"]},
        {
            ("access.requested", rid),
            ("access.approved", rid),
            ("access.used", rid),
            ("access.revoked", rid),
            ("access.rejected", again["id"]),
        },
    )
    assert {
        ("access.requested", rid),
        ("access.approved", rid),
        ("access.used", rid),
        ("access.revoked", rid),
        ("access.requested", again["id"]),
        ("access.rejected", again["id"]),
    } <= found


async def test_a_grant_opens_its_own_product_and_never_another_producers_object_it_would_satisfy(
    settings: Any, stack: Stack, run_id: str
) -> None:
    a, a2 = stack.a, stack.a2
    consumer = a.token(f"scoped-{run_id}", "nggt", "OFFICIAL")
    officer = a2.token(f"scoped-officer-{run_id}", "ngt", "OFFICIAL", roles=("data-officer",))
    grid_staff = a.token(f"grid-staff-{run_id}", "ngt", "OFFICIAL")
    every = """query($name: String, $m: ID!, $t: String!) {
      objects(className: "ACLineSegment", name: $name) { totalCount nodes { mrid name } }
      search(text: $t) { mrid } object(mrid: $m) { mrid } }"""
    args = {"name": stack.prefix, "m": stack.foreign, "t": stack.foreign}
    # A token holding org=ngt sees neso's object (its label allows ngt) ...
    staff = ok(a.query(every, args, token=grid_staff), "objects")
    assert stack.foreign in {n["mrid"] for n in staff["nodes"]}
    assert ok(a.query(every, args, token=grid_staff), "object") == {"mrid": stack.foreign}
    before = a.query(every, args, token=consumer)
    assert ok(before, "object") is None and ok(before, "search") == []

    sub = Subscriber(a.ws_url, consumer, {"mrids": [*stack.mrids(), stack.foreign]}, LEAN)
    sub.start()
    try:
        await asyncio.wait_for(sub.ready.wait(), 30)
        await asyncio.sleep(0.5)
        rid = ok(
            a.query(REQUEST, {"product": "ngt", "until": until(3600), "licence": LICENCE}, token=consumer),
            "requestAccess",
        )["id"]
        approved = ok(a2.query(APPROVE, {"id": rid}, token=officer), "approveAccessRequest")
        assert approved["grantedAttributes"] == ["org=ngt"]
        everything = set(stack.mrids())

        async def granted() -> bool:
            return await sees(a, consumer, stack) == everything

        await within(granted)
        # ... a grant of org=ngt for ngt's product does not: to the consumer the object still does not exist,
        # in lists, counts, search and look-ups, exactly as before the grant (ngt's objects aside).
        after = a.query(every, args, token=consumer)
        page = ok(after, "objects")
        assert {n["mrid"] for n in page["nodes"]} == everything
        assert page["totalCount"] == len(everything) == staff["totalCount"] - 1
        assert ok(after, "object") is None and ok(after, "search") == []
        assert foreign_name(a, consumer, stack) is None

        # Nor is the open subscription told of it: not when the grant was made, not when neso writes it.
        await publish_foreign(settings, stack, 2)
        deadline = time.monotonic() + 60
        while not (foreign_name(a, grid_staff, stack) or "").endswith(" v2"):
            assert time.monotonic() < deadline, "the worker did not write neso's new version"
            await asyncio.sleep(0.1)
        assert await next_round(settings, stack, sub) == everything
        told_of = {c["mrid"] for c in sub.received}
        assert set(stack.grid) <= told_of and stack.foreign not in told_of
        ok(a2.query(REVOKE, {"id": rid}, token=officer), "revokeGrant")
    finally:
        await sub.stop()


async def test_expiry_takes_the_grant_away_within_two_seconds(
    settings: Any, stack: Stack, run_id: str
) -> None:
    a, a2 = stack.a, stack.a2
    consumer = a.token(f"consumer-{run_id}", "nggt", "OFFICIAL")
    officer = a2.token(f"officer-{run_id}", "ngt", "OFFICIAL", roles=("data-officer",))
    public, everything = {stack.sentinel}, set(stack.mrids())
    async with subscribed(a, consumer, stack) as sub:
        rid = ok(
            a.query(REQUEST, {"product": "ngt", "until": until(3600), "licence": LICENCE}, token=consumer),
            "requestAccess",
        )["id"]
        # Approved for a shorter period than asked.
        lasts = 6.0
        approved = ok(
            a2.query(APPROVE, {"id": rid, "until": until(lasts)}, token=officer), "approveAccessRequest"
        )
        assert approved["status"] == "APPROVED"
        # When the grant ends, on this process's monotonic clock.
        ends = time.monotonic() + datetime.fromisoformat(approved["grantedUntil"]).timestamp() - time.time()

        async def granted() -> bool:
            return await sees(a, consumer, stack) == everything

        await within(granted)
        await asyncio.sleep(max(0.0, ends - lasts + BOUND_S - time.monotonic()))
        assert await next_round(settings, stack, sub) == everything
        seen = len(sub.received)
        assert time.monotonic() < ends, "the round took until the grant's end"

        await asyncio.sleep(max(0.0, ends - time.monotonic()))

        async def hidden() -> bool:
            return await sees(a, consumer, stack) == public

        took = await within(hidden)
        print(f"expiry seen by a query after {took:.2f} s")
        await told(sub, "delete", stack.grid, seen, BOUND_S - (time.monotonic() - ends))
        print(f"expiry told to the open subscription {time.monotonic() - ends:.2f} s after it")
        await asyncio.sleep(max(0.0, ends + BOUND_S - time.monotonic()))
        assert await next_round(settings, stack, sub) == public
        mine = ok(a.query(LISTS, token=consumer), "myGrants")
        assert [(g["id"], g["status"]) for g in mine] == [(rid, "EXPIRED")]
        # An expired grant cannot be revoked, nor approved again.
        assert "expired" in error(a2.query(REVOKE, {"id": rid}, token=officer))
    found = await audit_records(settings, stack.audit_topic, {rid}, {("access.expired", rid)})
    assert ("access.expired", rid) in found


async def test_more_information_and_who_sees_a_request(stack: Stack, run_id: str) -> None:
    a, a2, b = stack.a, stack.a2, stack.b
    subject = f"consumer-{run_id}"
    consumer = a.token(subject, "nggt", "OFFICIAL")
    officer = a2.token(f"officer-{run_id}", "ngt", "OFFICIAL", roles=("data-officer",))
    operator = a.token(f"operator-{run_id}", "hub", "SECRET", roles=("admin",))
    bystanders = [
        a.token(f"bystander-{run_id}", "nggt", "OFFICIAL"),
        a.token(f"planner-{run_id}", "ngt", "OFFICIAL", roles=("planner",)),  # the owner's, not an officer
        b.token(subject, "nggt", "OFFICIAL"),  # the requester's subject, from another issuer
    ]
    # Only the product's licence, only attributes the product needs, only products that exist.
    bad_licence = a.query(
        REQUEST, {"product": "ngt", "until": until(60), "licence": "https://x.example/"}, token=consumer
    )
    assert "licence" in error(bad_licence)
    wider = {"product": "ngt", "until": until(60), "licence": LICENCE, "attributes": ["org=neso"]}
    assert "subset" in error(a.query(REQUEST, wider, token=consumer))
    assert "no data product" in error(
        a.query(REQUEST, {"product": "nope", "until": until(60), "licence": LICENCE}, token=consumer)
    )

    rid = ok(
        a.query(REQUEST, {"product": "ngt", "until": until(600), "licence": LICENCE}, token=consumer),
        "requestAccess",
    )["id"]
    asked = ok(a2.query(ASK, {"id": rid}, token=officer), "askAboutAccessRequest")
    assert asked["status"] == "INFO_REQUESTED" and asked["reason"] == "which study?"
    assert await sees(a, consumer, stack) == {stack.sentinel}
    answered = ok(a.query(ANSWER, {"id": rid}, token=consumer), "answerAccessRequest")
    assert answered["status"] == "PENDING"
    for token in (consumer, operator):
        assert ok(a.query(ONE, {"id": rid}, token=token), "accessRequest")["id"] == rid
        assert rid in {r["id"] for r in ok(a.query(LISTS, token=token), "accessRequests")}
    assert ok(a2.query(ONE, {"id": rid}, token=officer), "accessRequest")["id"] == rid
    # Anyone else: the request does not exist, in every answer.
    for token in bystanders:
        api = b if token == bystanders[-1] else a
        assert ok(api.query(ONE, {"id": rid}, token=token), "accessRequest") is None
        assert rid not in {r["id"] for r in ok(api.query(LISTS, token=token), "accessRequests")}
        missing = error(api.query(REJECT, {"id": "no-such-request"}, token=token))
        assert error(api.query(REJECT, {"id": rid}, token=token)) == missing.replace("no-such-request", rid)


HISTORY = """query($m: ID!, $t: DateTime) {
  history(mrid: $m) { mrid version label producer }
  object(mrid: $m, asOf: $t) { mrid }
  neighbourhood(mrid: $m, depth: 0, asOf: $t) { nodes { mrid } } }"""


def history_read(api: Api, token: str, mrid: str) -> dict[str, Any]:
    got = api.query(HISTORY, {"m": mrid, "t": until(0)}, token=token)
    assert "errors" not in got, got
    data: dict[str, Any] = got["data"]
    return data


async def test_a_grant_opens_the_products_history_and_never_another_producers(
    stack: Stack, run_id: str
) -> None:
    """Kept versions carry their product (``_owner``) and are read by the guard's one predicate: a grant
    holder reads the granted product's history and its objects as of a time, a non-holder reads nothing,
    and neso's object, which a grant of org=ngt would satisfy, stays absent from both."""
    a, a2 = stack.a, stack.a2
    holder = a.token(f"history-{run_id}", "nggt", "OFFICIAL")
    bystander = a.token(f"history-bystander-{run_id}", "nggt", "OFFICIAL")
    officer = a2.token(f"history-officer-{run_id}", "ngt", "OFFICIAL", roles=("data-officer",))
    grid_staff = a.token(f"history-staff-{run_id}", "ngt", "OFFICIAL")
    line = stack.grid[0]
    staff = history_read(a, grid_staff, line)
    assert staff["history"] and {h["producer"] for h in staff["history"]} == {"ngt"}
    assert staff["object"] == {"mrid": line}
    assert history_read(a, grid_staff, stack.foreign)["history"]  # org=ngt itself sees neso's object
    nothing = {"history": [], "object": None, "neighbourhood": {"nodes": []}}
    assert history_read(a, holder, line) == nothing

    rid = ok(
        a.query(REQUEST, {"product": "ngt", "until": until(3600), "licence": LICENCE}, token=holder),
        "requestAccess",
    )["id"]
    ok(a2.query(APPROVE, {"id": rid}, token=officer), "approveAccessRequest")

    async def granted() -> bool:
        return await sees(a, holder, stack) == set(stack.mrids())

    await within(granted)
    try:
        held = history_read(a, holder, line)
        # The holder reads the product's history as its staff do (versions written since are newer).
        assert held["history"][: len(staff["history"])] == staff["history"]
        assert held["object"] == {"mrid": line}
        assert held["neighbourhood"] == {"nodes": [{"mrid": line}]}
        # Never another producer's object, and nothing for one without the grant.
        assert history_read(a, holder, stack.foreign) == nothing
        assert history_read(a, bystander, line) == nothing
    finally:
        ok(a2.query(REVOKE, {"id": rid}, token=officer), "revokeGrant")

    async def revoked() -> bool:
        return await sees(a, holder, stack) == {stack.sentinel}

    await within(revoked)
    assert history_read(a, holder, line) == nothing
