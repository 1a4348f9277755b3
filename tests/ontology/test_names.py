"""canonical_class / canonical_qname across CIM 16, CIM 100 and the hub's own namespaces."""

from __future__ import annotations

import pytest

from ontology import Ontology, load_ontology
from ontology.model import CIM16_NS, CIM100_NS, ENTSOE16_NS, EU100_NS, GAS_NS
from ontology.vocabulary import lower_first, upper_snake


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return load_ontology()


@pytest.mark.parametrize("ns", [CIM16_NS + "#", CIM100_NS + "#", CIM16_NS, "{" + CIM100_NS + "#}"])
def test_same_names_in_both_versions(onto: Ontology, ns: str) -> None:
    assert onto.canonical_class("ACLineSegment", ns) == "ACLineSegment"
    assert onto.canonical_qname("ACLineSegment.r", ns) == "ACLineSegment.r"
    assert onto.canonical_qname("Terminal.ConductingEquipment", ns) == "Terminal.ConductingEquipment"


def test_extension_namespaces(onto: Ontology) -> None:
    assert (
        onto.canonical_qname("IdentifiedObject.shortName", ENTSOE16_NS + "#") == "IdentifiedObject.shortName"
    )
    assert onto.canonical_qname("IdentifiedObject.shortName", EU100_NS + "#") == "IdentifiedObject.shortName"
    assert onto.canonical_class("EnergySchedulingType", ENTSOE16_NS + "#") == "EnergySchedulingType"
    assert (
        onto.canonical_qname("OperationalLimitType.limitType", ENTSOE16_NS)
        == "OperationalLimitType.limitType"
    )


def test_renamed_in_cim100(onto: Ontology) -> None:
    assert onto.canonical_qname("OperationalLimitType.kind", EU100_NS) == "OperationalLimitType.limitType"
    # The rename is CGMES 3.0 only: CIM 16 never had that name.
    assert onto.canonical_qname("OperationalLimitType.kind", CIM16_NS) is None
    limit = onto.attribute_by_qname("OperationalLimitType.limitType")
    assert limit is not None and {"patl", "tatl", "alarmVoltage"} <= set(limit.literals)


def test_unknown_names(onto: Ontology) -> None:
    assert onto.canonical_class("NoSuchThing", CIM16_NS) is None
    assert onto.canonical_class("ACLineSegment", "http://example.org/cim#") is None
    assert onto.canonical_qname("ACLineSegment.noSuchAttribute", CIM16_NS) is None
    assert onto.canonical_qname("ACLineSegment", CIM16_NS) is None
    assert onto.canonical_qname("", CIM16_NS) is None
    # A member exists, but not under that owner: files always name the declaring class.
    assert onto.canonical_qname("ACLineSegment.BaseVoltage", CIM16_NS) is None


def test_hub_namespaces(onto: Ontology) -> None:
    assert onto.canonical_class("GasPipe", GAS_NS + "#") == "GasPipe"
    assert onto.canonical_qname("GasPipe.length", GAS_NS) == "GasPipe.length"


def test_key_derivation() -> None:
    assert lower_first("ConductingEquipment") == "conductingEquipment"
    assert lower_first("ACDCTerminal") == "acdcTerminal"
    assert lower_first("DCTerminals") == "dcTerminals"
    assert lower_first("PU") == "pu"
    assert upper_snake("ConductingEquipment") == "CONDUCTING_EQUIPMENT"
    assert upper_snake("ACDCTerminal") == "ACDC_TERMINAL"
    assert upper_snake("First_Terminal") == "FIRST_TERMINAL"
