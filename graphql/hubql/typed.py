"""Typed root fields per ontology class, generated with the schema: pages with ``where``, ``orderBy`` and
cursors, and aggregates.

For a class ``ACLineSegment`` the schema gets:

- ``acLineSegments(where: ACLineSegmentWhere, orderBy: [ACLineSegmentSort!], first: Int, after: String):
  ACLineSegmentConnection!``: objects of the class (subclasses included) as the class's own type, with
  ``totalCount``, ``pageInfo`` and per-object cursors;
- ``acLineSegmentAggregate(where: ACLineSegmentWhere, groupBy: ACLineSegmentField): ACLineSegmentAggregate!``:
  count, and min / max / avg / sum of each numeric attribute, over all matching objects and per group;
- the input types: ``ACLineSegmentWhere`` (an operator input per attribute, by datatype; the generic fields;
  one ``<Target>RelationFilter`` with ``some`` / ``none`` / ``all`` / ``single`` per association the object
  type shows; ``AND`` / ``OR`` / ``NOT``), ``ACLineSegmentSort`` and the enumeration ``ACLineSegmentField``.

The Cypher is :mod:`hub.typed_pages`', :mod:`hub.filters`' and :mod:`hub.aggregates`'; every read goes
through the caller's guard, and relationship filters only look at objects the caller may see.

Both take ``scenario:`` (a scenario's id): the same filter, order, cursors, ``totalCount`` and aggregates
over each object's state in that scenario (:meth:`hub.history.History.visible_states`), as
``objects(scenario:)`` reads them: associations are empty there, and relationship filters and
``groupByRelated`` read the related objects' states there (the references their states state).
"""

from __future__ import annotations

import asyncio
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final

import strawberry
import structlog
from strawberry import UNSET
from strawberry.scalars import JSON
from strawberry.types.info import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from hub import aggregates, typed_pages
from hub.filters import GENERIC_FIELDS, FilterCompiler, FilterError, FilterLimits, filterable_attributes
from hub.history import States
from hub.ordering import SORTABLE_GENERIC, sort_keys
from hub.reader import merge_fields
from hub.settings import Settings
from hubql import prefetch
from hubql.generic import Domain, PageInfo
from hubql.history import as_of_row
from hubql.projection import selected_properties
from hubql.scalars import Long, native
from hubql.scenario_reader import history_in
from hubql.types import TypeRegistry
from ontology.model import Ontology

log = structlog.get_logger(__name__)

# Suffixes of the generated names; an ontology class ending so could clash (checked at build).
SUFFIXES: Final = (
    "Where",
    "RelationFilter",
    "Field",
    "Sort",
    "Edge",
    "Connection",
    "Numbers",
    "Aggregate",
    "AggregateGroup",
)


# ------------------------------------------------------------------------------------ shared inputs


@strawberry.enum(description="Sort direction; missing values come last either way.")
class SortDirection(Enum):
    ASC = "asc"
    DESC = "desc"


def _op_input(name: str, scalar: Any, ops: Sequence[str], description: str) -> type:
    annotations: dict[str, Any] = {}
    ns: dict[str, Any] = {"__annotations__": annotations, "__doc__": description}
    docs = {
        "eq": "Equal to.",
        "in": "Equal to one of.",
        "lt": "Less than.",
        "lte": "Less than or equal to.",
        "gt": "Greater than.",
        "gte": "Greater than or equal to.",
        "contains": "Contains the text (case-sensitive).",
        "startsWith": "Starts with the text (case-sensitive).",
        "isNull": "true: the value is missing; false: it is present.",
    }
    for op in ops:
        py = {"in": "in_", "isNull": "is_null", "startsWith": "starts_with"}.get(op, op)
        annotations[py] = (
            (bool | None) if op == "isNull" else (list[scalar] | None if op == "in" else scalar | None)
        )
        ns[py] = strawberry.field(name=op, default=strawberry.UNSET, description=docs[op])
    return strawberry.input(type(name, (), ns), name=name, description=description)


_ORDERED = ("eq", "in", "lt", "lte", "gt", "gte", "isNull")
_TEXT = ("eq", "in", "contains", "startsWith", "isNull")
FloatFilter = _op_input("FloatFilter", float, _ORDERED, "Comparisons of a Float attribute.")
IntFilter = _op_input("IntFilter", int, _ORDERED, "Comparisons of an Int attribute.")
LongFilter = _op_input("LongFilter", Long, _ORDERED, "Comparisons of a Long value.")
DateTimeFilter = _op_input("DateTimeFilter", datetime, _ORDERED, "Comparisons of a DateTime value.")
StringFilter = _op_input("StringFilter", str, _TEXT, "Comparisons of a String value.")
BooleanFilter = _op_input("BooleanFilter", bool, ("eq", "isNull"), "Comparisons of a Boolean attribute.")
IdFilter = _op_input("IdFilter", strawberry.ID, ("eq", "in", "startsWith"), "Comparisons of an mRID.")
DomainFilter = _op_input("DomainFilter", Domain, ("eq", "in"), "The object's domain.")
ChoiceFilter = _op_input("ChoiceFilter", str, ("eq", "in"), "Equality with one value or one of several.")
LabelFilter = _op_input(
    "LabelFilter",
    str,
    ("eq", "in"),
    "The object's security label, compared as a label (any spelling of the same expression matches).",
)
SHARED_TYPE_NAMES: Final = frozenset(
    {
        "SortDirection",
        "FloatFilter",
        "IntFilter",
        "LongFilter",
        "DateTimeFilter",
        "StringFilter",
        "BooleanFilter",
        "IdFilter",
        "DomainFilter",
        "ChoiceFilter",
        "LabelFilter",
    }
)
_BY_DATATYPE: Final[dict[str, type]] = {
    "float": FloatFilter,
    "int": IntFilter,
    "datetime": DateTimeFilter,
    "string": StringFilter,
    "enum": StringFilter,
    "bool": BooleanFilter,
}
_GENERIC_FILTERS: Final[dict[str, tuple[type, str]]] = {
    "mrid": (IdFilter, "The object's mRID."),
    "name": (StringFilter, "The object's name."),
    "domain": (DomainFilter, "The object's domain."),
    "producer": (ChoiceFilter, "The producer that last wrote the object."),
    "label": (LabelFilter, "The object's security label."),
    "version": (LongFilter, "The version of the object's last applied event."),
    "updated": (DateTimeFilter, "When the graph last changed the object."),
}
assert set(_GENERIC_FILTERS) == set(GENERIC_FIELDS)


# ---------------------------------------------------------------------------------------- names


def _lower_first(name: str) -> str:
    """``ACLineSegment`` -> ``acLineSegment``, ``Substation`` -> ``substation``."""
    run = len(re.match(r"[A-Z]*", name).group(0))  # type: ignore[union-attr]
    if run <= 1:
        return name[:1].lower() + name[1:]
    if run == len(name):
        return name.lower()
    return name[: run - 1].lower() + name[run - 1 :]


def plural(name: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", name):
        return name + "es"
    if re.search(r"[^aeiou]y$", name):
        return name[:-1] + "ies"
    return name + "s"


def page_field_name(class_name: str) -> str:
    return plural(_lower_first(class_name))


def aggregate_field_name(class_name: str) -> str:
    return _lower_first(class_name) + "Aggregate"


def _py(key: str) -> str:
    return (
        key if key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_") else f"f_{key}"
    )


# ---------------------------------------------------------------------------------- input to plain


def plain(value: Any) -> Any:
    """An input value as plain data keyed by GraphQL names (what :mod:`hub.filters` reads)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    definition = getattr(value, "__strawberry_definition__", None)
    if definition is not None:
        out = {}
        for f in definition.fields:
            v = getattr(value, f.python_name, None)
            if v is None or v is strawberry.UNSET:
                continue
            out[f.graphql_name or f.python_name] = plain(v)
        return out
    return value


# ------------------------------------------------------------------------------------- generation


@dataclass
class TypedClass:
    """The generated types of one class."""

    name: str
    where: type
    relation: type
    field_enum: Any
    sort: type
    numeric: list[str] = field(default_factory=list)
    numbers: type | None = None


@dataclass
class TypedSchema:
    """What :func:`build` made: root fields for the Query type and their names (for the cost budget)."""

    fields: dict[str, Any]
    pages: frozenset[str]
    aggregates: frozenset[str]
    compiler: FilterCompiler


def _numbers_type(name: str, attrs: Sequence[str], ontology: Ontology, class_name: str) -> type:
    annotations: dict[str, Any] = {}
    ns: dict[str, Any] = {"__annotations__": annotations}
    described = filterable_attributes(ontology, class_name)
    for key in attrs:
        py = _py(key)
        annotations[py] = float | None
        unit = described[key].unit
        ns[py] = strawberry.field(
            name=key, default=None, description=f"{described[key].qname}" + (f" ({unit})" if unit else "")
        )
    return strawberry.type(
        type(name, (), ns),
        name=name,
        description=f"One value per numeric attribute of {class_name} (null: no object states one).",
    )


def _selections(selections: Sequence[Selection]) -> list[SelectedField]:
    out: list[SelectedField] = []
    for s in selections:
        if isinstance(s, SelectedField):
            out.append(s)
        elif isinstance(s, InlineFragment | FragmentSpread):
            out.extend(_selections(s.selections))
    return out


def _wanted(selections: Sequence[Selection]) -> dict[str, list[str]]:
    """Which numeric attributes each function's selection asks for."""
    wanted: dict[str, list[str]] = {}
    for f in _selections(selections):
        if f.name in aggregates.FUNCTIONS:
            keys = wanted.setdefault(f.name, [])
            keys.extend(
                s.name for s in _selections(f.selections) if s.name not in keys and s.name != "__typename"
            )
    return wanted


def _json(value: Any) -> Any:
    value = native(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _group_row(group: aggregates.Group, numeric: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"key": _json(group.key), "count": group.count}
    for function in aggregates.FUNCTIONS:
        values = group.values.get(function, {})
        row[function] = {_py(k): (None if values.get(k) is None else float(values[k])) for k in numeric}
    return row


def build(registry: TypeRegistry, settings: Settings, taken: set[str]) -> TypedSchema:
    """Generate the typed root fields of every class of the ontology; ``taken``: root field names already
    in use (a typed field that would clash is left out, with a warning)."""
    ontology = registry.ontology
    limits = FilterLimits(settings.max_filter_depth, settings.max_filter_terms, settings.max_list_items)
    compiler = FilterCompiler(ontology, registry.links, limits)
    classes = sorted(ontology.classes)
    shared = SHARED_TYPE_NAMES & set(classes)
    if shared:
        raise ValueError(f"ontology classes {sorted(shared)} clash with the typed queries' input types")
    for name in classes:
        for suffix in SUFFIXES:
            if f"{name}{suffix}" in ontology.classes or f"{name}{suffix}" in SHARED_TYPE_NAMES:
                raise ValueError(f"ontology class {name}{suffix!r} clashes with a generated input type")

    # 1. raw input classes first: where and relation filters refer to each other, in cycles
    raw_where = {c: type(f"{c}Where", (), {}) for c in classes}
    raw_relation = {c: type(f"{c}RelationFilter", (), {}) for c in classes}
    typed: dict[str, TypedClass] = {}
    for c in classes:
        attributes = filterable_attributes(ontology, c)
        links = registry.links.get(c, {})
        where_ann: dict[str, Any] = {}
        where_ns: dict[str, Any] = {
            "__annotations__": where_ann,
            "__doc__": f"A filter on objects of {c}: every field given must hold (AND). Attributes take "
            "the operators of their datatype; associations take a RelationFilter over the related objects "
            "you may see (hidden ones count as absent).",
        }
        where_ann["and_"] = list[raw_where[c]] | None  # type: ignore[valid-type]
        where_ns["and_"] = strawberry.field(name="AND", default=UNSET, description="Every filter holds.")
        where_ann["or_"] = list[raw_where[c]] | None  # type: ignore[valid-type]
        where_ns["or_"] = strawberry.field(name="OR", default=UNSET, description="At least one holds.")
        where_ann["not_"] = raw_where[c] | None
        where_ns["not_"] = strawberry.field(name="NOT", default=UNSET, description="It does not hold.")
        used = {"AND", "OR", "NOT"}
        for key, (input_type, doc) in _GENERIC_FILTERS.items():
            where_ann[f"g_{key}"] = input_type | None
            where_ns[f"g_{key}"] = strawberry.field(name=key, default=UNSET, description=doc)
            used.add(key)
        for key, attr in attributes.items():
            if key in used:
                continue
            used.add(key)
            where_ann[f"a_{key}"] = _BY_DATATYPE[attr.datatype] | None
            where_ns[f"a_{key}"] = strawberry.field(name=key, default=UNSET)
        for key, link in sorted(links.items()):
            if key in used or link.other not in raw_relation:
                continue
            used.add(key)
            where_ann[f"r_{key}"] = raw_relation[link.other] | None
            where_ns[f"r_{key}"] = strawberry.field(name=key, default=UNSET)
        for k, v in where_ns.items():
            setattr(raw_where[c], k, v)

        rel_ann: dict[str, Any] = {}
        rel_ns: dict[str, Any] = {
            "__annotations__": rel_ann,
            "__doc__": f"A filter over the related {c} objects you may see; hidden ones count as absent.",
        }
        for op, doc in (
            ("some", "At least one related object matches."),
            ("none", "No related object matches."),
            ("all", "Every related object matches (true when there is none)."),
            ("single", "Exactly one related object matches."),
        ):
            rel_ann[op] = raw_where[c] | None
            rel_ns[op] = strawberry.field(name=op, default=UNSET, description=doc)
        for k, v in rel_ns.items():
            setattr(raw_relation[c], k, v)

        sortable = [*SORTABLE_GENERIC, *(k for k in attributes if k not in SORTABLE_GENERIC)]
        members: type[Enum] = Enum(f"{c}Field", {(k if k.isidentifier() else f"f_{k}"): k for k in sortable})  # type: ignore[misc]
        field_enum = strawberry.enum(
            members,
            name=f"{c}Field",
            description=f"A field of {c} to sort or group by.",
        )
        sort = strawberry.input(
            type(
                f"{c}Sort",
                (),
                {
                    "__annotations__": {"field": field_enum, "direction": SortDirection},
                    "field": strawberry.field(description="What to sort by."),
                    "direction": strawberry.field(default=SortDirection.ASC, description="Which way."),
                },
            ),
            name=f"{c}Sort",
            description=f"One key of the order of a page of {c}; ties are broken by mRID.",
        )
        numeric = aggregates.numeric_attributes(ontology, c)
        numbers = _numbers_type(f"{c}Numbers", numeric, ontology, c) if numeric else None
        typed[c] = TypedClass(c, raw_where[c], raw_relation[c], field_enum, sort, numeric, numbers)

    for c in classes:
        strawberry.input(raw_where[c], name=f"{c}Where")
        strawberry.input(raw_relation[c], name=f"{c}RelationFilter")

    fields: dict[str, Any] = {}
    pages, aggs = set(), set()
    for c in classes:
        t = typed[c]
        page_name, agg_name = page_field_name(c), aggregate_field_name(c)
        if page_name in taken or agg_name in taken or page_name in fields or agg_name in fields:
            log.warning("typed root fields skipped (name clash)", cls=c, fields=[page_name, agg_name])
            continue
        fields[f"tq_{page_name}"] = _page_field(registry, compiler, t, page_name)
        fields[f"tq_{agg_name}"] = _aggregate_field(compiler, t, agg_name)
        pages.add(page_name)
        aggs.add(agg_name)
    return TypedSchema(fields, frozenset(pages), frozenset(aggs), compiler)


def _page_field(registry: TypeRegistry, compiler: FilterCompiler, t: TypedClass, field_name: str) -> Any:
    c = t.name
    node_type = registry.output_type(c)
    edge = strawberry.type(
        type(f"{c}Edge", (), {"__annotations__": {"cursor": str, "node": node_type}}),
        name=f"{c}Edge",
        description=f"An object of {c} and its cursor.",
    )

    async def total_count(root: Any, info: Info) -> int:
        counted: int | None = root["_total"]  # counted with the page when the selection asked for it
        if counted is not None:
            return counted
        return await typed_pages.count(info.context.reader, compiler, root["_query"], root["_states"])

    connection = strawberry.type(
        type(
            f"{c}Connection",
            (),
            {
                "__annotations__": {
                    "edges": list[edge],  # type: ignore[valid-type]
                    "nodes": list[node_type],  # type: ignore[valid-type]
                    "page_info": PageInfo,
                },
                "total_count": strawberry.field(
                    resolver=total_count, description="Visible objects matching the filter (all pages)."
                ),
            },
        ),
        name=f"{c}Connection",
        description=f"A page of {c} objects (subclasses included), in the order asked for.",
    )
    ontology = registry.ontology
    # The GraphQL type the page's objects are selected on: the class's interface, or its object type.
    type_name = c if c in registry.interfaces else registry.typenames[c]

    async def resolve(
        info: Info,
        where: Any = None,
        order_by: Any = None,
        first: int | None = None,
        after: str | None = None,
        scenario: str | None = None,
    ) -> Any:
        ctx = info.context
        spec = [(str(plain(s.field)), s.direction is SortDirection.DESC) for s in order_by or []]
        query = typed_pages.Query(c, plain(where), sort_keys(ontology, c, spec))
        selected = info.selected_fields[0].selections
        total = prefetch.selects(selected, "totalCount")
        if scenario is not None:
            history, _ = await history_in(info, scenario)
            states = history.visible_states(c)
            found = await typed_pages.page(
                ctx.reader, compiler, query, first, after, total=total, states=states
            )
            rows = [as_of_row(info, s) for s in await history.readable(found.rows)]
            return _connection(rows, found, query, states)
        # Fields are selected on the class's own type (not the root's): its attributes and associations.
        nodes, edge_nodes = prefetch.child(selected, "nodes"), prefetch.child(selected, "edges", "node")
        wanted = prefetch.merge(
            prefetch.plan(ctx.registry, type_name, nodes), prefetch.plan(ctx.registry, type_name, edge_nodes)
        )
        fields = merge_fields(
            selected_properties(ctx.registry, type_name, nodes),
            selected_properties(ctx.registry, type_name, edge_nodes),
        )
        # The total count, when selected, comes from the page's own statement.
        found = await typed_pages.page(ctx.reader, compiler, query, first, after, wanted, fields, total=total)
        return _connection(ctx.rows(found.rows, wanted), found, query, None)

    resolve.__annotations__ = {
        "info": Info,
        "where": t.where | None,
        "order_by": list[t.sort] | None,  # type: ignore[name-defined]
        "first": int | None,
        "after": str | None,
        "scenario": str | None,
        "return": connection,
    }
    return strawberry.field(
        name=field_name,
        resolver=resolve,
        description=f"Objects of {c} (subclasses included) matching where, in the order asked for (ties "
        "and the default: by mRID); cursor pagination, page size capped by the server. scenario (a "
        "scenario's id): the same over the objects as they are in that scenario (each object's latest "
        "version there, else its base version), each judged by that version's own label; associations "
        "are empty then, and relationship filters look at the related objects' states there (by the "
        "references the states state) that you may see.",
    )


def _connection(
    rows: list[dict[str, Any]],
    found: typed_pages.SortedPage,
    query: typed_pages.Query,
    states: States | None,
) -> dict[str, Any]:
    """A typed page's connection; ``states``: the scenario's states it was read from (None: live)."""
    return {
        "edges": [{"cursor": k, "node": r} for k, r in zip(found.cursors, rows, strict=True)],
        "nodes": rows,
        "page_info": PageInfo(
            has_next_page=found.has_next, end_cursor=found.cursors[-1] if found.cursors else None
        ),
        "_query": query,
        "_total": found.total,
        "_states": states,
    }


def _aggregate_field(compiler: FilterCompiler, t: TypedClass, field_name: str) -> Any:
    c = t.name
    group_ann: dict[str, Any] = {"key": JSON | None, "count": int}
    group_ns: dict[str, Any] = {
        "__annotations__": group_ann,
        "key": strawberry.field(
            default=None, description="The value grouped by (null: not grouped, or objects without a value)."
        ),
        "count": strawberry.field(description="Visible objects in the group."),
    }
    if t.numbers is not None:
        for function in aggregates.FUNCTIONS:
            group_ann[function] = t.numbers
            group_ns[function] = strawberry.field(description=f"{function} of each numeric attribute.")
    group_type = strawberry.type(
        type(f"{c}AggregateGroup", (), group_ns),
        name=f"{c}AggregateGroup",
        description=f"Aggregates of the visible {c} objects of one group.",
    )
    agg_ann = dict(group_ann)
    agg_ann.pop("key")
    agg_ann["groups"] = list[group_type]  # type: ignore[valid-type]
    agg_ns = {k: v for k, v in group_ns.items() if k != "key"}
    agg_ns["__annotations__"] = agg_ann
    agg_ns["groups"] = strawberry.field(description="Per group (empty without groupBy or groupByRelated).")
    agg_type = strawberry.type(
        type(f"{c}Aggregate", (), agg_ns),
        name=f"{c}Aggregate",
        description=f"Aggregates of the visible {c} objects matching the filter.",
    )

    async def resolve(
        info: Info,
        where: Any = None,
        group_by: Any = None,
        group_by_related: str | None = None,
        scenario: str | None = None,
    ) -> Any:
        ctx = info.context
        states = None
        if scenario is not None:
            history, _ = await history_in(info, scenario)
            states = history.visible_states(c)
        if group_by is not None and group_by_related is not None:
            raise FilterError("give groupBy or groupByRelated, not both")
        grouping = str(plain(group_by)) if group_by is not None else group_by_related
        if grouping is not None and group_by_related is not None and "." not in grouping:
            raise FilterError(f"groupByRelated {grouping[:80]!r} is not association.field")
        query = typed_pages.Query(c, plain(where))
        selected = info.selected_fields[0].selections
        names = {f.name for f in _selections(selected)}
        if grouping is not None:
            # Refused the same whether or not groups are selected.
            aggregates.aggregate_query(ctx.reader, compiler, query, {}, grouping, states)
        result: dict[str, Any] = {"count": 0, "groups": []}
        overall = names - {"groups", "__typename"}
        grouped = "groups" in names and grouping is not None
        # The overall figures and the groups are two statements (an object may count in several groups,
        # so the first is not the sum of the second): independent reads, run side by side.
        reads = []
        if overall:
            reads.append(aggregates.aggregate(ctx.reader, compiler, query, _wanted(selected), None, states))
        if grouped:
            group_sel = [s for f in _selections(selected) if f.name == "groups" for s in f.selections]
            reads.append(
                aggregates.aggregate(ctx.reader, compiler, query, _wanted(group_sel), grouping, states)
            )
        found = await asyncio.gather(*reads)
        if overall:
            result.update(_group_row(found[0][0], t.numeric))
        if grouped:
            result["groups"] = [_group_row(g, t.numeric) for g in found[-1]]
        return result

    resolve.__annotations__ = {
        "info": Info,
        "where": t.where | None,
        "group_by": t.field_enum | None,
        "group_by_related": str | None,
        "scenario": str | None,
        "return": agg_type,
    }
    return strawberry.field(
        name=field_name,
        resolver=resolve,
        description=f"Count and min / max / avg / sum of the numeric attributes of the visible {c} objects "
        "matching where, overall and per group: per value of groupBy, or with groupByRelated "
        "(association.field, e.g. fossilFuels.fossilFuelType) per value among the related objects you may "
        "see (an object counts once in each of its values' groups, in the null group when it has none). "
        "scenario: the same over the objects' states in that scenario (groupByRelated: by the related "
        "objects' states there).",
    )
