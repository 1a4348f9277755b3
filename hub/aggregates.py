"""Aggregates of one ontology class under a ``where`` filter: count, and min / max / avg / sum of numeric
attributes, over all matching objects or per value of one attribute.

Only objects the caller may see contribute: the match is :func:`hub.typed_pages.match`, filtered by the
guard, and its relationship filters look at visible objects only. Grouping by an attribute of related
objects (``fossilFuels.fossilFuelType``) reads the related objects through the guard as well. A sum over
no stated value is null (not 0), as are min, max and avg. In a scenario the same runs over the objects'
states there (:func:`hub.typed_pages.match` with ``states``), grouping by related objects by their states
there (:meth:`hub.history.History.related_states`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hub.filters import GENERIC_FIELDS, FilterCompiler, FilterError, filterable_attributes
from hub.graph_schema import CLASS
from hub.guard import visible
from hub.history import States
from hub.ordering import SORTABLE_GENERIC
from hub.reader import Reader
from hub.typed_pages import Query, match
from ontology.model import Ontology

FUNCTIONS: Final = ("min", "max", "avg", "sum")
NUMERIC: Final = ("float", "int")


def numeric_attributes(ontology: Ontology, class_name: str) -> list[str]:
    return [k for k, a in filterable_attributes(ontology, class_name).items() if a.datatype in NUMERIC]


def group_keys(ontology: Ontology, class_name: str) -> list[str]:
    """What a class's aggregate may be grouped by: what its pages may be sorted by."""
    return [*SORTABLE_GENERIC, *filterable_attributes(ontology, class_name)]


@dataclass
class Group:
    """One group: its key (None when not grouped, or for objects without the key's value), the count of
    its objects, and per function the values per attribute."""

    key: Any
    count: int
    values: dict[str, dict[str, Any]] = field(default_factory=dict)


def aggregate_query(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    wanted: Mapping[str, Sequence[str]],
    group_by: str | None,
    states: States | None = None,
) -> tuple[str, dict[str, Any], dict[str, tuple[str, str]]]:
    """The Cypher, its parameters, and for each returned column the (function, attribute) it holds;
    ``states``: over a scenario's states (:func:`hub.typed_pages.match`), not the live graph."""
    ontology = reader.ontology
    numeric = set(numeric_attributes(ontology, query.class_name))
    text, params = match(reader, compiler, query, states)
    columns: dict[str, tuple[str, str]] = {}
    parts = ["count(n) AS count"]
    for function, attrs in wanted.items():
        if function not in FUNCTIONS:
            raise FilterError(f"aggregate function {function!r} is not one of {', '.join(FUNCTIONS)}")
        for attr in attrs:
            if attr not in numeric:
                raise FilterError(f"{query.class_name} has no numeric attribute {attr!r} to aggregate")
            column = f"a{len(columns)}"
            columns[column] = (function, attr)
            expr = f"n.`{attr}`"
            if function == "sum":
                parts.append(f"CASE WHEN count({expr}) = 0 THEN null ELSE sum({expr}) END AS {column}")
            else:
                parts.append(f"{function}({expr}) AS {column}")
    if group_by is None:
        return f"{text} RETURN null AS key, {', '.join(parts)}", params, columns
    if "." in group_by:
        return (*_by_related(reader, compiler, query, group_by, text, params, parts, states), columns)
    if group_by not in group_keys(ontology, query.class_name):
        raise FilterError(f"groupBy: {query.class_name} cannot be grouped by {group_by!r}")
    key = (
        GENERIC_FIELDS[group_by].expr.format(v="n")
        if group_by in GENERIC_FIELDS
        else f"n.`{filterable_attributes(ontology, query.class_name)[group_by].key}`"
    )
    return f"{text} WITH {key} AS key, n RETURN key, {', '.join(parts)} ORDER BY key", params, columns


def _by_related(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    group_by: str,
    text: str,
    params: dict[str, Any],
    parts: list[str],
    states: States | None = None,
) -> tuple[str, dict[str, Any]]:
    """Groups by an attribute of related objects (``association.attribute``): an object counts once in
    the group of each distinct value among its related objects the caller may see, and in the null group
    when it has none (hidden ones are absent, as everywhere)."""
    ontology = reader.ontology
    association, _, attribute = group_by.partition(".")
    link = compiler.links.get(query.class_name, {}).get(association)
    if link is None:
        raise FilterError(f"groupByRelated: {query.class_name} has no association {association!r}")
    attrs = filterable_attributes(ontology, link.other)
    if attribute in GENERIC_FIELDS and attribute in group_keys(ontology, link.other):
        key = GENERIC_FIELDS[attribute].expr.format(v="g")
    elif attribute in attrs:
        key = f"g.`{attrs[attribute].key}`"
    else:
        raise FilterError(f"groupByRelated: {link.other} has no field {attribute!r} to group by")
    if states is not None:
        # The related objects' states there (hub/history.py), of the class.
        params = {**params, "grel": link.rel_type}
        params["gcls"] = sorted(c for c in ontology.classes if link.other in ontology.ancestors(c))
        related = states.reads.related_states("n", "$grel", link.direction, "g")
        return (
            f"{text} OPTIONAL CALL (n) {{ {related} AND g.{CLASS} IN $gcls RETURN g }} "
            f"WITH DISTINCT n, {key} AS key RETURN key, {', '.join(parts)} ORDER BY key",
            params,
        )
    arrow = f"-[:`{link.rel_type}`]->" if link.direction == "out" else f"<-[:`{link.rel_type}`]-"
    return (
        f"{text} OPTIONAL MATCH (n){arrow}(g:`{link.other}`) WHERE {visible('g')} "
        f"WITH DISTINCT n, {key} AS key RETURN key, {', '.join(parts)} ORDER BY key",
        params,
    )


async def aggregate(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    wanted: Mapping[str, Sequence[str]],
    group_by: str | None = None,
    states: States | None = None,
) -> list[Group]:
    text, params, columns = aggregate_query(reader, compiler, query, wanted, group_by, states)
    rows = await reader.guard.read(text, params)
    groups = []
    for row in rows:
        if group_by is not None and row["count"] == 0:
            continue
        group = Group(key=row["key"], count=int(row["count"]))
        for column, (function, attr) in columns.items():
            group.values.setdefault(function, {})[attr] = row[column]
        groups.append(group)
    if group_by is None and not groups:
        groups.append(Group(key=None, count=0))
    return groups
