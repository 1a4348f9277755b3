"""Derived WGS84 geometry, diagram-layout points and network levels, end to end: MicroGrid (Belgium and the
Netherlands) and a small labelled scenario published through real Kafka and the real ingest worker into
Neo4j, read through the API as callers with different clearances.

Positions in MicroGrid's geographical profile belong to substations and line segments only; everything
else is placed through them. A caller who may not see the object a position comes from gets none.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from graphkit import Api
from test_subscriptions import worker

from devstack.services.async_run import run_coroutine
from hub.caller import Caller
from hub.kafka_clients import ADMIN
from ingest.producer import HubProducer
from tests.microgrid import microgrid_events

pytestmark = pytest.mark.services

PRODUCER = "p1"  # the producer test_subscriptions' worker is configured with
PUBLIC = "classification=PUBLIC"
SECRET = "classification=SECRET"
# Generous boxes around the two countries (degrees).
BELGIUM = (2.5, 6.5, 49.5, 51.5)
NETHERLANDS = (3.3, 7.3, 51.0, 53.6)
BENELUX = (2.5, 7.3, 49.5, 53.6)

GEO = """query($m: ID!) { object(mrid: $m) { mrid className name
  geometry { type coordinates basis centre { longitude latitude } points { longitude latitude } }
  diagramPoints { diagram { mrid name } diagramObject sequenceNumber x y }
  level { nominalVoltage pressureMax } } }"""


def inside(box: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[1] and box[2] <= lat <= box[3]


def _event(
    mrid: str, cls: str, label: str, attributes: dict[str, Any], refs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": f"{mrid}-v1",
        "source": PRODUCER,
        "type": "upsert",
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": 1,
        "class": cls,
        "label": label,
        # PositionPoint is not an IdentifiedObject: it has no name.
        "attributes": attributes if cls == "PositionPoint" else {"IdentifiedObject.name": mrid, **attributes},
        "references": refs,
    }


def scenario(p: str) -> list[dict[str, Any]]:
    """A hidden substation with a public location and public equipment; a substation with a hidden
    location; two public located substations joined by a line without a location of its own."""
    cs = f"{p}cs"

    def located(
        sub: str, sub_label: str, loc_label: str, lon: float, lat: float, **vl_refs: str
    ) -> list[dict[str, Any]]:
        return [
            _event(sub, "Substation", sub_label, {}, {}),
            _event(
                f"{sub}-loc",
                "Location",
                loc_label,
                {},
                {"Location.PowerSystemResources": sub, "Location.CoordinateSystem": cs},
            ),
            _event(
                f"{sub}-pp",
                "PositionPoint",
                loc_label,
                # CIM types PositionPoint's coordinates as strings.
                {
                    "PositionPoint.xPosition": str(lon),
                    "PositionPoint.yPosition": str(lat),
                    "PositionPoint.sequenceNumber": 1,
                },
                {"PositionPoint.Location": f"{sub}-loc"},
            ),
            _event(f"{sub}-vl", "VoltageLevel", PUBLIC, {}, {"VoltageLevel.Substation": sub, **vl_refs}),
        ]

    events = [
        _event(cs, "CoordinateSystem", PUBLIC, {"CoordinateSystem.crsUrn": "urn:ogc:def:crs:EPSG::4326"}, {}),
        # A voltage level's base voltage only the cleared may see: its level is theirs alone as well.
        _event(f"{p}bv", "BaseVoltage", SECRET, {"BaseVoltage.nominalVoltage": 380.0}, {}),
        *located(f"{p}hidden", SECRET, PUBLIC, 5.1, 50.4, **{"VoltageLevel.BaseVoltage": f"{p}bv"}),
        _event(f"{p}brk", "Breaker", PUBLIC, {}, {"Equipment.EquipmentContainer": f"{p}hidden-vl"}),
        *located(f"{p}hiddenloc", PUBLIC, SECRET, 5.6, 50.9),
        *located(f"{p}a", PUBLIC, PUBLIC, 4.0, 50.8),
        *located(f"{p}b", PUBLIC, PUBLIC, 5.0, 51.0),
        _event(f"{p}line", "ACLineSegment", PUBLIC, {}, {}),
    ]
    events += _own_location_lines(p, cs)
    for i, end in ((1, "a"), (2, "b")):
        events += [
            _event(
                f"{p}cn{end}",
                "ConnectivityNode",
                PUBLIC,
                {},
                {"ConnectivityNode.ConnectivityNodeContainer": f"{p}{end}-vl"},
            ),
            _event(
                f"{p}t{end}",
                "Terminal",
                PUBLIC,
                {"ACDCTerminal.sequenceNumber": i},
                {"Terminal.ConductingEquipment": f"{p}line", "Terminal.ConnectivityNode": f"{p}cn{end}"},
            ),
        ]
    return events


# Lines with a location of their own, joined to substations a and b like the line above: (name, the
# coordinate system's URN, x, y). Only the first is placed by it; the others' points are not usable
# (out of range, not a number to Python, a coordinate system that is not WGS84), so they are placed
# through their ends, however the statement decides what to read.
OWN_LOCATION_LINES: tuple[tuple[str, str, str, str, str], ...] = (
    ("ownline", "urn:ogc:def:crs:EPSG::4326", " 4.5 ", "50.9", PUBLIC),
    ("farline", "urn:ogc:def:crs:EPSG::4326", "200", "50.9", PUBLIC),
    ("oddline", "urn:ogc:def:crs:EPSG::4326", "4.5f", "50.9", PUBLIC),
    ("flatline", "urn:ogc:def:crs:EPSG::27700", "4.5", "50.9", PUBLIC),
    # Its location and point only the cleared may see: placed by them for the cleared, through its ends
    # for everyone else, as if the location did not exist.
    ("hiddenline", "urn:ogc:def:crs:EPSG::4326", "4.5", "50.9", SECRET),
)


def _own_location_lines(p: str, wgs84: str) -> list[dict[str, Any]]:
    events = [
        _event(
            f"{p}osgb", "CoordinateSystem", PUBLIC, {"CoordinateSystem.crsUrn": OWN_LOCATION_LINES[3][1]}, {}
        )
    ]
    for name, urn, x, y, located in OWN_LOCATION_LINES:
        line = f"{p}{name}"
        events += [
            _event(line, "ACLineSegment", PUBLIC, {}, {}),
            _event(
                f"{line}-loc",
                "Location",
                located,
                {},
                {
                    "Location.PowerSystemResources": line,
                    "Location.CoordinateSystem": wgs84 if "4326" in urn else f"{p}osgb",
                },
            ),
            _event(
                f"{line}-pp",
                "PositionPoint",
                located,
                {
                    "PositionPoint.xPosition": x,
                    "PositionPoint.yPosition": y,
                    "PositionPoint.sequenceNumber": 1,
                },
                {"PositionPoint.Location": f"{line}-loc"},
            ),
        ]
        for i, end in ((1, "a"), (2, "b")):
            events.append(
                _event(
                    f"{line}-t{end}",
                    "Terminal",
                    PUBLIC,
                    {"ACDCTerminal.sequenceNumber": i},
                    {"Terminal.ConductingEquipment": line, "Terminal.ConnectivityNode": f"{p}cn{end}"},
                )
            )
    return events


class Loaded:
    def __init__(self, prefix: str, microgrid: list[Any]) -> None:
        self.prefix = prefix
        self.microgrid = microgrid
        self.by_name = {(ev.class_, ev.attributes.get("IdentifiedObject.name")): ev for ev in microgrid}

    def mg(self, cls: str, name: str) -> str:
        return str(self.by_name[(cls, name)].subject)

    def of_class(self, cls: str) -> list[Any]:
        return [ev for ev in self.microgrid if ev.class_ == cls]


@pytest.fixture(scope="module")
def loaded(settings: Any, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    prefix = f"geo{uuid.uuid4().hex[:8]}"
    topics = settings.model_copy(
        update={
            "ingest_topic_prefix": f"{prefix}.cim.ingest.",
            "deadletter_topic": f"{prefix}.cim.deadletter",
            "changes_topic": f"{prefix}.cim.changes",
        }
    )
    mg = microgrid_events(PRODUCER, f"{prefix}-", PUBLIC)
    events: list[Any] = [*mg, *scenario(f"{prefix}-s-")]
    log = Path(tmp_path_factory.mktemp("geo")) / "worker.log"
    with worker(settings, prefix, log) as proc:

        async def send() -> Any:
            async with HubProducer(PRODUCER, settings=topics, principal=ADMIN) as producer:
                return await producer.send_all(events)

        stats = run_coroutine(send())
        assert not stats.rejected, stats.rejections
        admin = api.token("admin", "hub", "SECRET", roles=("admin",))
        # Keys spread events over partitions: wait for the last object of every class and the scenario.
        last_of_class = {ev.class_: str(ev.subject) for ev in mg}
        missing = [*last_of_class.values(), *(e["subject"] for e in events if isinstance(e, dict))]
        deadline = time.monotonic() + 180
        while missing and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            missing = [
                m
                for m in missing
                if api.query("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": m}, token=admin)["data"][
                    "object"
                ]
                is None
            ]
            if missing:
                time.sleep(1)
        if missing:
            pytest.fail(
                f"the worker did not write {missing[:5]} in time:\n{log.read_text()[-3000:]}", pytrace=False
            )
        yield Loaded(f"{prefix}-", mg)


def xy(p: dict[str, Any]) -> tuple[float, float]:
    return (round(p["x"], 6), round(p["y"], 6))


def geo(api: Api, mrid: str, token: str) -> dict[str, Any] | None:
    body = api.query(GEO, {"m": mrid}, token=token)
    assert "errors" not in body, body
    found: dict[str, Any] | None = body["data"]["object"]
    return found


@pytest.fixture(scope="module")
def public(api: Api) -> str:
    return api.token("pub", None, "PUBLIC")


@pytest.fixture(scope="module")
def secret(api: Api) -> str:
    return api.token("sec", "elsewhere", "SECRET")


def test_substations_in_their_countries(api: Api, loaded: Loaded, public: str) -> None:
    for name, box in (("PP_Brussels", BELGIUM), ("Anvers", BELGIUM), ("PP_Amsterdam", NETHERLANDS)):
        got = geo(api, loaded.mg("Substation", name), public)
        assert got is not None
        g = got["geometry"]
        assert g is not None and g["type"] == "Point" and g["basis"] == "own", (name, g)
        lon, lat = g["coordinates"]
        assert inside(box, lon, lat), (name, lon, lat)
        assert got["level"] is not None and got["level"]["nominalVoltage"] > 0, (name, got["level"])


def test_equipment_placed_through_its_substation(api: Api, loaded: Loaded, public: str) -> None:
    """Generating units, machines, transformers and voltage levels have no location of their own."""
    for cls in ("VoltageLevel", "SynchronousMachine", "GeneratingUnit", "PowerTransformer", "BusbarSection"):
        evs = loaded.of_class(cls)
        assert evs, cls
        for ev in evs:
            got = geo(api, str(ev.subject), public)
            assert got is not None and got["geometry"] is not None, (cls, ev.attributes)
            g = got["geometry"]
            assert g["type"] == "Point" and g["basis"] == "placement", (cls, g)
            assert inside(BENELUX, *g["coordinates"]), (cls, g)


def test_lines_are_line_strings(api: Api, loaded: Loaded, public: str) -> None:
    lines = loaded.of_class("ACLineSegment")
    assert len(lines) == 12
    for ev in lines:
        got = geo(api, str(ev.subject), public)
        assert got is not None
        g = got["geometry"]
        assert g is not None and g["type"] == "LineString", (ev.attributes, g)
        assert len(g["coordinates"]) >= 2
        assert all(inside(BENELUX, lon, lat) for lon, lat in g["coordinates"]), g
        bv = ev.references["ConductingEquipment.BaseVoltage"]
        nominal = next(e for e in loaded.microgrid if e.subject == bv).attributes[
            "BaseVoltage.nominalVoltage"
        ]
        assert got["level"]["nominalVoltage"] == pytest.approx(float(nominal))


def test_line_through_its_ends(api: Api, loaded: Loaded, public: str) -> None:
    got = geo(api, f"{loaded.prefix}s-line", public)
    assert got is not None
    assert got["geometry"] == {
        "type": "LineString",
        "coordinates": [[4.0, 50.8], [5.0, 51.0]],
        "basis": "ends",
        "centre": {"longitude": 4.5, "latitude": 50.9},
        "points": [{"longitude": 4.0, "latitude": 50.8}, {"longitude": 5.0, "latitude": 51.0}],
    }


def test_diagram_points_never_geographic(api: Api, loaded: Loaded, public: str) -> None:
    # A diagram object point drawing a generator: its schematic x/y appear in diagramPoints only.
    do_of = {
        str(e.subject): e.references.get("DiagramObject.IdentifiedObject")
        for e in loaded.of_class("DiagramObject")
    }
    sub = loaded.mg("SynchronousMachine", "BE-G1")
    dops = [
        e
        for e in loaded.of_class("DiagramObjectPoint")
        if do_of.get(e.references.get("DiagramObjectPoint.DiagramObject", "")) == sub
    ]
    assert dops, "MicroGrid draws BE-G1 on a diagram"
    dop = dops[0]
    x = float(dop.attributes["DiagramObjectPoint.xPosition"])
    y = float(dop.attributes["DiagramObjectPoint.yPosition"])
    point = geo(api, str(dop.subject), public)
    assert point is not None
    assert point["geometry"] is None
    assert [xy(p) for p in point["diagramPoints"]] == [(round(x, 6), round(y, 6))]
    diagram = point["diagramPoints"][0]["diagram"]
    assert diagram["mrid"].startswith(loaded.prefix) and diagram["name"]
    got = geo(api, sub, public)
    assert got is not None
    assert (round(x, 6), round(y, 6)) in [xy(p) for p in got["diagramPoints"]]
    assert all(p["diagram"]["mrid"].startswith(loaded.prefix) for p in got["diagramPoints"])
    lon, lat = got["geometry"]["coordinates"]
    assert inside(BELGIUM, lon, lat) and (round(lon, 6), round(lat, 6)) != (round(x, 6), round(y, 6))


def test_no_position_through_a_hidden_substation(api: Api, loaded: Loaded, public: str, secret: str) -> None:
    p = f"{loaded.prefix}s-"
    # The public caller sees the breaker, its voltage level, the location and its point, not the substation.
    assert geo(api, f"{p}hidden", public) is None
    for mrid in (f"{p}brk", f"{p}hidden-vl"):
        got = geo(api, mrid, public)
        assert got is not None and got["geometry"] is None and got["level"] is None, got
    # Positive control: a caller who may see the substation gets the same objects placed.
    for mrid in (f"{p}brk", f"{p}hidden-vl", f"{p}hidden"):
        got = geo(api, mrid, secret)
        assert got is not None and got["geometry"] is not None, mrid
        assert got["geometry"]["coordinates"] == [5.1, 50.4]
        assert got["level"] == {"nominalVoltage": 380.0, "pressureMax": None}, mrid


def test_no_position_through_a_hidden_location(api: Api, loaded: Loaded, public: str, secret: str) -> None:
    p = f"{loaded.prefix}s-"
    for mrid in (f"{p}hiddenloc", f"{p}hiddenloc-vl"):
        got = geo(api, mrid, public)
        assert got is not None and got["geometry"] is None, got
        got = geo(api, mrid, secret)
        assert got is not None and got["geometry"]["coordinates"] == [5.6, 50.9]


def test_graph_nodes_carry_geometry(api: Api, loaded: Loaded, public: str) -> None:
    """The page's graph views get the same derived geometry as objects."""
    body = api.query(
        "query($m: ID!) { neighbourhood(mrid: $m, depth: 1) { nodes { mrid className geometry { type basis } "
        "level { nominalVoltage } } } }",
        {"m": loaded.mg("Substation", "PP_Brussels")},
        token=public,
    )
    assert "errors" not in body, body
    nodes = body["data"]["neighbourhood"]["nodes"]
    vls = [n for n in nodes if n["className"] == "VoltageLevel"]
    assert vls and all(n["geometry"] == {"type": "Point", "basis": "placement"} for n in vls)
    assert all(n["level"]["nominalVoltage"] > 0 for n in vls)


def test_a_geographic_box_never_holds_diagram_points(api: Api, loaded: Loaded, public: str) -> None:
    q = """query($b: [Float!]) {
      objects(className: "DiagramObjectPoint", bbox: $b, first: 1) { totalCount } }"""
    everything = [-1e9, -1e9, 1e9, 1e9]
    body = api.query(q, {"b": None}, token=public)
    assert body["data"]["objects"]["totalCount"] >= len(loaded.of_class("DiagramObjectPoint"))
    assert api.query(q, {"b": everything}, token=public)["data"]["objects"]["totalCount"] == 0
    # Geographic points still fall in a box around them.
    q = """query($b: [Float!]) { objects(className: "PositionPoint", bbox: $b, first: 1) { totalCount } }"""
    assert api.query(q, {"b": [2.5, 49.5, 7.3, 53.6]}, token=public)["data"]["objects"]["totalCount"] > 0


PAGE = """query($n: String) { objects(name: $n, first: 100) { edges { node { mrid className
  geometry { type coordinates basis } level { nominalVoltage pressureMax } } } } }"""


def _page(api: Api, name: str, token: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The page's objects by mRID, and how many guarded statements it took (from its audit line)."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        body = api.query(PAGE, {"n": name}, token=token)
    assert "errors" not in body, body
    audit = [e for e in logs if e["event"] == "graphql operation"]
    return {e["node"]["mrid"]: e["node"] for e in body["data"]["objects"]["edges"]}, audit[-1]["queries"]


def test_a_page_is_placed_and_levelled_in_one_statement_as_each_object_alone(
    api: Api, loaded: Loaded, public: str, secret: str
) -> None:
    """A page's geometry and levels come from one statement for all its objects, and for a caller who
    sees part of the page they are what each object gets alone: objects placed only through a substation
    or location the caller may not see have none, the hidden substation is absent."""
    p = f"{loaded.prefix}s-"
    pages = {}
    for token in (public, secret):
        page, statements = _page(api, p, token)
        assert statements == 2, statements  # the page, then its geometry and levels
        for mrid, node in page.items():
            alone = geo(api, mrid, token)
            assert alone is not None, mrid
            assert node["level"] == alone["level"], mrid
            assert (node["geometry"] is None) == (alone["geometry"] is None), mrid
            if node["geometry"] is not None:
                assert node["geometry"] == {k: alone["geometry"][k] for k in ("type", "coordinates", "basis")}
        pages[token] = page
    shown = pages[public]
    assert f"{p}hidden" not in shown and f"{p}hidden" in pages[secret]
    for mrid in (f"{p}brk", f"{p}hidden-vl", f"{p}hiddenloc", f"{p}hiddenloc-vl"):
        assert shown[mrid]["geometry"] is None, mrid
        assert pages[secret][mrid]["geometry"] is not None, mrid
    assert shown[f"{p}brk"]["level"] is None and pages[secret][f"{p}brk"]["level"] == {
        "nominalVoltage": 380.0,
        "pressureMax": None,
    }
    assert shown[f"{p}line"]["geometry"] == {
        "type": "LineString",
        "coordinates": [[4.0, 50.8], [5.0, 51.0]],
        "basis": "ends",
    }
    for mrid, point in ((f"{p}ta", [4.0, 50.8]), (f"{p}cnb", [5.0, 51.0]), (f"{p}a-vl", [4.0, 50.8])):
        assert shown[mrid]["geometry"] == {"type": "Point", "coordinates": point, "basis": "placement"}, mrid
    # What the public caller sees is placed as for the cleared caller, unless placed through hidden objects.
    for mrid, node in shown.items():
        if mrid not in (
            f"{p}brk",
            f"{p}hidden-vl",
            f"{p}hiddenloc",
            f"{p}hiddenloc-vl",
            f"{p}hiddenloc-loc",
            # The line and its terminals: placed by its hidden location, for the cleared only.
            f"{p}hiddenline",
            f"{p}hiddenline-ta",
            f"{p}hiddenline-tb",
        ):
            assert node["geometry"] == pages[secret][mrid]["geometry"], mrid


async def test_a_line_placed_by_its_own_location_is_read_without_its_ends(
    api: Api, loaded: Loaded, public: str, secret: str, settings: Any
) -> None:
    """The geometry statement reads the ends and containers only of objects it cannot be sure are placed
    by a location of their own, and that shortcut never changes an answer: a line whose own point Python
    would refuse (out of range, not a number, not WGS84) is still placed through its ends, and so is one
    whose location the caller may not see (the shortcut looks at visible locations only, so a hidden one
    cannot take a line's geometry away and reveal itself)."""
    from hub.geography import ENDS, Geography
    from hub.graph import make_async_driver
    from hub.guard import Guard, LabelDirectory
    from hub.labels import LabelCache
    from ontology.loader import load_ontology

    p = f"{loaded.prefix}s-"
    through_ends = {"type": "LineString", "coordinates": [[4.0, 50.8], [5.0, 51.0]], "basis": "ends"}
    own = {"type": "Point", "coordinates": [4.5, 50.9], "basis": "own"}
    for token, placed_by_own in ((public, {"ownline"}), (secret, {"ownline", "hiddenline"})):
        for name, *_ in OWN_LOCATION_LINES:
            found = geo(api, f"{p}{name}", token)
            assert found is not None, name
            got = {k: found["geometry"][k] for k in ("type", "coordinates", "basis")}
            assert got == (own if name in placed_by_own else through_ends), name

    driver = make_async_driver(settings)
    try:
        caller_auths = Caller(subject="pub", org=None, clearance="PUBLIC").authorizations
        guard = Guard(
            driver,
            settings.neo4j_database,
            LabelDirectory(driver, settings.neo4j_database, 0.0),
            caller_auths,
            30.0,
            LabelCache(),
        )
        geography = Geography(guard, load_ontology())
        cypher, params = geography._surroundings_query(geography._steps(ENDS), geography._placement())
        for name, *_ in OWN_LOCATION_LINES:
            line = f"{p}{name}"
            rows = await guard.read(cypher, {**params, "ids": [line], "geo_ids": [line]})
            read = {r["mrid"] for r in rows}
            if name == "ownline":  # hiddenline's location is hidden from this caller: its ends are read
                assert read == {line}, read
            else:
                assert {f"{line}-ta", f"{line}-tb", f"{p}cna", f"{p}a-vl", f"{p}a"} <= read, read
    finally:
        await driver.close()
