"""Kafka is closed: clients sign in over TLS and each principal may do only its part (real broker).

Every refusal is checked twice: the client gets an authorisation or authentication error, and the topic's
end offsets (read by the admin) show that nothing was written; a positive control shows the same client
or topic working where it is allowed to.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from devstack.services import kafka
from devstack.services.async_run import run_coroutine
from hub.graph_schema import PRODUCER
from hub.kafka_clients import ADMIN, SASL_MECHANISM, WORKER, aiokafka_options, producer_principal, ssl_context
from hub.kafka_topics import partition_ids, topic_admin
from ingest.producer_onboarding import add_producer

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 20.0


def _run(coro: Any) -> Any:
    return run_coroutine(coro)


@pytest.fixture
def isolated(settings: Any, tmp_path: Path) -> Any:
    """Settings with a topic prefix, change feed and producers file of this test only; the worker and API
    get their ACLs for them as the launcher gives them for the default ones."""
    tag = uuid.uuid4().hex[:10]
    mine = settings.model_copy(
        update={
            "ingest_topic_prefix": f"sec{tag}.cim.ingest.",
            "changes_topic": f"sec{tag}.cim.changes",
            "deadletter_topic": f"sec{tag}.cim.deadletter",
            "audit_topic": f"sec{tag}.hub.audit",
            "worker_id": f"sec{tag}-worker",
            "producers_file": tmp_path / "producers.json",
            "topic_partitions": 1,
        }
    )
    assert mine.kafka_security == "sasl_ssl", "the tests run against the secured broker"
    kafka.apply_service_acls(mine)
    return mine


async def _end_offset(settings: Any, topic: str) -> int:
    consumer = AIOKafkaConsumer(**aiokafka_options(settings, ADMIN), group_id=None)
    await consumer.start()
    try:
        async with topic_admin(aiokafka_options(settings, ADMIN)) as admin:
            partitions = await partition_ids(admin, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        await consumer.stop()


async def _write(options: dict[str, Any], topic: str, value: bytes = b"{}", key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(**options, acks="all", request_timeout_ms=15_000)
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), CONNECT_TIMEOUT_S)
    finally:
        await producer.stop()


async def _read(options: dict[str, Any], topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(**options, group_id=None, auto_offset_reset="earliest")
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        batch = await asyncio.wait_for(consumer.getmany(timeout_ms=5000), CONNECT_TIMEOUT_S)
        return [m.value or b"" for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()


def _refused(coro: Any) -> BaseException:
    """The error a refused client operation raised (fails the test if it succeeded)."""
    try:
        _run(coro)
    except (TimeoutError, KafkaError, OSError) as exc:
        return exc
    pytest.fail("the broker accepted an operation it must refuse")


@pytest.fixture
def two_producers(isolated: Any) -> Iterator[tuple[str, str]]:
    a, b = f"pa{uuid.uuid4().hex[:6]}", f"pb{uuid.uuid4().hex[:6]}"
    for pid in (a, b):
        _run(add_producer(isolated, pid, org=pid))
    yield a, b


def test_client_without_credentials_cannot_write(isolated: Any, two_producers: tuple[str, str]) -> None:
    a, _ = two_producers
    topic = f"{isolated.ingest_topic_prefix}{a}"
    before = _run(_end_offset(isolated, topic))
    # The broker speaks TLS only: a plaintext client never gets as far as a request.
    _refused(_write({"bootstrap_servers": isolated.kafka_bootstrap}, topic))
    # TLS without signing in, and signing in with a wrong password, are refused too.
    _refused(
        _write(
            {
                "bootstrap_servers": isolated.kafka_bootstrap,
                "security_protocol": "SSL",
                "ssl_context": ssl_context(isolated),
            },
            topic,
        )
    )
    wrong = {
        **aiokafka_options(isolated, producer_principal(a)),
        "sasl_plain_password": "not-the-password",
    }
    _refused(_write(wrong, topic))
    assert _run(_end_offset(isolated, topic)) == before
    # Positive control: the producer's own credentials write its topic.
    _run(_write(aiokafka_options(isolated, producer_principal(a)), topic))
    assert _run(_end_offset(isolated, topic)) == before + 1


def test_producer_cannot_write_another_producers_topic(isolated: Any, two_producers: tuple[str, str]) -> None:
    a, b = two_producers
    topic_b = f"{isolated.ingest_topic_prefix}{b}"
    before = _run(_end_offset(isolated, topic_b))
    exc = _refused(_write(aiokafka_options(isolated, producer_principal(a)), topic_b))
    assert "Authorization" in type(exc).__name__ or "uthoriz" in str(exc), repr(exc)
    assert _run(_end_offset(isolated, topic_b)) == before
    _run(_write(aiokafka_options(isolated, producer_principal(b)), topic_b))
    assert _run(_end_offset(isolated, topic_b)) == before + 1


def test_producer_reads_neither_the_change_feed_nor_ingest_topics(
    isolated: Any, two_producers: tuple[str, str]
) -> None:
    a, b = two_producers
    admin = aiokafka_options(isolated, ADMIN)
    secret = json.dumps({"mrid": "hidden-" + uuid.uuid4().hex}).encode()
    prefix = isolated.ingest_topic_prefix
    # The dead letters hold every producer's refused events (`hub deadletters` reads them as the
    # operator) and the audit topic every decision: no producer reads either.
    targets = [
        isolated.changes_topic,
        isolated.deadletter_topic,
        isolated.audit_topic,
        f"{prefix}{a}",
        f"{prefix}{b}",
    ]
    for topic in targets:
        _run(_write(admin, topic, secret))
        # Control: the record is there for a principal allowed to read it.
        assert secret in _run(_read(admin, topic))
    for topic in targets:
        try:
            got = _run(_read(aiokafka_options(isolated, producer_principal(a)), topic))
        except (TimeoutError, KafkaError) as exc:
            assert "Authorization" in type(exc).__name__ or "uthoriz" in str(exc), repr(exc)
            continue
        assert secret not in got and got == [], f"producer {a} read {topic}: {got!r}"


def test_worker_cannot_write_ingest_topics(isolated: Any, two_producers: tuple[str, str]) -> None:
    a, _ = two_producers
    topic = f"{isolated.ingest_topic_prefix}{a}"
    before = _run(_end_offset(isolated, topic))
    exc = _refused(_write(aiokafka_options(isolated, WORKER), topic))
    assert "Authorization" in type(exc).__name__ or "uthoriz" in str(exc), repr(exc)
    assert _run(_end_offset(isolated, topic)) == before
    # Control: the worker does write its change feed.
    changes_before = _run(_end_offset(isolated, isolated.changes_topic))
    _run(_write(aiokafka_options(isolated, WORKER), isolated.changes_topic))
    assert _run(_end_offset(isolated, isolated.changes_topic)) == changes_before + 1


def test_producer_cannot_create_topics(isolated: Any, two_producers: tuple[str, str]) -> None:
    a, _ = two_producers
    stray = f"{isolated.ingest_topic_prefix}{a}-extra"
    _refused(_write(aiokafka_options(isolated, producer_principal(a)), stray))

    async def listed() -> bool:
        consumer = AIOKafkaConsumer(**aiokafka_options(isolated, ADMIN), group_id=None)
        await consumer.start()
        try:
            return stray in await consumer.topics()
        finally:
            await consumer.stop()

    assert not _run(listed())


def test_added_producer_publishes_and_the_worker_applies(
    isolated: Any, neo4j_driver: Any, tmp_path: Path
) -> None:
    """`hub producers add` (the command itself) makes a producer whose events the worker, signed in as
    the worker principal, writes to the graph."""
    pid = f"pn{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "HUB_INGEST_TOPIC_PREFIX": isolated.ingest_topic_prefix,
        "HUB_CHANGES_TOPIC": isolated.changes_topic,
        "HUB_DEADLETTER_TOPIC": isolated.deadletter_topic,
        "HUB_AUDIT_TOPIC": isolated.audit_topic,
        "HUB_WORKER_ID": isolated.worker_id,
        "HUB_PRODUCERS_FILE": str(isolated.producers_file),
        "HUB_TOPIC_PARTITIONS": "1",
        "HUB_WORKER_WEB_PORT": "0",
        "HUB_METRICS_PORT": "0",
        "HUB_BATCH_TIMEOUT_S": "0.2",
    }
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubcli.main",
            "producers",
            "add",
            pid,
            "--org",
            "ngt",
            "--clearance",
            "OFFICIAL",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert json.loads(isolated.producers_file.read_text())[pid]["org"] == "ngt"
    creds = isolated.state_dir.expanduser().resolve() / "kafka" / "users" / f"{producer_principal(pid)}.json"
    assert creds.stat().st_mode & 0o077 == 0, "credentials must be readable by their owner only"

    from ingest.producer import HubProducer

    mrid = str(uuid.uuid4())
    event = {
        "id": str(uuid.uuid4()),
        "source": pid,
        "type": "upsert",
        "subject": mrid,
        "time": "2026-12-01T10:00:00Z",
        "version": 1,
        "class": "Substation",
        "attributes": {"IdentifiedObject.name": "secured-substation"},
        "label": "org=ngt",
    }

    async def publish() -> Any:
        async with HubProducer(pid, settings=isolated, create_topic=True) as producer:
            return await producer.send_all([event])

    stats = _run(publish())
    assert stats.sent == 1, stats
    # The same producer may not write anywhere else: its credentials are scoped to its topic.
    _refused(_write(aiokafka_options(isolated, producer_principal(pid)), isolated.changes_topic))

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - owned by the process
    worker = subprocess.Popen(
        [sys.executable, "-m", "ingest.worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        props: dict[str, Any] | None = None
        while time.monotonic() < deadline and props is None:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            records, _, _ = neo4j_driver.execute_query(
                "MATCH (n:Entity {mrid: $mrid}) RETURN properties(n) AS ps", mrid=mrid
            )
            props = dict(records[0]["ps"]) if records else None
            time.sleep(1)
        assert props is not None, (tmp_path / "worker.log").read_text()[-3000:]
        assert "secured-substation" in props.values(), props
        assert props[PRODUCER] == pid, props
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity {mrid: $mrid}) DETACH DELETE n", mrid=mrid)
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def test_client_options_sign_in_with_scram_over_tls(isolated: Any) -> None:
    options = aiokafka_options(isolated, WORKER)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == SASL_MECHANISM
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"


def test_explicit_credentials_override_the_state_folder(settings: Any, tmp_path: Path) -> None:
    """A deployment's process names its principal in HUB_KAFKA_USERNAME/PASSWORD; the state folder's
    files are not consulted, and a half-given pair is refused naming both settings."""
    from hub.kafka_clients import KafkaCredentialsError, load_credentials

    empty = settings.model_copy(update={"state_dir": tmp_path, "kafka_ca_file": None})
    with pytest.raises(KafkaCredentialsError, match="producer-nobody") as missing:
        load_credentials(empty, producer_principal("nobody"))
    assert str(tmp_path) in str(missing.value)
    given = empty.model_copy(update={"kafka_username": "svc-worker", "kafka_password": "s3cret"})
    creds = load_credentials(given, WORKER)
    assert (creds.username, creds.password) == ("svc-worker", "s3cret")
    with pytest.raises(KafkaCredentialsError, match="HUB_KAFKA_PASSWORD"):
        load_credentials(empty.model_copy(update={"kafka_username": "svc-worker"}), WORKER)


def _producer_env(settings: Any, producer_id: str) -> dict[str, str]:
    """The environment of a process given a producer's own credentials (as a producer runs `hub`)."""
    creds = settings.state_dir.expanduser().resolve() / "kafka" / "users"
    stored = json.loads((creds / f"{producer_principal(producer_id)}.json").read_text())
    return {"HUB_KAFKA_USERNAME": stored["username"], "HUB_KAFKA_PASSWORD": stored["password"]}


def test_a_producer_reads_its_own_dead_letters_and_no_one_elses(
    isolated: Any, two_producers: tuple[str, str]
) -> None:
    """`hub producers add` lets a producer read its own dead-letter topic (in no group, or in the group
    named as the topic) and neither another producer's nor the shared one."""
    a, b = two_producers
    own, others = isolated.producer_deadletter_topic(a), isolated.producer_deadletter_topic(b)
    worker = aiokafka_options(isolated, WORKER)
    mine = json.dumps({"refused": "a-" + uuid.uuid4().hex}).encode()
    theirs = json.dumps({"refused": "b-" + uuid.uuid4().hex}).encode()
    # The worker writes them (the producers' topics were made by `add_producer`).
    _run(_write(worker, own, mine))
    _run(_write(worker, others, theirs))
    _run(_write(worker, isolated.deadletter_topic, theirs))
    as_a = aiokafka_options(isolated, producer_principal(a))
    assert mine in _run(_read(as_a, own))

    async def read_in_group(group: str) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            own, **as_a, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
        )
        try:
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=10_000), CONNECT_TIMEOUT_S)
            return [m.value or b"" for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()

    assert mine in _run(read_in_group(own))
    exc = _refused(read_in_group(f"{own}-other"))
    assert "Authorization" in type(exc).__name__ or "uthoriz" in str(exc), repr(exc)
    for topic in (others, isolated.deadletter_topic):
        try:
            got = _run(_read(as_a, topic))
        except (TimeoutError, KafkaError) as exc:
            assert "Authorization" in type(exc).__name__ or "uthoriz" in str(exc), repr(exc)
            continue
        assert theirs not in got and got == [], f"producer {a} read {topic}: {got!r}"
    # Writing its dead letters is the worker's: a producer cannot plant one.
    before = _run(_end_offset(isolated, own))
    _refused(_write(as_a, own))
    assert _run(_end_offset(isolated, own)) == before


def test_hub_deadletters_as_a_producer_shows_its_own_only(
    isolated: Any, two_producers: tuple[str, str], tmp_path: Path, neo4j_driver: Any
) -> None:
    """A real worker dead-letters a bad event of each producer and A's write of an object B owns;
    `hub deadletters` given producer A's credentials shows A's alone, without naming B as the owner,
    refuses to read B's, and the operator still reads all of them, with the full reasons."""
    a, b = two_producers
    env = {
        **os.environ,
        "HUB_INGEST_TOPIC_PREFIX": isolated.ingest_topic_prefix,
        "HUB_CHANGES_TOPIC": isolated.changes_topic,
        "HUB_DEADLETTER_TOPIC": isolated.deadletter_topic,
        "HUB_AUDIT_TOPIC": isolated.audit_topic,
        "HUB_WORKER_ID": isolated.worker_id,
        "HUB_PRODUCERS_FILE": str(isolated.producers_file),
        "HUB_TOPIC_PARTITIONS": "1",
        "HUB_WORKER_WEB_PORT": "0",
        "HUB_METRICS_PORT": "0",
        "HUB_BATCH_TIMEOUT_S": "0.2",
    }
    for name in ("HUB_KAFKA_USERNAME", "HUB_KAFKA_PASSWORD"):
        env.pop(name, None)

    def bad(producer: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "source": producer,
            "type": "upsert",
            "subject": str(uuid.uuid4()),
            "time": "2026-12-01T10:00:00Z",
            "version": 1,
            "class": "Substation",
            "attributes": {"Substation.noSuchThing": 1},
            "label": f"org={producer}",
        }

    def send(producer: str, event: dict[str, Any]) -> None:
        # Sent as the producer itself, past the local checks (the worker is the one to refuse it).
        options = aiokafka_options(isolated, producer_principal(producer))
        topic = f"{isolated.ingest_topic_prefix}{producer}"
        _run(_write(options, topic, json.dumps(event).encode(), key=event["subject"].encode()))

    events = {a: bad(a), b: bad(b)}
    for producer, event in events.items():
        send(producer, event)
    # An object B owns, which A then tries to write.
    owned = {**bad(b), "attributes": {"IdentifiedObject.name": "b-owned"}}
    send(b, owned)
    taken = {**owned, "id": str(uuid.uuid4()), "source": a, "version": 2, "label": f"org={a}"}

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - owned by the process
    worker = subprocess.Popen(
        [sys.executable, "-m", "ingest.worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )

    def deadletters(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hubcli.main", "deadletters", "--json", *args],
            cwd=REPO,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        deadline = time.monotonic() + 180
        while not neo4j_driver.execute_query(
            "MATCH (n:Entity {mrid: $mrid}) RETURN n.mrid", mrid=owned["subject"]
        ).records:
            log_text = (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline and worker.poll() is None, log_text
            time.sleep(0.5)
        send(a, taken)
        everything: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(everything) < 3:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1)
            operator = deadletters()
            if operator.returncode == 0:
                everything = [json.loads(line) for line in operator.stdout.splitlines()]
        expected = sorted([events[a]["id"], events[b]["id"], taken["id"]])
        assert sorted(x["event_id"] for x in everything) == expected, (
            everything,
            (tmp_path / "worker.log").read_text()[-3000:],
        )
        # The operator's copy names the owner.
        [full] = [x for x in everything if x["event_id"] == taken["id"]]
        assert full["reason_class"] == "ownership" and repr(b) in full["reason"], full
        # The producer's copy reaches its topic with the shared one; read until both are there.
        own: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(own) < 2:
            as_a = deadletters(**_producer_env(isolated, a))
            assert as_a.returncode == 0, as_a.stdout + as_a.stderr
            own = [json.loads(line) for line in as_a.stdout.splitlines()]
        assert sorted((x["event_id"], x["producer"], x["reason_class"]) for x in own) == sorted(
            [(events[a]["id"], a, "attribute"), (taken["id"], a, "ownership")]
        ), own
        by_id = {x["event_id"]: x for x in own}
        assert "Substation.noSuchThing" in by_id[events[a]["id"]]["reason"]
        assert by_id[events[a]["id"]]["event"] == events[a]
        # A is told the mRID is another producer's, not whose.
        assert b not in json.dumps(by_id[taken["id"]]["reason"]), by_id[taken["id"]]
        assert by_id[taken["id"]]["reason"].startswith("ownership: ")
        # Asking for another producer's, as A: refused, naming why; nothing of B's is printed.
        other = deadletters("--producer", b, **_producer_env(isolated, a))
        assert other.returncode == 1, other.stdout + other.stderr
        assert other.stdout == "" and events[b]["id"] not in other.stderr
        assert f"reads the dead letters of producer {a!r} only" in " ".join(other.stderr.split())
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity {mrid: $mrid}) DETACH DELETE n", mrid=owned["subject"])
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
