"""The demo's couplings go to the nearest candidate, by great-circle distance, computed here independently.

Positions are read here from the events as published (a grid object's first position point, a GasLib node's
WGS84 coordinates) with a distance formula of the test's own (spherical law of cosines). Candidates:
every gas-fired (thermal) unit for an offtake, every GasLib sink for a unit's offtake node, and for a
compressor station every voltage level with a topological node and a nominal voltage the demo feeds
compressor drives at.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.demo import couplings
from devstack.demo.network import GASLIB_40, MICROGRID
from hub.events import Event
from ingest.cgmes import convert_cgmes
from ingest.gaslib import convert_gaslib
from ontology.loader import load_ontology

TIME = datetime(2024, 5, 1, tzinfo=UTC)
# Positions differ by far more than this between distinct places; equal places are equally near.
SAME_KM = 1e-3


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance by the spherical law of cosines (mean Earth radius 6371 km)."""
    lon1, lat1, lon2, lat2 = (math.radians(v) for v in (*a, *b))
    cos = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def one(event: Event, qname: str) -> str | None:
    value = event.references.get(qname)
    return value[0] if isinstance(value, list) else value


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    ontology = load_ontology()
    grid = list(
        convert_cgmes(sorted(MICROGRID.glob("*.xml")), source="ngt", version=1, time=TIME, ontology=ontology)
    )
    gas = list(convert_gaslib(GASLIB_40, source="nggt", version=1, time=TIME, ontology=ontology))
    thermal = couplings.thermal_units(grid)
    made = list(couplings.coupling_events(grid, gas, thermal, version=1, time=TIME))
    return {
        "grid": {e.subject: e for e in grid},
        "gas": {e.subject: e for e in gas},
        "thermal": thermal,
        "made": made,
    }


def grid_positions(grid: dict[str, Event]) -> dict[str, tuple[float, float]]:
    """Object mRID -> the first (lowest sequence number) position point of its location."""
    first: dict[str, tuple[int, tuple[float, float]]] = {}
    for e in grid.values():
        if e.class_ != "PositionPoint":
            continue
        seq = int(e.attributes.get("PositionPoint.sequenceNumber", 1))
        where = (
            float(e.attributes["PositionPoint.xPosition"]),
            float(e.attributes["PositionPoint.yPosition"]),
        )
        location = one(e, "PositionPoint.Location") or ""
        if location not in first or seq < first[location][0]:
            first[location] = (seq, where)
    positions: dict[str, tuple[float, float]] = {}
    for e in grid.values():
        if e.class_ == "Location" and e.subject in first:
            value = e.references.get("Location.PowerSystemResources")
            for psr in [value] if isinstance(value, str) else value or []:
                positions[psr] = first[e.subject][1]
    return positions


def station_of(grid: dict[str, Event], mrid: str) -> str:
    """The substation holding an equipment or a voltage level."""
    current = grid[mrid]
    while current.class_ != "Substation":
        parent = (
            one(current, "VoltageLevel.Substation")
            or one(current, "Bay.VoltageLevel")
            or one(current, "Equipment.EquipmentContainer")
        )
        assert parent is not None, mrid
        current = grid[parent]
    return current.subject


def node_position(node: Event) -> tuple[float, float]:
    return (float(node.attributes["GasNode.longitude"]), float(node.attributes["GasNode.latitude"]))


def nearest(point: tuple[float, float], candidates: dict[str, tuple[float, float]]) -> set[str]:
    best = min(km(point, p) for p in candidates.values())
    return {c for c, p in candidates.items() if km(point, p) - best < SAME_KM}


def test_each_offtake_supplies_the_nearest_gas_fired_units_from_the_sink_nearest_to_them(
    demo: dict[str, Any],
) -> None:
    grid, gas = demo["grid"], demo["gas"]
    positions = grid_positions(grid)
    units = {u: positions[station_of(grid, u)] for u in demo["thermal"]}
    sinks = {m: node_position(e) for m, e in gas.items() if e.class_ == "GasSink"}
    offtakes = [e for e in demo["made"] if e.class_ == "GasOfftake"]
    assert units and offtakes
    supplied: dict[str, str] = {}
    for offtake in offtakes:
        node = one(offtake, "GasOfftake.Node")
        assert node in sinks
        targets = offtake.references["GasOfftake.GeneratingUnits"]
        assert isinstance(targets, list)
        # The units it supplies are exactly the gas-fired units nearest to its node ...
        assert set(targets) == nearest(sinks[node], units), offtake.subject
        for unit in targets:
            # ... and its node is the sink nearest to each of them.
            assert node in nearest(units[unit], sinks), (offtake.subject, unit)
            assert unit not in supplied
            supplied[unit] = offtake.subject
    assert set(supplied) == set(units)  # every gas-fired unit has its gas


def test_each_compressor_station_is_fed_from_the_nearest_suitable_voltage_level(demo: dict[str, Any]) -> None:
    grid, gas = demo["grid"], demo["gas"]
    positions = grid_positions(grid)
    levels: dict[str, tuple[float, float]] = {}
    with_node = {
        one(e, "TopologicalNode.ConnectivityNodeContainer")
        for e in grid.values()
        if e.class_ == "TopologicalNode"
    }
    for m, e in grid.items():
        if e.class_ != "VoltageLevel" or m not in with_node:
            continue
        kv = float(grid[one(e, "VoltageLevel.BaseVoltage") or ""].attributes["BaseVoltage.nominalVoltage"])
        if couplings.SUPPLY_KV[0] <= kv <= couplings.SUPPLY_KV[1]:
            levels[m] = positions[station_of(grid, m)]
    assert levels
    fed_from: dict[str, str] = {}
    terminals = {one(e, "Terminal.ConductingEquipment"): e for e in demo["made"] if e.class_ == "Terminal"}
    for esp in (e for e in demo["made"] if e.class_ == "ElectricitySupplyPoint"):
        station = gas[one(esp, "ElectricitySupplyPoint.GasCompressorStation") or ""]
        level = one(esp, "Equipment.EquipmentContainer") or ""
        inlet = gas[one(station, "GasConnection.FromNode") or ""]
        assert level in nearest(node_position(inlet), levels), station.subject
        # Connected on that level.
        node = one(terminals[esp.subject], "Terminal.TopologicalNode")
        assert one(grid[node or ""], "TopologicalNode.ConnectivityNodeContainer") == level
        fed_from[station.subject] = level
    assert set(fed_from) == {m for m, e in gas.items() if e.class_ == "GasCompressorStation"}
    # Of equally near levels the demo takes the one nearest 110 kV: in this data, the same for all.
    by_level: dict[str, list[str]] = defaultdict(list)
    for station, level in fed_from.items():
        by_level[level].append(station)
    assert all(grid[level].attributes["IdentifiedObject.name"] == "110.0" for level in by_level), by_level
