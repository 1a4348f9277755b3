"""Large synthetic whole-system networks shaped like the real ones, streamed, from a seed.

Shape comes from the real models, converted by the hub's own converters:

* electricity: the ENTSO-E CGMES SmallGrid node-breaker model (every profile plus boundary), about
  10,700 objects in 42 classes;
* gas: GasLib-134 and GasLib-40, with a gas meter per node;
* couplings between them as the demo makes them (:mod:`devstack.demo.couplings`): offtakes at GasLib sinks
  supplying SmallGrid's thermal units, supply points feeding the compressor stations.

That whole-system model is the *tile*. A synthetic network of N objects is tiles ``0, 1, 2, ...`` (the
last one cut off at N), each a copy with its own mRIDs (``s<seed>t<tile>-<real mRID>``), so every object
keeps its class, its references (out-degree), the references to it (in-degree) and its place in the
containment hierarchy (depth) exactly as in the real model. What varies per tile, drawn from the seed:

* attribute values: each numeric value is drawn from the values that attribute takes in the real model
  (the empirical distribution per class and attribute), names get the tile number;
* tie lines and pipes: in each tile after the first, a few lines' terminals and a few pipes' ends are
  rewired to the matching object of an earlier tile, so the tiles form one connected whole system
  (out-degrees unchanged; in-degrees move between two objects of the same class).

:func:`profile` measures class mix, degree distributions and containment depth of any event stream, so
the benchmark reports the synthetic network's shape beside the real one's.

Events are plain dicts in the envelope's JSON form (the worker validates them as it would a producer's);
generation is a generator: memory holds one tile, whatever N is.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SMALLGRID = DATA / "cgmes" / "2.4.15" / "SmallGrid-NodeBreaker"
GAS_FILES = (DATA / "gas" / "GasLib-134" / "GasLib-134-v2.net", DATA / "gas" / "GasLib-40" / "GasLib-40.net")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)

# References that place an object inside another: the containment hierarchy whose depth is measured.
CONTAINMENT = frozenset(
    {
        "Equipment.EquipmentContainer",
        "VoltageLevel.Substation",
        "Substation.Region",
        "SubGeographicalRegion.Region",
        "Bay.VoltageLevel",
        "Terminal.ConductingEquipment",
        "ConnectivityNode.ConnectivityNodeContainer",
        "TopologicalNode.ConnectivityNodeContainer",
        "PowerTransformerEnd.PowerTransformer",
        "RatioTapChanger.TransformerEnd",
        "OperationalLimitSet.Terminal",
        "OperationalLimitSet.Equipment",
        "OperationalLimit.OperationalLimitSet",
        "PositionPoint.Location",
        "GasObject.Network",
        "GasMeasurement.MeasuredObject",
    }
)
# Tie lines: share of lines (and pipes) per tile whose one end moves to an earlier tile.
TIE_SHARE = 0.05

# Labels by kind of object, all satisfiable by the benchmark producer (org=bench, SECRET): public
# geography, OFFICIAL network data, OFFICIAL-SENSITIVE compressors, and some for two organisations only.
PUBLIC = "classification=PUBLIC"
OFFICIAL = "classification=OFFICIAL"
SENSITIVE = "classification=OFFICIAL-SENSITIVE"
ORG_ONLY = "org=bench|org=neso"
_PUBLIC_CLASSES = frozenset(
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
        "GasSource",
        "GasSink",
        "GasInnerNode",
        "GasNetwork",
    }
)
_ORG_CLASSES = frozenset(
    {
        "CurrentLimit",
        "OperationalLimitSet",
        "OperationalLimitType",
        "GasMeasurement",
        "SynchronousMachine",
        "LoadResponseCharacteristic",
    }
)


def label_for(class_name: str) -> str:
    if class_name in _PUBLIC_CLASSES:
        return PUBLIC
    if class_name == "GasCompressorStation":
        return SENSITIVE
    if class_name in _ORG_CLASSES:
        return ORG_ONLY
    return OFFICIAL


@dataclass
class Tile:
    """The real whole-system model, as events (dicts) in containment-friendly order."""

    events: list[dict[str, Any]]
    # class -> attribute qname -> real values (numbers only), for resampling
    values: dict[str, dict[str, list[float]]]
    # mRIDs of lines' second terminals and pipes, eligible as tie points, with what to rewire
    ties: list[tuple[int, str]]  # (index into events, reference qname)

    def __len__(self) -> int:
        return len(self.events)


def _as_dict(event: Any) -> dict[str, Any]:
    body: dict[str, Any] = event.to_json_dict()
    return body


@cache
def load_tile() -> Tile:
    """Convert the real files once per process (about two seconds)."""
    from devstack.demo import couplings
    from ingest.cgmes import convert_cgmes
    from ingest.gaslib import convert_gaslib
    from ontology.loader import load_ontology

    ontology = load_ontology()
    files = sorted(SMALLGRID.glob("*.xml"))
    if not files:
        raise SystemExit(f"no CGMES files in {SMALLGRID}")
    grid = list(convert_cgmes(files, source="bench", version=1, time=BASE_TIME, ontology=ontology))
    gas: list[Any] = []
    for path in GAS_FILES:
        gas.extend(convert_gaslib(path, source="bench", version=1, time=BASE_TIME, ontology=ontology))
    thermal = sorted(e.subject for e in grid if e.class_ == "ThermalGeneratingUnit")
    coupled = list(couplings.coupling_events(grid, gas, thermal, version=1, time=BASE_TIME))
    events = [_as_dict(e) for e in (*grid, *gas, *coupled)]
    for body in events:
        body["source"] = "bench"
        body["label"] = label_for(body["class"])
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for body in events:
        for qname, raw in body.get("attributes", {}).items():
            if isinstance(raw, bool):
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                continue
            values[body["class"]][qname].append(number)
    # Tie points: the second terminal of a line segment (its node moves) and the start of a pipe.
    segments = {b["subject"] for b in events if b["class"] == "ACLineSegment"}
    ties: list[tuple[int, str]] = []
    for i, body in enumerate(events):
        refs = body.get("references", {})
        if (
            body["class"] == "Terminal"
            and refs.get("Terminal.ConductingEquipment") in segments
            and body.get("attributes", {}).get("ACDCTerminal.sequenceNumber") in ("2", 2)
        ):
            ties.append((i, "Terminal.ConnectivityNode"))
        elif body["class"] == "GasPipe":
            ties.append((i, "GasConnection.FromNode"))
    return Tile(events, {c: dict(q) for c, q in values.items()}, ties)


def tile_size() -> int:
    return len(load_tile())


def _like(raw: Any, drawn: float) -> Any:
    if isinstance(raw, int):
        return int(drawn)
    if isinstance(raw, float):
        return drawn
    text = str(raw)
    return str(int(drawn)) if text.lstrip("-").isdigit() else repr(drawn)


def _mrid(seed: int, tile: int, real: str) -> str:
    return f"s{seed}t{tile}-{real}"[:128]


def _remap(value: Any, seed: int, tile: int) -> Any:
    if isinstance(value, list):
        return [_mrid(seed, tile, v) for v in value]
    return _mrid(seed, tile, value)


def generate(n: int, seed: int = 1, *, source: str = "bench", version: int = 1) -> Iterator[dict[str, Any]]:
    """``n`` upsert events of a synthetic whole-system network; the same ``seed`` gives the same events."""
    if n < 0:
        raise ValueError(f"n = {n!r} must not be negative")
    tile = load_tile()
    tie_at = dict(tile.ties)
    emitted = 0
    t = 0
    while emitted < n:
        rng = random.Random(f"{seed}/{t}")
        # Which tie points of this tile connect to an earlier tile, and to which one.
        ties = {i: rng.randrange(t) for i, _ in tile.ties if t > 0 and rng.random() < TIE_SHARE}
        when = (BASE_TIME + timedelta(seconds=t)).isoformat()
        for i, real in enumerate(tile.events):
            if emitted >= n:
                return
            cls = real["class"]
            attributes: dict[str, Any] = {}
            pools = tile.values.get(cls, {})
            for qname, raw in real.get("attributes", {}).items():
                pool = pools.get(qname)
                if qname == "IdentifiedObject.name" and isinstance(raw, str):
                    attributes[qname] = f"{raw} #{t}"
                elif pool and not isinstance(raw, bool) and qname != "ACDCTerminal.sequenceNumber":
                    # Drawn from the values this attribute takes in the real model, in the raw's form.
                    attributes[qname] = _like(raw, rng.choice(pool))
                else:
                    attributes[qname] = raw
            references = {q: _remap(v, seed, t) for q, v in real.get("references", {}).items()}
            if i in ties:
                qname = tie_at[i]
                target = real["references"].get(qname)
                if isinstance(target, str):
                    references[qname] = _mrid(seed, ties[i], target)
            subject = _mrid(seed, t, real["subject"])
            yield {
                "id": f"{subject}/{version}",
                "source": source,
                "type": "upsert",
                "subject": subject,
                "time": when,
                "version": version,
                "class": cls,
                "attributes": attributes,
                "references": references,
                "label": real["label"],
            }
            emitted += 1
        t += 1


def measurements(n_objects: int, seed: int = 1) -> list[tuple[str, str, str]]:
    """(mRID, class, attribute qname) of the measurable objects among the first ``n_objects`` generated:
    state-estimate voltages and flows and gas meters, what a live feed updates."""
    tile = load_tile()
    size = len(tile)
    measurable = {
        "SvVoltage": "SvVoltage.v",
        "SvPowerFlow": "SvPowerFlow.p",
        "GasMeasurement": "GasMeasurement.pressure",
    }
    found: list[tuple[str, str, str]] = []
    for t in range((n_objects + size - 1) // size):
        for i, real in enumerate(tile.events):
            if t * size + i >= n_objects:
                break
            qname = measurable.get(real["class"])
            if qname is not None:
                found.append((_mrid(seed, t, real["subject"]), real["class"], qname))
    return found


# ------------------------------------------------------------------------------------------ profile


@dataclass
class Profile:
    """The shape of an event stream: what the synthetic network must share with the real one."""

    objects: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)
    out_degree: Counter[int] = field(default_factory=Counter)
    in_degree: Counter[int] = field(default_factory=Counter)
    depth: Counter[int] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        def stats(hist: Counter[int]) -> dict[str, float]:
            values = sorted(hist.elements())
            if not values:
                return {}
            return {
                "mean": round(statistics.fmean(values), 3),
                "p50": values[len(values) // 2],
                "p90": values[int(len(values) * 0.9)],
                "p99": values[int(len(values) * 0.99)],
                "max": values[-1],
            }

        total = self.objects or 1
        return {
            "objects": self.objects,
            "classes": len(self.classes),
            "class_share_top10": {c: round(n / total, 4) for c, n in self.classes.most_common(10)},
            "domain_share": {d: round(n / total, 4) for d, n in sorted(self.domains.items())},
            "out_degree": stats(self.out_degree),
            "in_degree": stats(self.in_degree),
            "containment_depth": stats(self.depth),
        }


def profile(events: Iterable[Mapping[str, Any]], domain_of: Mapping[str, str] | None = None) -> Profile:
    """Class mix, out/in-degree and containment depth (hops up the containment references) of a stream."""
    result = Profile()
    parent: dict[str, str] = {}
    indegree: Counter[str] = Counter()
    subjects: list[str] = []
    for body in events:
        subject = body["subject"]
        subjects.append(subject)
        result.objects += 1
        result.classes[body["class"]] += 1
        if domain_of is not None:
            result.domains[domain_of.get(body["class"], "?")] += 1
        out = 0
        for qname, value in body.get("references", {}).items():
            targets = value if isinstance(value, list) else [value]
            out += len(targets)
            for target in targets:
                indegree[target] += 1
            if qname in CONTAINMENT and targets and subject not in parent:
                parent[subject] = targets[0]
        result.out_degree[out] += 1
    depth_of: dict[str, int] = {}

    def depth(mrid: str) -> int:
        chain: list[str] = []
        node = mrid
        while node in parent and node not in depth_of and len(chain) < 64:
            chain.append(node)
            node = parent[node]
        base = depth_of.get(node, 0)
        for k, item in enumerate(reversed(chain), start=1):
            depth_of[item] = base + k
        return depth_of.get(mrid, base)

    for subject in subjects:
        result.depth[depth(subject)] += 1
        result.in_degree[indegree.get(subject, 0)] += 1
    return result


def domain_map() -> dict[str, str]:
    from ontology.loader import load_ontology

    ontology = load_ontology()
    return {name: ontology.domain(name) for name in ontology.classes}
