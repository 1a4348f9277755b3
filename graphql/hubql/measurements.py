"""GraphQL over measurement history (hub/measurement_history.py): ``measurementHistory``, an object's recent
readings per measured attribute, downsampled by the server to at most ``maxPoints`` points each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import strawberry
from strawberry.types.info import Info

from hub.measurement_history import MeasurementHistory, Series
from hubql.scenario_reader import ScenarioRefused, history_in


@strawberry.type(description="The readings of one slot of time: their mean, least and greatest value.")
class MeasurementPoint:
    time: datetime = strawberry.field(description="The mean time of the readings in the slot.")
    value: float = strawberry.field(description="The mean of the readings in the slot.")
    min: float
    max: float
    count: int = strawberry.field(description="How many kept samples the slot holds.")


@strawberry.type(description="The kept readings of one measured attribute of an object, oldest first.")
class MeasurementSeries:
    key: str
    qname: str
    unit: str | None
    points: list[MeasurementPoint]


def _series(found: Series) -> MeasurementSeries:
    return MeasurementSeries(
        key=found.key,
        qname=found.qname,
        unit=found.unit,
        points=[
            MeasurementPoint(time=p.time, value=p.value, min=p.low, max=p.high, count=p.count)
            for p in found.points
        ],
    )


async def resolve_measurements(
    info: Info,
    mrid: strawberry.ID,
    from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
    to: datetime | None = None,
    max_points: int | None = None,
    scenario: Annotated[
        str | None,
        strawberry.argument(
            description="A scenario's id: refused (once the scenario is known to you), since a "
            "scenario holds no readings; ask without it for the live object's."
        ),
    ] = None,
) -> list[MeasurementSeries]:
    ctx = info.context
    if scenario is not None:
        await history_in(info, scenario)
        raise ScenarioRefused(
            "measurementHistory cannot be asked in a scenario: a scenario holds planned changes to "
            "objects, never readings; ask without scenario for the live object's readings"
        )
    settings = ctx.services.settings
    end = to if to is not None else datetime.now(UTC)
    start = from_ if from_ is not None else end - timedelta(hours=24)
    reads = MeasurementHistory(
        ctx.guard,
        ctx.registry.ontology,
        interval_s=settings.measurement_history_interval_s,
        max_points=settings.measurement_history_max_points,
    )
    return [_series(s) for s in await reads.series(str(mrid), start, end, max_points)]


MEASUREMENT_FIELDS: dict[str, Any] = {
    "measurement_history": strawberry.field(
        resolver=resolve_measurements,
        description="The object's kept readings you may see (each sample by its object's label when it "
        "was taken), per measured attribute, between from and to (default: the last 24 hours up to now), "
        "in at most maxPoints points each (slots of equal length over the span the readings cover, a "
        "slot's readings averaged; the server caps it). Readings are kept for a bounded time "
        "(measurement_history_retention_s). Not in a scenario: a scenario holds no readings, so "
        "scenario: is refused (a scenario you may not see, as one that does not exist).",
    ),
}
