"""Physical connectivity: the associations along which energy flows, and the classes that sit on them.

A planner who asks for the path between a gas source and an electricity line means the way gas and power
actually travel: through pipes and gas nodes, an offtake, a generating unit and its machine, terminals,
connectivity and topological nodes, and conducting equipment. Every object of a model also points at
reference data (the one ``CoordinateSystem`` every ``Location`` names, a ``BaseVoltage``, a region, the
container that groups it, a measurement, a diagram), and a path through those is short and means nothing.

Shortest paths and dependency analysis follow :func:`physical_network` by default. It is built from the
ontology: the associations named below that the ontology has, plus every association that joins the two
domains (the couplings: an offtake supplies a generating unit, a supply point powers a compressor). A
relationship type alone does not say which association a relationship came from (``TERMINAL`` is both
``TransformerEnd.Terminal`` and ``Measurement.Terminal``), so a path must also stay on nodes of the
associations' own classes; ontology labels include every ancestor, so one label per class is enough.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from ontology.model import Ontology

# The associations that carry energy within a domain, by CIM qualified name (owner first).
PHYSICAL_ASSOCIATIONS: Final = (
    # Electricity: equipment, its terminals and the nodes the terminals connect to.
    "Terminal.ConductingEquipment",
    "Terminal.ConnectivityNode",
    "Terminal.TopologicalNode",
    "ConnectivityNode.TopologicalNode",
    "TransformerEnd.Terminal",
    "PowerTransformerEnd.PowerTransformer",
    # A generating unit is driven by its machines, which are conducting equipment.
    "RotatingMachine.GeneratingUnit",
    # Direct current.
    "DCTerminal.DCConductingEquipment",
    "ACDCConverterDCTerminal.DCConductingEquipment",
    "DCBaseTerminal.DCNode",
    "DCBaseTerminal.DCTopologicalNode",
    "DCNode.DCTopologicalNode",
    # Gas: connections (pipes, compressors, valves ...) between nodes, and what is attached at a node.
    "GasConnection.FromNode",
    "GasConnection.ToNode",
    "GasOfftake.Node",
    "GasStorage.Node",
    "GasTerminal.Node",
    "GasCompressorStation.FuelGasNode",
)


@dataclass(frozen=True)
class PhysicalNetwork:
    """Relationship types of the physical associations and couplings, and the classes at their ends."""

    rel_types: tuple[str, ...]
    classes: tuple[str, ...]

    def admits(self, ontology: Ontology, class_name: str) -> bool:
        """Whether an object of ``class_name`` sits on the physical network."""
        return class_name in ontology.classes and any(ontology.is_a(class_name, c) for c in self.classes)


@functools.cache  # one ontology per process; built once, read by every path and dependency query
def physical_network(ontology: Ontology) -> PhysicalNetwork:
    associations = [
        a for a in (ontology.association_by_qname(q) for q in PHYSICAL_ASSOCIATIONS) if a is not None
    ]
    associations += [
        a
        for cls in ontology.classes.values()
        for a in cls.associations.values()
        if ontology.domain(a.owner) != ontology.domain(a.target)
    ]
    classes = {a.owner for a in associations} | {a.target for a in associations}
    return PhysicalNetwork(
        rel_types=tuple(sorted({a.rel_type for a in associations})),
        classes=tuple(sorted(classes)),
    )
