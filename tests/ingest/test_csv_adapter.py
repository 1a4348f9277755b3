"""CSV rows with a column mapping to events; published through the real Kafka and read back."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, topic_admin, topic_names
from hub.validation import validate_event
from ingest.csv_adapter import CsvMapping, CsvStats, MappingError, convert_csv
from ingest.producer import LABEL_HEADER, produce
from ingest.producer_onboarding import add_producer
from ontology.loader import load_ontology

TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PREFIX = "test.csv."

CSV_TEXT = """id,name,p_kw,q_kvar,substation,in_service,observed_at
ld-1,Harbour feeder,1250,300,sub-a,true,2024-05-01T09:00:00Z
ld-2,Mill lane,800,,sub-b,false,2024-05-01T09:05:00+01:00
,no id row,5,1,sub-a,true,2024-05-01T09:00:00Z
ld-3,Bad number,lots,1,sub-a,true,2024-05-01T09:00:00Z
ld-4,Bad time,10,1,sub-a,true,yesterday
"""

MAPPING = {
    "class": "EnergyConsumer",
    "mrid": {"column": "id", "prefix": "dno-"},
    "version": 7,
    "time_column": "observed_at",
    "label": "org=dno|classification=OFFICIAL",
    "attributes": {
        "IdentifiedObject.name": "name",
        "EnergyConsumer.p": {"column": "p_kw", "scale": 0.001},
        "EnergyConsumer.q": {"column": "q_kvar", "scale": 0.001},
        "Equipment.inService": "in_service",
        "IdentifiedObject.description": {"value": "from the asset register"},
    },
    "references": {"Equipment.EquipmentContainer": {"column": "substation", "prefix": "dno-"}},
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "loads.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    mapping_path = tmp_path / "loads.yaml"
    import yaml

    mapping_path.write_text(yaml.safe_dump(MAPPING), encoding="utf-8")
    return csv_path, mapping_path


def test_rows_become_events_and_bad_rows_and_cells_are_reported(files: tuple[Path, Path]) -> None:
    csv_path, mapping_path = files
    ontology = load_ontology()
    stats = CsvStats()
    events = list(convert_csv(csv_path, mapping_path, source="dno", ontology=ontology, stats=stats))

    assert [e.subject for e in events] == ["dno-ld-1", "dno-ld-2", "dno-ld-3"]
    first, second, third = events
    assert first.class_ == "EnergyConsumer" and first.version == 7
    assert first.attributes["EnergyConsumer.p"] == pytest.approx(1.25)
    assert first.attributes["EnergyConsumer.q"] == pytest.approx(0.3)
    assert first.attributes["IdentifiedObject.description"] == "from the asset register"
    assert first.references == {"Equipment.EquipmentContainer": "dno-sub-a"}
    assert first.time == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert first.label == "org=dno|classification=OFFICIAL"
    # An empty cell leaves the attribute out rather than removing it.
    assert "EnergyConsumer.q" not in second.attributes
    assert second.time == datetime(2024, 5, 1, 8, 5, tzinfo=UTC)
    valid = validate_event(second.to_json_dict(), ontology)
    assert valid.properties["inService"] is False

    # A bad number costs its cell: the row's other columns still go through.
    assert "EnergyConsumer.p" not in third.attributes
    assert third.attributes["IdentifiedObject.name"] == "Bad number"
    assert third.attributes["EnergyConsumer.q"] == pytest.approx(0.001)

    assert (stats.rows, stats.events, stats.skipped) == (5, 3, 2)
    defects = list(stats.defects)
    assert [(d.line, d.element, d.property, d.skips_object) for d in defects] == [
        (4, None, "id", True),
        (5, "dno-ld-3", "p_kw", False),
        (6, "dno-ld-4", "observed_at", True),
    ]
    reasons = [str(d) for d in defects]
    assert reasons[0].startswith(f"{csv_path}:4:") and "mRID is empty" in reasons[0]
    assert "'lots'" in reasons[1]
    assert "'yesterday'" in reasons[2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class": "NoSuchClass"}, "class = 'NoSuchClass'"),
        (
            {"attributes": {"ACLineSegment.r": "p_kw"}},
            "'ACLineSegment.r' is not an attribute of EnergyConsumer",
        ),
        (
            {"references": {"Terminal.ConnectivityNode": "id"}},
            "'Terminal.ConnectivityNode' is not an association",
        ),
        ({"type": "replace"}, "type = 'replace'"),
        ({"version": 0}, "version = 0"),
        ({"colour": "blue"}, "unknown key(s) ['colour']"),
        ({"attributes": {"IdentifiedObject.name": {"column": "name", "value": "x"}}}, "exactly one of"),
        ({"attributes": {"EnergyConsumer.p": {"column": "p_kw", "scale": "1k"}}}, "scale = '1k'"),
    ],
)
def test_mapping_errors_name_the_key_and_value(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        list(convert_csv(csv_path, CsvMapping.from_dict({**MAPPING, **change}), source="dno"))
    assert message in str(caught.value)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("id,name\nld-1,a\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"lacks column\(s\) \['in_service', 'observed_at'"):
        list(convert_csv(csv_path, CsvMapping.from_dict(MAPPING), source="dno"))


def test_class_and_type_from_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("mrid,kind,what,v,rev\nsw-1,Breaker,measurement,true,4\nsw-2,Nonsense,upsert,1,4\n")
    mapping = CsvMapping.from_dict(
        {
            "mrid": "mrid",
            "class_column": "kind",
            "type_column": "what",
            "version_column": "rev",
            "attributes": {"Switch.open": "v"},
        }
    )
    stats = CsvStats()
    events = list(convert_csv(csv_path, mapping, source="ngt", time=TIME, stats=stats))
    assert [(e.subject, e.class_, e.type.value, e.version) for e in events] == [
        ("sw-1", "Breaker", "measurement", 4)
    ]
    [defect] = stats.defects
    assert "'Nonsense'" in str(defect) and "not an ontology class" in str(defect)


def test_a_time_column_without_a_version_gives_each_row_the_version_of_its_time(tmp_path: Path) -> None:
    csv_path = tmp_path / "readings.csv"
    csv_path.write_text(
        "meter,p_kw,at\n"
        "m-1,40,2024-05-01T11:00:00Z\n"
        "m-1,10,2024-05-01T10:15:00.000001+01:00\n"
        "m-1,5,1969-12-31T23:59:59Z\n"
        "m-1,7,1970-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    mapping = CsvMapping.from_dict(
        {
            "class": "EnergyConsumer",
            "mrid": "meter",
            "time_column": "at",
            "attributes": {"EnergyConsumer.p": {"column": "p_kw", "scale": 0.001}},
        }
    )
    assert mapping.versions_from_time
    stats = CsvStats()
    events = list(convert_csv(csv_path, mapping, source="dno", stats=stats))
    # Microseconds since the epoch: a later time is a larger version whatever the row order.
    assert [e.version for e in events] == [1_714_561_200_000_000, 1_714_554_900_000_001]
    assert [e.time for e in events] == [
        datetime(2024, 5, 1, 11, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 9, 15, 0, 1, tzinfo=UTC),
    ]
    # A time not after the epoch cannot be a (positive) version: the row is skipped, named with its value.
    assert stats.skipped == 2
    assert all(d.property == "at" and "not after 1970-01-01" in d.reason for d in stats.defects)
    assert "'1969-12-31T23:59:59+00:00'" in next(iter(stats.defects)).reason


def test_a_version_in_the_mapping_wins_over_the_time_and_none_at_all_is_named(tmp_path: Path) -> None:
    csv_path = tmp_path / "readings.csv"
    csv_path.write_text("meter,at,rev\nm-1,2024-05-01T11:00:00Z,3\n", encoding="utf-8")
    base = {"class": "EnergyConsumer", "mrid": "meter", "time_column": "at"}
    for extra, version in (({"version": 9}, 9), ({"version_column": "rev"}, 3)):
        mapping = CsvMapping.from_dict({**base, **extra})
        assert not mapping.versions_from_time
        assert [e.version for e in convert_csv(csv_path, mapping, source="dno")] == [version]
    with pytest.raises(MappingError, match="give 'version', 'version_column' or 'time_column'"):
        list(
            convert_csv(
                csv_path, CsvMapping.from_dict({"class": "EnergyConsumer", "mrid": "meter"}), source="dno"
            )
        )


# --------------------------------------------------------------------------------- through Kafka


@pytest.fixture
def csv_settings(settings: Any, tmp_path: Path) -> Iterator[Any]:
    yield settings.model_copy(
        update={"ingest_topic_prefix": PREFIX, "producers_file": tmp_path / "producers.json"}
    )

    async def cleanup() -> None:
        async with topic_admin(admin_options(settings.kafka_bootstrap)) as admin:
            await delete_topics(admin, await topic_names(admin, PREFIX))

    asyncio.run(cleanup())


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            **admin_options(bootstrap),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(records) < expected and time.monotonic() < deadline:
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(part)
            for part in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(part)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(run())


@pytest.mark.services
def test_csv_published_through_kafka_reads_back(files: tuple[Path, Path], csv_settings: Any) -> None:
    csv_path, mapping_path = files
    pid = f"dno{uuid.uuid4().hex[:8]}"
    # Added as `hub producers add` adds a producer: it publishes as its own principal.
    asyncio.run(add_producer(csv_settings, pid))
    events = list(convert_csv(csv_path, mapping_path, source=pid))
    stats = produce(events, pid, settings=csv_settings, label_header="classification=OFFICIAL")
    assert stats.sent == 3

    records = read_topic(csv_settings.kafka_bootstrap, f"{PREFIX}{pid}", 3)
    assert sorted(r.key for r in records) == [b"dno-ld-1", b"dno-ld-2", b"dno-ld-3"]
    bodies = {r.key: json.loads(r.value) for r in records}
    assert bodies[b"dno-ld-1"]["attributes"]["EnergyConsumer.p"] == pytest.approx(1.25)
    assert bodies[b"dno-ld-2"]["references"] == {"Equipment.EquipmentContainer": "dno-sub-b"}
    assert all(dict(r.headers)[LABEL_HEADER] == b"classification=OFFICIAL" for r in records)


@pytest.mark.services
def test_hub_produce_csv_with_mapping(files: tuple[Path, Path], csv_settings: Any, monkeypatch: Any) -> None:
    from hub.settings import get_settings
    from hubcli.main import app

    csv_path, mapping_path = files
    pid = f"dno{uuid.uuid4().hex[:8]}"
    # Added as `hub producers add` adds a producer: it publishes as its own principal.
    asyncio.run(add_producer(csv_settings, pid))
    monkeypatch.setenv("HUB_INGEST_TOPIC_PREFIX", PREFIX)
    get_settings.cache_clear()
    try:
        args = ["produce", str(csv_path), "--mapping", str(mapping_path), "-p", pid]
        result = CliRunner().invoke(app, args)
    finally:
        monkeypatch.delenv("HUB_INGEST_TOPIC_PREFIX")
        get_settings.cache_clear()
    # Two rows could not become events and one cell was left out: the command lists the three defects
    # and exits with the status of "converted with defects".
    assert result.exit_code == 4, result.output
    assert "'lots'" in result.output and "'yesterday'" in result.output
    records = read_topic(csv_settings.kafka_bootstrap, f"{PREFIX}{pid}", 3)
    assert sorted(r.key for r in records) == [b"dno-ld-1", b"dno-ld-2", b"dno-ld-3"]
    assert {json.loads(r.value)["source"] for r in records} == {pid}
