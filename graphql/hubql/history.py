"""GraphQL over kept history (hub/history.py): ``history``, ``changes`` between two times, and the rows of
``object``/``objects`` at a valid time (``asOf``) and recorded time (``recordedAsOf``).

Rows of objects at a time are built like current ones, so their generated types show the attributes the
version holds; their associations are empty (the current graph's neighbours are not the past ones; a
version's references are listed by ``history``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types.info import Info

from hub.graph_schema import CLASS, DELETED, DOMAIN, EVENT_ID, LABEL, PRODUCER, RECORDED, VALID_FROM, VERSION
from hub.history import History, ObjectChange
from hub.reader import Subgraph
from hubql.generic import DOMAIN_BY_NAME, AttributeValue, Domain
from hubql.scalars import Long
from hubql.scenario_reader import history_in
from hubql.types import PREFETCHED_KEY


class NoAssociations(Mapping[str, list[Any]]):
    """The prefetched associations of a row at a past time: none, whichever the selection asks for."""

    def __getitem__(self, key: str) -> list[Any]:
        return []

    def get(self, key: str, default: Any = None) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def history_of(info: Info) -> History:
    ctx = info.context
    return History(ctx.guard, ctx.registry.ontology, max_page_size=ctx.services.settings.max_page_size)


def as_of_row(info: Info, state: dict[str, Any]) -> dict[str, Any]:
    """A state read from history as a row of the generated object types."""
    state.pop("references", None)
    row = info.context.row(state)
    row[PREFETCHED_KEY] = NoAssociations()
    return row


@strawberry.type(description="A reference a version states, to an object you may see now.")
class VersionReference:
    type: str
    target: strawberry.ID


@strawberry.type(
    description="One kept version of an object: its whole state after one applied upsert or delete."
)
class ObjectVersion:
    mrid: strawberry.ID
    version: Long
    class_name: str
    domain: Domain
    label: str
    producer: str
    event_id: str
    valid_from: datetime = strawberry.field(description="From when the version holds: the event's time.")
    recorded_at: datetime = strawberry.field(description="When the hub recorded the version.")
    deleted: bool = strawberry.field(description="The object was deleted (no attributes).")
    attributes: list[AttributeValue]
    references: list[VersionReference]


@strawberry.type(
    name="ObjectChange", description="An object whose state, as you may see it, differs between two times."
)
class ObjectChangeRow:
    mrid: strawberry.ID
    class_name: str
    change: str = strawberry.field(description="created, deleted or updated.")
    before: ObjectVersion | None
    after: ObjectVersion | None
    changed_keys: list[str] = strawberry.field(description="Attribute keys whose values differ.")


@strawberry.type(description="A page of changes, ordered by mRID.")
class ChangePage:
    changes: list[ObjectChangeRow]
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="The last mRID: pass as after for the next page.")


def version_of(info: Info, state: dict[str, Any]) -> ObjectVersion:
    ctx = info.context
    return ObjectVersion(
        mrid=strawberry.ID(state["mrid"]),
        version=Long(state.get(VERSION) or 0),
        class_name=state.get(CLASS) or "",
        domain=DOMAIN_BY_NAME.get(state.get(DOMAIN), Domain.ELECTRICITY),
        label=ctx.guard.label_text(state.get(LABEL)),
        producer=state.get(PRODUCER) or "",
        event_id=state.get(EVENT_ID) or "",
        valid_from=state[VALID_FROM],
        recorded_at=state[RECORDED],
        deleted=bool(state.get(DELETED)),
        attributes=ctx.registry.attributes(state),
        references=[
            VersionReference(type=t, target=strawberry.ID(m)) for t, m in state.get("references", [])
        ],
    )


def _values(state: dict[str, Any] | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {k: v for k, v in state.items() if not k.startswith("_") and k not in ("mrid", "references")}


def change_of(info: Info, change: ObjectChange) -> ObjectChangeRow:
    before, after = _values(change.before), _values(change.after)
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    either = change.after if change.after is not None else change.before
    return ObjectChangeRow(
        mrid=strawberry.ID(change.mrid),
        class_name=(either or {}).get(CLASS) or "",
        change=change.kind,
        before=None if change.before is None else version_of(info, change.before),
        after=None if change.after is None else version_of(info, change.after),
        changed_keys=keys,
    )


async def resolve_history(
    info: Info,
    mrid: strawberry.ID,
    recorded_as_of: datetime | None = None,
    first: int | None = None,
    after_version: Long | None = None,
    scenario: str | None = None,
) -> list[ObjectVersion]:
    reader = history_of(info)
    if scenario is not None:
        reader, _ = await history_in(info, scenario)
    states = await reader.versions(str(mrid), recorded_as_of, first=first, after_version=after_version)
    return [version_of(info, s) for s in states]


async def resolve_changes(
    info: Info,
    from_: Annotated[datetime, strawberry.argument(name="from")],
    to: datetime,
    recorded_as_of: datetime | None = None,
    class_name: str | None = None,
    domain: Domain | None = None,
    first: int | None = None,
    after: str | None = None,
) -> ChangePage:
    found, has_next = await history_of(info).changes(
        from_,
        to,
        recorded_as_of=recorded_as_of,
        class_name=class_name,
        domain=None if domain is None else domain.value,
        first=first,
        after=after,
    )
    return ChangePage(
        changes=[change_of(info, c) for c in found],
        has_next_page=has_next,
        end_cursor=found[-1].mrid if found else None,
    )


# Where an objects page at a time keeps its times, for its totalCount.
AS_OF_KEY = "_as_of"


async def objects_page(
    info: Info,
    args: dict[str, Any],
    first: int | None,
    after: str | None,
    as_of: datetime | None,
    recorded_as_of: datetime | None,
    reader: History | None = None,
) -> dict[str, Any]:
    """``objects`` at a time: the same connection as the current one (cursors are mRIDs here too).
    ``reader``: the history reader to use (a scenario's; default: the caller's)."""
    from hub.reader import ReadError, decode_page_cursor, encode_page_cursor
    from hubql.generic import PageInfo

    if args.get("bbox") is not None:
        raise ReadError("bbox cannot be combined with asOf, recordedAsOf or scenario")
    reader = reader if reader is not None else history_of(info)
    page = await reader.objects_at(
        as_of=as_of,
        recorded_as_of=recorded_as_of,
        class_name=args["class_name"],
        domain=args["domain"],
        name=args["name"],
        first=first,
        after=None if after is None else decode_page_cursor(after),
    )
    rows = [as_of_row(info, s) for s in page.rows]
    return {
        "edges": [{"cursor": encode_page_cursor(r["mrid"]), "node": r} for r in rows],
        "nodes": rows,
        "page_info": PageInfo(
            has_next_page=page.has_next, end_cursor=encode_page_cursor(rows[-1]["mrid"]) if rows else None
        ),
        "_args": args,
        AS_OF_KEY: (as_of, recorded_as_of, reader),
    }


async def count(info: Info, root: Mapping[str, Any]) -> int:
    as_of, recorded_as_of, reader = root[AS_OF_KEY]
    args = root["_args"]
    return await reader.count_at(
        as_of=as_of,
        recorded_as_of=recorded_as_of,
        class_name=args["class_name"],
        domain=args["domain"],
        name=args["name"],
    )


async def neighbourhood(
    info: Info,
    mrid: str,
    depth: int,
    types: list[str] | None,
    as_of: datetime | None,
    recorded_as_of: datetime | None,
    reader: History | None = None,
) -> Subgraph:
    settings = info.context.services.settings
    return await (reader if reader is not None else history_of(info)).neighbourhood_at(
        mrid,
        depth,
        types,
        as_of,
        recorded_as_of,
        max_depth=settings.max_neighbourhood_depth,
        max_nodes=settings.max_subgraph_nodes,
    )


async def containment(
    info: Info,
    mrid: str,
    depth: int,
    as_of: datetime | None,
    recorded_as_of: datetime | None,
    reader: History | None = None,
) -> Subgraph:
    ctx = info.context
    settings = ctx.services.settings
    types = sorted({a.rel_type for a in ctx.reader.containment_associations()})
    return await (reader if reader is not None else history_of(info)).neighbourhood_at(
        mrid,
        depth,
        types,
        as_of,
        recorded_as_of,
        max_depth=settings.max_neighbourhood_depth,
        max_nodes=settings.max_subgraph_nodes,
        inward=True,
    )


async def shortest_path(
    info: Info,
    source: str,
    target: str,
    physical: bool,
    as_of: datetime | None,
    recorded_as_of: datetime | None,
    reader: History | None = None,
) -> Subgraph | None:
    settings = info.context.services.settings
    return await (reader if reader is not None else history_of(info)).shortest_path_at(
        source,
        target,
        as_of,
        recorded_as_of,
        physical=physical,
        max_length=settings.max_path_length,
        max_nodes=settings.max_subgraph_nodes,
    )


HISTORY_FIELDS: dict[str, Any] = {
    "history": strawberry.field(
        resolver=resolve_history,
        description="The object's kept versions you may see (each by its own label), oldest first, at "
        "most first (capped by the server) after version afterVersion; recordedAsOf: only those the hub "
        "had recorded by then. scenario (a scenario's id): the object's versions in that scenario: its "
        "base's versions the hub had recorded by the scenario's base time (and by recordedAsOf), then "
        "the versions published into the scenario, each part by version (afterVersion skips versions up "
        "to it in both), references as they are in the scenario.",
    ),
    "changes": strawberry.field(
        resolver=resolve_changes,
        description="Objects whose state, as you may see it, differs between the valid times from and "
        "to, with the state at each end (null: absent or not visible to you).",
    ),
}
