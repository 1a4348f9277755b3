"""The ontology's answers: hierarchy, datatypes, enumerations, associations, domains, couplings, keys."""

from __future__ import annotations

import re

import pytest

from ontology import Ontology, load_ontology
from ontology.vocabulary import RESERVED_FIELDS


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return load_ontology()


def test_hierarchy_from_subclassof(onto: Ontology) -> None:
    assert onto.ancestors("ACLineSegment") == (
        "ACLineSegment",
        "Conductor",
        "ConductingEquipment",
        "Equipment",
        "PowerSystemResource",
        "IdentifiedObject",
    )
    assert onto.is_a("ThermalGeneratingUnit", "GeneratingUnit")
    assert not onto.is_a("GeneratingUnit", "ThermalGeneratingUnit")
    assert {"ACLineSegment", "PowerTransformer", "Breaker", "Disconnector"} <= onto.descendants(
        "ConductingEquipment"
    )
    assert "ConductingEquipment" in onto.descendants("ConductingEquipment")
    assert onto.neo4j_labels("Breaker")[-1] == "Electricity"
    assert onto.neo4j_labels("Breaker")[:3] == ("Breaker", "ProtectedSwitch", "Switch")


def test_classes_merged_across_profiles(onto: Ontology) -> None:
    # Terminal is declared in EQ, TP, SSH...; its members from all of them land on one class.
    members = set(onto.attributes_of("Terminal")) | set(onto.associations_of("Terminal"))
    assert {"Terminal.ConductingEquipment", "Terminal.ConnectivityNode"} <= members  # EQ
    assert "Terminal.TopologicalNode" in members  # TP
    assert "ACDCTerminal.connected" in members  # SSH
    # SvVoltage only exists in SV; Location and PositionPoint only in GL; DiagramObject in DL.
    assert {"SvVoltage", "Location", "PositionPoint", "DiagramObject", "ExcIEEEAC1A"} <= set(onto.classes)


def test_unknown_class_raises_naming_it(onto: Ontology) -> None:
    with pytest.raises(KeyError, match="NoSuchClass"):
        onto.get("NoSuchClass")
    with pytest.raises(KeyError, match="NoSuchClass"):
        onto.ancestors("NoSuchClass")


def test_cim_datatypes_map_to_python_types_with_units(onto: Ontology) -> None:
    r = onto.attribute("ACLineSegment", "ACLineSegment.r")
    assert r is not None and (r.datatype, r.unit, r.key) == ("float", "ohm", "r")
    nominal = onto.attribute("BaseVoltage", "BaseVoltage.nominalVoltage")
    assert nominal is not None and (nominal.datatype, nominal.unit) == ("float", "kV")
    max_p = onto.attribute("ThermalGeneratingUnit", "GeneratingUnit.maxOperatingP")
    assert max_p is not None and (max_p.datatype, max_p.unit, max_p.owner) == (
        "float",
        "MW",
        "GeneratingUnit",
    )
    q = onto.attribute("EnergyConsumer", "EnergyConsumer.q")
    assert q is not None and q.unit == "MVAr"
    steps = onto.attribute("LinearShuntCompensator", "ShuntCompensator.maximumSections")
    assert steps is not None and steps.datatype == "int"
    connected = onto.attribute("Terminal", "ACDCTerminal.connected")
    assert connected is not None and connected.datatype == "bool"
    name = onto.attribute("Substation", "IdentifiedObject.name")
    assert name is not None and (name.datatype, name.unit) == ("string", None)
    # The dynamics profile's Simple_Float and PU datatypes are plain floats.
    ka = onto.attribute("ExcIEEEAC1A", "ExcIEEEAC1A.ka")
    assert ka is not None and ka.datatype == "float"


def test_enumerations_carry_their_literals(onto: Ontology) -> None:
    kind = onto.attribute("PowerTransformerEnd", "PowerTransformerEnd.connectionKind")
    assert kind is not None
    assert kind.datatype == "enum" and kind.enum == "WindingConnection"
    assert set(kind.literals) == {"A", "D", "I", "Y", "Yn", "Z", "Zn"}
    mode = onto.attribute("RegulatingControl", "RegulatingControl.mode")
    assert mode is not None and "voltage" in mode.literals and mode.unit is None


def test_associations_use_the_serialised_end(onto: Ontology) -> None:
    # RDFS gives Terminal.ConductingEquipment (AssociationUsed Yes) and ConductingEquipment.Terminals (No).
    assoc = onto.association("Terminal", "Terminal.ConductingEquipment")
    assert assoc is not None
    assert (assoc.key, assoc.rel_type, assoc.target, assoc.many, assoc.inverse_key) == (
        "conductingEquipment",
        "CONDUCTING_EQUIPMENT",
        "ConductingEquipment",
        False,
        "terminals",
    )
    assert onto.association("ConductingEquipment", "ConductingEquipment.Terminals") is None
    # Inherited: an ACLineSegment has its BaseVoltage through ConductingEquipment.
    base = onto.association("ACLineSegment", "ConductingEquipment.BaseVoltage")
    assert base is not None and base.owner == "ConductingEquipment" and base.target == "BaseVoltage"
    # To-many serialised end: TopologicalIsland.TopologicalNodes (SV).
    nodes = onto.association("TopologicalIsland", "TopologicalIsland.TopologicalNodes")
    assert nodes is not None and nodes.many and nodes.inverse_key == "topologicalIsland"
    # Location.PowerSystemResources is serialised on the Location side, single-valued.
    loc = onto.association("Location", "Location.PowerSystemResources")
    assert loc is not None and not loc.many and loc.inverse_key == "location"


def test_incoming_associations(onto: Ontology) -> None:
    incoming = {a.qname for a in onto.incoming_of("ACLineSegment")}
    assert "Terminal.ConductingEquipment" in incoming  # target ConductingEquipment, an ancestor
    assert "Location.PowerSystemResources" in incoming
    assert all(onto.is_a("ACLineSegment", a.target) for a in onto.incoming_of("ACLineSegment"))


def test_domains(onto: Ontology) -> None:
    assert {c.domain for c in onto.classes.values()} == {"Electricity", "Gas"}
    assert onto.domain("ACLineSegment") == "Electricity"
    for name in (
        "GasPipe",
        "GasSource",
        "GasSink",
        "GasInnerNode",
        "GasCompressorStation",
        "GasValve",
        "GasControlValve",
        "GasResistor",
        "GasShortPipe",
        "GasTerminal",
        "GasStorage",
        "GasOfftake",
        "GasMeasurement",
    ):
        assert onto.domain(name) == "Gas", name
        assert onto.is_a(name, "GasObject") and onto.is_a(name, "IdentifiedObject"), name
        assert onto.neo4j_labels(name)[-1] == "Gas"
    # Gas objects have name/mRID exactly as CIM ones.
    assert onto.attribute("GasPipe", "IdentifiedObject.name") is onto.attribute(
        "ACLineSegment", "IdentifiedObject.name"
    )


def test_gas_classes_and_physical_attributes(onto: Ontology) -> None:
    pipe = onto.attributes_of("GasPipe")
    assert {"length", "diameter", "roughness", "heatTransferCoefficient", "flowMin", "flowMax"} <= {
        a.key for a in pipe.values()
    }
    assert pipe["GasPipe.length"].unit == "km" and pipe["GasPipe.diameter"].unit == "mm"
    node = {a.key: a for a in onto.attributes_of("GasSource").values()}
    assert {
        "height",
        "pressureMin",
        "pressureMax",
        "longitude",
        "latitude",
        "x",
        "y",
        "gasTemperature",
        "calorificValue",
    } <= set(node)
    assert node["pressureMax"].unit == "bar" and node["longitude"].unit == "deg"
    ends = onto.associations_of("GasCompressorStation")
    assert (
        ends["GasConnection.FromNode"].target == "GasNode"
        and ends["GasConnection.ToNode"].target == "GasNode"
    )
    meas = {a.key for a in onto.attributes_of("GasMeasurement").values()}
    assert {"pressure", "flow", "temperature", "calorificValue"} <= meas
    assert onto.is_a("GasControlValve", "GasValve")


def test_coupling_gas_offtake_supplies_generating_unit(onto: Ontology) -> None:
    supply = onto.association("GasOfftake", "GasOfftake.GeneratingUnits")
    assert supply is not None
    assert supply.target == "GeneratingUnit" and supply.inverse_key == "gasSupply"
    assert onto.domain("GasOfftake") == "Gas" and onto.domain(supply.target) == "Electricity"
    # Navigable back from the gas-fired unit; its capacity is a CIM attribute.
    assert supply in onto.incoming_of("ThermalGeneratingUnit")
    assert onto.attribute("ThermalGeneratingUnit", "GeneratingUnit.maxOperatingP") is not None


def test_coupling_electricity_feeds_compressor_station(onto: Ontology) -> None:
    assert onto.is_a("ElectricitySupplyPoint", "EnergyConsumer")
    assert onto.domain("ElectricitySupplyPoint") == "Electricity"
    feed = onto.association("ElectricitySupplyPoint", "ElectricitySupplyPoint.GasCompressorStation")
    assert (
        feed is not None and feed.target == "GasCompressorStation" and feed.inverse_key == "electricitySupply"
    )
    assert feed in onto.incoming_of("GasCompressorStation")
    terminal = onto.association("ElectricitySupplyPoint", "ElectricitySupplyPoint.GasTerminal")
    assert terminal is not None and terminal in onto.incoming_of("GasTerminal")


def test_keys_unique_along_every_ancestry_and_valid_graphql_names(onto: Ontology) -> None:
    name_re = re.compile(r"^[A-Za-z][_0-9A-Za-z]*$")
    rel_re = re.compile(r"^[A-Z][A-Z0-9_]*$")
    for name in onto.classes:
        fields: list[str] = [a.key for a in onto.attributes_of(name).values()]
        fields += [a.key for a in onto.associations_of(name).values()]
        fields += [a.inverse_key for a in onto.incoming_of(name)]
        assert len(fields) == len(set(fields)), (name, sorted(k for k in fields if fields.count(k) > 1))
        assert all(name_re.match(k) for k in fields), name
        assert not RESERVED_FIELDS & set(fields), name
        rels = [a.rel_type for a in onto.associations_of(name).values()]
        assert len(rels) == len(set(rels)), name
        assert all(rel_re.match(r) for r in rels), name


def test_rel_types_and_property_keys(onto: Ontology) -> None:
    rels = onto.rel_types()
    assert {"CONDUCTING_EQUIPMENT", "BASE_VOLTAGE", "FROM_NODE", "TO_NODE", "SUPPLIES_GAS_TO"} <= rels
    keys = onto.property_keys()
    assert {"r", "x", "nominalVoltage", "name", "mRID", "length", "pressureMax"} <= keys
    assert not any(k.startswith("_") for k in keys | rels)


def test_coordinates_are_named(onto: Ontology) -> None:
    point = onto.attributes_of("PositionPoint")
    assert {"PositionPoint.xPosition", "PositionPoint.yPosition"} <= set(point)
    assert onto.association("PositionPoint", "PositionPoint.Location") is not None
    assert {"longitude", "latitude"} <= {a.key for a in onto.attributes_of("GasInnerNode").values()}
