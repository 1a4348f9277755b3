"""Converters isolate defects at the smallest unit: a bad property is left out and its object kept, an
object that cannot be kept is skipped, repairable defects are repaired, and every one is reported with its
file, line, object and property.

Each test writes a small file carrying the defects, states which parts are bad, and counts what should
survive with lxml, ``csv`` or ``json`` directly (not with the converter), then compares.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hub.validation import validate_event
from ingest.cgmes import CgmesConverter, ConversionStats, convert_cgmes
from ingest.csv_adapter import CsvMapping, CsvStats, convert_csv
from ingest.defects import DefectKind, repair_datetime, split_references
from ingest.difference import convert_difference
from ingest.gaslib import GasLibStats, convert_gaslib
from ontology.loader import load_ontology
from ontology.model import Ontology

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cgmes"
MODELS = [
    DATA / "2.4.15" / "MicroGrid-BaseCase",
    DATA / "2.4.15" / "SmallGrid-NodeBreaker",
    DATA / "3.0" / "MicroGrid",
]
TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
# The test's own idea of a well-formed rdf:ID: "_" and then mRID characters, nothing else.
WELL_FORMED_ID = re.compile(r"^_[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


# --- CGMES -------------------------------------------------------------------------------------------

CGMES_DEFECTS = """<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:cim="http://iec.ch/TC57/2013/CIM-schema-cim16#">
  <cim:ACLineSegment rdf:ID="_line1">
    <cim:IdentifiedObject.name>L1</cim:IdentifiedObject.name>
    <cim:ACLineSegment.r>abc</cim:ACLineSegment.r>
    <cim:ACLineSegment.x>0.5</cim:ACLineSegment.x>
    <cim:Equipment.EquipmentContainer rdf:resource="#_has space"/>
  </cim:ACLineSegment>
  <cim:Terminal rdf:ID="_t1">
    <cim:IdentifiedObject.name>T1</cim:IdentifiedObject.name>
    <cim:Terminal.ConductingEquipment rdf:resource="#_line1#_line2"/>
    <cim:Terminal.phases rdf:resource="http://iec.ch/TC57/2013/CIM-schema-cim16#PhaseCode.XYZ"/>
    <cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>
  </cim:Terminal>
  <cim:Terminal rdf:ID="_has space">
    <cim:IdentifiedObject.name>lost</cim:IdentifiedObject.name>
  </cim:Terminal>
  <cim:Terminal>
    <cim:IdentifiedObject.name>nameless</cim:IdentifiedObject.name>
  </cim:Terminal>
  <cim:GovGAST rdf:ID="_gov1">
    <cim:IdentifiedObject.name>G1</cim:IdentifiedObject.name>
    <cim:TurbineGovernorDynamics.SynchronousMachineDynamics rdf:resource="#_sm1#_sm2"/>
  </cim:GovGAST>
  <cim:LinearShuntCompensator rdf:ID="_sh1">
    <cim:ShuntCompensator.switchOnDate>2021-03-0112:00:00</cim:ShuntCompensator.switchOnDate>
    <cim:IdentifiedObject.name>S1</cim:IdentifiedObject.name>
  </cim:LinearShuntCompensator>
  <cim:LinearShuntCompensator rdf:ID="_sh2">
    <cim:ShuntCompensator.switchOnDate>2021-03-01112:00:00</cim:ShuntCompensator.switchOnDate>
    <cim:IdentifiedObject.name>S2</cim:IdentifiedObject.name>
  </cim:LinearShuntCompensator>
  <cim:Breaker rdf:ID="_b1">
    <cim:Switch.open>maybe</cim:Switch.open>
    <cim:Switch.normalOpen>false</cim:Switch.normalOpen>
    <cim:IdentifiedObject.name>B1</cim:IdentifiedObject.name>
    <cim:IdentifiedObject.name>B1 again</cim:IdentifiedObject.name>
  </cim:Breaker>
  <cim:BaseVoltage rdf:ID="_bv1">
    <cim:BaseVoltage.nominalVoltage>400</cim:BaseVoltage.nominalVoltage>
  </cim:BaseVoltage>
</rdf:RDF>
"""

# (object, property) -> (kind, recovered), as the file above was written: every property not named here
# is well-formed. The repeated IdentifiedObject.name of _b1 is one property given two values.
CGMES_BAD: dict[tuple[str | None, str | None], tuple[DefectKind, bool]] = {
    ("line1", "ACLineSegment.r"): (DefectKind.BAD_VALUE, False),
    ("line1", "Equipment.EquipmentContainer"): (DefectKind.BAD_REFERENCE, False),
    ("t1", "Terminal.ConductingEquipment"): (DefectKind.TOO_MANY_TARGETS, False),
    ("t1", "Terminal.phases"): (DefectKind.BAD_VALUE, False),
    ("sh2", "ShuntCompensator.switchOnDate"): (DefectKind.BAD_VALUE, False),
    ("b1", "Switch.open"): (DefectKind.BAD_VALUE, False),
    ("b1", "IdentifiedObject.name"): (DefectKind.BAD_VALUE, False),
}
CGMES_RECOVERED = {
    ("t1", "Terminal.ConductingEquipment"): DefectKind.JOINED_REFERENCES,
    ("gov1", "TurbineGovernorDynamics.SynchronousMachineDynamics"): DefectKind.JOINED_REFERENCES,
    ("sh1", "ShuntCompensator.switchOnDate"): DefectKind.DATE_SEPARATOR,
}


def test_cgmes_defects_are_reported_and_the_rest_converts(tmp_path: Path, ontology: Ontology) -> None:
    path = tmp_path / "defects_EQ.xml"
    path.write_text(CGMES_DEFECTS, encoding="utf-8")
    stats = ConversionStats()
    events = list(convert_cgmes([path], source="tso-a", time=TIME, ontology=ontology, stats=stats))

    # Independently: the elements with a well-formed rdf:ID, and their distinct properties.
    root = etree.parse(str(path)).getroot()
    kept = {
        el.get(f"{RDF}ID")[1:]: el
        for el in root
        if isinstance(el.tag, str) and WELL_FORMED_ID.match(el.get(f"{RDF}ID") or "")
    }
    assert len([el for el in root if isinstance(el.tag, str)]) == len(kept) + 2
    by_subject = {e.subject: e for e in events}
    assert set(by_subject) == set(kept)
    for mrid, element in kept.items():
        names = {etree.QName(child).localname for child in element}
        good = {n for n in names if (mrid, n) not in CGMES_BAD}
        event = by_subject[mrid]
        assert set(event.attributes) | set(event.references) == good, mrid
        validate_event(event.to_json_dict(), ontology)

    # The repairs kept the meaning.
    assert by_subject["gov1"].references["TurbineGovernorDynamics.SynchronousMachineDynamics"] == [
        "sm1",
        "sm2",
    ]
    assert by_subject["sh1"].attributes["ShuntCompensator.switchOnDate"] == "2021-03-01T12:00:00"
    assert by_subject["line1"].attributes["ACLineSegment.x"] == "0.5"

    # Every defect is reported, with its file and the line of the property in the file.
    lines = CGMES_DEFECTS.splitlines()
    reported = {}
    for defect in stats.defects:
        assert defect.file == str(path), defect
        if defect.kind is DefectKind.BAD_OBJECT:
            continue
        reported[(defect.element, defect.property, defect.recovered)] = defect.kind
        assert defect.line is not None, defect
        assert defect.property is not None and defect.property.rpartition(".")[2] in lines[defect.line - 1], (
            defect
        )
    assert reported == {
        **{(m, p, False): kind for (m, p), (kind, _r) in CGMES_BAD.items()},
        **{(m, p, True): kind for (m, p), kind in CGMES_RECOVERED.items()},
    }
    skipped = [d for d in stats.defects if d.kind is DefectKind.BAD_OBJECT]
    assert [(d.element, d.line) for d in skipped] == [
        ("_has space", 1 + lines.index('  <cim:Terminal rdf:ID="_has space">')),
        (None, 1 + lines.index("  <cim:Terminal>")),
    ]
    assert "'2021-03-01112:00:00'" in next(
        d.reason for d in stats.defects if d.element == "sh2"
    ) and "'T'" in next(d.reason for d in stats.defects if d.element == "sh2")
    assert len(stats.defects) == len(CGMES_BAD) + len(CGMES_RECOVERED) + 2
    assert stats.defects.recovered == len(CGMES_RECOVERED)


def test_an_element_defect_in_one_profile_keeps_the_object_s_other_parts(
    tmp_path: Path, ontology: Ontology
) -> None:
    eq = tmp_path / "m_EQ.xml"
    ssh = tmp_path / "m_SSH.xml"
    head = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:cim="http://iec.ch/TC57/2013/CIM-schema-cim16#">'
    )
    eq.write_text(
        head
        + '<cim:EnergyConsumer rdf:ID="_load1"><cim:IdentifiedObject.name>Load</cim:IdentifiedObject.name>'
        "</cim:EnergyConsumer></rdf:RDF>"
    )
    ssh.write_text(
        head + '<cim:EnergyConsumer rdf:about="#_load1">\n<cim:EnergyConsumer.p>1,5</cim:EnergyConsumer.p>\n'
        "<cim:EnergyConsumer.q>0.3</cim:EnergyConsumer.q></cim:EnergyConsumer></rdf:RDF>"
    )
    converter = CgmesConverter(source="tso-a", time=TIME, ontology=ontology)
    [event] = list(converter.convert([eq, ssh]))
    assert event.attributes == {"IdentifiedObject.name": "Load", "EnergyConsumer.q": "0.3"}
    [defect] = converter.stats.defects
    assert (defect.file, defect.line, defect.element, defect.property) == (
        str(ssh),
        2,
        "load1",
        "EnergyConsumer.p",
    )
    assert "'1,5'" in defect.reason and str(defect).startswith(f"{ssh}:2: object 'load1'")


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.name)
def test_the_conformity_models_convert_without_a_defect(model: Path, ontology: Ontology) -> None:
    stats = ConversionStats()
    events = list(convert_cgmes(sorted(model.glob("*.xml")), source="tso-a", ontology=ontology, stats=stats))
    assert events
    assert list(stats.defects) == []


def test_a_difference_model_skips_only_the_change_whose_class_is_unknown(ontology: Ontology) -> None:
    path = Path(__file__).resolve().parent / "data" / "MicroGrid_BE_EQ_difference_cgmes2415.xml"
    stats = ConversionStats()
    events = list(convert_difference(path, source="tso-a", version=2, ontology=ontology, stats=stats))
    root = etree.parse(str(path)).getroot()
    # Independently: every object the two halves mention, and those described (rdf:Description) only.
    typed: set[str] = set()
    mentioned: set[str] = set()
    for half in root.iter(
        "{http://iec.ch/TC57/61970-552/DifferenceModel/1#}forwardDifferences",
        "{http://iec.ch/TC57/61970-552/DifferenceModel/1#}reverseDifferences",
    ):
        for el in half:
            mrid = (el.get(f"{RDF}about") or el.get(f"{RDF}ID") or "").lstrip("#_")
            mentioned.add(mrid)
            if el.tag != f"{RDF}Description":
                typed.add(mrid)
    untyped = mentioned - typed
    assert untyped and {e.subject for e in events} == mentioned - untyped
    assert {(d.element, d.kind) for d in stats.defects} == {(m, DefectKind.BAD_OBJECT) for m in untyped}
    text = path.read_text(encoding="utf-8").splitlines()
    for defect in stats.defects:
        assert defect.line is not None and f"#_{defect.element}" in text[defect.line - 1], defect


# --- the repairs themselves ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "repaired"),
    [
        ("2021-03-0112:00:00", "2021-03-01T12:00:00"),
        ("2021-03-0112:00:00Z", "2021-03-01T12:00:00Z"),
        ("2021-03-0112:00:00.250+01:00", "2021-03-01T12:00:00.250+01:00"),
        ("2021-03-01T12:00:00", None),  # nothing to repair
        ("2021-03-01112:00:00", None),  # a wrong separator is not guessed at
        ("2021-03-01_12:00:00", None),
    ],
)
def test_a_date_run_into_its_time_gets_its_separator_back_and_nothing_else_is_guessed(
    text: str, repaired: str | None
) -> None:
    assert repair_datetime(text) == repaired


@pytest.mark.parametrize(
    ("resource", "parts"),
    [
        ("#_a#_b", ["#_a", "#_b"]),
        ("#_a #_b  #_c", ["#_a", "#_b", "#_c"]),
        ("#_a,#_b", ["#_a", "#_b"]),
        ("urn:uuid:1 urn:uuid:2", ["urn:uuid:1", "urn:uuid:2"]),
        ("#_a", None),
        ("#_a b", None),
    ],
)
def test_references_run_together_are_split_only_when_each_part_is_a_reference(
    resource: str, parts: list[str] | None
) -> None:
    assert split_references(resource) == parts


def test_the_worker_refuses_a_date_with_a_wrong_separator_instead_of_misreading_it(
    ontology: Ontology,
) -> None:
    from hub.validation import attribute_problem

    assert (
        attribute_problem(
            ontology, "LinearShuntCompensator", "ShuntCompensator.switchOnDate", "2021-03-01T12:00:00"
        )
        is None
    )
    problem = attribute_problem(
        ontology, "LinearShuntCompensator", "ShuntCompensator.switchOnDate", "2021-03-01112:00:00"
    )
    assert problem is not None and "'T'" in problem


# --- GasLib ----------------------------------------------------------------------------------------------

GASLIB_DEFECTS = """<?xml version="1.0" encoding="UTF-8"?>
<network xmlns="http://gaslib.zib.de/Gas" xmlns:framework="http://gaslib.zib.de/Framework">
  <framework:information>
    <framework:title>defects</framework:title>
  </framework:information>
  <framework:nodes>
    <source id="entry01" x="0" y="zero">
      <height value="0" unit="m"/>
      <pressureMin unit="bar" value="forty"/>
      <pressureMax unit="furlong" value="70.0"/>
    </source>
    <innode x="5" y="5">
      <height value="0" unit="m"/>
    </innode>
    <sink id="exit01" x="10" y="0">
      <height value="0" unit="m"/>
    </sink>
  </framework:nodes>
  <framework:connections>
    <pipe from="entry01" id="pipe01" to="exit01">
      <length unit="km" value="55"/>
      <diameter unit="mm" value="wide"/>
      <roughness unit="mm" value="0.1"/>
    </pipe>
  </framework:connections>
</network>
"""
# (element id, GasLib property) that the file above gets wrong; every other property is well-formed.
GASLIB_BAD = {
    ("entry01", "y"),
    ("entry01", "pressureMin"),
    ("entry01", "pressureMax"),
    ("pipe01", "diameter"),
}


def test_gaslib_defects_are_reported_and_the_rest_converts(tmp_path: Path, ontology: Ontology) -> None:
    path = tmp_path / "defects.net"
    path.write_text(GASLIB_DEFECTS, encoding="utf-8")
    stats = GasLibStats()
    events = list(convert_gaslib(path, source="gas-tso", time=TIME, ontology=ontology, stats=stats))

    # Independently: the node and connection elements with an id, and the properties each one gives.
    root = etree.parse(str(path)).getroot()
    gas = "{http://gaslib.zib.de/Framework}"
    elements = [
        el for part in ("nodes", "connections") for el in root.find(f"{gas}{part}") if isinstance(el.tag, str)
    ]
    with_id = {el.get("id"): el for el in elements if el.get("id")}
    assert len(elements) == len(with_id) + 1
    objects = {e.attributes["IdentifiedObject.name"]: e for e in events if e.class_ != "GasNetwork"}
    assert set(objects) == set(with_id)
    for element_id, element in with_id.items():
        given = [n for n in element.attrib if n not in ("id",)] + [etree.QName(c).localname for c in element]
        good = [n for n in given if (element_id, n) not in GASLIB_BAD]
        event = objects[element_id]
        # Each good property is one attribute or reference; the name and the network come on top.
        assert len(event.attributes) + len(event.references) == len(good) + 2, (element_id, event)
        validate_event(event.to_json_dict(), ontology)

    reported = {(d.element, d.property) for d in stats.defects if d.kind is DefectKind.BAD_VALUE}
    assert reported == GASLIB_BAD
    lines = GASLIB_DEFECTS.splitlines()
    for defect in stats.defects:
        assert defect.file == str(path) and defect.line is not None and not defect.recovered
        if defect.property is not None:
            assert defect.property in lines[defect.line - 1], defect
    [skipped] = [d for d in stats.defects if d.kind is DefectKind.BAD_OBJECT]
    assert skipped.line == 1 + lines.index('    <innode x="5" y="5">')
    assert "furlong" in next(d.reason for d in stats.defects if d.property == "pressureMax")


# --- CSV -------------------------------------------------------------------------------------------------

CSV_DEFECTS = """id,name,p_kw,in_service,substation,observed_at
ld-1,Harbour,1250,true,sub-a,2024-05-01T09:00:00Z
ld-2,Mill,lots,true,sub-a,2024-05-01T09:00:00Z
ld-3,Quay,10,perhaps,sub-a;sub-b,2024-05-0109:30:00Z
ld-4,Dock,20,false,sub a,2024-05-01109:30:00Z
,Nameless,5,true,sub-a,2024-05-01T09:00:00Z
ld-5,Pier,30,true,,2024-05-01T10:00:00Z
"""
CSV_MAPPING = {
    "class": "EnergyConsumer",
    "mrid": "id",
    "time_column": "observed_at",
    "attributes": {
        "IdentifiedObject.name": "name",
        "EnergyConsumer.p": {"column": "p_kw", "scale": 0.001},
        "Equipment.inService": "in_service",
    },
    "references": {"Equipment.EquipmentContainer": {"column": "substation", "separator": ";"}},
}
# (row id, column) of the cells the file above gets wrong; the rows that cannot be events at all.
CSV_BAD_CELLS = {("ld-2", "p_kw"), ("ld-3", "in_service"), ("ld-3", "substation")}
CSV_BAD_ROWS = {"ld-4", ""}  # a time with a wrong separator; no id


def test_csv_defects_cost_a_cell_or_a_row_and_the_rest_converts(tmp_path: Path, ontology: Ontology) -> None:
    path = tmp_path / "loads.csv"
    path.write_text(CSV_DEFECTS, encoding="utf-8")
    stats = CsvStats()
    events = list(
        convert_csv(path, CsvMapping.from_dict(CSV_MAPPING), source="dno", ontology=ontology, stats=stats)
    )

    # Independently, with the csv module: the rows kept, and per row the non-empty cells not known bad.
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    mapped = ["name", "p_kw", "in_service", "substation"]
    kept = {row["id"]: row for row in rows if row["id"] not in CSV_BAD_ROWS}
    by_subject = {e.subject: e for e in events}
    assert list(by_subject) == list(kept)
    for row_id, row in kept.items():
        good = [c for c in mapped if row[c] and (row_id, c) not in CSV_BAD_CELLS]
        event = by_subject[row_id]
        assert len(event.attributes) + len(event.references) == len(good), (row_id, event)
        validate_event(event.to_json_dict(), ontology)
    # The time run into its date was read as meant.
    assert by_subject["ld-3"].time == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

    assert (stats.rows, stats.events, stats.skipped) == (len(rows), len(kept), len(CSV_BAD_ROWS))
    left_out = {(d.element, d.property) for d in stats.defects if not d.recovered and not d.skips_object}
    assert left_out == CSV_BAD_CELLS
    assert {d.element or "" for d in stats.defects if d.skips_object} == CSV_BAD_ROWS
    [recovered] = [d for d in stats.defects if d.recovered]
    assert (recovered.element, recovered.property, recovered.kind) == (
        "ld-3",
        "observed_at",
        DefectKind.DATE_SEPARATOR,
    )
    wrong = next(d for d in stats.defects if d.element == "ld-4")
    assert "'T'" in wrong.reason and wrong.line == 5
    for defect in stats.defects:
        assert defect.file == str(path)
        assert (
            defect.line is not None
            and (defect.element or ",Nameless") in CSV_DEFECTS.splitlines()[defect.line - 1]
        )
