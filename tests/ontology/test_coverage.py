"""Every class and property in the real data files is known to the ontology.

The files are scanned here independently of the converters (plain lxml): each CGMES element and
property, in either CGMES version, must map through ``canonical_class`` / ``canonical_qname``; each
enumeration value must be one of the attribute's literals; each GasLib element and attribute must have a
home through the GasLib names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from ontology import Ontology, load_ontology
from ontology.model import GASLIB_NS

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
# Model headers (md:FullModel) describe the file, not the grid; they are no objects of the graph.
MODEL_DESCRIPTION = "http://iec.ch/TC57/61970-552/ModelDescription/1#"
GASLIB_FRAMEWORK = "http://gaslib.zib.de/Framework"
GASLIB_CS = "http://gaslib.zib.de/CompressorStations"


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return load_ontology()


def _cgmes_files(version: str) -> list[Path]:
    files = sorted((DATA / "cgmes" / version).rglob("*.xml"))
    assert files, f"no CGMES {version} files under {DATA / 'cgmes' / version}"
    return files


def _scan(files: list[Path]) -> tuple[set[tuple[str, str]], set[tuple[str, str, str, str]]]:
    """(namespace, class) and (namespace, class, qname, kind), kind being 'lit', 'ref' or 'enum:<value>'."""
    classes: set[tuple[str, str]] = set()
    props: set[tuple[str, str, str, str]] = set()
    for path in files:
        root = etree.parse(str(path)).getroot()
        for obj in root.iterchildren(tag=etree.Element):
            q = etree.QName(obj)
            if q.namespace == MODEL_DESCRIPTION:
                continue
            classes.add((q.namespace or "", q.localname))
            for prop in obj.iterchildren(tag=etree.Element):
                pq = etree.QName(prop)
                if pq.namespace == MODEL_DESCRIPTION:
                    continue
                ref = prop.get(f"{{{RDF}}}resource")
                if ref is None:
                    kind = "lit"
                elif ref.startswith("http"):
                    kind = "enum:" + ref  # enumeration values are URIs, references are #_id or urn:uuid
                else:
                    kind = "ref"
                props.add((pq.namespace or "", q.localname, pq.localname, kind))
    return classes, props


@pytest.mark.parametrize("version", ["2.4.15", "3.0"])
def test_every_cgmes_class_and_property_is_known(onto: Ontology, version: str) -> None:
    classes, props = _scan(_cgmes_files(version))
    assert len(classes) > 40
    unknown_classes = sorted(f"{ns}{name}" for ns, name in classes if onto.canonical_class(name, ns) is None)
    assert unknown_classes == []

    problems: list[str] = []
    for ns, _cls, qname, kind in sorted(props):
        canonical = onto.canonical_qname(qname, ns)
        if canonical is None:
            problems.append(f"unknown property {ns}{qname}")
            continue
        attr = onto.attribute_by_qname(canonical)
        assoc = onto.association_by_qname(canonical)
        if kind == "lit" and attr is None:
            problems.append(f"{qname} is written as a value but {canonical} is no attribute")
        elif kind == "ref" and assoc is None:
            problems.append(f"{qname} is written as a reference but {canonical} is no association")
        elif kind.startswith("enum:"):
            if attr is None or attr.datatype != "enum":
                problems.append(
                    f"{qname} is written as an enumeration value but {canonical} is no enum attribute"
                )
            else:
                literal = kind.rpartition(".")[2]
                if literal not in attr.literals:
                    problems.append(f"{qname} value {kind[5:]} is not a literal of {attr.enum}")
    assert problems == []


def test_cgmes3_names_that_differ_map_onto_the_ontology(onto: Ontology) -> None:
    _, props = _scan(_cgmes_files("3.0"))
    written = {(ns, qname) for ns, _c, qname, _k in props}
    # Renamed in CGMES 3.0: the limit kind.
    assert ("http://iec.ch/TC57/CIM100-European#", "OperationalLimitType.kind") in written
    assert onto.canonical_qname("OperationalLimitType.kind", "http://iec.ch/TC57/CIM100-European#") == (
        "OperationalLimitType.limitType"
    )
    # New in CGMES 3.0, added by cim100-extra.ttl.
    assert onto.canonical_class("BoundaryPoint", "http://iec.ch/TC57/CIM100-European#") == "BoundaryPoint"
    assert onto.canonical_class("SvSwitch", "http://iec.ch/TC57/CIM100#") == "SvSwitch"
    assert onto.canonical_qname("Equipment.inService", "http://iec.ch/TC57/CIM100#") == "Equipment.inService"


def _gaslib_files() -> list[Path]:
    files = sorted((DATA / "gas").rglob("*.net"))
    assert len(files) == 3, files
    return files


def test_every_gaslib_element_and_attribute_has_a_home(onto: Ontology) -> None:
    problems: list[str] = []
    seen_elements: set[str] = set()
    for path in _gaslib_files():
        root = etree.parse(str(path)).getroot()
        assert etree.QName(root).localname == "network"
        assert onto.canonical_class("network", GASLIB_NS) == "GasNetwork"
        for info in root.iter(f"{{{GASLIB_FRAMEWORK}}}information"):
            for item in info.iterchildren(tag=etree.Element):
                if onto.canonical_qname(f"network.{etree.QName(item).localname}", GASLIB_NS) is None:
                    problems.append(f"network information {etree.QName(item).localname}")
        for container in ("nodes", "connections"):
            for group in root.iter(f"{{{GASLIB_FRAMEWORK}}}{container}"):
                for element in group.iterchildren(tag=etree.Element):
                    name = etree.QName(element).localname
                    seen_elements.add(name)
                    cls = onto.canonical_class(name, GASLIB_NS)
                    if cls is None:
                        problems.append(f"element {name}")
                        continue
                    members = [a for a in element.attrib if not a.startswith("{")]
                    members += [
                        etree.QName(child).localname for child in element.iterchildren(tag=etree.Element)
                    ]
                    for member in members:
                        qname = onto.canonical_qname(f"{name}.{member}", GASLIB_NS)
                        if qname is None:
                            problems.append(f"{name}.{member}")
                        elif qname not in onto.attributes_of(cls) and qname not in onto.associations_of(cls):
                            problems.append(f"{name}.{member} maps to {qname}, not a member of {cls}")
    assert problems == []
    assert {
        "source",
        "sink",
        "innode",
        "pipe",
        "shortPipe",
        "compressorStation",
        "valve",
        "controlValve",
    } <= (seen_elements)


def test_gaslib_names(onto: Ontology) -> None:
    assert onto.canonical_class("source", GASLIB_NS) == "GasSource"
    assert onto.canonical_class("innode", "{http://gaslib.zib.de/Gas}") == "GasInnerNode"
    assert onto.canonical_class("resistor", GASLIB_NS) == "GasResistor"
    assert onto.canonical_qname("pipe.from", GASLIB_NS) == "GasConnection.FromNode"
    assert (
        onto.canonical_qname("compressorStation.fuelGasVertex", GASLIB_NS)
        == "GasCompressorStation.FuelGasNode"
    )
    assert onto.canonical_qname("sink.geoWGS84Lat", GASLIB_NS) == "GasNode.latitude"
    assert onto.canonical_qname("pipe.id", GASLIB_NS) == "IdentifiedObject.name"
    assert onto.canonical_qname("pipe.height", GASLIB_NS) is None  # a node attribute, not a pipe's
    assert onto.canonical_class("pipe", "http://example.org/other") is None


def test_every_gaslib_compressor_element_and_value_has_a_home(onto: Ontology) -> None:
    """Every drive and compressor element of the GasLib .cs files, and every single value they carry."""
    files = sorted((DATA / "gas").rglob("*.cs"))
    assert len(files) == 2, files
    problems: list[str] = []
    for path in files:
        root = etree.parse(str(path)).getroot()
        for group in ("drives", "compressors"):
            for container in root.iter(f"{{{GASLIB_CS}}}{group}"):
                for element in container.iterchildren(tag=etree.Element):
                    name = etree.QName(element).localname
                    cls = onto.canonical_class(name, GASLIB_NS)
                    if cls is None:
                        problems.append(f"element {name}")
                        continue
                    members = {a for a in element.attrib if a != "id"}
                    for child in element.iterchildren(tag=etree.Element):
                        if child.get("value") is not None:
                            # Numbered coefficients are one member: power_fun_coeff_1 -> power_fun_coeff.
                            members.add(re.sub(r"_[0-9]+$", "", etree.QName(child).localname))
                    for member in members:
                        qname = onto.canonical_qname(f"{name}.{member}", GASLIB_NS)
                        if qname is None:
                            problems.append(f"{name}.{member}")
                        elif qname not in onto.attributes_of(cls) and qname not in onto.associations_of(cls):
                            problems.append(f"{name}.{member} maps to {qname}, not a member of {cls}")
    assert problems == []
    assert onto.canonical_class("pistonCompressor", GASLIB_NS) == "GasCompressorUnit"
    assert onto.canonical_class("electricMotor", GASLIB_NS) == "GasCompressorDrive"
    assert set(onto.attribute("GasCompressorDrive", "GasCompressorDrive.kind").literals) == {
        "gasTurbine",
        "gasDrivenMotor",
        "electricMotor",
        "steamTurbine",
    }
