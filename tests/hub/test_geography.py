"""The pure parts of hub.geography: which coordinate systems are WGS84, and how points become geometry.
The derivation itself runs against Neo4j in tests/graphql/test_geography.py."""

from __future__ import annotations

import pytest

from hub.geography import Geometry, is_wgs84


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
