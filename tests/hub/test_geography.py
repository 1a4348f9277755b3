"""The pure parts of hub.geography: which coordinate systems are WGS84, how points become geometry, and how
the rules step from an object to its neighbours and climb to a placed container on what the geometry
statement read. The statement itself runs against Neo4j in tests/graphql/test_geography.py."""

from __future__ import annotations

import pytest

from hub.geography import MAX_HOPS, Geometry, _derive, _Step, _Surroundings, _taken, is_wgs84


@pytest.mark.parametrize(
    ("urn", "name", "expected"),
    [
        ("urn:ogc:def:crs:EPSG::4326", "anything", True),
        ("urn:ogc:def:crs:EPSG:6.6:4326", None, True),
        ("EPSG:4326", None, True),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", None, True),
        ("urn:ogc:def:crs:EPSG::3857", "WGS84", False),  # the URN decides: Web Mercator metres
        ("urn:ogc:def:crs:EPSG::43260", None, False),
        (None, "WGS84", True),
        ("", "WGS 84", True),
        (None, "ETRS89 / UTM 32N", False),
        (None, None, False),
    ],
)
def test_wgs84(urn: str | None, name: str | None, expected: bool) -> None:
    assert is_wgs84(urn, name) is expected


def test_points_become_point_or_line_string() -> None:
    assert Geometry.of([], "own") is None
    point = Geometry.of([(4.3, 50.8), (4.3, 50.8)], "own")
    assert point == Geometry("Point", ((4.3, 50.8),), "own")
    line = Geometry.of([(4.0, 50.0), (4.0, 50.0), (5.0, 51.0), (6.0, 50.0)], "ends")
    assert line is not None and line.type == "LineString"
    assert line.coordinates == ((4.0, 50.0), (5.0, 51.0), (6.0, 50.0))
    assert line.centre == pytest.approx((5.0, 50.333333))


def _near(mrid: str, rel: str, labels: list[str], *, out: bool, seq: object = None) -> dict[str, object]:
    return {"m": mrid, "t": rel, "s": out, "e": not out, "labels": labels, "o": {"seq": seq}}


def test_a_step_takes_its_classes_and_direction_in_order() -> None:
    ends = [_Step(0, "Conductor", "CE", False, "Terminal", "seq")]
    up = [
        _Step(0, "Equipment", "EC", True, "Container", None),
        _Step(1, "Terminal", "CN", True, "Node", None),
    ]
    line = frozenset({"Conductor", "Equipment"})
    nears = [
        _near("t-b", "CE", ["Terminal"], out=False, seq=2),
        _near("t-a", "CE", ["Terminal"], out=False, seq=1),
        _near("t-null", "CE", ["Terminal"], out=False),  # no sequence number: last, as Cypher orders
        _near("t-z", "CE", ["Terminal"], out=False, seq=1),  # same number: by mRID
        _near("t-a", "CE", ["Terminal"], out=False, seq=1),  # the same relationship twice: once
        _near("x", "CE", ["Breaker"], out=False, seq=0),  # not a Terminal
        _near("y", "CE", ["Terminal"], out=True, seq=0),  # the wrong way
        _near("vl", "EC", ["Container"], out=True),
    ]
    assert _taken(line, nears, ends) == ["t-a", "t-z", "t-b", "t-null"]
    assert _taken(line, nears, up) == ["vl"]
    assert _taken(frozenset({"Terminal"}), nears, up) == []  # the equipment step needs Equipment


def test_the_climb_stops_at_the_first_placed_container_within_the_hops() -> None:
    here = Geometry("Point", ((4.0, 50.0),), "own")
    chain = [f"c{i}" for i in range(MAX_HOPS + 2)]
    up = {chain[i]: [chain[i + 1]] for i in range(len(chain) - 1)}
    # Two candidates at the first level: the first in step order that is placed wins.
    up["brk"] = ["bay", "vl"]
    up["bay"] = ["sub-far"]
    area = _Surroundings(
        own={"vl": here, "sub-far": Geometry("Point", ((9.0, 9.0),), "own"), chain[-1]: here},
        ends={},
        up=up,
    )
    got = _derive(["brk", chain[0], "unknown"], area)
    assert got == {"brk": Geometry("Point", ((4.0, 50.0),), "placement")}  # c0 is too far, unknown absent
    area = _Surroundings(own={chain[MAX_HOPS]: here}, ends={}, up=up)
    assert _derive([chain[0]], area) == {chain[0]: Geometry("Point", ((4.0, 50.0),), "placement")}
