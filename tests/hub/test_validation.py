"""validate_event: good events pass converted; each kind of bad event is rejected naming field and value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.events import EventType
from hub.validation import EventRejected, ValidEvent, validate_event
from ontology import Ontology, load_ontology

ONTO = load_ontology()
CIM16 = "http://iec.ch/TC57/2013/CIM-schema-cim16#"


def envelope(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt-1",
        "source": "ngt",
        "type": "upsert",
        "subject": "7f43f508-2496-4b64-9146-0a40406cbe49",
        "time": "2024-05-01T12:00:00Z",
        "version": 3,
        "class": "ACLineSegment",
        "attributes": {},
        "references": {},
    }
    event.update(overrides)
    return event


def rejected(event: object, **kwargs: Any) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        validate_event(event, ONTO, **kwargs)  # type: ignore[arg-type]
    return info.value


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return ONTO


# --- accepted ---------------------------------------------------------------------------------------


def test_accepts_a_cim_upsert_converting_values(onto: Ontology) -> None:
    event = envelope(
        subject="urn:uuid:7f43f508-2496-4b64-9146-0a40406cbe49",
        attributes={
            "IdentifiedObject.name": "BE-Line_1",
            "ACLineSegment.r": "4.250000",  # numbers arrive as text from CIM files
            "ACLineSegment.x": 12,
            "Conductor.length": 22.5,
            "Equipment.aggregate": "false",
            "IdentifiedObject.description": None,  # null removes
        },
        references={
            "ConductingEquipment.BaseVoltage": "#_65dd04e792584b3b912374e35dec032e",
            "Equipment.EquipmentContainer": "_2b659afe-2ac3-425c-9418-3383e09b4b39",
        },
    )
    valid = validate_event(json.dumps(event).encode(), onto)
    assert isinstance(valid, ValidEvent)
    assert valid.class_name == "ACLineSegment" and valid.type is EventType.UPSERT
    assert valid.mrid == valid.event.subject == "7f43f508-2496-4b64-9146-0a40406cbe49"
    for written in ("_7f43f508-2496-4b64-9146-0a40406cbe49", "#_7f43f508-2496-4b64-9146-0a40406cbe49"):
        assert validate_event(envelope(subject=written), onto).mrid == "7f43f508-2496-4b64-9146-0a40406cbe49"
    assert valid.properties == {
        "name": "BE-Line_1",
        "r": 4.25,
        "x": 12.0,
        "length": 22.5,
        "aggregate": False,
        "description": None,
    }
    assert isinstance(valid.properties["x"], float)
    assert valid.relationships == {
        "BASE_VOLTAGE": ["65dd04e792584b3b912374e35dec032e"],
        "EQUIPMENT_CONTAINER": ["2b659afe-2ac3-425c-9418-3383e09b4b39"],
    }
    base = valid.associations["BASE_VOLTAGE"]
    assert (base.qname, base.target) == ("ConductingEquipment.BaseVoltage", "BaseVoltage")
    assert valid.attributes["r"].unit == "ohm"


def test_accepts_enum_uris_ints_and_datetimes(onto: Ontology) -> None:
    event = envelope(
        **{"class": "PowerTransformerEnd"},
        attributes={
            "PowerTransformerEnd.connectionKind": CIM16 + "WindingConnection.Yn",
            "PowerTransformerEnd.phaseAngleClock": "11",
            "TransformerEnd.endNumber": 1.0,
            "TransformerEnd.grounded": True,
        },
    )
    valid = validate_event(json.dumps(event), onto)
    assert valid.properties == {
        "connectionKind": "Yn",
        "phaseAngleClock": 11,
        "endNumber": 1,
        "grounded": True,
    }
    short = validate_event(
        envelope(**{"class": "PowerTransformerEnd"}, attributes={"PowerTransformerEnd.connectionKind": "D"}),
        onto,
    )
    assert short.properties == {"connectionKind": "D"}
    gas = validate_event(
        envelope(
            **{"class": "GasMeasurement"},
            type="measurement",
            attributes={
                "GasMeasurement.pressure": "61.3",
                "GasMeasurement.measuredAt": "2024-05-01T12:00:00",
            },
        ),
        onto,
    )
    assert gas.properties == {"pressure": 61.3, "measuredAt": datetime(2024, 5, 1, 12, tzinfo=UTC)}


def test_to_many_references_take_a_list_or_one_mrid(onto: Ontology) -> None:
    event = envelope(
        **{"class": "TopologicalIsland"},
        references={"TopologicalIsland.TopologicalNodes": ["_n1", "#_n2", "_n1"]},
    )
    assert validate_event(event, onto).relationships == {"TOPOLOGICAL_NODES": ["n1", "n2"]}
    single = envelope(
        **{"class": "TopologicalIsland"}, references={"TopologicalIsland.TopologicalNodes": "_n1"}
    )
    assert validate_event(single, onto).relationships == {"TOPOLOGICAL_NODES": ["n1"]}
    cleared = envelope(references={"ConductingEquipment.BaseVoltage": []})
    assert validate_event(cleared, onto).relationships == {"BASE_VOLTAGE": []}


def test_gas_and_coupling_events(onto: Ontology) -> None:
    pipe = envelope(
        **{"class": "GasPipe"},
        attributes={"GasPipe.length": "55.0", "GasPipe.diameter": 500},
        references={"GasConnection.FromNode": "gaslib11-entry01", "GasConnection.ToNode": "gaslib11-N01"},
    )
    valid = validate_event(pipe, onto)
    assert valid.properties == {"length": 55.0, "diameter": 500.0}
    assert valid.relationships == {"FROM_NODE": ["gaslib11-entry01"], "TO_NODE": ["gaslib11-N01"]}
    offtake = envelope(**{"class": "GasOfftake"}, references={"GasOfftake.GeneratingUnits": ["gu-1", "gu-2"]})
    assert validate_event(offtake, onto).relationships == {"SUPPLIES_GAS_TO": ["gu-1", "gu-2"]}


def test_delete_needs_no_attributes(onto: Ontology) -> None:
    valid = validate_event(envelope(type="delete", attributes={}, references={}), onto)
    assert valid.type is EventType.DELETE and valid.properties == {} and valid.relationships == {}
    minimal = {k: v for k, v in envelope(type="delete").items() if k not in ("attributes", "references")}
    assert validate_event(minimal, onto).properties == {}


def test_results_use_only_ontology_keys(onto: Ontology) -> None:
    valid = validate_event(
        envelope(attributes={"ACLineSegment.r": 1}, references={"ConductingEquipment.BaseVoltage": "_b"}),
        onto,
    )
    assert set(valid.properties) <= onto.property_keys()
    assert set(valid.relationships) <= onto.rel_types()


# --- rejected ---------------------------------------------------------------------------------------


def test_rejects_undecodable_input() -> None:
    assert "not valid JSON" in str(rejected(b"{not json"))
    assert "JSON object" in str(rejected(b"[1, 2]"))
    assert "UTF-8" in str(rejected(b'{"id": "\xff"}'))
    err = rejected(json.dumps(envelope()).encode(), max_bytes=50)
    assert "larger than the limit of 50 bytes" in str(err) and isinstance(err.value, int) and err.value > 50


@pytest.mark.parametrize(
    ("change", "field", "shown"),
    [
        ({"version": 0}, "version", "0"),
        ({"version": "three"}, "version", "'three'"),
        ({"type": "merge"}, "type", "'merge'"),
        ({"time": "yesterday"}, "time", "'yesterday'"),
        ({"subject": "bad subject!"}, "subject", "'bad subject!'"),
        ({"source": "Upper Case"}, "source", "'Upper Case'"),
        ({"colour": "red"}, "colour", "'red'"),
        (
            {"references": {"ConductingEquipment.BaseVoltage": 5}},
            "references.ConductingEquipment.BaseVoltage",
            "5",
        ),
    ],
)
def test_rejects_bad_envelopes_naming_the_field(change: dict[str, Any], field: str, shown: str) -> None:
    err = rejected(envelope(**change))
    assert err.field is not None and err.field.startswith(field)
    assert "bad envelope" in str(err) and field in str(err) and shown in str(err)


def test_rejects_missing_envelope_field() -> None:
    event = envelope()
    del event["version"]
    err = rejected(event)
    assert err.field == "version" and "Field required" in str(err)


def test_rejects_unknown_class() -> None:
    err = rejected(envelope(**{"class": "FluxCapacitor"}))
    assert (err.field, err.value) == ("class", "FluxCapacitor")
    assert "'FluxCapacitor'" in str(err)


@pytest.mark.parametrize(
    ("attributes", "field", "value", "reason"),
    [
        (
            {"PowerTransformerEnd.r": 1.0},
            "attributes.PowerTransformerEnd.r",
            1.0,
            "not an attribute of ACLineSegment",
        ),
        ({"ACLineSegment.noSuch": 1}, "attributes.ACLineSegment.noSuch", 1, "not an attribute"),
        ({"r": 1}, "attributes.r", 1, "not an attribute"),
        ({"ACLineSegment.r": "4,25"}, "attributes.ACLineSegment.r", "4,25", "expected a number"),
        ({"ACLineSegment.r": True}, "attributes.ACLineSegment.r", True, "boolean"),
        ({"ACLineSegment.r": [1]}, "attributes.ACLineSegment.r", [1], "expected a number"),
        ({"ACLineSegment.r": "NaN"}, "attributes.ACLineSegment.r", "NaN", "expected a number"),
        ({"ACLineSegment.r": 1e400}, "attributes.ACLineSegment.r", float("inf"), "finite"),
        ({"Equipment.aggregate": "yes"}, "attributes.Equipment.aggregate", "yes", "true or false"),
        ({"Equipment.aggregate": 1}, "attributes.Equipment.aggregate", 1, "true or false"),
        ({"IdentifiedObject.name": 7}, "attributes.IdentifiedObject.name", 7, "expected a string"),
        (
            {"ConductingEquipment.BaseVoltage": "_b"},
            "attributes.ConductingEquipment.BaseVoltage",
            "_b",
            "references",
        ),
    ],
)
def test_rejects_bad_attributes(attributes: dict[str, Any], field: str, value: object, reason: str) -> None:
    err = rejected(envelope(attributes=attributes))
    assert err.field == field and reason in str(err)
    assert err.value == value
    assert repr(value) in str(err) and field in str(err)


def test_rejects_bad_int_enum_and_datetime() -> None:
    err = rejected(
        envelope(**{"class": "PowerTransformerEnd"}, attributes={"TransformerEnd.endNumber": "1.5"})
    )
    assert (
        err.field == "attributes.TransformerEnd.endNumber" and "integer" in str(err) and "'1.5'" in str(err)
    )
    err = rejected(
        envelope(**{"class": "PowerTransformerEnd"}, attributes={"TransformerEnd.endNumber": 2**70})
    )
    assert "64-bit" in str(err) and str(2**70) in str(err)
    uri = CIM16 + "WindingConnection.Q"
    err = rejected(
        envelope(**{"class": "PowerTransformerEnd"}, attributes={"PowerTransformerEnd.connectionKind": uri})
    )
    assert err.field == "attributes.PowerTransformerEnd.connectionKind" and "WindingConnection" in str(err)
    assert err.value == uri
    err = rejected(
        envelope(**{"class": "GasMeasurement"}, attributes={"GasMeasurement.measuredAt": "1st of May"})
    )
    assert err.field == "attributes.GasMeasurement.measuredAt" and "'1st of May'" in str(err)
    # Python reads any character between date and time ("...01112:00" as noon); RFC 3339 allows T, t, space.
    for wrong in ("2024-05-01112:00:00Z", "2024-05-01_12:00:00Z"):
        err = rejected(
            envelope(**{"class": "GasMeasurement"}, attributes={"GasMeasurement.measuredAt": wrong})
        )
        assert (
            err.field == "attributes.GasMeasurement.measuredAt"
            and "'T'" in str(err)
            and repr(wrong) in str(err)
        )
    for right in ("2024-05-01T12:00:00Z", "2024-05-01t12:00:00Z", "2024-05-01 12:00:00Z", "2024-05-01"):
        valid = validate_event(
            envelope(**{"class": "GasMeasurement"}, attributes={"GasMeasurement.measuredAt": right}),
            load_ontology(),
        )
        assert valid.properties["measuredAt"].date() == datetime(2024, 5, 1, tzinfo=UTC).date()


@pytest.mark.parametrize(
    ("references", "field", "reason"),
    [
        (
            {"Terminal.ConductingEquipment": "_x"},
            "references.Terminal.ConductingEquipment",
            "not an association",
        ),
        ({"ACLineSegment.r": "_x"}, "references.ACLineSegment.r", "attribute"),
        (
            {"ConductingEquipment.BaseVoltage": ["_a", "_b"]},
            "references.ConductingEquipment.BaseVoltage",
            "one object",
        ),
        (
            {"ConductingEquipment.BaseVoltage": "not an mrid"},
            "references.ConductingEquipment.BaseVoltage",
            "mRID",
        ),
        ({"ConductingEquipment.BaseVoltage": ""}, "references.ConductingEquipment.BaseVoltage", "mRID"),
    ],
)
def test_rejects_bad_references(references: dict[str, Any], field: str, reason: str) -> None:
    err = rejected(envelope(references=references))
    assert err.field == field and reason in str(err) and field in str(err)


def test_measurements_carry_attributes_only() -> None:
    err = rejected(envelope(type="measurement", references={"ConductingEquipment.BaseVoltage": "_b"}))
    assert err.field == "references.ConductingEquipment.BaseVoltage"
    assert "measurement" in str(err)


def test_long_values_are_shortened_in_the_message() -> None:
    err = rejected(envelope(attributes={"ACLineSegment.r": "9" * 5000 + "x"}))
    assert len(str(err)) < 400 and "..." in str(err)


# --- property tests ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_raises_anything_but_rejection(value: object) -> None:
    for raw in (json.dumps(value), json.dumps(value).encode(), value):
        try:
            validate_event(raw, ONTO)  # type: ignore[arg-type]
        except EventRejected as exc:
            assert str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_rejection(raw: bytes) -> None:
    try:
        validate_event(raw, ONTO)
    except EventRejected as exc:
        assert str(exc)


_CLASSES = sorted(ONTO.classes)


@st.composite
def plausible_events(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed envelopes with real qualified names and arbitrary values, so conversion is exercised."""
    cls = draw(st.sampled_from(_CLASSES))
    attr_names = sorted(ONTO.attributes_of(cls)) or ["IdentifiedObject.name"]
    assoc_names = sorted(ONTO.associations_of(cls)) or ["ConductingEquipment.BaseVoltage"]
    attributes = draw(st.dictionaries(st.sampled_from(attr_names), json_values, max_size=4))
    references = draw(
        st.dictionaries(
            st.sampled_from(assoc_names),
            st.text(max_size=20) | st.lists(st.text(max_size=20), max_size=3),
            max_size=3,
        )
    )
    return envelope(
        **{"class": cls},
        type=draw(st.sampled_from(["upsert", "delete", "measurement"])),
        attributes=attributes,
        references=references,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_events())
def test_plausible_events_are_accepted_or_rejected_never_crash(event: dict[str, Any]) -> None:
    try:
        valid = validate_event(json.dumps(event), ONTO)
    except EventRejected as exc:
        assert exc.field is None or exc.field in str(exc)
        return
    assert set(valid.properties) <= ONTO.property_keys()
    assert set(valid.relationships) <= ONTO.rel_types()


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.sampled_from(
        ["7f43f508-2496-4b64-9146-0a40406cbe49", "_abc", "#_abc", "urn:uuid:abc", "", " x"]
    ),
    version=st.one_of(st.integers(-3, 2**64), st.text(max_size=4), st.floats(allow_nan=False)),
    when=st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01", "yesterday", "2024-05-01T12:00:00+01:00"]),
    kind=st.sampled_from(["upsert", "delete", "measurement", "UPSERT", "merge"]),
    attributes=st.dictionaries(
        st.sampled_from(["ACLineSegment.r", "IdentifiedObject.name", "x"]), JSON_SCALARS
    ),
    extra=st.dictionaries(st.sampled_from(["label", "id", "source", "unknown"]), JSON_SCALARS, max_size=2),
    text_form=st.booleans(),
)
def test_bytes_take_the_same_path_to_the_same_outcome(
    subject: str,
    version: object,
    when: str,
    kind: str,
    attributes: dict[str, Any],
    extra: dict[str, Any],
    text_form: bool,
) -> None:
    # Well-formed bytes are parsed by pydantic straight from the JSON; anything else goes through the
    # general path. Whichever path an event takes, bytes and the decoded object must give one outcome.
    event = envelope(subject=subject, version=version, time=when, type=kind, attributes=attributes, **extra)
    raw = json.dumps(event).encode()
    as_object = json.loads(raw)

    def outcome(value: object) -> object:
        try:
            valid = validate_event(value, ONTO)  # type: ignore[arg-type]
        except EventRejected as exc:
            return ("rejected", str(exc))
        return (valid.event.model_dump(), valid.mrid, valid.properties, valid.relationships)

    assert outcome(raw.decode() if text_form else raw) == outcome(as_object)
