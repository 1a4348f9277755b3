"""The worker enforces each producer's data contract per event: real Kafka, real Neo4j, the worker as a
real process.

A producer with a contract publishes, in one partition, good events between events that break it in
each way the worker checks (class not promised, value out of range, value outside the enumeration,
required attribute missing on the upsert that creates the object or removed later, label above the
maximum); every breach lands in the dead-letter topic with the contract's id, version and clause while
everything behind it applies. A producer without a contract is not checked; with enforcement off, the
same events all apply; a contract folder that does not lint stops the worker from starting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import neo4j
import pytest
import yaml

from hub.contracts import ContractError
from hub.dead_letter_headers import read
from hub.settings import Settings
from ingest.records import RecordChecker, Rejection
from ontology.loader import load_ontology
from tests.ingest.test_poison import (  # noqa: F401 - the fixtures are used by name
    Record,
    Stream,
    _produce,
    dead_letters,
    keyed,
    run,
    stream,
    worker_factory,
)

CONTRACT_ID = "urn:test:contract:pipes"


def contract(producer: str) -> dict[str, Any]:
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": CONTRACT_ID,
        "name": "Pipes",
        "version": "2.1.0",
        "status": "active",
        "description": {"purpose": "Pipes for a test.", "limitations": "None in particular."},
        "team": {"name": "Test team"},
        "support": [{"channel": "email", "url": "mailto:pipes@example.test"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "h"},
            {"property": "latency", "value": 10, "unit": "m"},
        ],
        "customProperties": [
            {"property": "producer", "value": producer},
            {"property": "defaultLabel", "value": "org=ngt"},
            # Tighter than the producer's own authorizations (org=ngt, OFFICIAL): a label it may assign can
            # still lie beyond the contract.
            {"property": "maximumLabel", "value": "org=ngt"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": "OE-SB"},
        ],
        "schema": [
            {
                "name": "GasPipe",
                "properties": [
                    {"name": "IdentifiedObject.name", "logicalType": "string", "required": True},
                    {
                        "name": "GasPipe.length",
                        "logicalType": "number",
                        "logicalTypeOptions": {"exclusiveMinimum": 0, "maximum": 500},
                    },
                ],
            },
            {
                "name": "OperationalLimitType",
                "properties": [
                    {
                        "name": "OperationalLimitType.direction",
                        "logicalType": "string",
                        "enum": [{"value": "high"}, {"value": "low"}],
                    }
                ],
            },
        ],
    }


@pytest.fixture
def contracts_dir(tmp_path: Path, stream: Stream) -> Path:  # noqa: F811 - the fixture
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "pipes.yaml").write_text(yaml.safe_dump(contract(stream.a), sort_keys=False))
    return folder


PIPE = "GasPipe"
LIMIT = "OperationalLimitType"
DIRECTION = "OperationalLimitType.direction"
CLAUSE = "schema[GasPipe].properties"


def scenario(st: Stream) -> tuple[list[Record], dict[str, str], set[str]]:
    """The records in order; the clause each refused event's dead letter names (by mRID); the mRIDs that
    apply."""
    a, b = st.a, st.b

    def ev(producer: str, name: str, cls: str, attributes: dict[str, Any], **more: Any) -> Record:
        return keyed(st, producer, st.event(producer, name, attributes=attributes, **{"class": cls}, **more))

    records = [
        ev(a, "p1", PIPE, {"IdentifiedObject.name": "p1", "GasPipe.length": 10}),
        ev(a, "m1", "GasMeasurement", {"IdentifiedObject.name": "m1"}),
        ev(a, "p2", PIPE, {"IdentifiedObject.name": "p2", "GasPipe.length": 0}),
        ev(a, "p3", PIPE, {"GasPipe.length": 5}),
        ev(a, "p1", PIPE, {"GasPipe.length": 20}),  # an update need not repeat the name
        ev(a, "p1", PIPE, {"IdentifiedObject.name": None}),
        ev(a, "p4", PIPE, {"IdentifiedObject.name": "p4"}, label="classification=OFFICIAL"),
        ev(a, "t1", LIMIT, {"IdentifiedObject.name": "t1", DIRECTION: "absoluteValue"}),
        ev(a, "t2", LIMIT, {"IdentifiedObject.name": "t2", DIRECTION: "high"}),
        ev(a, "p5", PIPE, {"IdentifiedObject.name": "p5", "GasPipe.length": 500}, label="org=ngt|org=neso"),
        ev(b, "m2", "GasMeasurement", {"IdentifiedObject.name": "m2"}),  # b has no contract
    ]
    refused = {
        st.mrid(a, "m1"): "schema",
        st.mrid(a, "p2"): f"{CLAUSE}[GasPipe.length].logicalTypeOptions.exclusiveMinimum",
        st.mrid(a, "p3"): f"{CLAUSE}[IdentifiedObject.name].required",
        st.mrid(a, "p1"): f"{CLAUSE}[IdentifiedObject.name].required",
        st.mrid(a, "p4"): "customProperties.maximumLabel",
        st.mrid(a, "t1"): "schema[OperationalLimitType].properties[OperationalLimitType.direction].enum",
    }
    applied = {st.mrid(a, n) for n in ("p1", "t2", "p5")} | {st.mrid(b, "m2")}
    return records, refused, applied


def graph(driver: neo4j.Driver, prefix: str) -> dict[str, dict[str, Any]]:
    records, _, _ = driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p AND NOT n:Stub RETURN n.mrid AS m, properties(n) AS ps",
        p=prefix,
    )
    return {r["m"]: r["ps"] for r in records}


def test_each_breach_is_dead_lettered_with_its_clause_and_the_stream_goes_on(
    stream: Stream,  # noqa: F811
    worker_factory: Any,  # noqa: F811
    contracts_dir: Path,
    kafka_bootstrap: str,
    neo4j_driver: neo4j.Driver,
) -> None:
    st = stream
    records, refused, applied = scenario(st)
    run(_produce(kafka_bootstrap, records))
    worker = worker_factory(HUB_CONTRACTS_DIR=str(contracts_dir))
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    stored = graph(neo4j_driver, st.prefix)
    assert set(stored) == applied
    # The update without a name applied; the one that removed it did not.
    assert stored[st.mrid(st.a, "p1")]["name"] == "p1" and stored[st.mrid(st.a, "p1")]["length"] == 20.0
    letters = dead_letters(kafka_bootstrap, st, len(refused))
    assert len(letters) == len(refused), [h for h, _ in letters]
    by_mrid = {msg.key.decode(): headers for headers, msg in letters}
    assert {m: h["contract-clause"] for m, h in by_mrid.items()} == refused
    # `hub deadletters` reads the contract back from the headers.
    received = [read(msg.key, msg.value, msg.headers) for _, msg in letters]
    assert {r.contract["clause"] for r in received if r.contract} == set(refused.values())
    for mrid, headers in by_mrid.items():
        assert headers["reason-class"] == "contract", headers
        assert headers["contract-id"] == CONTRACT_ID and headers["contract-version"] == "2.1.0"
        assert headers["reason"].startswith("contract: ") and refused[mrid] in headers["reason"], headers
    assert "GasPipe.length = 0.0 is below 0" in by_mrid[st.mrid(st.a, "p2")]["reason"]
    assert "missing from the upsert that creates the object" in by_mrid[st.mrid(st.a, "p3")]["reason"]
    assert "is required and may not be removed" in by_mrid[st.mrid(st.a, "p1")]["reason"]
    assert "'absoluteValue' is not one of ['high', 'low']" in by_mrid[st.mrid(st.a, "t1")]["reason"]
    assert "class GasMeasurement is not promised" in by_mrid[st.mrid(st.a, "m1")]["reason"]


def test_with_enforcement_off_the_same_events_apply(
    stream: Stream,  # noqa: F811
    worker_factory: Any,  # noqa: F811
    contracts_dir: Path,
    kafka_bootstrap: str,
    neo4j_driver: neo4j.Driver,
) -> None:
    st = stream
    records, refused, applied = scenario(st)
    run(_produce(kafka_bootstrap, records))
    worker = worker_factory(HUB_CONTRACTS_DIR=str(contracts_dir), HUB_CONTRACTS_ENFORCE="false")
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    assert set(graph(neo4j_driver, st.prefix)) == applied | set(refused)
    assert dead_letters(kafka_bootstrap, st, 0) == []


def test_a_contract_folder_that_does_not_lint_stops_the_checker(tmp_path: Path) -> None:
    doc = contract("pipes")
    doc["schema"][0]["properties"][1]["logicalType"] = "integer"
    (tmp_path / "pipes.yaml").write_text(yaml.safe_dump(doc))
    settings = Settings(
        state_dir=tmp_path / "state",
        producers={"pipes": {"org": "ngt", "clearance": "OFFICIAL"}},
        contracts_dir=tmp_path,
    )
    ontology = load_ontology()
    with pytest.raises(ContractError, match=r"pipes\.yaml: schema\[GasPipe\]\.properties\[GasPipe\.length\]"):
        RecordChecker(ontology, settings)
    # Enforcement off: the folder is not even read.
    checker = RecordChecker(ontology, settings.model_copy(update={"contracts_enforce": False}))
    event = {
        "id": "e1",
        "source": "pipes",
        "type": "upsert",
        "subject": "x1",
        "time": "2026-01-01T00:00:00Z",
        "version": 1,
        "class": "GasSink",
        "attributes": {},
    }
    result = checker.check("cim.ingest.pipes", b"x1", json.dumps(event).encode(), [])
    assert not isinstance(result, Rejection), result


def test_a_worker_whose_contracts_do_not_lint_does_not_start(
    stream: Stream,  # noqa: F811
    worker_factory: Any,  # noqa: F811
    tmp_path: Path,
    kafka_bootstrap: str,
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    doc = contract(stream.a)
    doc["schema"].append({"name": "Unicorn"})
    (folder / "pipes.yaml").write_text(yaml.safe_dump(doc))
    records, _, _ = scenario(stream)
    run(_produce(kafka_bootstrap, records))
    worker = worker_factory(HUB_CONTRACTS_DIR=str(folder))
    worker.start()
    assert worker.proc is not None
    assert worker.proc.wait(timeout=120) == 2, worker.logs()[-3000:]
    logs = worker.logs()
    assert (
        "the data contracts do not lint" in logs
        and "schema[Unicorn]: class 'Unicorn' is not in the ontology" in logs
    )
