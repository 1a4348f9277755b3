"""The generated CIM ontology: reproducible from the checked-in schemas, and its key rules."""

from __future__ import annotations

from ontology import generate as gen
from ontology.generate import CimModel, GenAssociation, GenAttribute, GenClass


def test_regenerating_gives_the_checked_in_file() -> None:
    text, model = gen.generate()
    assert text == gen.OUTPUT.read_text(encoding="utf-8")
    assert gen.main(["--check"]) == 0
    # Sanity of what was generated: the profiles all contributed.
    assert {"ACLineSegment", "TopologicalNode", "SvVoltage", "Location", "DiagramObject", "GovSteam0"} <= set(
        model.classes
    )
    assert model.associations["Terminal.ConductingEquipment"].inverse_key == "terminals"


def test_generation_is_deterministic() -> None:
    assert gen.generate()[0] == gen.generate()[0]


def _attr(owner: str, name: str) -> GenAttribute:
    return GenAttribute(
        qname=f"{owner}.{name}",
        owner=owner,
        ns="urn:t",
        key=name,
        datatype="float",
        enum=None,
        unit=None,
        cim_datatype=None,
        description="",
        profiles={"EQ"},
    )


def _assoc(owner: str, role: str, target: str, inverse: str) -> GenAssociation:
    return GenAssociation(
        qname=f"{owner}.{role}",
        owner=owner,
        ns="urn:t",
        key=gen.lower_first(role),
        rel_type=gen.upper_snake(role),
        target=target,
        many=False,
        inverse_qname=None,
        inverse_key=gen.lower_first(inverse),
        description="",
        profiles={"EQ"},
    )


def _model(attrs: list[GenAttribute], assocs: list[GenAssociation]) -> CimModel:
    classes = {
        "Base": GenClass("Base", "urn:t", [], True, "", {"EQ"}),
        "Child": GenClass("Child", "urn:t", ["Base"], False, "", {"EQ"}),
        "Other": GenClass("Other", "urn:t", [], False, "", {"EQ"}),
    }
    return CimModel(
        classes=classes,
        attributes={a.qname: a for a in attrs},
        associations={a.qname: a for a in assocs},
        enums={},
        notes=[],
    )


def test_collisions_along_ancestry_are_qualified_on_the_subclass() -> None:
    model = _model([_attr("Base", "value"), _attr("Child", "value")], [])
    gen.resolve_collisions(model)
    assert model.attributes["Base.value"].key == "value"
    assert model.attributes["Child.value"].key == "childValue"
    assert model.notes


def test_inverse_key_colliding_with_attribute_is_qualified() -> None:
    model = _model([_attr("Child", "other")], [_assoc("Other", "Child", "Child", "Other")])
    gen.resolve_collisions(model)
    assert model.attributes["Child.other"].key == "other"
    assert model.associations["Other.Child"].inverse_key == "otherOther"


def test_reserved_fields_and_relationship_types() -> None:
    model = _model(
        [_attr("Child", "version")],
        [_assoc("Base", "Other", "Other", "Bases"), _assoc("Child", "Other", "Other", "Children")],
    )
    gen.resolve_collisions(model)
    assert model.attributes["Child.version"].key == "childVersion"
    assert model.associations["Base.Other"].rel_type == "OTHER"
    assert model.associations["Child.Other"].rel_type == "CHILD_OTHER"
    assert model.associations["Child.Other"].key == "childOther"


def test_same_names_on_unrelated_classes_do_not_collide() -> None:
    model = _model([_attr("Child", "value"), _attr("Other", "value")], [])
    gen.resolve_collisions(model)
    assert model.attributes["Child.value"].key == "value" and model.attributes["Other.value"].key == "value"
    assert model.notes == []
