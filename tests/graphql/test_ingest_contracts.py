"""HTTP ingest answers a breach of the producer's data contract at once, naming the clause: a real API
server with the demo's producers and contracts (real Kafka and Neo4j behind it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphkit import Api, serve

from devstack.demo.producers import PRODUCER_CONFIG

DEMO_CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"


@pytest.fixture(scope="module")
def api(settings: Any) -> Iterator[Api]:
    update = {"contracts_dir": DEMO_CONTRACTS, "producers": PRODUCER_CONFIG}
    with serve(settings.model_copy(update=update)) as served:
        yield served


def event(cls: str, attributes: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "source": "nggt",
        "type": "upsert",
        "subject": f"ingest-contract-{uuid.uuid4().hex[:8]}",
        "time": "2026-12-01T00:00:00Z",
        "version": 1,
        "class": cls,
        "attributes": attributes,
    }
    if label is not None:
        body["label"] = label
    return body


def test_a_breach_is_refused_with_its_clause_and_nothing_is_written(api: Api) -> None:
    token = api.token("feeder", "nggt", "OFFICIAL-SENSITIVE", roles=("producer:nggt",))
    events = [
        event("GasMeasurement", {"IdentifiedObject.name": "m", "GasMeasurement.pressure": -1}),
        event("GasMeasurement", {"IdentifiedObject.name": "m", "GasMeasurement.pressure": 40}),
        event("ACLineSegment", {"IdentifiedObject.name": "not gas"}),
        # nggt may assign it (it is cleared OFFICIAL-SENSITIVE), but its contract's maximum is lower.
        event("GasPipe", {"IdentifiedObject.name": "p"}, label="classification=OFFICIAL-SENSITIVE"),
        event("GasPipe", {"IdentifiedObject.name": None}),
    ]
    answer = api.client.post(api.base + "/ingest", json=events, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["accepted"] == 0
    got = {r["index"]: (r["field"], r["value"]) for r in body["rejected"]}
    assert got == {
        0: (
            "contract",
            "schema[GasMeasurement].properties[GasMeasurement.pressure].logicalTypeOptions.minimum",
        ),
        2: ("contract", "schema"),
        3: ("contract", "customProperties.maximumLabel"),
        4: ("contract", "schema[GasPipe].properties[IdentifiedObject.name].required"),
    }
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert reasons[0].startswith("contract: GasMeasurement.pressure = -1.0 is below 0 (contract ")
    assert "urn:energy-hub:contract:nggt 1.0.0" in reasons[0]
