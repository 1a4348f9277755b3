"""Scenarios in the schema (hub/scenarios.py): creating, listing and deleting them, and ``compare``. The
history reader that reads with ``scenario:`` use is hubql/scenario_reader.py.

Every reference to a scenario is its id, which the hub assigns when it is created; its name is a display
name only. A scenario the caller may not see is answered exactly as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types.info import Info

from hub import scenarios as sc
from hubql.history import ChangePage, change_of
from hubql.scenario_reader import ScenarioRefused, history_in


@strawberry.type(
    name="Scenario",
    description="A base (the live graph as the hub had recorded it at baseTime) with difference models "
    "and events applied on top, apart from the live graph.",
)
class ScenarioView:
    id: strawberry.ID = strawberry.field(
        description="Assigned by the hub when the scenario is created; what every reference to it uses "
        "(scenario: arguments, compare, deleteScenario, hub produce --scenario)."
    )
    name: str = strawberry.field(description="A display name; other scenarios may have the same one.")
    owner: str = strawberry.field(description="Who created it (and alone may delete it).")
    label: str = strawberry.field(description="The scenario's own security label.")
    producers: list[str] = strawberry.field(description="The data products that may publish into it.")
    base_time: datetime = strawberry.field(description="The live graph's time the scenario starts from.")
    created_at: datetime
    description: str


def view(info: Info, s: sc.Scenario) -> ScenarioView:
    return ScenarioView(
        id=strawberry.ID(s.id),
        name=s.name,
        owner=s.owner,
        label=info.context.guard.label_text(s.label_id),
        producers=list(s.producers),
        base_time=s.base,
        created_at=s.created,
        description=s.description,
    )


def _store(info: Info) -> sc.ScenarioStore:
    services = info.context.services
    return sc.ScenarioStore(services.driver, services.settings.neo4j_database)


async def scenario(info: Info, id: strawberry.ID) -> ScenarioView | None:
    found = await sc.find(info.context.guard, id)
    return None if found is None else view(info, found)


async def scenarios(info: Info) -> list[ScenarioView]:
    return [view(info, s) for s in await sc.listed(info.context.guard)]


async def compare(
    info: Info, scenario: str, first: int | None = None, after: str | None = None
) -> ChangePage:
    reader, _ = await history_in(info, scenario)
    found, has_next = await reader.compare(first=first, after=after)
    return ChangePage(
        changes=[change_of(info, c) for c in found],
        has_next_page=has_next,
        end_cursor=found[-1].mrid if found else None,
    )


async def create_scenario(
    info: Info,
    name: str,
    label: str,
    producers: list[str],
    base_time: datetime | None = None,
    description: str | None = None,
) -> ScenarioView:
    ctx = info.context
    caller = ctx.require_caller()
    if caller.anonymous:
        raise ScenarioRefused("creating a scenario needs a signed-in caller")
    try:
        made = await sc.create(
            _store(info),
            ctx.guard,
            name=name,
            owner=caller.principal,
            authorizations=caller.authorizations,
            label=label,
            producers=producers,
            base=base_time,
            description=description or "",
        )
    except sc.ScenarioError as exc:
        raise ScenarioRefused(str(exc)) from None
    return view(info, made)


async def delete_scenario(info: Info, id: strawberry.ID) -> bool:
    ctx = info.context
    caller = ctx.require_caller()
    try:
        await sc.delete(_store(info), ctx.guard, id, caller.principal)
    except sc.ScenarioError as exc:
        raise ScenarioRefused(str(exc)) from None
    return True


QUERIES: dict[str, Any] = {
    "scenario": strawberry.field(
        resolver=scenario,
        description="One scenario by id; null when there is none or you may not see its label.",
    ),
    "scenarios": strawberry.field(
        resolver=scenarios, description="The scenarios you may see, by name (then creation)."
    ),
    "compare": strawberry.field(
        resolver=compare,
        description="Objects whose state in the scenario differs from its base, as you may see each (by "
        "its own version's label), by mRID: created (added in the scenario), deleted (removed in it) or "
        "updated (attributes, references, class or label changed), with the base state as before and the "
        "scenario's as after.",
    ),
}

MUTATIONS: dict[str, Any] = {
    "create_scenario": strawberry.mutation(
        resolver=create_scenario,
        description="Create a scenario you own, named name (a display name, not unique), labelled label "
        "(which you must satisfy), based on the live graph at baseTime (default: now), into which the data "
        "products producers may publish (hub produce --scenario ID). Returns it with the id the hub "
        "assigned it, which every reference to it uses.",
    ),
    "delete_scenario": strawberry.mutation(
        resolver=delete_scenario,
        description="Delete a scenario you own, with everything published into it.",
    ),
}
