"""The demo's producers: who publishes which part of the whole-system network, and under which label.

Five organisations share one hub, each on its own topic:

* ``ngt``: electricity transmission owner; the grid (substations, lines, transformers, topology, layout);
* ``genco``: a generator; its generating units, machines and their dynamic models;
* ``dno``: a distribution operator; loads, their load models, and the supply points of gas compressors;
* ``nggt``: gas transmission owner; the GasLib network, its offtakes and gas measurements;
* ``neso``: the electricity system operator; the state estimate (voltages, flows, tap steps).

Labels differ in sensitivity so that the demo users (``hub.auth.DEMO_USERS``) see different graphs:
geography and substations are PUBLIC, network parameters OFFICIAL, compressor details
OFFICIAL-SENSITIVE (or the gas owner's staff), and some data is for the owner and the system operator only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from ontology.model import Ontology

NGT: Final = "ngt"
GENCO: Final = "genco"
DNO: Final = "dno"
NGGT: Final = "nggt"
NESO: Final = "neso"
PRODUCER_IDS: Final = (NGT, GENCO, DNO, NGGT, NESO)

PUBLIC: Final = "classification=PUBLIC"
OFFICIAL: Final = "classification=OFFICIAL"
# Compressor stations: anyone cleared OFFICIAL-SENSITIVE, and the gas owner's own staff at any clearance.
COMPRESSOR: Final = "classification=OFFICIAL-SENSITIVE|org=nggt"
GRID_LIMITS: Final = "org=neso|org=ngt"
GENERATOR_MODELS: Final = "org=genco|org=neso"
LOAD_MODELS: Final = "org=dno|org=neso"
GAS_MEASUREMENTS: Final = "org=neso|org=nggt"
COMPRESSOR_SUPPLY: Final = "org=dno|org=neso|org=nggt"

# settings.producers (HUB_PRODUCERS) for the worker: organisation, clearance and default label.
PRODUCER_CONFIG: Final[dict[str, dict[str, str]]] = {
    NGT: {"org": "ngt", "clearance": "OFFICIAL-SENSITIVE", "default_label": OFFICIAL},
    GENCO: {"org": "genco", "clearance": "OFFICIAL", "default_label": GENERATOR_MODELS},
    DNO: {"org": "dno", "clearance": "OFFICIAL", "default_label": OFFICIAL},
    NGGT: {"org": "nggt", "clearance": "OFFICIAL-SENSITIVE", "default_label": OFFICIAL},
    NESO: {"org": "neso", "clearance": "OFFICIAL-SENSITIVE", "default_label": OFFICIAL},
}

# Each producer's data contract (ODCS v3, hub/contracts.py): the demo's worker enforces them and the API
# publishes them (HUB_CONTRACTS_DIR).
CONTRACTS_DIR: Final = Path(__file__).resolve().parent / "contracts"

# The system operator sends its label once per message, in the Security-Label header, as some
# producers' tools do; the others put a label in each event.
HEADER_LABELS: Final[dict[str, str]] = {NESO: OFFICIAL}

# Grid classes whose objects say where things are and what they are called, and nothing more.
_PUBLIC_GRID: Final = frozenset(
    {
        "GeographicalRegion",
        "SubGeographicalRegion",
        "Substation",
        "VoltageLevel",
        "BaseVoltage",
        "Line",
        "Location",
        "PositionPoint",
        "CoordinateSystem",
        "Diagram",
        "DiagramObject",
        "DiagramObjectPoint",
        "DiagramStyle",
        "TextDiagramObject",
    }
)
_LIMITS: Final = frozenset({"OperationalLimitSet", "OperationalLimitType", "OperationalLimit"})


def producers_json() -> str:
    """The value of HUB_PRODUCERS for the demo's worker."""
    return json.dumps(PRODUCER_CONFIG, separators=(",", ":"))


def producer_of(class_name: str, ontology: Ontology) -> str:
    """Which demo producer publishes a grid object of ``class_name`` (from the CGMES model)."""
    if ontology.domain(class_name) == "Gas":
        return NGGT
    lineage = set(ontology.ancestors(class_name))
    if class_name.startswith("Sv") or class_name == "TopologicalIsland":
        return NESO
    if lineage & {
        "GeneratingUnit",
        "RotatingMachine",
        "RotatingMachineDynamics",
        "TurbineGovernorDynamics",
        "ExcitationSystemDynamics",
        "PowerSystemStabilizerDynamics",
        "ReactiveCapabilityCurve",
    }:
        return GENCO
    if class_name == "CurveData":
        return GENCO  # the points of the machines' capability curves
    if lineage & {"EnergyConsumer", "LoadDynamics", "LoadResponseCharacteristic"}:
        return DNO
    return NGT


def label_of(producer: str, class_name: str, ontology: Ontology) -> str | None:
    """The label of one object; None leaves it to the message header or the producer's default."""
    lineage = set(ontology.ancestors(class_name))
    if producer == NESO:
        return None  # the header carries it
    if producer == NGT:
        if class_name in _PUBLIC_GRID:
            return PUBLIC
        if lineage & _LIMITS:
            return GRID_LIMITS
        return OFFICIAL
    if producer == GENCO:
        return OFFICIAL if "GeneratingUnit" in lineage else GENERATOR_MODELS
    if producer == DNO:
        if "ElectricitySupplyPoint" in lineage:
            return COMPRESSOR_SUPPLY
        if lineage & {"LoadDynamics", "LoadResponseCharacteristic"}:
            return LOAD_MODELS
        return OFFICIAL
    # nggt
    if "GasCompressorStation" in lineage:
        return COMPRESSOR
    if "GasMeasurement" in lineage:
        return GAS_MEASUREMENTS
    if lineage & {"GasNode", "GasNetwork"}:
        return PUBLIC
    return OFFICIAL
