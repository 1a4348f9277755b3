"""The demo's whole-system network: the real MicroGrid and GasLib-40 models joined where gas meets power.

* Electricity: the ENTSO-E CGMES MicroGrid base case (Belgian and Dutch models with their boundary), every
  profile merged into one upsert per object.
* Gas: GasLib-40, a German transmission network with WGS84 coordinates. Coordinates are kept as given: the
  gas network lies in south-western Germany and eastern France, some 250 km and more from the MicroGrid's
  substations in Belgium and the Netherlands, so the nearest partners below are still far apart.
* Couplings (:mod:`devstack.demo.couplings`), chosen by great-circle distance: the generating units the
  CGMES dynamics model with steam-turbine governors are published as thermal (gas-fired) units, supplied
  by a gas offtake at the GasLib sink nearest to their power station; every compressor station is fed by
  an electricity supply point in the nearest suitable voltage level.
* Measurements: one gas measurement per GasLib node (pressure, flow), which the simulator updates.

Every object is assigned to one producer and labelled by :mod:`devstack.demo.producers`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.demo import couplings
from devstack.demo.producers import HEADER_LABELS, PRODUCER_IDS, label_of, producer_of
from hub.events import Event, time_version
from ingest.cgmes import convert_cgmes
from ingest.gaslib import convert_gaslib
from ontology.model import Ontology

DATA = Path(__file__).resolve().parent / "data"
MICROGRID = DATA / "cgmes" / "MicroGrid-BaseCase"
GASLIB_40 = DATA / "gas" / "GasLib-40" / "GasLib-40.net"


@dataclass
class DemoNetwork:
    """The events each producer publishes, plus what the simulator needs to know about the objects."""

    version: int
    time: datetime
    events: dict[str, list[Event]] = field(default_factory=dict)
    # mrid -> (producer, class) of every published object
    objects: dict[str, tuple[str, str]] = field(default_factory=dict)
    # mrid -> attributes as published (qname -> value), for the simulator's starting values
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def header_label(self, producer: str) -> str | None:
        return HEADER_LABELS.get(producer)

    def count(self) -> int:
        return sum(len(v) for v in self.events.values())

    def classes(self) -> Counter[str]:
        return Counter(cls for _, cls in self.objects.values())

    def of_class(self, ontology: Ontology, class_name: str) -> list[str]:
        """mRIDs of published objects that are ``class_name`` or a subclass, in a stable order."""
        return sorted(m for m, (_, cls) in self.objects.items() if ontology.is_a(cls, class_name))

    def add(self, event: Event) -> None:
        self.events.setdefault(event.source, []).append(event)
        self.objects[event.subject] = (event.source, event.class_)
        self.values[event.subject] = dict(event.attributes)


def demo_version() -> int:
    """Now, as ``hub produce`` counts versions (microseconds since the epoch): a restarted demo's objects are
    newer than what the graph holds, and the demo's producers and ``hub produce`` can take turns on them."""
    return time_version(datetime.now(UTC))


def _relabel(
    events: Iterable[Event], ontology: Ontology, network: DemoNetwork, rename: dict[str, str]
) -> None:
    for event in events:
        class_name = rename.get(event.subject, event.class_)
        producer = producer_of(class_name, ontology)
        label = label_of(producer, class_name, ontology)
        update: dict[str, Any] = {"source": producer, "class_": class_name, "label": label}
        network.add(event.model_copy(update=update))


def build_network(
    ontology: Ontology, *, version: int | None = None, time_: datetime | None = None
) -> DemoNetwork:
    """Assemble the demo network (about 1,400 objects) from the files under ``devstack/demo/data``."""
    version = version if version is not None else demo_version()
    when = time_ or datetime.now(UTC)
    network = DemoNetwork(version=version, time=when)
    grid = list(
        convert_cgmes(
            sorted(MICROGRID.glob("*.xml")), source="ngt", version=version, time=when, ontology=ontology
        )
    )
    gas = list(convert_gaslib(GASLIB_40, source="nggt", version=version, time=when, ontology=ontology))
    thermal = couplings.thermal_units(grid)
    _relabel(grid, ontology, network, {mrid: "ThermalGeneratingUnit" for mrid in thermal})
    _relabel(gas, ontology, network, {})
    for event in couplings.coupling_events(grid, gas, thermal, version=version, time=when):
        producer = event.source
        label = label_of(producer, event.class_, ontology)
        network.add(event.model_copy(update={"label": label}))
    for producer in PRODUCER_IDS:
        network.events.setdefault(producer, [])
    return network
