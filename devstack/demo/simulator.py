"""A live feed for the demo: measured values drift, switches move, and now and then something trips.

Each event is a ``measurement`` (attribute values only) sent by the producer that owns the object:

* ``neso``: the state estimate: bus voltages (``SvVoltage.v``/``angle``) and terminal flows
  (``SvPowerFlow.p``/``q``), mean-reverting around the published solution;
* ``nggt``: gas meters at every GasLib node: pressure within the node's bounds, flow, time of reading;
* ``dno``: load following a compressed daily curve (one "day" every ``day_s`` seconds), and the
  compressor supply points;
* ``ngt``: breakers opening and closing, and line outages (``Equipment.inService`` false, back later);
* ``genco``: unit trips: the machine out of service at zero output, restored after a while.

Versions are seconds since the epoch, bumped by one when an object changes twice within a second, so
they strictly increase per object and a restarted feed is still newer than what the graph holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.demo.network import DemoNetwork
from devstack.demo.producers import DNO, GENCO, NESO, NGGT, NGT
from hub.events import Event, EventType, time_version
from ingest.cgmes import event_id
from ingest.producer import HubProducer
from ontology.model import Ontology


def _f(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass
class Outage:
    mrid: str
    producer: str
    kind: str  # "line" or "unit"
    until: float
    restore: dict[str, Any]


@dataclass
class SimStats:
    events: Counter[str] = field(default_factory=Counter)
    outages: int = 0
    restorations: int = 0

    @property
    def total(self) -> int:
        return sum(self.events.values())


class Simulator:
    """Produces the next change on demand; :meth:`run` streams them to the producers' topics."""

    def __init__(
        self,
        network: DemoNetwork,
        ontology: Ontology,
        *,
        seed: int | None = None,
        day_s: float = 600.0,
        outage_chance: float = 0.002,
        switch_chance: float = 0.005,
    ) -> None:
        self.network = network
        self.random = random.Random(seed)
        self.day_s = day_s
        self.outage_chance = outage_chance
        self.switch_chance = switch_chance
        self.started = time.monotonic()
        self.stats = SimStats()
        self.last_version: dict[str, int] = {}
        self.current: dict[str, dict[str, float]] = {}
        self.outages: dict[str, Outage] = {}
        values = network.values
        of = network.of_class
        self.voltages = of(ontology, "SvVoltage")
        self.flows = of(ontology, "SvPowerFlow")
        self.gas_meters = of(ontology, "GasMeasurement")
        self.loads = [
            m for m in of(ontology, "EnergyConsumer") if m not in set(of(ontology, "ElectricitySupplyPoint"))
        ]
        self.supplies = of(ontology, "ElectricitySupplyPoint")
        self.breakers = of(ontology, "Switch")
        self.lines = of(ontology, "ACLineSegment")
        self.machines = of(ontology, "SynchronousMachine")
        self.switch_open = {
            m: str(values[m].get("Switch.open", "false")).lower() == "true" for m in self.breakers
        }
        # Where each value starts and what it reverts to.
        self.base: dict[str, dict[str, float]] = {}
        for m in self.voltages:
            self.base[m] = {
                "SvVoltage.v": _f(values[m].get("SvVoltage.v"), 1.0),
                "SvVoltage.angle": _f(values[m].get("SvVoltage.angle")),
            }
        for m in self.flows:
            self.base[m] = {
                "SvPowerFlow.p": _f(values[m].get("SvPowerFlow.p")),
                "SvPowerFlow.q": _f(values[m].get("SvPowerFlow.q")),
            }
        for m in self.gas_meters:
            self.base[m] = {
                "GasMeasurement.pressure": _f(values[m].get("GasMeasurement.pressure"), 50.0),
                "GasMeasurement.flow": _f(values[m].get("GasMeasurement.flow")),
            }
        for m in (*self.loads, *self.supplies):
            self.base[m] = {
                "EnergyConsumer.p": _f(values[m].get("EnergyConsumer.p"), 1.0),
                "EnergyConsumer.q": _f(values[m].get("EnergyConsumer.q")),
            }
        for m in self.machines:
            self.base[m] = {"RotatingMachine.p": _f(values[m].get("RotatingMachine.p"))}
        self.current = {m: dict(v) for m, v in self.base.items()}
        self.pressure_bounds = {m: self._bounds(network, m) for m in self.gas_meters}
        self.kinds: list[tuple[str, float, Callable[[], list[Event]]]] = [
            ("voltage", 3.0, self._voltage),
            ("flow", 3.0, self._flow),
            ("gas", 3.0, self._gas),
            ("load", 1.5, self._load),
            ("supply", 0.5, self._supply),
        ]

    @staticmethod
    def _bounds(network: DemoNetwork, meter: str) -> tuple[float, float]:
        node = meter.removesuffix(".meas")
        attrs = network.values.get(node, {})
        return _f(attrs.get("GasNode.pressureMin"), 1.0), _f(attrs.get("GasNode.pressureMax"), 81.0)

    # ----------------------------------------------------------------------------------- events

    def _version(self, mrid: str) -> int:
        version = max(time_version(datetime.now(UTC)), self.last_version.get(mrid, self.network.version) + 1)
        self.last_version[mrid] = version
        return version

    def event(self, producer: str, mrid: str, attributes: dict[str, Any]) -> Event:
        _, class_name = self.network.objects[mrid]
        version = self._version(mrid)
        return Event.model_validate(
            {
                "id": event_id(producer, mrid, version, EventType.MEASUREMENT),
                "source": producer,
                "type": "measurement",
                "subject": mrid,
                "time": datetime.now(UTC),
                "version": version,
                "class": class_name,
                "attributes": attributes,
            }
        )

    def _walk(
        self,
        mrid: str,
        key: str,
        sigma: float,
        revert: float = 0.1,
        factor: float = 1.0,
        low: float | None = None,
        high: float | None = None,
    ) -> float:
        target = self.base[mrid][key] * factor
        value = self.current[mrid][key]
        value += revert * (target - value) + self.random.gauss(0.0, sigma)
        if low is not None:
            value = max(low, value)
        if high is not None:
            value = min(high, value)
        self.current[mrid][key] = value
        return value

    def _day_factor(self) -> float:
        # Demand peaks once per compressed day: 0.8 at night, 1.2 at the evening peak.
        phase = 2 * math.pi * ((time.monotonic() - self.started) % self.day_s) / self.day_s
        return 1.0 + 0.2 * math.sin(phase)

    def _voltage(self) -> list[Event]:
        if not self.voltages:
            return []
        m = self.random.choice(self.voltages)
        base = abs(self.base[m]["SvVoltage.v"]) or 1.0
        v = self._walk(m, "SvVoltage.v", 0.002 * base, low=0.0)
        angle = self._walk(m, "SvVoltage.angle", 0.05)
        return [self.event(NESO, m, {"SvVoltage.v": round(v, 3), "SvVoltage.angle": round(angle, 4)})]

    def _flow(self) -> list[Event]:
        if not self.flows:
            return []
        m = self.random.choice(self.flows)
        scale = self._day_factor()
        p = self._walk(m, "SvPowerFlow.p", 0.01 * abs(self.base[m]["SvPowerFlow.p"]) + 0.1, factor=scale)
        q = self._walk(m, "SvPowerFlow.q", 0.01 * abs(self.base[m]["SvPowerFlow.q"]) + 0.1, factor=scale)
        return [self.event(NESO, m, {"SvPowerFlow.p": round(p, 3), "SvPowerFlow.q": round(q, 3)})]

    def _gas(self) -> list[Event]:
        if not self.gas_meters:
            return []
        m = self.random.choice(self.gas_meters)
        low, high = self.pressure_bounds[m]
        pressure = self._walk(m, "GasMeasurement.pressure", 0.05, low=low, high=high)
        flow = self._walk(
            m,
            "GasMeasurement.flow",
            0.02 * abs(self.base[m]["GasMeasurement.flow"]) + 0.01,
            factor=self._day_factor(),
        )
        return [
            self.event(
                NGGT,
                m,
                {
                    "GasMeasurement.pressure": round(pressure, 3),
                    "GasMeasurement.flow": round(flow, 3),
                    "GasMeasurement.measuredAt": datetime.now(UTC).isoformat(),
                },
            )
        ]

    def _load(self) -> list[Event]:
        if not self.loads:
            return []
        m = self.random.choice(self.loads)
        p = self._walk(
            m,
            "EnergyConsumer.p",
            0.005 * abs(self.base[m]["EnergyConsumer.p"]) + 0.01,
            revert=0.3,
            factor=self._day_factor(),
        )
        return [self.event(DNO, m, {"EnergyConsumer.p": round(p, 3)})]

    def _supply(self) -> list[Event]:
        if not self.supplies:
            return []
        m = self.random.choice(self.supplies)
        p = self._walk(m, "EnergyConsumer.p", 0.3, low=0.0)
        return [self.event(DNO, m, {"EnergyConsumer.p": round(p, 2)})]

    def _switch(self) -> list[Event]:
        if not self.breakers:
            return []
        m = self.random.choice(self.breakers)
        self.switch_open[m] = not self.switch_open[m]
        return [self.event(NGT, m, {"Switch.open": self.switch_open[m]})]

    def _trip(self) -> list[Event]:
        candidates = [("line", NGT, m) for m in self.lines if m not in self.outages]
        candidates += [("unit", GENCO, m) for m in self.machines if m not in self.outages]
        if not candidates:
            return []
        kind, producer, m = self.random.choice(candidates)
        until = time.monotonic() + self.random.uniform(20.0, 60.0)
        if kind == "unit":
            restore: dict[str, Any] = {
                "Equipment.inService": True,
                "RotatingMachine.p": self.base[m]["RotatingMachine.p"],
            }
            change: dict[str, Any] = {"Equipment.inService": False, "RotatingMachine.p": 0.0}
        else:
            restore, change = {"Equipment.inService": True}, {"Equipment.inService": False}
        self.outages[m] = Outage(m, producer, kind, until, restore)
        self.stats.outages += 1
        return [self.event(producer, m, change)]

    def _restorations(self) -> list[Event]:
        now = time.monotonic()
        due = [o for o in self.outages.values() if o.until <= now]
        events = []
        for outage in due:
            del self.outages[outage.mrid]
            self.stats.restorations += 1
            events.append(self.event(outage.producer, outage.mrid, outage.restore))
        return events

    def step(self) -> list[Event]:
        """The next change(s): due restorations first, then one random change."""
        events = self._restorations()
        roll = self.random.random()
        if roll < self.outage_chance:
            kind, new = "outage", self._trip()
        elif roll < self.outage_chance + self.switch_chance:
            kind, new = "switch", self._switch()
        else:
            weights = [w for _, w, _ in self.kinds]
            kind, _, make = self.random.choices(self.kinds, weights=weights)[0]
            new = make()
        self.stats.events[kind] += len(new)
        if events:
            self.stats.events["restoration"] += len(events)
        return events + new

    # ------------------------------------------------------------------------------------ running

    async def run(
        self,
        producers: dict[str, HubProducer],
        rate: float,
        stop: asyncio.Event,
        duration_s: float | None = None,
    ) -> SimStats:
        """Send changes at ``rate`` per second until ``stop`` is set (or ``duration_s`` passed)."""
        if rate <= 0:
            raise ValueError(f"rate = {rate!r} must be a positive number of events per second")
        interval = 1.0 / rate
        began = time.monotonic()
        next_at = began
        last_flush = began
        while not stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - began >= duration_s:
                break
            for event in self.step():
                await producers[event.source].send(event)
            if now - last_flush >= 1.0:
                # Measurement events are small: acknowledge once a second rather than per event.
                await asyncio.gather(*(p.flush() for p in producers.values()))
                last_flush = now
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            else:
                next_at = time.monotonic()  # fell behind: do not burst to catch up
        await asyncio.gather(*(p.flush() for p in producers.values()))
        return self.stats
