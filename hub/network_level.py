"""The level of the network an object belongs to: nominal voltage (kV) in electricity, pressure (bar) in gas.

A map of a transmission system is read by its voltage colours and a gas map by its pressure tiers, yet
few objects state either themselves: a line or a voltage level names a ``BaseVoltage``; a breaker or a
generating unit sits in a voltage level or a bay; a substation holds voltage levels; a compressor or a
valve joins nodes that state their maximum pressure. Derived here at query time through the caller's guard
(each object on the way must be visible, as for :mod:`hub.geography`), first match wins:

- voltage: the object's own base voltage; a transformer's ends' highest; a substation's voltage levels'
  highest; the voltage level (directly or through a bay) its container is; a generating unit's machine's;
- pressure: the object's own maximum pressure; else the highest of the nodes it joins or is attached to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.guard import Guard, visible
from ontology.model import Ontology

NOMINAL_VOLTAGE: Final = "BaseVoltage.nominalVoltage"
PRESSURE: Final = ("GasNode.pressureMax", "GasPipe.pressureMax")
# Paths to a base voltage, in order of preference: (association qname, direction) hops from the object.
VOLTAGE_PATHS: Final[tuple[tuple[tuple[str, str], ...], ...]] = (
    (("ConductingEquipment.BaseVoltage", "out"),),
    (("VoltageLevel.BaseVoltage", "out"),),
    (("TopologicalNode.BaseVoltage", "out"),),
    (("PowerTransformerEnd.PowerTransformer", "in"), ("TransformerEnd.BaseVoltage", "out")),
    (("VoltageLevel.Substation", "in"), ("VoltageLevel.BaseVoltage", "out")),
    (("Equipment.EquipmentContainer", "out"), ("VoltageLevel.BaseVoltage", "out")),
    (
        ("Equipment.EquipmentContainer", "out"),
        ("Bay.VoltageLevel", "out"),
        ("VoltageLevel.BaseVoltage", "out"),
    ),
    (
        ("RotatingMachine.GeneratingUnit", "in"),
        ("Equipment.EquipmentContainer", "out"),
        ("VoltageLevel.BaseVoltage", "out"),
    ),
)
# Gas nodes an object joins or is attached to.
GAS_NODE_LINKS: Final = (
    "GasConnection.FromNode",
    "GasConnection.ToNode",
    "GasOfftake.Node",
    "GasStorage.Node",
)


@dataclass(frozen=True)
class NetworkLevel:
    nominal_voltage_kv: float | None
    pressure_max_bar: float | None


def _max(values: Any) -> float | None:
    nums = [float(v) for v in values or [] if isinstance(v, int | float) and not isinstance(v, bool)]
    return max(nums) if nums else None


class NetworkLevels:
    """Network levels for one caller; every query goes through the caller's guard."""

    def __init__(self, guard: Guard, ontology: Ontology) -> None:
        self.guard = guard
        self.ontology = ontology

    def _path(self, hops: Sequence[tuple[str, str]], end: str) -> str | None:
        """A Cypher pattern from ``n`` along ``hops`` to ``end``, every node after ``n`` typed by its class
        and visible; None when the ontology lacks an association."""
        pattern, where = "(n)", []
        for i, (qname, direction) in enumerate(hops):
            a = self.ontology.association_by_qname(qname)
            if a is None:
                return None
            var = end if i == len(hops) - 1 else f"h{i}"
            cls = a.target if direction == "out" else a.owner
            arrow = f"-[:`{a.rel_type}`]->" if direction == "out" else f"<-[:`{a.rel_type}`]-"
            pattern += f"{arrow}({var}:`{cls}`)"
            where.append(visible(var))
        return f"{pattern} WHERE {' AND '.join(where)}"

    async def levels(self, mrids: Sequence[str]) -> dict[str, NetworkLevel]:
        if not mrids:
            return {}
        volt = self.ontology.attribute_by_qname(NOMINAL_VOLTAGE)
        parts = ["n.mrid AS mrid"]
        n_volt = 0
        seen: set[str] = set()
        if volt is not None:
            for path in VOLTAGE_PATHS:
                pattern = self._path(path, "b")
                # Several associations share a relationship type (BASE_VOLTAGE): one pattern each.
                if pattern is not None and pattern not in seen:
                    seen.add(pattern)
                    parts.append(f"COLLECT {{ MATCH {pattern} RETURN b.`{volt.key}` }} AS v{n_volt}")
                    n_volt += 1
        own_p = sorted({a.key for q in PRESSURE if (a := self.ontology.attribute_by_qname(q)) is not None})
        for i, key in enumerate(own_p):
            parts.append(f"n.`{key}` AS p_own{i}")
        node_key = self.ontology.attribute_by_qname(PRESSURE[0])
        n_links = 0
        if node_key is not None:
            for qname in GAS_NODE_LINKS:
                pattern = self._path(((qname, "out"),), "g")
                if pattern is not None and pattern not in seen:
                    seen.add(pattern)
                    parts.append(f"COLLECT {{ MATCH {pattern} RETURN g.`{node_key.key}` }} AS p{n_links}")
                    n_links += 1
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} RETURN {', '.join(parts)}",
            {"ids": list(mrids)},
        )
        out: dict[str, NetworkLevel] = {}
        for row in rows:
            kv = next((v for i in range(n_volt) if (v := _max(row[f"v{i}"])) is not None), None)
            bar = _max([row[f"p_own{i}"] for i in range(len(own_p))])
            if bar is None:
                bar = _max([v for i in range(n_links) for v in row[f"p{i}"]])
            if kv is not None or bar is not None:
                out[row["mrid"]] = NetworkLevel(kv, bar)
        return out
