"""The pure parts of hub.geography: which coordinate systems are WGS84, how points become geometry, and how
the rules step from an object to its neighbours and climb to a placed container on what the geometry
statement read. The statement itself runs against Neo4j in tests/graphql/test_geography.py; here Neo4j only
checks that the Cypher tests of an own location accept nothing the Python rules refuse."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.geography import (
    CYPHER_TEST_PARAMS,
    MAX_HOPS,
    Geometry,
    _derive,
    _lon_lat,
    _Step,
    _Surroundings,
    _taken,
    is_wgs84,
    number_cypher,
    wgs84_cypher,
)


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


# Strings near the tests' edges: decimals with and without exponents and spaces, suffixes Java reads as
# numbers (``1.5f``, ``1d``, hex), URNs and names of coordinate systems with odd spacing and case.
_NUMBERISH = st.from_regex(r"\A[ \t]?[-+]?[0-9]{0,3}(\.[0-9]{0,3})?([eE][-+]?[0-9]{1,3})?[fFdD]?[ \n]?\Z")
_CRS = st.from_regex(r"\A\s?(urn:ogc:def:crs:)?(EPSG|epsg|OGC|CRS)?:{0,2}[0-9.]{0,4}:?(4326|84|3857)?\s?\Z")
_NAMES = st.from_regex(r"\A\s{0,2}(WGS|wgs|Wgs)?\s?-?\s?(84|1984)?\s{0,2}\Z")


@pytest.mark.services
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=st.one_of(
        _NUMBERISH,
        st.text(max_size=8),
        st.integers(-400, 400),
        st.floats(allow_nan=True),
        st.booleans(),
        st.lists(st.integers(-10, 10), max_size=2),
    ),
    crs=st.one_of(_CRS, st.text(max_size=12)),
    name=st.one_of(_NAMES, st.text(max_size=8)),
)
def test_the_cypher_tests_of_an_own_location_accept_nothing_python_refuses(
    neo4j_driver: Any, number: Any, crs: str, name: str
) -> None:
    """What the geometry statement's Cypher takes for a usable longitude, a WGS84 URN or a WGS84 name,
    the Python rules take too (the statement then skips an object's ends and containers, so a wrong yes
    would lose the object's geometry)."""
    records, _, _ = neo4j_driver.execute_query(
        # Through a map, so that each value is typed when read, as a node's properties are.
        f"WITH $p AS p RETURN {number_cypher('p.v', 180)} AS number, "
        "CASE WHEN p.v IS :: STRING AND p.v =~ $decimal THEN toFloat(p.v) END AS value, "
        f"{wgs84_cypher('p.crs', 'null')} AS urn, {wgs84_cypher('null', 'p.name')} AS name",
        p={"v": number, "crs": crs, "name": name},
        **CYPHER_TEST_PARAMS,
    )
    got = records[0]
    if got["number"]:
        ll = _lon_lat(number, 0)
        assert ll is not None, number
        if got["value"] is not None:
            assert ll[0] == got["value"], number
    if got["urn"]:
        assert is_wgs84(crs, None), crs
    if got["name"]:
        assert is_wgs84(None, name), name


@pytest.mark.services
def test_the_usual_wgs84_names_pass_the_cypher_tests_too(neo4j_driver: Any) -> None:
    """The shortcut is taken for the coordinate systems and numbers models use (else it saves nothing)."""
    records, _, _ = neo4j_driver.execute_query(
        f"WITH $p AS p RETURN [u IN p.urns | {wgs84_cypher('u', 'null')}] AS urns, "
        f"[n IN p.names | {wgs84_cypher('null', 'n')}] AS names, "
        f"[d IN p.decimals | {number_cypher('d', 180)}] AS decimals",
        p={
            "urns": [
                "urn:ogc:def:crs:EPSG::4326",
                "EPSG:4326",
                "urn:ogc:def:crs:OGC:1.3:CRS84",
                " EPSG:6.6:4326\n",
            ],
            "names": ["WGS84", "WGS 84", "wgs-84"],
            "decimals": ["-0.6565698385238647", "52.66", " 4.5 ", "1e1", ".5", 3, 51.5],
        },
        **CYPHER_TEST_PARAMS,
    )
    assert all(records[0]["urns"]) and all(records[0]["names"]) and all(records[0]["decimals"]), records[0]
