"""Each data product's quality is measured live over what the caller may see: real Kafka, real Neo4j, the
worker as a real process and a real API server.

A producer with a contract publishes pipes and nodes, some labelled for everyone and some for its own
organisation only, with event times spread over the last minutes, and a few events that break its
contract. Two callers of different clearance then ask for the product's quality in GraphQL, the DCAT
catalogue and the CKAN API; every figure is compared with what the test computes from the events it sent,
over the objects each caller may see (its own oracle), and the two callers' answers differ exactly where
those oracles do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
import yaml
from graphkit import Api, serve
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, RDF

from hub.caller import Caller
from hub.labels import evaluate, parse
from tests.ingest.test_poison import (  # noqa: F401 - the fixtures are used by name
    Record,
    Stream,
    _produce,
    keyed,
    run,
    stream,
    worker_factory,
)

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DQV = Namespace("http://www.w3.org/ns/dqv#")
PUBLIC = "classification=PUBLIC"
OWN = "org=ngt"
LENGTH_CLAUSE = "schema[GasPipe].properties[GasPipe.length].logicalTypeOptions.exclusiveMinimum"


def contract(producer: str) -> dict[str, Any]:
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:test:contract:{producer}",
        "name": "Pipes and nodes",
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": "Pipes and nodes for a test.", "limitations": "None in particular."},
        "team": {"name": "Test team"},
        "support": [{"channel": "email", "url": "mailto:pipes@example.test"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "h"},
            {"property": "latency", "value": 10, "unit": "m"},
        ],
        "customProperties": [
            {"property": "producer", "value": producer},
            {"property": "defaultLabel", "value": OWN},
            {"property": "maximumLabel", "value": "classification=OFFICIAL&org=ngt"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": "OE-SA"},
        ],
        "schema": [
            {
                "name": "GasPipe",
                "properties": [
                    {"name": "IdentifiedObject.name", "logicalType": "string", "required": True},
                    {
                        "name": "GasPipe.length",
                        "logicalType": "number",
                        "logicalTypeOptions": {"exclusiveMinimum": 0},
                    },
                ],
            },
            {
                "name": "GasNode",
                "properties": [
                    {"name": "IdentifiedObject.name", "logicalType": "string", "required": True},
                    {"name": "GasNode.latitude", "logicalType": "number"},
                    {"name": "GasNode.longitude", "logicalType": "number"},
                ],
            },
        ],
    }


@dataclass(frozen=True)
class Sent:
    """One object the test published: its class, label, event time and attributes."""

    mrid: str
    cls: str
    label: str
    time: datetime
    attributes: dict[str, Any]


def scenario(st: Stream, now: datetime) -> tuple[list[Record], list[Sent]]:
    """Ten pipes and six nodes, half for everyone and half for ngt only, some without a length or a
    place; then five events that break the contract (dead-lettered on the event alone), two of them for
    ngt only."""
    sent: list[Sent] = []
    for i in range(10):
        attributes: dict[str, Any] = {"IdentifiedObject.name": f"pipe{i}"}
        if i % 3:
            attributes["GasPipe.length"] = 10.0 + i
        sent.append(
            Sent(
                st.mrid(st.a, f"pipe{i}"),
                "GasPipe",
                PUBLIC if i % 2 == 0 else OWN,
                now - timedelta(seconds=100 + 41 * i),
                attributes,
            )
        )
    for j in range(6):
        attributes = {"IdentifiedObject.name": f"node{j}"}
        if j != 1:
            attributes |= {"GasNode.longitude": -3.0 + 0.5 * j, "GasNode.latitude": 51.0 + 0.25 * j}
        sent.append(
            Sent(
                st.mrid(st.a, f"node{j}"),
                "GasSink",
                PUBLIC if j < 3 else OWN,
                now - timedelta(seconds=120 + 41 * j),
                attributes,
            )
        )
    records: list[Record] = []
    for s in sent:
        name = s.mrid.removeprefix(st.producers[st.a]["owns"])
        event = st.event(st.a, name, attributes=s.attributes, label=s.label, time=_rfc3339(s.time))
        event["class"] = s.cls
        records.append(keyed(st, st.a, event))
    breaches = [
        ("bad0", "GasPipe", {"IdentifiedObject.name": "bad0", "GasPipe.length": 0}),
        ("bad1", "GasPipe", {"IdentifiedObject.name": "bad1", "GasPipe.length": -2}),
        ("bad2", "GasMeasurement", {"IdentifiedObject.name": "bad2"}),
    ]
    for name, cls, attributes in breaches:
        event = st.event(st.a, name, attributes=attributes, label=PUBLIC, time=_rfc3339(now))
        event["class"] = cls
        records.append(keyed(st, st.a, event))
    # Two more breaches only ngt's caller may be told of: one labelled for ngt, one stating no label (the
    # contract's default, ngt's, applies).
    for name, label in (("bad3", OWN), ("bad4", None)):
        event = st.event(
            st.a, name, attributes={"IdentifiedObject.name": name, "GasPipe.length": 0}, time=_rfc3339(now)
        )
        event["class"] = "GasPipe"
        if label is not None:
            event["label"] = label
        records.append(keyed(st, st.a, event))
    return records, sent


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nearest_rank(driver: neo4j.Driver, values: list[float], p: float) -> float:
    """The percentile as the hub defines it (Cypher's percentileDisc), of the test's own numbers."""
    records, _, _ = driver.execute_query("UNWIND $v AS x RETURN percentileDisc(x, $p) AS q", v=values, p=p)
    return float(records[0]["q"])


@dataclass(frozen=True)
class Oracle:
    """What one caller must be told, computed from the sent objects it may see."""

    visible: list[Sent]

    @property
    def pipes(self) -> list[Sent]:
        return [s for s in self.visible if s.cls == "GasPipe"]

    @property
    def nodes(self) -> list[Sent]:
        return [s for s in self.visible if s.cls == "GasSink"]

    def completeness(self) -> dict[tuple[str, str], tuple[int, int]]:
        def present(items: list[Sent], qname: str) -> tuple[int, int]:
            return sum(qname in s.attributes for s in items), len(items)

        return {
            ("GasNode", "GasNode.latitude"): present(self.nodes, "GasNode.latitude"),
            ("GasNode", "GasNode.longitude"): present(self.nodes, "GasNode.longitude"),
            ("GasNode", "IdentifiedObject.name"): present(self.nodes, "IdentifiedObject.name"),
            ("GasPipe", "GasPipe.length"): present(self.pipes, "GasPipe.length"),
            ("GasPipe", "IdentifiedObject.name"): present(self.pipes, "IdentifiedObject.name"),
        }

    def bbox(self) -> tuple[float, float, float, float]:
        lons = [s.attributes["GasNode.longitude"] for s in self.nodes if "GasNode.longitude" in s.attributes]
        lats = [s.attributes["GasNode.latitude"] for s in self.nodes if "GasNode.latitude" in s.attributes]
        return (min(lons), min(lats), max(lons), max(lats))


QUALITY = """
query Quality($id: ID!) {
  dataProduct(id: $id) {
    id name sensitivity
    quality {
      windowSeconds events eventsPerMinute freshnessP50Seconds freshnessP99Seconds freshnessSlaSeconds
      deadLetters deadLettersPerMinute deadLetterRate
      topDeadLetterReasons { reason count }
      completeness { className attribute present total ratio }
      objectCounts { className count }
      objects lastUpdate temporalStart temporalEnd
      bbox { west south east north }
    }
  }
}
"""


@pytest.fixture
def contracts_dir(tmp_path: Path, stream: Stream) -> Path:  # noqa: F811 - the fixture
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "product.yaml").write_text(yaml.safe_dump(contract(stream.a), sort_keys=False))
    return folder


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_quality_catalogue_and_ckan_match_each_callers_oracle(
    stream: Stream,  # noqa: F811
    worker_factory: Any,  # noqa: F811
    contracts_dir: Path,
    kafka_bootstrap: str,
    neo4j_driver: neo4j.Driver,
    settings: Any,
) -> None:
    st = stream
    now = datetime.now(UTC).replace(microsecond=0)
    records, sent = scenario(st, now)
    run(_produce(kafka_bootstrap, records))
    worker = worker_factory(HUB_CONTRACTS_DIR=str(contracts_dir))
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    # Every commit happened by now: each event's delay (commit - send) is at most this.
    slack = (datetime.now(UTC) - now).total_seconds() + 1.0

    update = {
        "contracts_dir": contracts_dir,
        "producers": st.producers,
        "ingest_topic_prefix": f"{st.prefix}.cim.ingest.",
        "deadletter_topic": f"{st.prefix}.cim.deadletter",
        "changes_topic": f"{st.prefix}.cim.changes",
        "quality_dead_letter_cache_s": 0.0,
    }
    callers = {
        "ngt": Caller("q-ngt", org="ngt", clearance="OFFICIAL"),
        "public": Caller("q-public", org=None, clearance="PUBLIC"),
    }
    with serve(settings.model_copy(update=update)) as api:
        tokens = {name: api.token(c.subject, c.org, c.clearance or "PUBLIC") for name, c in callers.items()}
        answers = {name: api.query(QUALITY, {"id": st.a}, token=t) for name, t in tokens.items()}
        catalogues = {name: _catalogue(api, t, st.a) for name, t in tokens.items()}
        packages = {name: _ckan_show(api, t, st.a) for name, t in tokens.items()}
        # The API tails the dead-letter topic: letters written after its last reading are counted by the
        # next (two more public breaches; the public caller is told of five, then).
        later = []
        for name in ("bad5", "bad6"):
            event = st.event(
                st.a, name, attributes={"IdentifiedObject.name": name, "GasPipe.length": 0}, label=PUBLIC
            )
            event["class"] = "GasPipe"
            later.append(keyed(st, st.a, event))
        run(_produce(kafka_bootstrap, later))
        worker.wait_until_done(kafka_bootstrap)
        again = api.query(QUALITY, {"id": st.a}, token=tokens["public"])
    late = again["data"]["dataProduct"]["quality"]
    assert late["deadLetters"] == 5, (
        late["deadLetters"],
        [a["data"]["dataProduct"]["quality"]["deadLetters"] for a in answers.values()],
    )

    seen: dict[str, Any] = {}
    for name, caller in callers.items():
        visible = [s for s in sent if evaluate(parse(s.label), caller.authorizations)]
        o = Oracle(visible)
        ages = [(now - s.time).total_seconds() for s in visible]
        q = answers[name]["data"]["dataProduct"]["quality"]
        seen[name] = q
        # Time-based figures: the events it may see, and the dead letters of events it may see (three for
        # everyone, two more for ngt).
        assert q["events"] == len(visible)
        assert q["eventsPerMinute"] == pytest.approx(len(visible) / 60.0)
        for field, p in (("freshnessP50Seconds", 0.5), ("freshnessP99Seconds", 0.99)):
            low = nearest_rank(neo4j_driver, ages, p)
            assert low <= q[field] <= low + slack, (name, field, q[field], low, slack)
        assert q["freshnessSlaSeconds"] == 600.0
        letters = 5 if name == "ngt" else 3
        assert q["deadLetters"] == letters
        assert q["deadLetterRate"] == pytest.approx(letters / (len(visible) + letters))
        assert {r["reason"]: r["count"] for r in q["topDeadLetterReasons"]} == {
            f"contract: {LENGTH_CLAUSE}": letters - 1,
            "contract: schema": 1,
        }
        # Counts, completeness, coverage: the current objects it may see.
        assert {c["className"]: c["count"] for c in q["objectCounts"]} == {
            "GasNode": len(o.nodes),
            "GasPipe": len(o.pipes),
        }
        got = {(c["className"], c["attribute"]): (c["present"], c["total"]) for c in q["completeness"]}
        assert got == o.completeness()
        assert q["objects"] == len(visible)
        assert _parse_time(q["temporalStart"]) == min(s.time for s in visible)
        assert _parse_time(q["temporalEnd"]) == max(s.time for s in visible)
        west, south, east, north = o.bbox()
        assert q["bbox"] == {"west": west, "south": south, "east": east, "north": north}
        assert now - timedelta(seconds=5) <= _parse_time(q["lastUpdate"]) <= now + timedelta(seconds=slack)

        # The catalogue says the same of the dataset, as DCAT and DQV.
        g, ds = catalogues[name]
        temporal = g.value(ds, DCTERMS.temporal)
        assert g.value(temporal, DCAT.startDate).toPython() == min(s.time for s in visible)
        assert g.value(temporal, DCAT.endDate).toPython() == max(s.time for s in visible)
        assert _measurement(g, ds, "objectCount") == len(visible)
        assert _measurement(g, ds, "eventsPerMinute") == pytest.approx(len(visible) / 60.0)
        bbox = str(g.value(g.value(ds, DCTERMS.spatial), DCAT.bbox))
        assert (
            bbox
            == f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"
        )

        # And the CKAN package.
        extras = {e["key"]: e["value"] for e in packages[name]["extras"]}
        assert extras["object_count"] == str(len(visible))
        assert extras["object_count:GasPipe"] == str(len(o.pipes))
        assert _parse_time(extras["temporal_start"]) == min(s.time for s in visible)
        pipes_with_length = o.completeness()[("GasPipe", "GasPipe.length")]
        assert float(extras["completeness:GasPipe:GasPipe.length"]) == pytest.approx(
            pipes_with_length[0] / pipes_with_length[1]
        )

    # The two callers' answers differ, exactly where their oracles do (checked above), and the caller
    # who sees less is told nothing of what it does not see.
    assert seen["ngt"]["objects"] == 16 and seen["public"]["objects"] == 8
    assert seen["ngt"]["temporalStart"] != seen["public"]["temporalStart"]
    assert seen["ngt"]["bbox"] != seen["public"]["bbox"]


def _catalogue(api: Api, token: str, producer: str) -> tuple[Graph, URIRef]:
    answer = api.client.get(
        f"{api.base}/catalog", headers={"Authorization": f"Bearer {token}", "Accept": "text/turtle"}
    )
    assert answer.status_code == 200, answer.text
    g = Graph().parse(data=answer.text, format="turtle")
    ds = URIRef(f"{api.base}/catalog/datasets/{producer}")
    assert (ds, RDF.type, DCAT.Dataset) in g
    return g, ds


def _measurement(g: Graph, ds: URIRef, metric: str) -> Any:
    """The value of the dataset's measurement of ``metric`` that names no class or attribute."""
    for m in g.objects(ds, DQV.hasQualityMeasurement):
        of = g.value(m, DQV.isMeasurementOf)
        if of is not None and str(of).endswith(metric) and len(set(g.predicate_objects(m))) == 4:
            value = g.value(m, DQV.value)
            assert isinstance(value, Literal)
            return value.toPython()
    raise AssertionError(f"no {metric} measurement")


def _ckan_show(api: Api, token: str, name: str) -> dict[str, Any]:
    # ckanapi sends the token as the bare header value.
    answer = api.client.get(
        f"{api.base}/api/3/action/package_show", params={"id": name}, headers={"Authorization": token}
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result
