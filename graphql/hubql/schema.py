"""The schema: generated object types, the generic queries, the ``changes`` subscription, and guard rails.

Resolvers only translate arguments and shape rows; every read is a :class:`hub.reader.Reader` method
running through the caller's :class:`hub.guard.Guard`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType
from strawberry.types.info import Info
from strawberry.types.nodes import SelectedField

from graphql import GraphQLError, GraphQLSchema, NoSchemaIntrospectionCustomRule
from hub import reader as rd
from hub.auth import AuthError
from hub.graph_schema import CLASS
from hub.name_search import SearchTextError
from hub.settings import Settings, get_settings
from hubql import history, prefetch, scenario_reader, scenarios
from hubql.access import MUTATIONS as ACCESS_MUTATIONS
from hubql.access import QUERIES as ACCESS_QUERIES
from hubql.admission import Admission, TooBusy, admit
from hubql.cost import Limits, cost_rule
from hubql.data_products import QUERIES as PRODUCT_QUERIES
from hubql.execution import HubExecutionContext
from hubql.extensions import AuditExtension, CachedParsing
from hubql.feedback import MUTATIONS as FEEDBACK_MUTATIONS
from hubql.feedback import QUERIES as FEEDBACK_QUERIES
from hubql.generic import (
    DOMAIN_BY_NAME,
    Caller,
    Change,
    ClassCount,
    DependencyDirection,
    DependencyReport,
    Domain,
    OntologyClass,
    PageInfo,
    PathVia,
    SearchHit,
    Subgraph,
    graph_node,
    resolve_from_source,
)
from hubql.measurements import MEASUREMENT_FIELDS
from hubql.projection import selected_properties
from hubql.scalars import SCALAR_MAP
from hubql.subscriptions import change_stream
from hubql.typed import build as build_typed
from hubql.types import ROOT, TypeRegistry, build_types
from ontology.loader import load_ontology
from ontology.model import Ontology

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"

# Errors whose message is meant for the client (bad arguments, authentication); all others are masked
# outside dev mode, since a driver or engine message could describe data.
CLIENT_ERRORS: tuple[type[Exception], ...] = (rd.ReadError, AuthError, InvalidOperationTypeError, TooBusy)


def _domain_name(domain: Domain | None) -> str | None:
    return None if domain is None else domain.value


def bounded_list(info: Info, name: str, values: list[Any] | None) -> list[Any] | None:
    """A list argument without duplicates, refused when longer than ``max_list_items``.

    Lists reach Cypher as parameters or, for relationship types, as alternatives in the pattern; a
    30,000-entry list of one type once drove Neo4j's planner into a stack overflow.
    """
    if values is None:
        return None
    limit = info.context.services.settings.max_list_items
    if len(values) > limit:
        raise rd.ReadError(
            f"{name} has {len(values)} entries; at most {limit} are allowed (HUB_MAX_LIST_ITEMS)"
        )
    unique = list(dict.fromkeys(values))
    return unique


def subgraph_row(info: Info, graph: rd.Subgraph) -> dict[str, Any]:
    ctx = info.context
    label_text = ctx.guard.label_text
    registry: TypeRegistry = ctx.registry
    nodes = graph.nodes
    edges = []
    for e in graph.edges:
        source_class = nodes[e.source][CLASS] if e.source in nodes else None
        edges.append(
            {
                "source": e.source,
                "target": e.target,
                "type": e.type,
                "key": registry.edge_key(source_class, e.type),
            }
        )
    return {"nodes": [graph_node(n, label_text) for n in nodes.values()], "edges": edges}


# --------------------------------------------------------------------------------------- resolvers


def _me(info: Info) -> Caller:
    c = info.context.require_caller()
    return Caller(
        subject=c.subject,
        org=c.org,
        clearance=c.clearance,
        roles=list(c.roles),
        groups=list(c.groups),
        anonymous=c.anonymous,
        issuer=c.issuer,
        granted=sorted(info.context.services.desk.book.granted(c)),
        data_officer_of=info.context.services.desk.officer_of(c),
    )


def _prefetch(info: Info, *path: str) -> tuple[rd.Prefetch, ...]:
    """Associations the selection asks for on the objects at ``path`` below this field."""
    selections = (
        prefetch.child(info.selected_fields[0].selections, *path)
        if path
        else (info.selected_fields[0].selections)
    )
    return prefetch.plan(info.context.registry, ROOT, selections)


def _properties(info: Info, *paths: tuple[str, ...]) -> rd.Fields:
    """The stored properties selected on the objects at any of ``paths`` below this field."""
    selected = info.selected_fields[0].selections
    registry = info.context.registry
    found: rd.Fields = frozenset()
    for path in paths:
        selections = prefetch.child(selected, *path) if path else selected
        found = rd.merge_fields(found, selected_properties(registry, ROOT, selections))
    return found


async def _object(
    info: Info,
    mrid: strawberry.ID,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> Any:
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, found = await scenario_reader.history_in(info, scenario)
        state = await reader.object_at(str(mrid), None, found.base)
        return None if state is None else history.as_of_row(info, state)
    if as_of is not None or recorded_as_of is not None:
        state = await history.history_of(info).object_at(str(mrid), as_of, recorded_as_of)
        return None if state is None else history.as_of_row(info, state)
    wanted = _prefetch(info)
    props = await info.context.reader.object(str(mrid), wanted, _properties(info, ()))
    return info.context.row(props, wanted) if props is not None else None


async def _objects(
    info: Info,
    class_name: str | None = None,
    domain: Domain | None = None,
    name: str | None = None,
    bbox: list[float] | None = None,
    first: int | None = None,
    after: str | None = None,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> Any:
    ctx = info.context
    if bbox is not None and len(bbox) != 4:
        raise rd.ReadError(f"bbox must be [minX, minY, maxX, maxY], got {len(bbox)} numbers")
    args = {"class_name": class_name, "domain": _domain_name(domain), "name": name, "bbox": bbox}
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, found = await scenario_reader.history_in(info, scenario)
        return await history.objects_page(info, args, first, after, None, found.base, reader)
    if as_of is not None or recorded_as_of is not None:
        return await history.objects_page(info, args, first, after, as_of, recorded_as_of)
    wanted = prefetch.merge(_prefetch(info, "nodes"), _prefetch(info, "edges", "node"))
    fields = _properties(info, ("nodes",), ("edges", "node"))
    page = await ctx.reader.objects(first=first, after=after, prefetch=wanted, fields=fields, **args)
    rows = ctx.rows(page.rows, wanted)
    encode = rd.encode_page_cursor
    # A cursor per object only when the selection has edges (most clients page with nodes and endCursor).
    selected = info.selected_fields[0].selections
    edges = (
        [{"cursor": encode(r["mrid"]), "node": r} for r in rows]
        if prefetch.selects(selected, "edges")
        else []
    )
    end_cursor = encode(rows[-1]["mrid"]) if rows else None
    return {
        "edges": edges,
        "nodes": rows,
        "page_info": PageInfo(has_next_page=page.has_next, end_cursor=end_cursor),
        "_args": args,
    }


async def _total_count(root: Any, info: Info) -> int:
    if history.AS_OF_KEY in root:
        return await history.count(info, root)
    return await info.context.reader.count_objects(**root["_args"])


async def _search(
    info: Info,
    text: str,
    first: int | None = 20,
    class_name: Annotated[
        str | None, strawberry.argument(description="Only objects of this class (subclasses included).")
    ] = None,
    fuzzy: Annotated[
        bool,
        strawberry.argument(
            description="Also accept each word of at least three characters within one edit (a "
            "character changed, added or dropped, two swapped) of the start of a word of a name."
        ),
    ] = False,
    scenario: Annotated[
        str | None,
        strawberry.argument(
            description="A scenario's id: search the objects as they are in that scenario (each "
            "judged by its own version's label), matching the same words against their names."
        ),
    ] = None,
) -> list[SearchHit]:
    size = 20 if first is None else first
    if scenario is not None:
        reader, _ = await scenario_reader.history_in(info, scenario)
        ctx = info.context
        names = ctx.reader.names
        try:
            patterns = names.patterns(text, fuzzy=fuzzy)
        except SearchTextError as exc:
            raise rd.ReadError(str(exc)) from None
        states = await reader.search(
            text,
            ctx.reader.page_size(first, default=20),
            patterns,
            names.properties,
            class_name,
        )
        return [graph_node(n, ctx.guard.label_text) for n in states]  # type: ignore[misc]
    found = await info.context.reader.search(
        text, size, class_name=class_name, fuzzy=fuzzy, fields=_properties(info, ())
    )
    return [graph_node(n, info.context.guard.label_text) for n in found]  # type: ignore[misc]


async def _neighbourhood(
    info: Info,
    mrid: strawberry.ID,
    depth: int | None = 1,
    types: list[str] | None = None,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> Subgraph:
    types = bounded_list(info, "types", types)
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, found = await scenario_reader.history_in(info, scenario)
        graph = await history.neighbourhood(
            info, str(mrid), 1 if depth is None else depth, types, None, found.base, reader
        )
        return subgraph_row(info, graph)  # type: ignore[return-value]
    if as_of is not None or recorded_as_of is not None:
        graph = await history.neighbourhood(
            info, str(mrid), 1 if depth is None else depth, types, as_of, recorded_as_of
        )
        return subgraph_row(info, graph)  # type: ignore[return-value]
    fields = _properties(info, ("nodes",))
    graph = await info.context.reader.neighbourhood(str(mrid), 1 if depth is None else depth, types, fields)
    return subgraph_row(info, graph)  # type: ignore[return-value]


async def _relations_among(
    info: Info,
    mrids: list[strawberry.ID],
    types: list[str] | None = None,
    scenario: str | None = None,
) -> Subgraph:
    wanted = bounded_list(info, "mrids", [str(m) for m in mrids]) or []
    types = bounded_list(info, "types", types)
    if scenario is not None:
        reader, chosen = await scenario_reader.history_in(info, scenario)
        found = await reader.relations_among_at(wanted, types, None, chosen.base)
        return subgraph_row(info, found)  # type: ignore[return-value]
    fields = _properties(info, ("nodes",))
    graph = await info.context.reader.relations_among(wanted, types, fields)
    return subgraph_row(info, graph)  # type: ignore[return-value]


async def _shortest_path(
    info: Info,
    from_: Annotated[strawberry.ID, strawberry.argument(name="from")],
    to: strawberry.ID,
    via: PathVia = PathVia.PHYSICAL,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> Subgraph | None:
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, chosen = await scenario_reader.history_in(info, scenario)
        path = await history.shortest_path(
            info, str(from_), str(to), via is PathVia.PHYSICAL, None, chosen.base, reader
        )
        return None if path is None else subgraph_row(info, path)  # type: ignore[return-value]
    if as_of is not None or recorded_as_of is not None:
        found = await history.shortest_path(
            info, str(from_), str(to), via is PathVia.PHYSICAL, as_of, recorded_as_of
        )
        return None if found is None else subgraph_row(info, found)  # type: ignore[return-value]
    graph = await info.context.reader.shortest_path(
        str(from_), str(to), physical=via is PathVia.PHYSICAL, fields=_properties(info, ("nodes",))
    )
    return None if graph is None else subgraph_row(info, graph)  # type: ignore[return-value]


async def _containment(
    info: Info,
    mrid: strawberry.ID,
    depth: int | None = 3,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> Subgraph:
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, found = await scenario_reader.history_in(info, scenario)
        graph = await history.containment(
            info, str(mrid), 3 if depth is None else depth, None, found.base, reader
        )
        return subgraph_row(info, graph)  # type: ignore[return-value]
    if as_of is not None or recorded_as_of is not None:
        graph = await history.containment(
            info, str(mrid), 3 if depth is None else depth, as_of, recorded_as_of
        )
        return subgraph_row(info, graph)  # type: ignore[return-value]
    fields = _properties(info, ("nodes",))
    graph = await info.context.reader.containment(str(mrid), 3 if depth is None else depth, fields)
    return subgraph_row(info, graph)  # type: ignore[return-value]


async def _dependencies(
    info: Info,
    mrid: strawberry.ID,
    direction: Annotated[
        DependencyDirection,
        strawberry.argument(
            description="DOWNSTREAM: what depends on the object; UPSTREAM: what the object depends on."
        ),
    ] = DependencyDirection.DOWNSTREAM,
    as_of: datetime | None = None,
    recorded_as_of: datetime | None = None,
    scenario: str | None = None,
) -> DependencyReport:
    upstream = direction == DependencyDirection.UPSTREAM
    if scenario is not None:
        scenario_reader.refuse_times(as_of, recorded_as_of)
        reader, found = await scenario_reader.history_in(info, scenario)
        root, steps, graph = await reader.dependencies_at(
            str(mrid), None, found.base, info.context.reader, upstream=upstream
        )
    elif as_of is not None or recorded_as_of is not None:
        root, steps, graph = await history.history_of(info).dependencies_at(
            str(mrid), as_of, recorded_as_of, info.context.reader, upstream=upstream
        )
    else:
        fields = _properties(info, ("root",), ("dependents",), ("steps", "dependents"), ("subgraph", "nodes"))
        root, steps, graph = await info.context.reader.dependencies(str(mrid), fields, upstream=upstream)
    label_text = info.context.guard.label_text
    rows: list[dict[str, Any]] = [
        {
            "depth": step.depth,
            "domain": DOMAIN_BY_NAME[step.domain],
            "dependents": [graph_node(n, label_text) for n in step.dependents],
            "capacity_mw": step.capacity_mw,
        }
        for step in steps
    ]
    stated = [step.capacity_mw for step in steps if step.capacity_mw is not None]
    return {  # type: ignore[return-value]
        "root": graph_node(root, label_text) if root is not None else None,
        "dependents": [node for row in rows for node in row["dependents"]],
        "capacity_mw": sum(stated) if stated else None,
        "steps": rows,
        "subgraph": subgraph_row(info, graph),
    }


async def _counts(info: Info, domain: Domain | None = None, scenario: str | None = None) -> list[ClassCount]:
    if scenario is not None:
        reader, _ = await scenario_reader.history_in(info, scenario)
        found = await reader.counts(_domain_name(domain))
    else:
        found = await info.context.reader.counts(_domain_name(domain))
    return [ClassCount(class_name=c, count=n) for c, n in found]


def _ontology_classes(info: Info) -> list[OntologyClass]:
    ontology: Ontology = info.context.services.ontology
    return [
        OntologyClass(
            name=c.name,
            domain=Domain(c.domain),
            parents=list(c.parents),
            abstract=c.abstract,
            description=c.description,
        )
        for c in sorted(ontology.classes.values(), key=lambda c: c.name)
    ]


def _selects(info: Info, name: str) -> bool:
    """Whether the operation's selection on this field includes ``name`` (a fragment counts as yes:
    resolving its type conditions is not worth it for one flag)."""
    for field in info.selected_fields:
        for sub in field.selections:
            if not isinstance(sub, SelectedField) or sub.name == name:
                return True
    return False


async def _changes(
    info: Info,
    class_names: list[str] | None = None,
    domain: Domain | None = None,
    mrids: list[strawberry.ID] | None = None,
    after: str | None = None,
) -> AsyncGenerator[Change, None]:
    class_names = bounded_list(info, "classNames", class_names)
    wanted = bounded_list(info, "mrids", [str(m) for m in mrids] if mrids is not None else None)
    # Caps on open subscriptions per socket and per caller: see hubql.subscriptions.
    with_node = _selects(info, "node")
    stream = change_stream(info.context, class_names, _domain_name(domain), wanted, after, with_node)
    async for row in stream:
        yield row  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ schema


def strawberry_name(python_name: str) -> str:
    """The GraphQL name Strawberry gives a root field declared without one (snake to camel case)."""
    head, *rest = python_name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, CLIENT_ERRORS)


def build_schema(ontology: Ontology, settings: Settings) -> tuple[strawberry.Schema, TypeRegistry]:
    registry = build_types(ontology)
    identified = registry.root

    object_edge = strawberry.type(
        type("ObjectEdge", (), {"__annotations__": {"cursor": str, "node": identified}}),
        name="ObjectEdge",
    )
    connection = strawberry.type(
        type(
            "ObjectConnection",
            (),
            {
                "__annotations__": {
                    "edges": list[object_edge],  # type: ignore[valid-type]
                    "nodes": list[identified],  # type: ignore[valid-type]
                    "page_info": PageInfo,
                },
                "total_count": strawberry.field(
                    resolver=_total_count, description="Visible objects matching the filters (all pages)."
                ),
            },
        ),
        name="ObjectConnection",
        description="A page of objects, ordered by mRID.",
    )

    query_ns: dict[str, Any] = {
        "me": strawberry.field(resolver=_me, description="The caller as the access guard sees them."),
        **history.HISTORY_FIELDS,
        **MEASUREMENT_FIELDS,
        "object": strawberry.field(
            resolver=_object,
            graphql_type=identified | None,  # type: ignore[operator]
            description="One object by mRID; null when not found (the same answer for objects you may "
            "not see). asOf (valid time) and recordedAsOf (what the hub had recorded then): the object's "
            "state at that time from its kept history, judged by that version's own label; associations "
            "are empty then. scenario (a scenario's id): the object in that scenario (its latest version "
            "there, else its base version), judged by that version's own label.",
        ),
        "objects": strawberry.field(
            resolver=_objects,
            graphql_type=connection,
            description="Objects by class (subclasses included), domain, name text and bounding box "
            "[minX, minY, maxX, maxY]; cursor pagination, page size capped by the server. asOf and "
            "recordedAsOf: the objects at that time, as object does (not with bbox); scenario: the "
            "objects in that scenario, likewise.",
        ),
        "search": strawberry.field(
            resolver=_search,
            description="The object whose mRID is the text, then objects with a name (name, short name, "
            'EIC code, alias) in which every word of the text starts a word ("sub nor" finds '
            '"Substation North"), through the full-text index; shortest names first, then by mRID. '
            "scenario: the same among the objects in that scenario.",
        ),
        "neighbourhood": strawberry.field(
            resolver=_neighbourhood,
            description="Objects within depth hops through visible objects, and the relationships "
            "among them. asOf and recordedAsOf: the same at that time, from kept history (references as "
            "the objects' states then stated them, to objects that existed then); scenario: the same "
            "in that scenario.",
        ),
        "relations_among": strawberry.field(
            resolver=_relations_among,
            description="The objects of mrids you may see and the relationships among them (both ends "
            "in the list and visible), in one request: a view that already holds objects gets their "
            "relationships at once. An mRID you may not see is left out exactly as one that does not "
            "exist. types: only these relationship types. scenario (a scenario's id): the objects and "
            "references as they are in that scenario, each object judged by its own version's label.",
        ),
        "shortest_path": strawberry.field(
            resolver=_shortest_path,
            description="A shortest path through visible objects only; null if none. By default (via: "
            "PHYSICAL) it follows the physical network between two objects on it; via: ANY follows any "
            "relationship. asOf and recordedAsOf: the same at that time, from kept history, through "
            "objects whose version then you may see; scenario (a scenario's id): the same in that "
            "scenario, through objects whose state there (its latest version there, else its base "
            "version) you may see.",
        ),
        "containment": strawberry.field(
            resolver=_containment,
            description="What an object contains (substation -> voltage levels -> bays -> equipment). "
            "asOf and recordedAsOf: what it contained at that time, from kept history; scenario: what it "
            "contains in that scenario.",
        ),
        "dependencies": strawberry.field(
            resolver=_dependencies,
            description="Cross-domain dependents, transitively: from a gas asset the generating units it "
            "supplies through the gas network; from an electricity asset the gas assets it powers and what "
            "they supply in turn; step by step, with the generating capacity at stake. direction: UPSTREAM "
            "follows the same ways back to what the object depends on (generating unit -> offtake -> gas "
            "upstream -> compressor -> electricity supply). Only through objects you may see; each object "
            "is reached once, so cycles end. asOf and recordedAsOf: the same at that "
            "time, from kept history, walking only objects whose version then you may see; scenario: "
            "the same in that scenario, walking only objects whose state there you may see.",
        ),
        "counts": strawberry.field(
            resolver=_counts,
            description="Visible objects per class; scenario (a scenario's id): those visible in that "
            "scenario, each by its own version's label.",
        ),
        "ontology_classes": strawberry.field(
            resolver=_ontology_classes, description="The ontology's classes."
        ),
    }
    query_ns.update(ACCESS_QUERIES)
    query_ns.update(PRODUCT_QUERIES)
    query_ns.update(FEEDBACK_QUERIES)
    query_ns.update(scenarios.QUERIES)
    typed = build_typed(registry, settings, {strawberry_name(k) for k in query_ns})
    query_ns.update(typed.fields)
    query = strawberry.type(type("Query", (), query_ns), name="Query")
    mutation = strawberry.type(
        type("Mutation", (), {**ACCESS_MUTATIONS, **FEEDBACK_MUTATIONS, **scenarios.MUTATIONS}),
        name="Mutation",
    )
    subscription = strawberry.type(
        type(
            "Subscription",
            (),
            {
                "changes": strawberry.subscription(
                    resolver=_changes,
                    description="Live changes to objects you may see now; filters by class (subclasses "
                    "included), domain, mRIDs; resume after a cursor of an earlier change.",
                )
            },
        ),
        name="Subscription",
    )
    # The depth and alias rules are built once: every request then checks against the same rule classes,
    # so the validation cache can recognise a document it has already checked (clients send the same few
    # documents over and over). Parsing is cached the same way, under the token limit.
    limits = Limits(
        settings.max_neighbourhood_depth,
        settings.max_page_size,
        max_list_items=settings.max_list_items,
        typed_pages=typed.pages,
        typed_aggregates=typed.aggregates,
        max_filter_depth=settings.max_filter_depth,
    )
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        cost_rule(settings.max_operation_cost, limits),
    ]
    if not settings.dev_mode:
        # The schema is published (graphql/schema.graphql); a production API does not describe itself to
        # anyone who asks, token or not.
        limit_rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        CachedParsing,
        ValidationCache,
        AuditExtension,
    ]
    if not settings.dev_mode:
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask, error_message="Internal error."))
    schema = HubSchema(
        settings,
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=registry.all_types(),
        config=StrawberryConfig(default_resolver=resolve_from_source, scalar_map=SCALAR_MAP),
        extensions=extensions,
        execution_context_class=HubExecutionContext if settings.api_leaf_fast_path else None,
    )
    if settings.api_trim_inherited_descriptions:
        _drop_inherited_descriptions(schema)
    return schema, registry


class HubSchema(strawberry.Schema):
    """The schema, with every operation over HTTP admitted through :mod:`hubql.admission`: a deadline
    for the whole operation, a cap on the operations one caller runs at once and one on the process's."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.admission = Admission(
            settings.max_concurrent_operations,
            settings.query_timeout_s,
            max_total=settings.api_max_running_operations,
            wait_s=settings.api_admission_wait_s,
        )

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context_value")

        async def run() -> Any:
            return await super(HubSchema, self).execute(*args, **kwargs)

        return await admit(self.admission, context, run)

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        # The websocket runs subscriptions only: a query or mutation sent there would escape the
        # deadline and the per-caller cap that HTTP applies.
        kwargs["allowed_operation_types"] = (OperationType.SUBSCRIPTION,)
        return await super().stream(*args, **kwargs)


def graphql_core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built: the one place that reaches it. Strawberry keeps it in
    ``Schema._schema`` and offers no public accessor (strawberry-graphql is pinned to the tested range;
    see docs/performance.md)."""
    return schema._schema


def _drop_inherited_descriptions(schema: strawberry.Schema) -> None:
    """Describe each field once, where it is declared: the SDL and introspection stay a sensible size
    (hundreds of CIM classes inherit dozens of documented fields each)."""
    from graphql import GraphQLInterfaceType, GraphQLObjectType

    for gtype in graphql_core_schema(schema).type_map.values():
        if not isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType) or not gtype.interfaces:
            continue
        inherited = {name for iface in gtype.interfaces for name in iface.fields}
        for name, fld in gtype.fields.items():
            if name in inherited:
                fld.description = None


def export_sdl(settings: Settings | None = None) -> str:
    """The schema in SDL, as checked in at ``graphql/schema.graphql``."""
    schema, _ = build_schema(load_ontology(), settings or get_settings())
    return schema.as_str() + "\n"
