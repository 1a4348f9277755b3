"""GasLib networks to gas-ontology events, checked against the .net files read independently here."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hub.events import MRID_PATTERN, Event, EventType
from hub.validation import validate_event
from ingest.cgmes import ConversionError
from ingest.gaslib import GasLibStats, convert_gaslib, convert_unit
from ontology.loader import load_ontology
from ontology.model import Ontology

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gas"
# Named, not globbed: a missing network must fail its tests, not leave them with nothing to run.
NETWORKS = [
    DATA / "GasLib-11" / "GasLib-11.net",
    DATA / "GasLib-134" / "GasLib-134-v2.net",
    DATA / "GasLib-40" / "GasLib-40.net",
]
GAS = "{http://gaslib.zib.de/Gas}"
FRAMEWORK = "{http://gaslib.zib.de/Framework}"
TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ENDS = ("from", "to", "fuelGasVertex")
# Unit pairs GasLib files and the ontology use: (factor, offset) from the first to the second.
CONVERSIONS: dict[tuple[str | None, str | None], tuple[float, float]] = {
    ("m", "mm"): (1000.0, 0.0),
    ("meter", "m"): (1.0, 0.0),
    ("Celsius", "degC"): (1.0, 0.0),
    ("K", "degC"): (1.0, -273.15),
    ("1000m_cube_per_hour", "1000m3/h"): (1.0, 0.0),
    ("MJ_per_m_cube", "MJ/m3"): (1.0, 0.0),
    ("kg_per_m_cube", "kg/m3"): (1.0, 0.0),
    ("kg_per_kmol", "kg/kmol"): (1.0, 0.0),
    ("W_per_m_square_per_K", "W/(m2.K)"): (1.0, 0.0),
}


def file_elements(path: Path) -> tuple[list[etree._Element], list[etree._Element]]:
    root = etree.parse(str(path)).getroot()
    nodes = [el for el in root.find(f"{FRAMEWORK}nodes") if isinstance(el.tag, str)]
    connections = [el for el in root.find(f"{FRAMEWORK}connections") if isinstance(el.tag, str)]
    return nodes, connections


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


def test_the_three_networks_are_there() -> None:
    assert sorted(p.parent.name for p in DATA.glob("*/*.net")) == ["GasLib-11", "GasLib-134", "GasLib-40"]


@pytest.mark.parametrize("path", NETWORKS, ids=lambda p: p.stem)
def test_one_valid_object_per_node_and_connection(path: Path, ontology: Ontology) -> None:
    nodes, connections = file_elements(path)
    stats = GasLibStats()
    events = list(convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology, stats=stats))
    networks = [e for e in events if e.class_ == "GasNetwork"]
    objects = [e for e in events if e.class_ != "GasNetwork"]
    assert len(networks) == 1
    assert len(objects) == len(nodes) + len(connections)
    assert (stats.nodes, stats.connections) == (len(nodes), len(connections))

    by_name = {e.attributes["IdentifiedObject.name"]: e for e in objects}
    assert set(by_name) == {el.get("id") for el in nodes + connections}
    expected_classes = Counter(
        ontology.canonical_class(local(el.tag), GAS[1:-1]) for el in nodes + connections
    )
    assert None not in expected_classes
    assert Counter(e.class_ for e in objects) == expected_classes
    for element in nodes:
        assert ontology.is_a(by_name[element.get("id")].class_, "GasNode")
    for element in connections:
        assert ontology.is_a(by_name[element.get("id")].class_, "GasConnection")

    for event in events:
        assert event.type is EventType.UPSERT and MRID_PATTERN.match(event.subject)
        valid = validate_event(event.to_json_dict(), ontology)
        assert valid.event.subject == event.subject
    for event in objects:
        assert event.references["GasObject.Network"] == networks[0].subject
    assert not stats.skipped_elements and not stats.skipped_properties and not stats.dangling
    assert list(stats.defects) == []


@pytest.mark.parametrize("path", NETWORKS, ids=lambda p: p.stem)
def test_each_connection_refers_to_its_two_nodes(path: Path, ontology: Ontology) -> None:
    nodes, connections = file_elements(path)
    events = list(convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology))
    mrid_of = {e.attributes["IdentifiedObject.name"]: e.subject for e in events if e.class_ != "GasNetwork"}
    node_mrids = {mrid_of[el.get("id")] for el in nodes}
    by_name = {e.attributes["IdentifiedObject.name"]: e for e in events}
    for element in connections:
        event = by_name[element.get("id")]
        assert event.references["GasConnection.FromNode"] == mrid_of[element.get("from")]
        assert event.references["GasConnection.ToNode"] == mrid_of[element.get("to")]
        assert {
            event.references["GasConnection.FromNode"],
            event.references["GasConnection.ToNode"],
        } <= node_mrids
        if element.get("fuelGasVertex"):
            assert (
                event.references["GasCompressorStation.FuelGasNode"] == mrid_of[element.get("fuelGasVertex")]
            )


@pytest.mark.parametrize("path", NETWORKS, ids=lambda p: p.stem)
def test_every_value_and_coordinate_is_kept_in_the_ontology_unit(path: Path, ontology: Ontology) -> None:
    nodes, connections = file_elements(path)
    events = list(convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology))
    by_name = {e.attributes["IdentifiedObject.name"]: e for e in events if e.class_ != "GasNetwork"}
    gaslib_ns = GAS[1:-1]
    for element in nodes + connections:
        event = by_name[element.get("id")]
        element_name = local(element.tag)
        expected_keys = set()
        for name, raw in element.attrib.items():
            if name in ("id", *ENDS) or (name == "alias" and not raw):
                continue
            qname = ontology.canonical_qname(f"{element_name}.{name}", gaslib_ns)
            assert qname is not None, f"{element_name}.{name}"
            expected_keys.add(qname)
            attribute = ontology.attribute(event.class_, qname)
            assert attribute is not None
            if attribute.datatype == "float":
                assert float(event.attributes[qname]) == float(raw)
            elif attribute.datatype == "bool":
                assert event.attributes[qname] == {"0": "false", "1": "true"}[raw]
            else:
                assert event.attributes[qname] == raw
        for child in element:
            if not isinstance(child.tag, str):
                continue
            qname = ontology.canonical_qname(f"{element_name}.{local(child.tag)}", gaslib_ns)
            assert qname is not None, f"{element_name}.{local(child.tag)}"
            expected_keys.add(qname)
            attribute = ontology.attribute(event.class_, qname)
            assert attribute is not None and attribute.datatype == "float"
            unit = child.get("unit")
            factor, offset = (
                (1.0, 0.0) if unit in (None, attribute.unit) else CONVERSIONS[(unit, attribute.unit)]
            )
            expected = float(child.get("value")) * factor + offset
            assert math.isclose(float(event.attributes[qname]), expected, rel_tol=1e-9, abs_tol=1e-9)
        assert set(event.attributes) == expected_keys | {"IdentifiedObject.name"}


def test_wgs84_coordinates_and_unit_conversions_on_real_values(ontology: Ontology) -> None:
    g40 = {
        e.attributes["IdentifiedObject.name"]: e
        for e in convert_gaslib(DATA / "GasLib-40" / "GasLib-40.net", source="gas-tso", ontology=ontology)
    }
    source_1 = g40["source_1"]
    assert source_1.attributes["GasNode.longitude"] == "6.83756607565"
    assert source_1.attributes["GasNode.latitude"] == "48.9636070987"
    assert (source_1.attributes["GasNode.x"], source_1.attributes["GasNode.y"]) == ("1542.8", "5682.2")
    g134 = {
        e.attributes["IdentifiedObject.name"]: e
        for e in convert_gaslib(
            DATA / "GasLib-134" / "GasLib-134-v2.net", source="gas-tso", ontology=ontology
        )
    }
    # <roughness unit="m" value="8e-06"/> in GasLib-134; the ontology keeps roughness in mm.
    assert g134["p_br58"].attributes["GasPipe.roughness"] == "0.008"
    assert convert_unit(10.0, "Celsius", "K") == pytest.approx(283.15)
    with pytest.raises(ConversionError, match="bar"):
        convert_unit(1.0, "bar", "km")


def test_mrids_are_unique_across_networks_and_deterministic(ontology: Ontology) -> None:
    first: list[Event] = [
        e for path in NETWORKS for e in convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology)
    ]
    subjects = [e.subject for e in first]
    assert len(subjects) == len(set(subjects))
    again = [
        e for path in NETWORKS for e in convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology)
    ]
    assert first == again
    # GasLib ids repeat between networks ("node_1"); the network's name keeps the mRIDs apart.
    path = DATA / "GasLib-11" / "GasLib-11.net"
    one = {e.subject for e in convert_gaslib(path, source="gas-tso", ontology=ontology, network="north")}
    two = {e.subject for e in convert_gaslib(path, source="gas-tso", ontology=ontology, network="south")}
    assert one.isdisjoint(two) and len(one) == len(two)
    assert "north.entry01" in one


def test_bad_gaslib_input_is_an_error_naming_the_element(tmp_path: Path, ontology: Ontology) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text(
        '<network xmlns="http://gaslib.zib.de/Gas" xmlns:framework="http://gaslib.zib.de/Framework">'
        "<framework:nodes>"
        '<innode id="n1" x="0" y="0"><height unit="furlong" value="3"/></innode>'
        "</framework:nodes></network>"
    )
    # A unit that cannot be converted costs the value, not the node: it is left out and named.
    stats = GasLibStats()
    [_network, node] = list(convert_gaslib(bad, source="gas-tso", ontology=ontology, stats=stats))
    assert node.subject == "bad.n1" and not any("height" in q.lower() for q in node.attributes)
    [defect] = stats.defects
    assert (defect.element, defect.property, defect.line) == ("n1", "height", 1)
    assert "furlong" in defect.reason
    broken = tmp_path / "broken.net"
    broken.write_text("<network")
    with pytest.raises(ConversionError, match=r"broken\.net"):
        list(convert_gaslib(broken, source="gas-tso", ontology=ontology))
