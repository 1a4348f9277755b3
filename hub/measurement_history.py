"""Measurement history: the recent readings of each measured value, kept in the graph store, bounded, read
downsampled and through the access guard.

Where it lives. Each ``measurement`` event the writer applies also leaves a sample: a
``(:MeasurementSample {mrid, <attribute>: value, ...})`` node per measured object and interval of
``measurement_history_interval_s`` (the last readings in the interval win), written by the same
statement that applies the measurement (hub/writer.py), so a sample exists exactly when its reading
reached the graph, and a replayed batch merges into the samples it wrote before. Samples are linked to
nothing and carry no ``Entity`` label, so no current read meets them. The worker deletes those older than
``measurement_history_retention_s`` (:func:`prune`), so a value holds at most retention / interval
samples (26 h at one per 10 s: 9,360) whatever rate its producer sends at.

Why the graph store and not a Kafka topic: a chart asks for one object's span of time, which an index on
(mRID, interval) answers directly; a topic read on demand would scan every object's readings of the span,
and its retention is per topic, not per value. Why not kept versions (hub/history.py): those are whole
states, kept forever, one per event; readings are many, small and only recent.

Labels. A sample carries its object's label (and owner, for grants) as the object had it when the sample
was written, and is judged by it, like a kept version: a caller sees exactly the samples whose label it
may see, so the history of an object it may not see is empty, the same answer as for an mRID nobody
measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import neo4j

from hub.graph_schema import BOOKKEEPING, cypher
from hub.guard import Guard, visible
from hub.reader import ReadError
from ontology.model import Ontology

SAMPLE: Final = "MeasurementSample"

# The caller's samples of one object in [from, to], grouped into $points slots of equal length over the
# span they cover (so a few recent readings are each a point of their own, a day of them is averaged): per
# slot and attribute key, the mean, least and greatest value, how many readings, and their mean time. The
# index seek takes the intervals that can hold a sample of the span (an interval starts at most $interval
# before its sample), the time filter the exact span.
_SERIES: Final = cypher(
    """
MATCH (s:MeasurementSample) USING INDEX s:MeasurementSample(mrid, @bucket)
WHERE s.mrid = $mrid AND s.@bucket >= $lo AND s.@bucket <= $hi
  AND s.@time >= $from AND s.@time <= $to AND {visible}
WITH s, s.@time.epochMillis AS t
WITH collect({{s: s, t: t}}) AS found, min(t) AS t0, max(t) AS t1
WITH found, t0, (t1 - t0) / $points + 1 AS step
UNWIND found AS f
WITH f.s AS s, f.t AS t, f.s.@class AS cls, (f.t - t0) / step AS slot
UNWIND [k IN keys(s) WHERE NOT k IN $bookkeeping AND k <> 'mrid'] AS k
WITH k, slot, s[k] AS v, t, cls
WHERE v IS NOT NULL
RETURN k AS key, slot, avg(v) AS mean, min(v) AS low, max(v) AS high, count(v) AS n,
       toInteger(avg(t)) AS t, collect(DISTINCT cls) AS classes
ORDER BY key, slot
"""
)

_PRUNE: Final = cypher(
    """
MATCH (s:MeasurementSample) USING INDEX s:MeasurementSample(@time)
WHERE s.@time < $cutoff
WITH s LIMIT $limit
DELETE s
RETURN count(*) AS n
"""
)


@dataclass
class Point:
    """One point of a series: the readings of one slot of time, averaged."""

    time: datetime
    value: float
    low: float
    high: float
    count: int


@dataclass
class Series:
    """The points of one measured attribute, oldest first."""

    key: str
    qname: str
    unit: str | None
    points: list[Point] = field(default_factory=list)


class MeasurementHistory:
    """Reads of kept measurement samples for one caller (the guard)."""

    def __init__(self, guard: Guard, ontology: Ontology, *, interval_s: float, max_points: int) -> None:
        self.guard = guard
        self.ontology = ontology
        self.interval_ms = int(interval_s * 1000)
        self.max_points = max_points

    async def series(
        self, mrid: str, start: datetime, end: datetime, max_points: int | None = None
    ) -> list[Series]:
        """Per measured attribute of ``mrid``, its samples in [``start``, ``end``] the caller may see, in at
        most ``max_points`` points (slots of equal length over the span the samples cover; a slot with
        several samples is their mean)."""
        if end < start:
            raise ReadError(f"to ({end.isoformat()}) is before from ({start.isoformat()})")
        points = self.max_points if max_points is None else max_points
        if points < 1 or points > self.max_points:
            raise ReadError(f"maxPoints must be between 1 and {self.max_points}, got {points}")
        from_ms = int(start.timestamp() * 1000)
        to_ms = int(end.timestamp() * 1000)
        rows = await self.guard.read(
            _SERIES.format(visible=visible("s")),
            {
                "mrid": mrid,
                "from": start,
                "to": end,
                "lo": from_ms - self.interval_ms,
                "hi": to_ms,
                "points": points,
                "bookkeeping": sorted(BOOKKEEPING),
            },
        )
        by_key: dict[str, Series] = {}
        for row in rows:
            key = row["key"]
            found = by_key.get(key)
            if found is None:
                qname, unit = self._describe(key, row["classes"])
                found = by_key[key] = Series(key, qname, unit)
            found.points.append(
                Point(
                    time=datetime.fromtimestamp(row["t"] / 1000, start.tzinfo),
                    value=float(row["mean"]),
                    low=float(row["low"]),
                    high=float(row["high"]),
                    count=int(row["n"]),
                )
            )
        self.guard.stats.rows += sum(len(s.points) for s in by_key.values())
        return sorted(by_key.values(), key=lambda s: s.key)

    def _describe(self, key: str, classes: list[str]) -> tuple[str, str | None]:
        for cls in classes:
            if cls in self.ontology.classes:
                for attr in self.ontology.attributes_of(cls).values():
                    if attr.key == key:
                        return attr.qname, attr.unit
        return key, None


async def prune(
    driver: neo4j.AsyncDriver, database: str | None, now: datetime, retention_s: float, *, batch: int = 10_000
) -> int:
    """Delete the samples older than ``retention_s`` before ``now``, ``batch`` at a time; how many."""
    cutoff = now - timedelta(seconds=retention_s)
    total = 0
    while True:
        records, _, _ = await driver.execute_query(
            _PRUNE, {"cutoff": cutoff, "limit": batch}, database_=database
        )
        n = int(records[0]["n"]) if records else 0
        total += n
        if n < batch:
            return total
