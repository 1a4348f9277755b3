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

    def returned(self, only: str | None = None) -> list[str]:
        """RETURN items with what node ``n``'s level is derived from (``v<i>``: base voltages along
        :data:`VOLTAGE_PATHS`, ``p_own<i>``: its own pressures, ``p<i>``: its gas nodes' pressures);
        :meth:`of_row` reads them. ``only``: a condition on ``n``, the items are null where it is false
        (and nothing is read for them)."""
        return [
            f"{expr} AS {alias}" if only is None else f"CASE WHEN {only} THEN {expr} END AS {alias}"
            for expr, alias in self._items()
        ]

    def _items(self) -> list[tuple[str, str]]:
        volt = self.ontology.attribute_by_qname(NOMINAL_VOLTAGE)
        parts: list[tuple[str, str]] = []
        seen: set[str] = set()
        n_volt = 0
        if volt is not None:
            for path in VOLTAGE_PATHS:
                pattern = self._path(path, "b")
                # Several associations share a relationship type (BASE_VOLTAGE): one pattern each.
                if pattern is not None and pattern not in seen:
                    seen.add(pattern)
                    parts.append((f"COLLECT {{ MATCH {pattern} RETURN b.`{volt.key}` }}", f"v{n_volt}"))
                    n_volt += 1
        for i, key in enumerate(self._own_pressures()):
            parts.append((f"n.`{key}`", f"p_own{i}"))
        node_key = self.ontology.attribute_by_qname(PRESSURE[0])
        n_links = 0
        if node_key is not None:
            for qname in GAS_NODE_LINKS:
                pattern = self._path(((qname, "out"),), "g")
                if pattern is not None and pattern not in seen:
                    seen.add(pattern)
                    parts.append((f"COLLECT {{ MATCH {pattern} RETURN g.`{node_key.key}` }}", f"p{n_links}"))
                    n_links += 1
        return parts

    def _own_pressures(self) -> list[str]:
        return sorted({a.key for q in PRESSURE if (a := self.ontology.attribute_by_qname(q)) is not None})

    def of_row(self, row: dict[str, Any]) -> NetworkLevel | None:
        """The level from a row with the items of :meth:`returned`; None when neither is known."""
        volts = [row[k] for k in sorted((k for k in row if k[:1] == "v" and k[1:].isdigit()), key=_index)]
        kv = next((v for vs in volts if (v := _max(vs)) is not None), None)
        bar = _max([row[f"p_own{i}"] for i in range(len(self._own_pressures()))])
        if bar is None:
            links = [k for k in row if k[:1] == "p" and k[1:].isdigit()]
            bar = _max([v for k in links for v in row[k] or []])
        return NetworkLevel(kv, bar) if kv is not None or bar is not None else None

    async def levels(self, mrids: Sequence[str]) -> dict[str, NetworkLevel]:
        if not mrids:
            return {}
        rows = await self.guard.read(
            f"UNWIND $ids AS id MATCH (n:Entity {{mrid: id}}) WHERE {visible('n')} "
            f"RETURN {', '.join(['n.mrid AS mrid', *self.returned()])}",
            {"ids": list(mrids)},
        )
        return {row["mrid"]: level for row in rows if (level := self.of_row(row)) is not None}


def _index(key: str) -> int:
    return int(key[1:])
