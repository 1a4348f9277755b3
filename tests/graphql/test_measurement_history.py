"""Measurement history end to end: measurement events through real Kafka and the real ingest worker into
Neo4j as samples, read through the API's ``measurementHistory`` by callers of two clearances.

* every applied measurement leaves a sample (one per object and interval, the last reading in the
  interval wins), read back with its unit, downsampled by the server into means of equal slots;
* a hidden object's history is absent: the same answer as for an mRID nobody measured;
* the worker deletes samples past their retention, and only those.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
from aiokafka import AIOKafkaProducer
from graphkit import Api, serve
from test_subscriptions import _create_topics, worker

from hub.kafka_clients import admin_options

pytestmark = pytest.mark.services

PUBLIC, SECRET = "classification=PUBLIC", "classification=SECRET"
CLEARANCE = {"public": "PUBLIC", "secret": "SECRET"}
# One sample per second, samples older than an hour deleted, checked every second.
WORKER_SETTINGS = {
    "HUB_MEASUREMENT_HISTORY_INTERVAL_S": "1",
    "HUB_MEASUREMENT_HISTORY_RETENTION_S": "3600",
    "HUB_MEASUREMENT_HISTORY_PRUNE_S": "1",
}
HISTORY = """query($m: ID!, $f: DateTime, $t: DateTime, $n: Int) {
  measurementHistory(mrid: $m, from: $f, to: $t, maxPoints: $n) {
    key qname unit points { time value min max count } } }"""
# The first reading of the series, a whole second so the slots below hold whole readings.
T0 = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)


@dataclass
class Env:
    api: Api
    prefix: str
    bootstrap: str
    driver: neo4j.Driver
    tokens: dict[str, str]

    def publish(self, events: list[dict[str, Any]]) -> None:
        asyncio.run(_send(self.bootstrap, f"{self.prefix}.cim.ingest.p1", events))

    def samples(self, mrid: str) -> int:
        records, _, _ = self.driver.execute_query(
            "MATCH (s:MeasurementSample {mrid: $m}) RETURN count(s) AS c", m=mrid
        )
        return int(records[0]["c"])

    def wait_for(self, what: str, check: Any, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout_s} s")

    def history(self, caller: str, mrid: str, start: datetime, end: datetime, points: int) -> Any:
        body = self.api.query(
            HISTORY,
            {"m": mrid, "f": start.isoformat(), "t": end.isoformat(), "n": points},
            token=self.tokens[caller],
        )
        assert "errors" not in body, body
        return body["data"]["measurementHistory"]


async def _send(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap))
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, json.dumps(ev).encode(), key=ev["subject"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def _upsert(mrid: str, label: str, at: datetime) -> dict[str, Any]:
    return {
        "id": f"{mrid}-upsert-1",
        "source": "p1",
        "type": "upsert",
        "subject": mrid,
        "time": at.isoformat(),
        "version": 1,
        "class": "SvVoltage",
        "label": label,
        "attributes": {"SvVoltage.v": 400.0, "SvVoltage.angle": 0.0},
    }


def _reading(mrid: str, version: int, at: datetime, volts: float) -> dict[str, Any]:
    return {
        "id": f"{mrid}-measurement-{version}",
        "source": "p1",
        "type": "measurement",
        "subject": mrid,
        "time": at.isoformat(),
        "version": version,
        "class": "SvVoltage",
        "attributes": {"SvVoltage.v": volts},
    }


@pytest.fixture(scope="module")
def env(settings: Any, neo4j_driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    prefix = f"meas-{os.urandom(4).hex()}"
    asyncio.run(
        _create_topics(settings.kafka_bootstrap, [f"{prefix}.cim.changes", f"{prefix}.cim.ingest.p1"])
    )
    log = tmp_path_factory.mktemp("measurements") / "worker.log"
    saved = {k: os.environ.get(k) for k in WORKER_SETTINGS}
    os.environ.update(WORKER_SETTINGS)
    try:
        with serve(settings) as api, worker(settings, prefix, log) as proc:
            tokens = {name: api.token(name, "elsewhere", clearance) for name, clearance in CLEARANCE.items()}
            yield Env(api, prefix, settings.kafka_bootstrap, neo4j_driver, tokens)
            assert proc.poll() is None, Path(log).read_text()[-3000:]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        neo4j_driver.execute_query(
            "MATCH (n) WHERE (n:Entity OR n:ObjectVersion OR n:MeasurementSample) AND n.mrid STARTS WITH $p "
            "DETACH DELETE n",
            p=prefix,
        )


def test_readings_are_kept_per_interval_and_downsampled_by_the_server(env: Env) -> None:
    mrid = f"{env.prefix}-sv-public"
    # Twenty readings two seconds apart, then two within one second (one sample: the later one).
    readings = [(T0 + timedelta(seconds=2 * i), 400.0 + i) for i in range(20)]
    events = [_upsert(mrid, PUBLIC, T0 - timedelta(minutes=5))]
    events += [_reading(mrid, 2 + i, at, v) for i, (at, v) in enumerate(readings)]
    late = T0 + timedelta(seconds=50)
    events += [
        _reading(mrid, 30, late + timedelta(milliseconds=100), 1.0),
        _reading(mrid, 31, late + timedelta(milliseconds=700), 2.0),
    ]
    env.publish(events)
    env.wait_for("21 samples kept", lambda: env.samples(mrid) >= 21)

    # Every sample, as it was read.
    (series,) = env.history("public", mrid, T0 - timedelta(minutes=1), T0 + timedelta(minutes=1), 1000)
    assert (series["key"], series["qname"], series["unit"]) == ("v", "SvVoltage.v", "kV")
    points = series["points"]
    expected = [*readings, (late + timedelta(milliseconds=700), 2.0)]
    assert [(datetime.fromisoformat(p["time"]), p["value"], p["count"]) for p in points] == [
        (at, v, 1) for at, v in expected
    ]

    # Forty seconds in five slots of eight: each the mean of four readings two seconds apart.
    (series,) = env.history("public", mrid, T0, T0 + timedelta(seconds=40) - timedelta(milliseconds=1), 5)
    slots = [readings[4 * i : 4 * i + 4] for i in range(5)]
    assert [(p["value"], p["min"], p["max"], p["count"]) for p in series["points"]] == [
        (sum(v for _, v in slot) / 4, slot[0][1], slot[-1][1], 4) for slot in slots
    ]
    assert [datetime.fromisoformat(p["time"]) for p in series["points"]] == [
        slot[0][0] + timedelta(seconds=3) for slot in slots
    ]

    # A span without readings has no series; maxPoints is bounded.
    assert env.history("public", mrid, T0 - timedelta(hours=3), T0 - timedelta(hours=2), 10) == []
    body = env.api.query(
        HISTORY,
        {"m": mrid, "f": T0.isoformat(), "t": late.isoformat(), "n": 10**6},
        token=env.tokens["public"],
    )
    assert "maxPoints must be between 1 and" in body["errors"][0]["message"]


def test_a_hidden_objects_history_is_absent(env: Env) -> None:
    secret = f"{env.prefix}-sv-secret"
    readings = [(T0 + timedelta(seconds=3 * i), 220.0 + i) for i in range(5)]
    env.publish(
        [
            _upsert(secret, SECRET, T0 - timedelta(minutes=5)),
            *(_reading(secret, 2 + i, at, v) for i, (at, v) in enumerate(readings)),
        ]
    )
    env.wait_for("5 samples kept", lambda: env.samples(secret) >= 5)
    start, end = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)

    (series,) = env.history("secret", secret, start, end, 100)
    assert [p["value"] for p in series["points"]] == [v for _, v in readings]
    hidden = env.api.query(
        HISTORY,
        {"m": secret, "f": start.isoformat(), "t": end.isoformat(), "n": 100},
        token=env.tokens["public"],
    )
    nobody = env.api.query(
        HISTORY,
        {"m": f"{env.prefix}-never-measured", "f": start.isoformat(), "t": end.isoformat(), "n": 100},
        token=env.tokens["public"],
    )
    assert hidden == nobody == {"data": {"measurementHistory": []}}


def test_the_worker_deletes_samples_past_retention(env: Env) -> None:
    mrid = f"{env.prefix}-sv-old"
    now = datetime.now(UTC).replace(microsecond=0)
    # Two readings from two hours ago (past the hour kept), then one from now.
    env.publish(
        [
            _upsert(mrid, PUBLIC, now - timedelta(hours=3)),
            _reading(mrid, 2, now - timedelta(hours=2), 401.0),
            _reading(mrid, 3, now - timedelta(hours=2) + timedelta(seconds=5), 402.0),
            _reading(mrid, 4, now, 403.0),
        ]
    )

    def applied() -> bool:
        records, _, _ = env.driver.execute_query(
            "MATCH (n:Entity {mrid: $m}) RETURN n.v AS v, n._version AS version", m=mrid
        )
        return bool(records) and records[0]["version"] == 4

    env.wait_for("the last reading applied", applied)
    env.wait_for("the old samples pruned", lambda: env.samples(mrid) == 1)
    (series,) = env.history("public", mrid, now - timedelta(hours=3), now + timedelta(seconds=1), 100)
    assert [(datetime.fromisoformat(p["time"]), p["value"]) for p in series["points"]] == [(now, 403.0)]
