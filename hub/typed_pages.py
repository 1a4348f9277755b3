"""Pages and counts of one ontology class under a ``where`` filter and an order (the typed root fields).

Each query matches the class with its ``Entity`` label as well, so the planner may start from the
indexes the hub keeps on every object (:mod:`hub.graph`: the mRID constraint, name and update time), and
is told to when the filter pins one of them down (:meth:`hub.filters.Compiled.index_hint`),
filters by the caller's visible labels (:func:`hub.guard.visible`) like every read, and compiles the
filter with :mod:`hub.filters`, whose relationship filters look at visible objects only. Sorting and
cursors are :mod:`hub.ordering`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.filters import FilterCompiler
from hub.guard import visible
from hub.ordering import SortKey, after, encode_cursor, order_by, sort_values
from hub.reader import Fields, Page, Prefetch, Reader


@dataclass(frozen=True)
class Query:
    """What one typed page asks for: the class, the filter (as the API passes it) and the order."""

    class_name: str
    where: Mapping[str, Any] | None
    keys: Sequence[SortKey] = ()


@dataclass
class SortedPage(Page):
    cursors: list[str]


def match(reader: Reader, compiler: FilterCompiler, query: Query) -> tuple[str, dict[str, Any]]:
    """``MATCH ... WHERE ...`` of the visible objects of the class the filter admits (variable ``n``)."""
    label = reader.class_label(query.class_name)
    compiled = compiler.compile(label, query.where, "n")
    where = [compiled.predicate] if compiled.predicate != "true" else []
    where.append(visible("n"))
    hint = compiled.index_hint("n")
    return f"MATCH (n:Entity:`{label}`){hint} WHERE {' AND '.join(where)}", compiled.params


def page_query(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    size: int,
    cursor: str | None,
    prefetch: Sequence[Prefetch] = (),
    fields: Fields = None,
) -> tuple[str, dict[str, Any]]:
    """``fields``: the properties the selection reads (None: all), as :meth:`hub.reader.Reader.objects`."""
    text, params = match(reader, compiler, query)
    if cursor:
        text += " AND " + after(query.keys, "n", cursor, params)
    params["limit"] = size + 1
    projection = reader._projection("n", prefetch, fields)
    text += (
        f" WITH n ORDER BY {order_by(query.keys, 'n')} LIMIT $limit "
        f"RETURN n {{{projection}}} AS n, {sort_values(query.keys, 'n')} AS sort"
    )
    return text, params


async def page(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    first: int | None,
    cursor: str | None,
    prefetch: Sequence[Prefetch] = (),
    fields: Fields = None,
) -> SortedPage:
    size = reader.page_size(first)
    text, params = page_query(reader, compiler, query, size, cursor, prefetch, fields)
    rows = await reader.guard.read(text, params)
    kept = rows[:size]
    reader.guard.stats.rows += len(kept)
    return SortedPage(
        rows=[r["n"] for r in kept],
        has_next=len(rows) > size,
        cursors=[encode_cursor(query.keys, r["sort"], r["n"]["mrid"]) for r in kept],
    )


async def count(reader: Reader, compiler: FilterCompiler, query: Query) -> int:
    text, params = match(reader, compiler, query)
    rows = await reader.guard.read(f"{text} RETURN count(n) AS count", params)
    return int(rows[0]["count"])
