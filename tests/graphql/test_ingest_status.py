"""HTTP ingest's batch status against the real API, worker, Kafka and Neo4j: each event of an accepted
batch is followed to what the worker made of it, and only the caller who posted the batch may ask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphkit import Api, serve

from tests.ingest.test_poison import Stream, Worker, stream  # noqa: F401

pytestmark = pytest.mark.services


@pytest.fixture
def pipeline(
    stream: Stream,  # noqa: F811 - the fixture imported above
    settings: Any,
    tmp_path: Path,
) -> Iterator[tuple[Api, Stream]]:
    """An API and a real worker on the stream's topics and producers."""
    mine = settings.model_copy(
        update={
            "ingest_topic_prefix": f"{stream.prefix}.cim.ingest.",
            "deadletter_topic": f"{stream.prefix}.cim.deadletter",
            "changes_topic": f"{stream.prefix}.cim.changes",
            "worker_id": f"{stream.prefix}-worker",
            "producers": stream.producers,
        }
    )
    worker = Worker(settings, stream, tmp_path)
    worker.start()
    try:
        with serve(mine) as api:
            yield api, stream
    finally:
        worker.stop()


def _post(api: Api, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{api.base}/ingest", json=events, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _status(api: Api, token: str, location: str) -> httpx.Response:
    return httpx.get(f"{api.base}{location}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _settled(api: Api, token: str, location: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = _status(api, token, location)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["complete"]:
            return body
        time.sleep(0.5)
    pytest.fail(f"batch {location} still pending after {timeout_s} s: {body}")


def test_a_batch_reports_which_events_were_applied_and_which_dead_lettered_and_why(
    pipeline: tuple[Api, Stream],
) -> None:
    api, st = pipeline
    role = (f"producer:{st.a}",)
    feeder = api.token("feeder", "ngt", "OFFICIAL", roles=role)
    # The same producer's member with less clearance: what it writes must also pass under its rights.
    clerk = api.token("clerk", "ngt", "PUBLIC", roles=role)

    guarded = st.event(st.a, "guarded", label="classification=OFFICIAL")
    series = st.event(st.a, "series", version=5)
    first = _post(api, feeder, [guarded, series])
    assert first.status_code == 202, first.text
    location = first.headers["location"]
    assert location.startswith("/ingest/batches/") and first.json()["status"] == location
    done = _settled(api, feeder, location)
    assert [(e["id"], e["outcome"]) for e in done["events"]] == [
        (guarded["id"], "applied"),
        (series["id"], "applied"),
    ]

    fresh = st.event(st.a, "fresh")
    # The clerk may label an object org=ngt, but may not touch one it cannot read.
    relabel = st.event(st.a, "guarded", label="org=ngt")
    stale = st.event(st.a, "series", version=3)
    second = _post(api, clerk, [fresh, relabel, stale])
    assert second.status_code == 202, second.text
    outcome = _settled(api, clerk, second.headers["location"])
    events = outcome["events"]
    assert [(e["index"], e["id"], e["outcome"]) for e in events] == [
        (0, fresh["id"], "applied"),
        (1, relabel["id"], "dead-lettered"),
        (2, stale["id"], "unchanged"),
    ], events
    assert outcome["counts"] == {"applied": 1, "dead-lettered": 1, "unchanged": 1}
    refused = events[1]
    assert refused["reason_class"] == "label" and refused["reason"].startswith("label: ")
    # The object's stored label is not the clerk's to learn (it cannot read the object).
    assert "OFFICIAL" not in refused["reason"], refused

    # Anyone else gets exactly what an id that was never a batch gets.
    nobody = _status(api, feeder, second.headers["location"])
    never = _status(api, feeder, "/ingest/batches/" + "x" * 22)
    assert nobody.status_code == never.status_code == 404
    assert nobody.content == never.content and nobody.headers["content-type"] == never.headers["content-type"]
    stranger = api.token("stranger", "gasco", "SECRET", roles=(f"producer:{st.b}",))
    assert _status(api, stranger, location).content == never.content
