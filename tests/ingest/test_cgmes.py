"""CGMES full models and IEC 61970-552 difference models to events, checked against the files themselves.

The expected objects, classes and references are computed here with a plain lxml pass over the files,
independent of the converter's streaming and merging code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hub.events import Event, EventType
from hub.validation import validate_event
from ingest.cgmes import CgmesConverter, ConversionError, ConversionStats, convert_cgmes
from ingest.difference import convert_difference
from ontology.loader import load_ontology
from ontology.model import Ontology

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cgmes"
FIXTURES = Path(__file__).resolve().parent / "data"
MODELS = {
    "2.4.15 MicroGrid BE+NL+boundary": DATA / "2.4.15" / "MicroGrid-BaseCase",
    "2.4.15 SmallGrid": DATA / "2.4.15" / "SmallGrid-NodeBreaker",
    "3.0 MicroGrid": DATA / "3.0" / "MicroGrid",
}
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
MD = "{http://iec.ch/TC57/61970-552/ModelDescription/1#}"
TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _plain(raw: str) -> str:
    if raw.startswith("urn:uuid:"):
        raw = raw[len("urn:uuid:") :]
    return raw.removeprefix("#").removeprefix("_")


@dataclass
class Expected:
    """What the files define, read with ``etree.parse`` (whole trees: fine for a test)."""

    defined: dict[str, str] = field(default_factory=dict)  # mRID -> "{ns}Class" of its rdf:ID element
    about_only: dict[str, str] = field(default_factory=dict)  # mRID -> "{ns}Class", never rdf:ID'd
    referenced: set[str] = field(default_factory=set)

    @property
    def objects(self) -> dict[str, str]:
        return {**self.about_only, **self.defined}

    @property
    def dangling(self) -> set[str]:
        return self.referenced - set(self.objects)


def expected_from_files(paths: list[Path]) -> Expected:
    expected = Expected()
    abouts: dict[str, str] = {}
    for path in paths:
        for element in etree.parse(str(path)).getroot():
            if not isinstance(element.tag, str) or element.tag.startswith(MD):
                continue
            if element.get(f"{RDF}ID") is not None:
                expected.defined[_plain(element.get(f"{RDF}ID"))] = element.tag
            else:
                abouts.setdefault(_plain(element.get(f"{RDF}about")), element.tag)
            for prop in element:
                resource = prop.get(f"{RDF}resource")
                if resource is not None and (resource.startswith("#") or resource.startswith("urn:uuid:")):
                    expected.referenced.add(_plain(resource))
    expected.about_only = {m: tag for m, tag in abouts.items() if m not in expected.defined}
    return expected


def class_of(ontology: Ontology, tag: str) -> str | None:
    namespace, _, local = tag[1:].partition("}")
    return ontology.canonical_class(local, namespace)


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_object_of_every_model_converts_once_with_its_class(model: str, ontology: Ontology) -> None:
    paths = sorted(MODELS[model].glob("*.xml"))
    expected = expected_from_files(paths)
    stats = ConversionStats()
    events = list(convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology, stats=stats))

    subjects = [event.subject for event in events]
    assert len(subjects) == len(set(subjects)), "an object was emitted twice"
    assert set(subjects) == set(expected.objects)

    unknown = {tag for tag in expected.objects.values() if class_of(ontology, tag) is None}
    assert not unknown, f"classes in {model} that the ontology does not know: {sorted(unknown)}"
    expected_per_class = Counter(class_of(ontology, tag) for tag in expected.objects.values())
    assert Counter(event.class_ for event in events) == expected_per_class
    assert stats.classes == expected_per_class
    assert stats.headers and all(header.kind == "FullModel" for header in stats.headers)
    assert len(stats.headers) == len(paths)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_no_property_of_the_files_is_lost(model: str, ontology: Ontology) -> None:
    """All the files say reaches the events, except names/mRIDs CGMES 3.0 gives non-IdentifiedObjects."""
    paths = sorted(MODELS[model].glob("*.xml"))
    stats = ConversionStats()
    for _ in convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology, stats=stats):
        pass
    assert not stats.skipped_classes
    for skipped in stats.skipped_properties:
        class_name, _, qname = skipped.partition(": ")
        assert model.startswith("3.0"), skipped
        assert qname.startswith("IdentifiedObject."), skipped
        assert not ontology.is_a(class_name, "IdentifiedObject"), skipped


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_event_of_every_model_is_valid(model: str, ontology: Ontology) -> None:
    paths = sorted(MODELS[model].glob("*.xml"))
    for event in convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology):
        valid = validate_event(event.to_json_dict(), ontology)
        assert valid.event.subject == event.subject


@pytest.mark.parametrize("model", sorted(MODELS))
def test_references_only_dangle_to_objects_absent_from_the_file_set(model: str, ontology: Ontology) -> None:
    paths = sorted(MODELS[model].glob("*.xml"))
    expected = expected_from_files(paths)
    stats = ConversionStats()
    events = list(convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology, stats=stats))
    present = set(expected.objects)
    for event in events:
        for targets in event.references.values():
            for target in [targets] if isinstance(targets, str) else targets:
                assert target in present or target in expected.dangling, (event.subject, target)
    # Complete file sets (with their boundary) reference nothing outside themselves.
    assert expected.dangling == set()
    assert set(stats.dangling) == set()


def test_one_profile_alone_names_its_dangling_references(ontology: Ontology) -> None:
    """The BE equipment without the boundary: references to boundary objects dangle, and only those."""
    paths = [DATA / "2.4.15" / "MicroGrid-BaseCase" / "MicroGridTestConfiguration_BC_BE_EQ_V2.xml"]
    expected = expected_from_files(paths)
    boundary = expected_from_files(
        [DATA / "2.4.15" / "MicroGrid-BaseCase" / "MicroGridTestConfiguration_EQ_BD.xml"]
    )
    stats = ConversionStats()
    events = list(convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology, stats=stats))
    assert expected.dangling, "the BE equipment refers to boundary objects"
    assert expected.dangling <= set(boundary.objects)
    assert set(stats.dangling) == expected.dangling
    referenced = {
        target
        for event in events
        for targets in event.references.values()
        for target in ([targets] if isinstance(targets, str) else targets)
    }
    assert referenced - {event.subject for event in events} <= expected.dangling
    for target, referrers in stats.dangling.items():
        assert referrers, target


def test_parts_of_an_object_merge_across_profiles(ontology: Ontology) -> None:
    """A terminal: name in EQ (rdf:ID), connected in SSH and topological node in TP (rdf:about)."""
    paths = sorted(MODELS["2.4.15 MicroGrid BE+NL+boundary"].glob("*BE_*.xml"))
    events = {e.subject: e for e in convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology)}
    terminal = events["1ef0715a-d5a9-477b-b6e7-b635529ac140"]
    assert terminal.class_ == "Terminal"
    assert terminal.attributes["IdentifiedObject.name"] == "BE-Line_1 - T1"
    assert terminal.attributes["ACDCTerminal.connected"] == "true"
    assert terminal.references["Terminal.ConductingEquipment"] == "17086487-56ba-4979-b8de-064025a6b4da"
    assert terminal.references["Terminal.TopologicalNode"] == "8d7bad8bcc634e0796e362390d9040b6"
    line = events["17086487-56ba-4979-b8de-064025a6b4da"]
    assert line.class_ == "ACLineSegment"
    assert line.attributes["ACLineSegment.r"] == "2.200000"
    assert line.attributes["Conductor.length"] == "22.000000"
    # Enumeration values stay the URI the file gives; validation reduces them to the literal.
    assert terminal.attributes["Terminal.phases"].endswith("#PhaseCode.ABC")
    assert validate_event(terminal.to_json_dict(), ontology).event == terminal


def test_cgmes3_extension_with_an_abstract_class_keeps_the_defining_class(ontology: Ontology) -> None:
    """CGMES 3.0 SSH extends lines as ``cim:Equipment rdf:about``; the object stays an ACLineSegment."""
    paths = sorted(MODELS["3.0 MicroGrid"].glob("*BE_*.xml"))
    ssh = next(p for p in paths if "_SSH_" in p.name)
    assert b'<cim:Equipment rdf:about="#_17086487-56ba-4979-b8de-064025a6b4da"' in ssh.read_bytes()
    events = {e.subject: e for e in convert_cgmes(paths, source="tso-a", time=TIME, ontology=ontology)}
    assert events["17086487-56ba-4979-b8de-064025a6b4da"].class_ == "ACLineSegment"


def test_events_are_deterministic_and_carry_the_envelope_parameters(ontology: Ontology) -> None:
    paths = sorted(MODELS["2.4.15 MicroGrid BE+NL+boundary"].glob("*.xml"))
    first = list(
        convert_cgmes(paths, source="tso-a", version=7, time=TIME, label="org=tso-a", ontology=ontology)
    )
    again = list(
        convert_cgmes(paths, source="tso-a", version=7, time=TIME, label="org=tso-a", ontology=ontology)
    )
    assert first == again
    assert len({e.id for e in first}) == len(first)
    assert all(
        e.version == 7 and e.source == "tso-a" and e.label == "org=tso-a" and e.time == TIME for e in first
    )
    assert all(e.type is EventType.UPSERT for e in first)
    other = list(convert_cgmes(paths, source="tso-a", version=8, time=TIME, ontology=ontology))
    assert {e.id for e in other}.isdisjoint(e.id for e in first)


def test_bad_input_is_an_error_naming_file_and_value(tmp_path: Path, ontology: Ontology) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><unclosed>")
    with pytest.raises(ConversionError, match=r"broken\.xml"):
        list(convert_cgmes([broken], source="tso-a", ontology=ontology))
    bad_id = tmp_path / "bad-id.xml"
    bad_id.write_text(
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
        "xmlns:cim='http://iec.ch/TC57/2013/CIM-schema-cim16#'>"
        "<cim:Terminal rdf:ID='_has space'/></rdf:RDF>"
    )
    # An element without a usable mRID is not a reason to give up the file: it is skipped and named.
    stats = ConversionStats()
    assert list(convert_cgmes([bad_id], source="tso-a", ontology=ontology, stats=stats)) == []
    [defect] = stats.defects
    assert defect.element == "_has space" and str(bad_id) in str(defect)
    with pytest.raises(ConversionError, match=r"missing\.xml"):
        list(convert_cgmes([tmp_path / "missing.xml"], source="tso-a", ontology=ontology))
    with pytest.raises(ConversionError, match="difference model"):
        list(
            convert_cgmes(
                [FIXTURES / "MicroGrid_BE_EQ_difference_cgmes2415.xml"], source="a", ontology=ontology
            )
        )
    with pytest.raises(ConversionError, match="time zone"):
        CgmesConverter(source="tso-a", time=datetime(2024, 1, 1), ontology=ontology)


# --- IEC 61970-552 difference models -----------------------------------------------------------------

LINE_1 = "17086487-56ba-4979-b8de-064025a6b4da"
LINE_2 = "b58bf21a-096a-4dae-9a01-3f03b60c24c7"
LINE_7 = "a16b4a6c-70b1-4abf-9a9d-bd0fa47f9fe4"
LINE_7_TERMINALS = {"57ae9251-c022-4c67-a8eb-611ad54c963c", "5b2c65b0-68ce-4530-85b7-385346a3b5e1"}
LINE_8 = "3f9c2a1e-8b4d-4e57-9c61-2d7a0b5e6f10"
LINE_8_TERMINALS = {"3f9c2a1e-8b4d-4e57-9c61-2d7a0b5e6f11", "3f9c2a1e-8b4d-4e57-9c61-2d7a0b5e6f12"}
LOAD = "b1480a00-b427-4001-a26c-51954d2bb7e9"
KV_110 = "00b17311-075f-48f6-a79b-597f42af4694"
DIFFERENCES = {
    "2.4.15": (FIXTURES / "MicroGrid_BE_EQ_difference_cgmes2415.xml", "MicroGrid-BaseCase", "EnergyConsumer"),
    "3.0": (FIXTURES / "MicroGrid_BE_EQ_difference_cgmes3.xml", "MicroGrid", "ConformLoad"),
}


@pytest.mark.parametrize("cgmes", sorted(DIFFERENCES))
def test_difference_model_gives_upserts_of_changes_and_deletes_of_removals(
    cgmes: str, ontology: Ontology
) -> None:
    path, folder, load_class = DIFFERENCES[cgmes]
    base_paths = sorted((DATA / cgmes / folder).glob("*.xml"))
    # The base model tells the classes of objects the difference only describes (rdf:Description).
    base = {e.subject: e for e in convert_cgmes(base_paths, source="tso-a", time=TIME, ontology=ontology)}
    classes = {mrid: event.class_ for mrid, event in base.items()}
    stats = ConversionStats()
    events = list(
        convert_difference(
            path, source="tso-a", version=2, time=TIME, ontology=ontology, classes=classes, stats=stats
        )
    )
    by_subject: dict[str, Event] = {e.subject: e for e in events}
    assert len(by_subject) == len(events)

    deletes = {e.subject for e in events if e.type is EventType.DELETE}
    assert deletes == {LINE_7, *LINE_7_TERMINALS}
    assert by_subject[LINE_7].class_ == "ACLineSegment"
    assert {by_subject[t].class_ for t in LINE_7_TERMINALS} == {"Terminal"}

    upserts = {e.subject for e in events if e.type is EventType.UPSERT}
    assert upserts == {LINE_1, LINE_2, LINE_8, *LINE_8_TERMINALS, LOAD}

    # Changed object: only the changed attributes; the one removed without replacement is null.
    line_1 = by_subject[LINE_1]
    assert line_1.class_ == "ACLineSegment"
    assert line_1.attributes == {
        "IdentifiedObject.name": "BE-Line_1 uprated",
        "ACLineSegment.r": "2.500000",
        "IdentifiedObject.description": None,
    }
    assert line_1.references == {"ConductingEquipment.BaseVoltage": KV_110}
    assert base[LINE_1].attributes["ACLineSegment.r"] != line_1.attributes["ACLineSegment.r"]

    # Added object: everything it is given, references in every mRID form normalised.
    line_8 = by_subject[LINE_8]
    assert line_8.class_ == "ACLineSegment" and LINE_8 not in base
    assert line_8.attributes["Conductor.length"] == "14.500000"
    for terminal in LINE_8_TERMINALS:
        assert by_subject[terminal].references["Terminal.ConductingEquipment"] == LINE_8

    # Typed change of a state value in both halves: an upsert with the new value.
    load = by_subject[LOAD]
    assert load.class_ == load_class == base[LOAD].class_
    assert load.attributes == {"EnergyConsumer.p": "1.500000"}

    # rdf:Description only in the reverse half: the property is removed, the object stays.
    assert by_subject[LINE_2].attributes == {"IdentifiedObject.description": None}
    assert by_subject[LINE_2].class_ == "ACLineSegment"

    assert all(e.version == 2 for e in events)
    assert [h.kind for h in stats.headers] == ["DifferenceModel"]
    assert stats.headers[0].properties["Model.Supersedes"]
    for event in events:
        validate_event(event.to_json_dict(), ontology)


def test_difference_without_the_class_of_a_described_object_says_which(ontology: Ontology) -> None:
    path = DIFFERENCES["2.4.15"][0]
    stats = ConversionStats()
    events = list(convert_difference(path, source="tso-a", version=2, ontology=ontology, stats=stats))
    assert LINE_1 in {d.element for d in stats.defects}
    assert "class is unknown" in str(next(d for d in stats.defects if d.element == LINE_1))
    assert LINE_1 not in {e.subject for e in events} and events


def test_full_model_is_not_taken_for_a_difference(ontology: Ontology) -> None:
    path = DATA / "2.4.15" / "MicroGrid-BaseCase" / "MicroGridTestConfiguration_BC_BE_SSH_V2.xml"
    with pytest.raises(ConversionError, match="full model"):
        list(convert_difference(path, source="tso-a", version=2, ontology=ontology))
