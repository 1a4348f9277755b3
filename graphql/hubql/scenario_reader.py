"""The history reader of a scenario the caller may see (hub/scenarios.py): what every read with
``scenario:`` goes through, and the refusal it answers with for a scenario that does not exist or is
hidden (in the same words for both)."""

from __future__ import annotations

from datetime import datetime

from strawberry.types.info import Info

from hub import scenarios as sc
from hub.history import History
from hub.reader import ReadError


class ScenarioRefused(ReadError):
    """A refused scenario request (its message is meant for the client)."""


async def history_in(info: Info, scenario_id: str) -> tuple[History, sc.Scenario]:
    """The history reader of scenario ``scenario_id`` (ScenarioRefused when it does not exist or is
    hidden)."""
    ctx = info.context
    try:
        found = await sc.require(ctx.guard, scenario_id)
    except sc.ScenarioError as exc:
        raise ScenarioRefused(str(exc)) from None
    reader = History(
        ctx.guard, ctx.registry.ontology, max_page_size=ctx.services.settings.max_page_size, scenario=found
    )
    return reader, found


def refuse_times(as_of: datetime | None, recorded_as_of: datetime | None) -> None:
    if as_of is not None or recorded_as_of is not None:
        raise ScenarioRefused(
            "scenario cannot be combined with asOf or recordedAsOf (its base time is fixed)"
        )
