"""Pages and counts of one ontology class under a ``where`` filter and an order (the typed root fields).

Each query matches the class with its ``Entity`` label as well, so the planner may start from the
indexes the hub keeps on every object (:mod:`hub.graph`: the mRID constraint, name and update time), and
is told to when the filter pins one of them down (:meth:`hub.filters.Compiled.index_hint`), then filters
by the caller's visible labels (:func:`hub.guard.visible`) like every read. When the filter pins none down,
the query starts from the class's count keys the caller may see (the guard's same filter, on the keys) and
seeks their objects (:mod:`hub.count_keys`). The filter is compiled by :mod:`hub.filters`, whose
relationship filters look at visible objects only. Sorting and
cursors are :mod:`hub.ordering`'s.

In a scenario (``states``, :meth:`hub.history.History.visible_states`) the same filter, order, cursors
and count run over each object's state there instead of the live nodes: the states are maps of the
objects' versions, already filtered by the guard (each by its own version's label), and the filter reads
their attributes and generic fields as it reads a live node's, and its relationship filters read the
related objects' states there (:meth:`hub.history.History.related_states`).

A page whose selection asks for its total count gets it from the same statement as its rows
(:func:`page_query` with ``total``): the matching objects are collected once and counted before the cursor
and the limit pick the page out of them. One round trip and one read of the class answer both, and a page
that is not asked for its count does not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub import count_keys
from hub.filters import FilterCompiler
from hub.graph import STUB_LABEL_ID
from hub.guard import visible
from hub.history import States
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
    # Every visible object the filter admits, over all pages (None: the page was not asked for it).
    total: int | None = None


def match(
    reader: Reader, compiler: FilterCompiler, query: Query, states: States | None = None
) -> tuple[str, dict[str, Any]]:
    """``MATCH ... WHERE ...`` of the visible objects of the class the filter admits (variable ``n``);
    with ``states``, of the states there of the class (made for it) the filter admits."""
    label = reader.class_label(query.class_name)
    if states is not None:
        compiled = compiler.compile(label, query.where, "n", states=states.reads)
        predicate = f" AND {compiled.predicate}" if compiled.predicate != "true" else ""
        return states.text + predicate, {**states.params, **compiled.params}
    compiled = compiler.compile(label, query.where, "n")
    where = [compiled.predicate] if compiled.predicate != "true" else []
    hint = compiled.index_hint("n")
    if hint:
        where.append(visible("n"))
        return f"MATCH (n:Entity:`{label}`){hint} WHERE {' AND '.join(where)}", compiled.params
    # Nothing the filter pins down: start from the count keys of the class (its subclasses included) the
    # caller may see, and seek their objects in the keys' index (hub/count_keys.py). The guard decides once
    # per key instead of once per object, and no object's label or owner is read.
    params = {
        **compiled.params,
        "key_classes": sorted(reader.ontology.descendants(label)),
        "stub_label": STUB_LABEL_ID,
    }
    keys = count_keys.listed_of("ckey", "key_classes", "stub_label")
    return (
        f"MATCH (ckey:{count_keys.COUNT_KEY_NODE}) WHERE {keys} AND {visible('ckey')} "
        f"MATCH (n:Entity:`{label}`){count_keys.seek('n', 'ckey')}{''.join(f' AND {w}' for w in where)}",
        params,
    )


def page_query(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    size: int,
    cursor: str | None,
    prefetch: Sequence[Prefetch] = (),
    fields: Fields = None,
    *,
    total: bool = False,
    states: States | None = None,
) -> tuple[str, dict[str, Any]]:
    """``fields``: the properties the selection reads (None: all), as :meth:`hub.reader.Reader.objects`.

    One row: ``page``, the rows in order (each ``{n, sort}``), collected in Cypher (one record for the
    driver to read rather than one per object, which cost more than the objects' properties on a page
    of nested objects). With ``total``, beside it the count of all the objects the filter admits (every
    page), from the same match: the matching objects are collected once, counted, and the page is sorted
    out of them (the cursor applies there), so the class is read once, not once for the count and again
    for the page."""
    text, params = match(reader, compiler, query, states)
    params["limit"] = size + 1
    # A state is a map of what its version holds, all of it (no associations to fetch with it).
    projection = ".*" if states is not None else reader._projection("n", prefetch, fields)
    later = after(query.keys, "n", cursor, params) if cursor else None
    # collect() keeps the order of the rows sorted before it.
    rest = (
        f"WITH n ORDER BY {order_by(query.keys, 'n')} LIMIT $limit "
        f"WITH n {{{projection}}} AS n, {sort_values(query.keys, 'n')} AS sort "
        "RETURN collect({n: n, sort: sort}) AS page"
    )
    if not total:
        return f"{text}{f' AND {later}' if later else ''} {rest}", params
    return (
        f"{text} WITH collect(n) AS matched "
        f"CALL (matched) {{ UNWIND matched AS n {f'WITH n WHERE {later} ' if later else ''}{rest} }} "
        "RETURN page, size(matched) AS total",
        params,
    )


async def page(
    reader: Reader,
    compiler: FilterCompiler,
    query: Query,
    first: int | None,
    cursor: str | None,
    prefetch: Sequence[Prefetch] = (),
    fields: Fields = None,
    *,
    total: bool = False,
    states: States | None = None,
) -> SortedPage:
    """``total``: count every object the filter admits in the same statement (:attr:`SortedPage.total`);
    ``states``: read a scenario's states instead of the live graph."""
    size = reader.page_size(first)
    text, params = page_query(
        reader, compiler, query, size, cursor, prefetch, fields, total=total, states=states
    )
    found = (await reader.guard.read(text, params))[0]
    rows: list[dict[str, Any]] = found["page"]
    counted = int(found["total"]) if total else None
    kept = rows[:size]
    reader.guard.stats.rows += len(kept)
    return SortedPage(
        rows=[r["n"] for r in kept],
        has_next=len(rows) > size,
        cursors=[encode_cursor(query.keys, r["sort"], r["n"]["mrid"]) for r in kept],
        total=counted,
    )


async def count(reader: Reader, compiler: FilterCompiler, query: Query, states: States | None = None) -> int:
    text, params = match(reader, compiler, query, states)
    rows = await reader.guard.read(f"{text} RETURN count(n) AS count", params)
    return int(rows[0]["count"])
