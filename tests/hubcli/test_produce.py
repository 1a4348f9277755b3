"""``hub produce`` against the real Kafka: ``--emit jsonl`` writes exactly the events sent, a time series
carries the versions of its records' times, repeated versions are warned about, and through the real
worker a CSV series with readings out of order leaves the latest reading in Neo4j."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import neo4j
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from hub.events import time_version
from hub.graph_schema import VERSION
from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, topic_admin, topic_names
from hub.scenarios import new_id
from hub.settings import get_settings
from hubcli import produce as produce_command
from hubcli.main import app
from ingest.producer_onboarding import add_producer
from tests.ingest.test_poison import Stream, Worker
from tests.ingest.test_producer import read_topic

pytestmark = pytest.mark.services

# Readings of one meter out of order (the latest, 11:00, second), and one reading of another meter.
READINGS = [
    ("m-1", "10", "2024-05-01T10:15:00Z"),
    ("m-1", "40", "2024-05-01T11:00:00Z"),
    ("m-1", "20", "2024-05-01T10:30:00Z"),
    ("m-2", "5", "2024-05-01T10:00:00Z"),
    ("m-1", "30", "2024-05-01T10:45:00+00:00"),
]


@dataclass
class Publisher:
    """A producer of the test's own, its topic (one partition: send order is topic order) and files."""

    prefix: str
    producer: str
    topic: str
    folder: Path
    bootstrap: str

    def mrid(self, meter: str) -> str:
        return f"{self.prefix}-{meter}"

    def mapping(self, **changes: Any) -> Path:
        mapping: dict[str, Any] = {
            "class": "EnergyConsumer",
            "mrid": {"column": "meter", "prefix": f"{self.prefix}-"},
            "time_column": "observed_at",
            "attributes": {"EnergyConsumer.p": {"column": "p_kw", "scale": 0.001}},
        }
        mapping.update(changes)
        path = self.folder / f"mapping-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
        return path

    def csv(self, name: str, rows: list[tuple[str, str, str]]) -> Path:
        path = self.folder / name
        lines = ["meter,p_kw,observed_at", *(",".join(row) for row in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def produce(self, *args: str) -> Result:
        return CliRunner().invoke(app, ["produce", "--producer", self.producer, *args])


@pytest.fixture
def publisher(settings: Any, tmp_path: Path, neo4j_driver: neo4j.Driver) -> Iterator[Publisher]:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    topic_prefix = f"{prefix}.cim.ingest."
    isolated = settings.model_copy(
        update={
            "ingest_topic_prefix": topic_prefix,
            "topic_partitions": 1,
            "producers_file": tmp_path / "producers.json",
        }
    )
    producer = f"{prefix}-dno"
    asyncio.run(add_producer(isolated, producer))
    # The command reads its settings from the environment, as it does when run by hand.
    os.environ["HUB_INGEST_TOPIC_PREFIX"] = topic_prefix
    get_settings.cache_clear()
    try:
        yield Publisher(prefix, producer, f"{topic_prefix}{producer}", tmp_path, settings.kafka_bootstrap)
    finally:
        del os.environ["HUB_INGEST_TOPIC_PREFIX"]
        get_settings.cache_clear()
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        asyncio.run(_delete_topics(settings.kafka_bootstrap, f"{prefix}."))


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, await topic_names(admin, prefix))


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object; fails on anything else (a progress bar, a summary)."""
    objects = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(o, dict) for o in objects), text
    return objects


def flat(text: str) -> str:
    """``text`` with rich's line wrapping undone (runs of white space become one space)."""
    return " ".join(text.split())


def versions_of(rows: list[tuple[str, str, str]]) -> list[int]:
    return [time_version(datetime.fromisoformat(at)) for _meter, _p, at in rows]


def test_emit_to_stdout_is_exactly_what_is_sent_and_the_summary_goes_to_stderr(publisher: Publisher) -> None:
    readings = publisher.csv("readings.csv", READINGS)
    result = publisher.produce(str(readings), "--mapping", str(publisher.mapping()), "--emit", "jsonl")

    assert result.exit_code == 0, result.output
    emitted = json_lines(result.stdout)
    records = read_topic(publisher.bootstrap, publisher.topic, len(READINGS))
    # Byte for byte the message values, in send order (one partition keeps it).
    assert [r.value for r in records] == [line.encode() for line in result.stdout.splitlines()]
    assert [r.key.decode() for r in records] == [publisher.mrid(m) for m, _p, _at in READINGS]
    # Each reading carries the version of its own time, not one version for the whole call.
    assert [e["version"] for e in emitted] == versions_of(READINGS)
    assert "Published to" in result.stderr and publisher.topic in result.stderr
    assert "versions from column 'observed_at'" in flat(result.stderr)


def test_dry_run_emits_to_a_file_and_sends_nothing(publisher: Publisher) -> None:
    readings = publisher.csv("readings.csv", READINGS)
    out = publisher.folder / "events.jsonl"
    mapping = str(publisher.mapping())
    result = publisher.produce(str(readings), "--mapping", mapping, "--dry-run", "--emit-to", str(out))

    assert result.exit_code == 0, result.output
    # The summary stays on stdout when the events go to a file.
    assert "Checked for" in result.stdout and f"5 event(s) written to {out}" in flat(result.stdout)
    emitted = json_lines(out.read_text(encoding="utf-8"))
    assert [e["subject"] for e in emitted] == [publisher.mrid(m) for m, _p, _at in READINGS]
    assert [e["version"] for e in emitted] == versions_of(READINGS)
    assert read_topic(publisher.bootstrap, publisher.topic, 0) == []

    # What a dry run shows is what a real run then sends.
    sent = publisher.produce(str(readings), "--mapping", mapping, "--emit", "jsonl")
    assert sent.exit_code == 0, sent.output
    assert sent.stdout == out.read_text(encoding="utf-8")


def test_a_dry_run_needs_no_kafka_credentials_and_a_real_run_names_the_missing_ones(
    publisher: Publisher,
) -> None:
    readings = str(publisher.csv("readings.csv", READINGS))
    mapping = str(publisher.mapping())
    # A producer never added: no principal, no password file, no topic.
    stranger = f"{publisher.prefix}-stranger"
    checked = CliRunner().invoke(
        app, ["produce", readings, "--mapping", mapping, "-p", stranger, "--dry-run", "--emit", "jsonl"]
    )
    assert checked.exit_code == 0, checked.output
    assert [e["source"] for e in json_lines(checked.stdout)] == [stranger] * len(READINGS)

    sent = CliRunner().invoke(
        app, ["produce", readings, "--mapping", mapping, "-p", stranger, "--emit", "jsonl"]
    )
    assert sent.exit_code == 1, sent.output
    assert sent.stdout == ""
    assert f"no Kafka credentials for principal 'producer-{stranger}'" in flat(sent.stderr)


def test_json_lines_without_a_version_take_the_version_of_their_time(publisher: Publisher) -> None:
    def envelope(meter: str, at: str, **extra: Any) -> str:
        body = {
            "id": str(uuid.uuid4()),
            "source": publisher.producer,
            "type": "upsert",
            "subject": publisher.mrid(meter),
            "time": at,
            "class": "EnergyConsumer",
            "attributes": {"EnergyConsumer.p": 0.01},
            **extra,
        }
        return json.dumps(body)

    path = publisher.folder / "readings.jsonl"
    path.write_text(
        "\n".join(
            [
                envelope("m-1", "2024-05-01T11:00:00Z"),
                envelope("m-1", "2024-05-01T10:00:00+01:00", version=7),
                envelope("m-2", "2024-05-01T10:00:00.5Z"),
            ]
        ),
        encoding="utf-8",
    )
    # --emit-to alone means --emit jsonl, and "-" is stdout.
    result = publisher.produce(str(path), "--dry-run", "--emit-to", "-")

    assert result.exit_code == 0, result.output
    assert [e["version"] for e in json_lines(result.stdout)] == [
        time_version(datetime.fromisoformat("2024-05-01T11:00:00Z")),
        7,
        time_version(datetime.fromisoformat("2024-05-01T10:00:00.5Z")),
    ]
    assert "2 line(s) without a version took it from their time" in flat(result.stderr)


def test_json_lines_that_are_no_event_objects_are_skipped_with_their_line_and_the_rest_is_sent(
    publisher: Publisher,
) -> None:
    good = [envelope(publisher, f"g{i}", 1) for i in range(3)]
    refused = envelope(publisher, "bad", 1, attributes={"EnergyConsumer.p": "lots"})
    text = "\n".join(
        [
            json.dumps(good[0]),
            '{"id": "cut-off", "source":',
            "",
            "[1, 2]",
            json.dumps(good[1]),
            '"just a string"',
            json.dumps(good[2]),
        ]
    )
    path = publisher.folder / "events.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    # Independently: the lines that are JSON objects, and those that are not (empty lines are no lines).
    objects, defective = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        (objects if isinstance(parsed, dict) else defective).append(number)

    result = publisher.produce(str(path), "--dry-run", "--emit-to", "-", "--json")

    assert result.exit_code == produce_command.EXIT_DEFECTS, result.output
    emitted = json_lines(result.stdout)
    assert [e["id"] for e in emitted] == [e["id"] for e in good] and len(emitted) == len(objects)
    defects = [
        json.loads(line)["defect"] for line in result.stderr.splitlines() if line.startswith('{"defect"')
    ]
    assert [(d["file"], d["line"], d["kind"]) for d in defects] == [
        (str(path), n, "bad-line") for n in defective
    ]
    summary = flat(result.stderr)
    assert f"{path}:2: [bad-line, skipped] not JSON" in summary
    assert f"{path}:4: [bad-line, skipped] a JSON list, not an event object" in summary

    # An event that fails the local check is refused, named by its line; refused outranks defects.
    path.write_text(text + "\n" + json.dumps(refused) + "\n", encoding="utf-8")
    result = publisher.produce(str(path), "--dry-run")
    assert result.exit_code == produce_command.EXIT_REFUSED, result.output
    assert f"{publisher.mrid('bad')}: events.jsonl line 8: bad value for EnergyConsumer.p" in flat(
        result.stdout
    )

    # --strict: the defects are listed and nothing is checked or sent.
    result = publisher.produce(str(path), "--dry-run", "--strict", "--emit-to", "-")
    assert result.exit_code == produce_command.EXIT_DEFECTS, result.output
    assert result.stdout == "" and "nothing was sent" in flat(result.stderr)


def test_two_records_of_one_object_with_one_version_are_warned_about_and_counted(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough for the summary's columns to keep their headers on one line.
    monkeypatch.setattr(produce_command.console, "width", 200)
    # Two readings of m-1 at one instant in the first file, and the second file repeats another instant.
    first = publisher.csv("a.csv", [*READINGS, ("m-1", "31", "2024-05-01T10:45:00Z")])
    second = publisher.csv(
        "b.csv", [("m-2", "6", "2024-05-01T10:00:00Z"), ("m-3", "1", "2024-05-01T10:00:00Z")]
    )
    result = publisher.produce(str(first), str(second), "--mapping", str(publisher.mapping()), "--dry-run")

    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith(("┃", "│"))]
    assert "same version" in table[0]
    # input, format, sent, rejected, defects, seconds, events/s, same version, classes: per file and in total
    assert [row.split("│")[8].strip() for row in table[1:]] == ["1", "1", "2"]
    assert "warning" not in result.stdout
    warnings = flat(result.stderr)
    assert (
        "warning: a.csv: 1 event(s) give an object a version an earlier event of this call gave it"
        in warnings
    )
    assert f"{publisher.mrid('m-1')} (EnergyConsumer): version {versions_of(READINGS)[-1]} again" in warnings
    assert "warning: b.csv: 1 event(s)" in warnings and publisher.mrid("m-2") in warnings
    assert publisher.mrid("m-3") not in warnings

    # What the tester met: a series without times gets one version for the whole call, and now says so.
    constant = publisher.mapping(time_column=None)
    result = publisher.produce(str(first), "--mapping", str(constant), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "warning: a.csv: 4 event(s)" in flat(result.stderr)


def test_a_csv_series_out_of_order_ends_with_the_latest_reading_in_the_graph(
    publisher: Publisher, settings: Any, neo4j_driver: neo4j.Driver, tmp_path: Path
) -> None:
    stream = Stream(publisher.prefix, {publisher.producer: {"org": "dno", "clearance": "OFFICIAL"}})
    worker = Worker(settings, stream, tmp_path)
    worker.start()
    try:
        mapping = str(publisher.mapping())
        result = publisher.produce(str(publisher.csv("readings.csv", READINGS)), "--mapping", mapping)
        assert result.exit_code == 0, result.output
        # A later call with an older reading changes nothing either.
        late = publisher.csv("late.csv", [("m-1", "35", "2024-05-01T10:50:00Z")])
        result = publisher.produce(str(late), "--mapping", mapping)
        assert result.exit_code == 0, result.output
        worker.wait_until_done(publisher.bootstrap)
    finally:
        worker.stop()

    records, _, _ = neo4j_driver.execute_query(
        "MATCH (n:EnergyConsumer) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS mrid, properties(n) AS props",
        p=publisher.prefix,
    )
    stored = {r["mrid"]: r["props"] for r in records}
    assert set(stored) == {publisher.mrid("m-1"), publisher.mrid("m-2")}
    latest = stored[publisher.mrid("m-1")]
    assert latest["p"] == pytest.approx(0.04), latest
    assert latest[VERSION] == time_version(datetime.fromisoformat("2024-05-01T11:00:00Z"))
    assert stored[publisher.mrid("m-2")]["p"] == pytest.approx(0.005)


@pytest.fixture
def worker(
    publisher: Publisher, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Worker]:
    """A real worker for the publisher's topic, owning the publisher's mRIDs, with its own group and output
    topics; the command is pointed at the same ones, as an operator's environment would be."""
    stream = Stream(
        publisher.prefix,
        {publisher.producer: {"org": "dno", "clearance": "OFFICIAL", "owns": f"{publisher.prefix}-"}},
    )
    running = Worker(settings, stream, tmp_path)
    for name in ("HUB_WORKER_ID", "HUB_CHANGES_TOPIC", "HUB_DEADLETTER_TOPIC"):
        monkeypatch.setenv(name, running.env[name])
    get_settings.cache_clear()
    running.start()
    try:
        yield running
    finally:
        running.stop()
        get_settings.cache_clear()


def envelope(publisher: Publisher, name: str, version: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{name}-{uuid.uuid4().hex[:6]}",
        "source": publisher.producer,
        "type": "upsert",
        "subject": publisher.mrid(name),
        "time": "2026-01-01T00:00:00Z",
        "version": version,
        "class": "EnergyConsumer",
        "attributes": {"IdentifiedObject.name": name},
    }
    body.update(changes)
    return body


def test_wait_reports_which_events_the_worker_applied_and_which_it_dead_lettered_and_why(
    publisher: Publisher, worker: Worker, neo4j_driver: neo4j.Driver
) -> None:
    good = envelope(publisher, "good", 5)
    other = envelope(publisher, "other", 1, attributes={"EnergyConsumer.p": 0.5})
    # The same object at an older version, after the newer one: the worker keeps the newer.
    older = envelope(publisher, "good", 3)
    unknown = envelope(publisher, "odd", 1, attributes={"EnergyConsumer.nonsense": 1})
    foreign = envelope(publisher, "x", 1, subject="someone-elses-x")
    secret = envelope(publisher, "secret", 1, label="SECRET")
    events = [good, unknown, other, foreign, older, secret]
    path = publisher.folder / "mixed.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")

    # Without the local checks, so that the worker is the one to refuse.
    result = publisher.produce(str(path), "--no-validate", "--wait", "--wait-timeout", "90", "--json")

    assert result.exit_code == 2, result.output + worker.logs()[-3000:]
    outcomes = {o["id"]: o for o in json_lines(result.stdout)}
    assert list(outcomes) == [e["id"] for e in events]
    assert {i: o["outcome"] for i, o in outcomes.items()} == {
        good["id"]: "applied",
        other["id"]: "applied",
        older["id"]: "superseded",
        unknown["id"]: "dead-lettered",
        foreign["id"]: "dead-lettered",
        secret["id"]: "dead-lettered",
    }
    assert outcomes[good["id"]]["change"] == "upsert"
    assert outcomes[older["id"]]["superseded_by"] == {"version": 5, "id": good["id"]}
    assert outcomes[unknown["id"]]["reason_class"] == "attribute"
    assert "EnergyConsumer.nonsense" in outcomes[unknown["id"]]["reason"]
    assert outcomes[foreign["id"]]["reason_class"] == "ownership"
    assert "someone-elses-x" in outcomes[foreign["id"]]["reason"]
    assert outcomes[secret["id"]]["reason_class"] == "label"
    assert "'SECRET'" in outcomes[secret["id"]]["reason"]
    # Each dead letter is matched by where its event was, and the offsets are the topic's.
    assert [o["offset"] for o in outcomes.values()] == list(range(len(events)))
    # The summary says the same to a person, reasons included.
    summary = flat(result.stderr)
    for outcome, count in (("applied", 2), ("dead-lettered", 3), ("superseded", 1)):
        assert f"│ {outcome} │ {count} │" in summary, summary
    assert f"{unknown['id']} {publisher.mrid('odd')} v1: [attribute]" in summary
    # Applied means in the graph.
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS mrid", p=publisher.prefix
    )
    assert {r["mrid"] for r in records} == {publisher.mrid("good"), publisher.mrid("other")}

    # Sent again, every event is stale or refused again: nothing is left unknown, nothing claimed applied.
    again = publisher.produce(str(path), "--no-validate", "--wait", "--json")
    assert again.exit_code == 2, again.output
    repeated = {o["id"]: o["outcome"] for o in json_lines(again.stdout)}
    assert repeated == {
        **{e["id"]: "dead-lettered" for e in (unknown, foreign, secret)},
        good["id"]: "unchanged",
        other["id"]: "unchanged",
        older["id"]: "unchanged",
    }


def test_wait_without_a_worker_ends_at_its_timeout_and_reports_the_events_unknown(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A group no worker has joined: nothing is ever committed.
    monkeypatch.setenv("HUB_WORKER_ID", f"{publisher.prefix}-nobody")
    monkeypatch.setenv("HUB_CHANGES_TOPIC", f"{publisher.prefix}.cim.changes")
    monkeypatch.setenv("HUB_DEADLETTER_TOPIC", f"{publisher.prefix}.cim.deadletter")
    get_settings.cache_clear()
    event = envelope(publisher, "lonely", 1)
    path = publisher.folder / "one.jsonl"
    path.write_text(json.dumps(event) + "\n", encoding="utf-8")

    result = publisher.produce(str(path), "--wait", "--wait-timeout", "3", "--json")

    assert result.exit_code == 3, result.output
    assert [(o["id"], o["outcome"], o["offset"]) for o in json_lines(result.stdout)] == [
        (event["id"], "unknown", 0)
    ]
    assert f"HUB_WORKER_ID='{publisher.prefix}-nobody'" in flat(result.stderr)


def test_gaslib_with_compressors_lands_the_drives_on_their_stations(
    publisher: Publisher, settings: Any, neo4j_driver: neo4j.Driver, tmp_path: Path
) -> None:
    from lxml import etree

    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "gas" / "GasLib-11"
    # Named after the test's prefix: the network's mRIDs are the test's own.
    net = tmp_path / f"{publisher.prefix}-gaslib-11.net"
    cs = tmp_path / f"{publisher.prefix}-gaslib-11.cs"
    net.write_bytes((data / "GasLib-11.net").read_bytes())
    cs.write_bytes((data / "GasLib-11.cs").read_bytes())
    network = f"{publisher.prefix}-gaslib-11"
    ns = "{http://gaslib.zib.de/CompressorStations}"
    expected: dict[str, str] = {}  # drive mRID -> its station's mRID, read here with lxml
    units: dict[str, str] = {}  # unit mRID -> its drive's mRID
    for station in etree.parse(str(cs)).getroot().iter(f"{ns}compressorStation"):
        sid = station.get("id")
        for drive in station.find(f"{ns}drives").iterchildren(tag=etree.Element):
            expected[f"{network}.{sid}.{drive.get('id')}"] = f"{network}.{sid}"
        for unit in station.find(f"{ns}compressors").iterchildren(tag=etree.Element):
            units[f"{network}.{sid}.{unit.get('id')}"] = f"{network}.{sid}.{unit.get('drive')}"
    assert expected and units

    stream = Stream(publisher.prefix, {publisher.producer: {"org": "nggt", "clearance": "OFFICIAL"}})
    worker = Worker(settings, stream, tmp_path)
    worker.start()
    try:
        result = publisher.produce(str(net), "--compressors", str(cs))
        assert result.exit_code == 0, result.output
        assert f"{len(expected)} drives and {len(units)} compressor units" in flat(result.output)
        worker.wait_until_done(publisher.bootstrap)
    finally:
        worker.stop()

    records, _, _ = neo4j_driver.execute_query(
        "MATCH (d:GasCompressorDrive)-[:DRIVE_OF]->(s:GasCompressorStation) WHERE d.mrid STARTS WITH $p "
        "RETURN d.mrid AS drive, s.mrid AS station, d.kind AS kind",
        p=network,
    )
    assert {r["drive"]: r["station"] for r in records} == expected
    assert {r["kind"] for r in records} == {"gasTurbine"}
    # The stations are the network's own (published from the .net), connected to their nodes.
    stations, _, _ = neo4j_driver.execute_query(
        "MATCH (s:GasCompressorStation)-[:FROM_NODE]->(:GasNode) WHERE s.mrid IN $m RETURN count(s) AS n",
        m=sorted(set(expected.values())),
    )
    assert stations[0]["n"] == len(set(expected.values()))
    driven, _, _ = neo4j_driver.execute_query(
        "MATCH (u:GasCompressorUnit)-[:DRIVEN_BY]->(d:GasCompressorDrive), "
        "(u)-[:UNIT_OF]->(:GasCompressorStation) WHERE u.mrid STARTS WITH $p "
        "RETURN u.mrid AS unit, d.mrid AS drive",
        p=network,
    )
    assert {r["unit"]: r["drive"] for r in driven} == units


def test_compressors_need_one_gaslib_network(publisher: Publisher, tmp_path: Path) -> None:
    cs = Path(__file__).resolve().parents[3] / "shared" / "data" / "gas" / "GasLib-11" / "GasLib-11.cs"
    readings = publisher.csv("readings.csv", READINGS)
    result = publisher.produce(str(readings), "--mapping", str(publisher.mapping()), "--compressors", str(cs))
    assert result.exit_code != 0
    assert "--compressors FILE.cs goes with exactly one GasLib .net input" in flat(result.output)


def defective_model(publisher: Publisher) -> str:
    """A CGMES equipment file of the publisher's objects with one defect of each kind the converter meets."""
    p = publisher.prefix
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:cim="http://iec.ch/TC57/2013/CIM-schema-cim16#">
  <cim:ACLineSegment rdf:ID="_{p}-line1">
    <cim:IdentifiedObject.name>L1</cim:IdentifiedObject.name>
    <cim:ACLineSegment.r>abc</cim:ACLineSegment.r>
    <cim:ACLineSegment.x>0.5</cim:ACLineSegment.x>
  </cim:ACLineSegment>
  <cim:Terminal rdf:ID="_{p}-t1">
    <cim:IdentifiedObject.name>T1</cim:IdentifiedObject.name>
    <cim:Terminal.ConductingEquipment rdf:resource="#_{p}-line1#_{p}-line2"/>
    <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
  </cim:Terminal>
  <cim:Terminal rdf:ID="_{p} broken">
    <cim:IdentifiedObject.name>lost</cim:IdentifiedObject.name>
  </cim:Terminal>
  <cim:LinearShuntCompensator rdf:ID="_{p}-sh1">
    <cim:ShuntCompensator.switchOnDate>2021-03-0112:00:00Z</cim:ShuntCompensator.switchOnDate>
    <cim:IdentifiedObject.name>S1</cim:IdentifiedObject.name>
  </cim:LinearShuntCompensator>
  <cim:Breaker rdf:ID="_{p}-b1">
    <cim:Switch.open>maybe</cim:Switch.open>
    <cim:Switch.normalOpen>false</cim:Switch.normalOpen>
  </cim:Breaker>
</rdf:RDF>
"""


def test_a_model_with_defects_lands_without_them_and_exits_with_converted_with_defects(
    publisher: Publisher, worker: Worker, neo4j_driver: neo4j.Driver
) -> None:
    from lxml import etree

    path = publisher.folder / "defects_EQ.xml"
    path.write_text(defective_model(publisher), encoding="utf-8")
    lines = publisher.folder / "defects.jsonl"
    good_line = envelope(publisher, "from-lines", 1)
    lines.write_text('{"not": json\n' + json.dumps(good_line) + "\n", encoding="utf-8")

    # --strict sends nothing when there are defects.
    strict = publisher.produce(str(path), str(lines), "--strict")
    assert strict.exit_code == produce_command.EXIT_DEFECTS, strict.output
    assert "nothing was sent" in flat(strict.stderr)

    result = publisher.produce(str(path), str(lines), "--wait", "--wait-timeout", "90", "--json")

    assert result.exit_code == produce_command.EXIT_DEFECTS, result.output + worker.logs()[-3000:]
    outcomes = json_lines(result.stdout)
    assert {o["outcome"] for o in outcomes} == {"applied"}
    defects = [
        json.loads(line)["defect"] for line in result.stderr.splitlines() if line.startswith('{"defect"')
    ]
    p = publisher.prefix
    assert {(d["element"], d["property"], d["kind"], d["recovered"]) for d in defects} == {
        (f"{p}-line1", "ACLineSegment.r", "bad-value", False),
        (f"{p}-t1", "Terminal.ConductingEquipment", "joined-references", True),
        (f"{p}-t1", "Terminal.ConductingEquipment", "too-many-targets", False),
        (f"_{p} broken", None, "bad-object", False),
        (f"{p}-sh1", "ShuntCompensator.switchOnDate", "date-separator", True),
        (f"{p}-b1", "Switch.open", "bad-value", False),
        (None, None, "bad-line", False),
    }
    assert next(d for d in defects if d["kind"] == "bad-line")["line"] == 1

    # Independently: every element of the file with a well-formed rdf:ID, and the good line, is in the graph.
    rdf_id = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}ID"
    ids = [el.get(rdf_id) for el in etree.parse(str(path)).getroot()]
    well_formed = {i[1:] for i in ids if " " not in i}
    assert len(well_formed) == len(ids) - 1
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS mrid, properties(n) AS props",
        p=publisher.prefix,
    )
    stored = {r["mrid"]: r["props"] for r in records}
    assert set(stored) == well_formed | {publisher.mrid("from-lines")}
    line = stored[f"{p}-line1"]
    assert line["x"] == pytest.approx(0.5) and "r" not in line and line["name"] == "L1"
    assert stored[f"{p}-b1"]["normalOpen"] is False and "open" not in stored[f"{p}-b1"]
    assert str(stored[f"{p}-sh1"]["switchOnDate"]).startswith("2021-03-01T12:00:00")
    assert stored[f"{p}-t1"]["sequenceNumber"] == 1


def test_wait_as_the_producer_reads_its_own_dead_letters_and_leaves_the_rest_unknown(
    publisher: Publisher, worker: Worker, settings: Any
) -> None:
    """Given the producer's own credentials (which read neither the change feed nor the worker's
    progress), --wait reports the dead-lettered event with its reason and the others unknown."""
    # The producer's dead-letter topic and its read grant, under the worker's dead-letter topic name.
    mine = settings.model_copy(
        update={
            "ingest_topic_prefix": f"{publisher.prefix}.cim.ingest.",
            "deadletter_topic": worker.env["HUB_DEADLETTER_TOPIC"],
            "producers_file": publisher.folder / "producers.json",
            "topic_partitions": 1,
        }
    )
    asyncio.run(add_producer(mine, publisher.producer))
    stored = (
        settings.state_dir.expanduser().resolve() / "kafka" / "users" / f"producer-{publisher.producer}.json"
    )
    creds = json.loads(stored.read_text())
    good = envelope(publisher, "fine", 1)
    odd = envelope(publisher, "odd", 1, attributes={"EnergyConsumer.nonsense": 1})
    path = publisher.folder / "as-producer.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in (good, odd)), encoding="utf-8")

    os.environ.update(HUB_KAFKA_USERNAME=creds["username"], HUB_KAFKA_PASSWORD=creds["password"])
    get_settings.cache_clear()
    try:
        result = publisher.produce(str(path), "--no-validate", "--wait", "--wait-timeout", "20", "--json")
    finally:
        for name in ("HUB_KAFKA_USERNAME", "HUB_KAFKA_PASSWORD"):
            del os.environ[name]
        get_settings.cache_clear()

    assert result.exit_code == 2, result.output + worker.logs()[-3000:]
    outcomes = {o["id"]: o for o in json_lines(result.stdout)}
    assert {i: o["outcome"] for i, o in outcomes.items()} == {
        good["id"]: "unknown",
        odd["id"]: "dead-lettered",
    }
    assert outcomes[odd["id"]]["reason_class"] == "attribute"
    assert "EnergyConsumer.nonsense" in outcomes[odd["id"]]["reason"]
    assert "not dead-lettered" in flat(result.stderr)


def test_a_scenario_is_named_by_its_id_and_anything_else_is_refused_before_sending(
    publisher: Publisher,
) -> None:
    readings = str(publisher.csv("readings.csv", READINGS))
    mapping = str(publisher.mapping())
    by_name = publisher.produce(readings, "--mapping", mapping, "--scenario", "plan-2027", "--emit", "jsonl")
    assert by_name.exit_code != 0
    assert "scenario = 'plan-2027' is not a scenario id" in flat(by_name.output)
    assert read_topic(publisher.bootstrap, publisher.topic, 0) == []

    scenario = new_id()
    checked = publisher.produce(
        readings, "--mapping", mapping, "--scenario", scenario, "--dry-run", "--emit", "jsonl"
    )
    assert checked.exit_code == 0, checked.output
    assert [e["scenario"] for e in json_lines(checked.stdout)] == [scenario] * len(READINGS)
