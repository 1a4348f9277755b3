"""Where the demo's gas and electricity networks meet, derived from the two real models.

* Gas-fired units: the CGMES dynamics profile models some machines with steam-turbine governors
  (``GovSteam*``); their generating units are published as ``ThermalGeneratingUnit`` (a subclass, so
  every query for generating units still finds them). A ``GasOfftake`` sits at the GasLib sink nearest to
  each of their power stations and supplies the gas-fired units nearest to that sink (all the units of one
  power station are equally near), sized from their maximum output.
* Electric compressors: each ``GasCompressorStation`` is fed by an ``ElectricitySupplyPoint`` (a kind of
  energy consumer) in the suitable voltage level nearest to the station's inlet node: one with a
  topological node to connect to and a nominal voltage a compressor's drives are fed at
  (:data:`SUPPLY_KV`); of the levels of one substation, the one nearest 110 kV. The supply point has a
  terminal on that level's topological node and a location at the station's inlet node.

Distances are great-circle distances (haversine) between WGS84 positions: a GasLib node's longitude and
latitude, and for the grid the first position point of the object's location; a voltage level or a unit
is where its substation is. Ties go to the smaller mRID, so the choice does not depend on input order.
* Gas measurements: one ``GasMeasurement`` per GasLib node, starting mid-way between its pressure bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from devstack.demo.producers import DNO, NGGT
from hub.events import Event, EventType
from ingest.cgmes import event_id

# Gas needed per MW of electrical output: a combined-cycle unit at ~50 % efficiency burning gas of
# ~36.5 MJ/m3 uses 2 MW of fuel, i.e. 2 * 3600 / 36.5 m3/h, per MW; in 1000 m3/h as the ontology counts.
GAS_PER_MW = 2 * 3.6 / 36.5
# Electrical demand of one compressor station's drives when running (MW), typical of gas-grid compressors.
COMPRESSOR_DEMAND_MW = 12.0
_STEAM_GOVERNORS = ("GovSteam",)
# The node classes GasLib networks convert to.
GAS_NODE_CLASSES = frozenset({"GasSource", "GasSink", "GasInnerNode"})


def _ref(event: Event, qname: str) -> str | None:
    value = event.references.get(qname)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _refs(event: Event, qname: str) -> list[str]:
    value = event.references.get(qname)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def thermal_units(grid: Iterable[Event]) -> list[str]:
    """Generating units whose machine has a steam-turbine governor in the dynamics model."""
    by_mrid = {e.subject: e for e in grid}
    units: set[str] = set()
    for event in by_mrid.values():
        if not event.class_.startswith(_STEAM_GOVERNORS):
            continue
        for machine_dyn in _refs(event, "TurbineGovernorDynamics.SynchronousMachineDynamics"):
            dyn = by_mrid.get(machine_dyn)
            machine = (
                by_mrid.get(_ref(dyn, "SynchronousMachineDynamics.SynchronousMachine") or "") if dyn else None
            )
            unit = _ref(machine, "RotatingMachine.GeneratingUnit") if machine else None
            if unit in by_mrid:
                units.add(unit)
    return sorted(units)


EARTH_RADIUS_KM = 6371.0088
# Nominal voltages (kV) compressor drives are fed at: medium voltage up to 110 kV sub-transmission; the
# transmission levels above serve substations, not single consumers.
SUPPLY_KV = (10.0, 150.0)
# Preferred within one substation: compressor stations of 10-20 MW are typically fed at 110 kV.
PREFERRED_KV = 110.0


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (longitude, latitude) points in degrees, in km."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class GridIndex:
    """Positions and containment of the CGMES model, as far as the couplings need them."""

    def __init__(self, grid: Iterable[Event]) -> None:
        self.by_mrid = {e.subject: e for e in grid}
        points: dict[str, tuple[int, float, float]] = {}
        for e in self.by_mrid.values():
            if e.class_ == "PositionPoint":
                location = _ref(e, "PositionPoint.Location")
                seq = int(_float(e.attributes.get("PositionPoint.sequenceNumber"), 1))
                x, y = (
                    e.attributes.get("PositionPoint.xPosition"),
                    e.attributes.get("PositionPoint.yPosition"),
                )
                if (
                    location
                    and x is not None
                    and y is not None
                    and (location not in points or seq < points[location][0])
                ):
                    points[location] = (seq, _float(x), _float(y))
        self.position: dict[str, tuple[float, float]] = {}
        self.coordinate_system: str | None = None
        for e in self.by_mrid.values():
            if e.class_ == "Location" and e.subject in points:
                _, x, y = points[e.subject]
                for psr in _refs(e, "Location.PowerSystemResources"):
                    self.position[psr] = (x, y)
                self.coordinate_system = self.coordinate_system or _ref(e, "Location.CoordinateSystem")
        self.levels: dict[str, list[str]] = {}
        for m, e in self.by_mrid.items():
            if e.class_ == "VoltageLevel":
                self.levels.setdefault(_ref(e, "VoltageLevel.Substation") or "", []).append(m)
        self.nodes_of_level: dict[str, list[str]] = {}
        for m, e in self.by_mrid.items():
            if e.class_ == "TopologicalNode":
                container = _ref(e, "TopologicalNode.ConnectivityNodeContainer")
                if container:
                    self.nodes_of_level.setdefault(container, []).append(m)

    def substation_of(self, mrid: str) -> str | None:
        """The substation containing an equipment (directly or through its voltage level)."""
        event = self.by_mrid.get(mrid)
        container = _ref(event, "Equipment.EquipmentContainer") if event else None
        for _ in range(3):
            if container is None:
                return None
            found = self.by_mrid.get(container)
            if found is None:
                return None
            if found.class_ == "Substation":
                return container
            container = _ref(found, "VoltageLevel.Substation") or _ref(found, "Bay.VoltageLevel")
        return None

    def nominal_kv(self, level: str) -> float | None:
        """A voltage level's nominal voltage, from its base voltage."""
        base = self.by_mrid.get(_ref(self.by_mrid[level], "VoltageLevel.BaseVoltage") or "")
        value = base.attributes.get("BaseVoltage.nominalVoltage") if base is not None else None
        return _float(value) if value is not None else None

    def level_position(self, level: str) -> tuple[float, float] | None:
        """Where a voltage level is: its own location, else its substation's."""
        if level in self.position:
            return self.position[level]
        return self.position.get(_ref(self.by_mrid[level], "VoltageLevel.Substation") or "")

    def supply_levels(self) -> list[str]:
        """Voltage levels a compressor station can be fed from: placed, connectable, at a supply voltage."""
        found = []
        for level in sorted(m for m, e in self.by_mrid.items() if e.class_ == "VoltageLevel"):
            kv = self.nominal_kv(level)
            if (
                kv is not None
                and SUPPLY_KV[0] <= kv <= SUPPLY_KV[1]
                and self.nodes_of_level.get(level)
                and self.level_position(level) is not None
            ):
                found.append(level)
        return found

    def nearest_supply_level(self, point: tuple[float, float]) -> str | None:
        """The suitable voltage level nearest to ``point``; of one place's levels, the one nearest 110 kV."""

        def key(level: str) -> tuple[float, float, str]:
            where = self.level_position(level)
            assert where is not None  # supply_levels keeps placed levels only
            kv = self.nominal_kv(level) or 0.0
            return (round(haversine_km(where, point), 6), abs(kv - PREFERRED_KV), level)

        return min(self.supply_levels(), key=key, default=None)


def _event(
    source: str,
    mrid: str,
    cls: str,
    version: int,
    time: datetime,
    attributes: dict[str, Any],
    references: dict[str, str | list[str]],
) -> Event:
    return Event.model_validate(
        {
            "id": event_id(source, mrid, version, EventType.UPSERT),
            "source": source,
            "type": "upsert",
            "subject": mrid,
            "time": time,
            "version": version,
            "class": cls,
            "attributes": attributes,
            "references": references,
        }
    )


def coupling_events(
    grid: list[Event], gas: list[Event], thermal: list[str], *, version: int, time: datetime
) -> Iterator[Event]:
    index = GridIndex(grid)
    gas_by_mrid = {e.subject: e for e in gas}

    def node_point(node: Event) -> tuple[float, float] | None:
        lon, lat = node.attributes.get("GasNode.longitude"), node.attributes.get("GasNode.latitude")
        return (_float(lon), _float(lat)) if lon is not None and lat is not None else None

    sinks = sorted(
        (e for e in gas if e.class_ == "GasSink" and node_point(e) is not None), key=lambda e: e.subject
    )
    # Gas-fired units where their power station is.
    placed: dict[str, tuple[float, float]] = {}
    for unit in thermal:
        plant = index.substation_of(unit)
        if plant is not None and plant in index.position:
            placed[unit] = index.position[plant]

    def nearest_sink(point: tuple[float, float]) -> Event:
        return min(sinks, key=lambda s: (round(haversine_km(node_point(s) or point, point), 6), s.subject))

    # One offtake at the sink nearest to each gas-fired power station ...
    sites = sorted({nearest_sink(p).subject for p in placed.values()}) if sinks else []
    for site in sites:
        here = node_point(gas_by_mrid[site])
        assert here is not None  # sinks are placed
        # ... supplying the gas-fired units nearest to it (a station's units are all equally near).
        distances = {u: round(haversine_km(p, here), 6) for u, p in placed.items()}
        nearest = min(distances.values())
        supplied = sorted(u for u, d in distances.items() if d == nearest)
        names = [index.by_mrid[u].attributes.get("IdentifiedObject.name", u) for u in supplied]
        max_p = sum(
            _float(index.by_mrid[u].attributes.get("GeneratingUnit.maxOperatingP"), 100.0) for u in supplied
        )
        sink_name = gas_by_mrid[site].attributes.get("IdentifiedObject.name", site)
        yield _event(
            NGGT,
            f"demo-offtake-{site}",
            "GasOfftake",
            version,
            time,
            {
                "IdentifiedObject.name": f"Offtake at {sink_name}",
                "IdentifiedObject.description": f"Gas supply to gas-fired units {', '.join(names)} "
                f"({nearest:.0f} km away)",
                "GasOfftake.flowMax": round(max_p * GAS_PER_MW, 3),
                "GasOfftake.pressureMin": 40.0,
            },
            {"GasOfftake.Node": site, "GasOfftake.GeneratingUnits": supplied},
        )

    for compressor in sorted((e for e in gas if e.class_ == "GasCompressorStation"), key=lambda e: e.subject):
        inlet = gas_by_mrid.get(_ref(compressor, "GasConnection.FromNode") or "")
        point = node_point(inlet) if inlet is not None else None
        # Without a position there is no nearest level: such a station stays unfed rather than fed from
        # an arbitrary one.
        level = index.nearest_supply_level(point) if point is not None else None
        if level is None:
            continue
        base_voltage = _ref(index.by_mrid[level], "VoltageLevel.BaseVoltage")
        name = compressor.attributes.get("IdentifiedObject.name", compressor.subject)
        esp = f"demo-esp-{compressor.subject}"
        references: dict[str, str | list[str]] = {
            "ElectricitySupplyPoint.GasCompressorStation": compressor.subject,
            "Equipment.EquipmentContainer": level,
        }
        if base_voltage:
            references["ConductingEquipment.BaseVoltage"] = base_voltage
        yield _event(
            DNO,
            esp,
            "ElectricitySupplyPoint",
            version,
            time,
            {
                "IdentifiedObject.name": f"Supply to {name}",
                "IdentifiedObject.description": "Electric drives of a gas compressor station",
                "EnergyConsumer.p": COMPRESSOR_DEMAND_MW,
                "EnergyConsumer.q": round(COMPRESSOR_DEMAND_MW * 0.25, 2),
                "Equipment.inService": True,
            },
            references,
        )
        terminal_refs: dict[str, str | list[str]] = {"Terminal.ConductingEquipment": esp}
        nodes = sorted(index.nodes_of_level.get(level, []))
        if nodes:
            terminal_refs["Terminal.TopologicalNode"] = nodes[0]
        yield _event(
            DNO,
            f"{esp}-t1",
            "Terminal",
            version,
            time,
            {
                "IdentifiedObject.name": f"Supply to {name} T1",
                "ACDCTerminal.sequenceNumber": 1,
                "ACDCTerminal.connected": True,
            },
            terminal_refs,
        )
        if point is None:
            continue  # nowhere to place it
        location_refs: dict[str, str | list[str]] = {"Location.PowerSystemResources": [esp]}
        if index.coordinate_system:
            location_refs["Location.CoordinateSystem"] = index.coordinate_system
        yield _event(
            DNO,
            f"{esp}-loc",
            "Location",
            version,
            time,
            {"IdentifiedObject.name": f"Supply to {name}"},
            location_refs,
        )
        yield _event(
            DNO,
            f"{esp}-pp",
            "PositionPoint",
            version,
            time,
            {
                "PositionPoint.sequenceNumber": 1,
                "PositionPoint.xPosition": str(point[0]),
                "PositionPoint.yPosition": str(point[1]),
            },
            {"PositionPoint.Location": f"{esp}-loc"},
        )

    for node in sorted((e for e in gas if e.class_ in GAS_NODE_CLASSES), key=lambda e: e.subject):
        low = _float(node.attributes.get("GasNode.pressureMin"), 1.0)
        high = _float(node.attributes.get("GasNode.pressureMax"), 81.0)
        flow_max = _float(node.attributes.get("GasBoundaryNode.flowMax"), 0.0)
        flow = 0.0 if node.class_ == "GasInnerNode" else round(0.4 * flow_max, 2)
        if node.class_ == "GasSink":
            flow = -flow  # leaving the network
        name = node.attributes.get("IdentifiedObject.name", node.subject)
        meas_refs: dict[str, str | list[str]] = {"GasMeasurement.MeasuredObject": node.subject}
        network = _ref(node, "GasObject.Network")
        if network:
            meas_refs["GasObject.Network"] = network
        yield _event(
            NGGT,
            f"{node.subject}.meas",
            "GasMeasurement",
            version,
            time,
            {
                "IdentifiedObject.name": f"Meter at {name}",
                "GasMeasurement.pressure": round((low + high) / 2, 3),
                "GasMeasurement.flow": flow,
                "GasMeasurement.temperature": 12.0,
                "GasMeasurement.measuredAt": time.isoformat(),
            },
            meas_refs,
        )
