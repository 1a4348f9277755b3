"""Plan, from a GraphQL selection, which associations to fetch in the same Cypher query as their sources.

``objects { nodes { ... on Substation { voltageLevels { bays { mrid } } } } }`` becomes one query with
nested pattern comprehensions instead of one query per association and level. Fragments are followed
(their type condition says which class's field a name means); anything the plan does not cover (deeper
than :data:`hub.reader.MAX_PREFETCH_DEPTH`, or a field it cannot place) falls back to the batch loaders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from hub.reader import MAX_PREFETCH_DEPTH, Prefetch
from hubql.types import ROOT, TypeRegistry


def plan(
    registry: TypeRegistry, type_name: str, selections: Sequence[Selection], depth: int = 0
) -> tuple[Prefetch, ...]:
    """Associations selected on objects of GraphQL type ``type_name``, with what is selected beneath them."""
    if depth >= MAX_PREFETCH_DEPTH:
        return ()
    found: dict[str, Prefetch] = {}
    for type_cond, field in _fields(type_name, selections):
        link = registry.link(type_cond, field.name)
        if link is None:
            continue
        children = plan(registry, link.other, field.selections, depth + 1)
        previous = found.get(link.key)
        if previous is not None:
            children = merge(previous.children, children)
        found[link.key] = dataclasses.replace(link, children=children)
    return tuple(found.values())


def _fields(type_name: str, selections: Iterable[Selection]) -> Iterable[tuple[str, SelectedField]]:
    for sel in selections:
        if isinstance(sel, SelectedField):
            yield type_name, sel
        elif isinstance(sel, InlineFragment | FragmentSpread):
            yield from _fields(sel.type_condition or type_name, sel.selections)


def merge(a: tuple[Prefetch, ...], b: tuple[Prefetch, ...]) -> tuple[Prefetch, ...]:
    out = {p.key: p for p in a}
    for p in b:
        out[p.key] = (
            dataclasses.replace(p, children=merge(out[p.key].children, p.children)) if p.key in out else p
        )
    return tuple(out.values())


def child(selections: Sequence[Selection], *path: str) -> list[Selection]:
    """The selections under ``path`` (field names) inside ``selections``, merged over repeats."""
    current: list[Selection] = list(selections)
    for name in path:
        current = [s for _, f in _fields(ROOT, current) if f.name == name for s in f.selections]
    return current


def selects(selections: Sequence[Selection], name: str) -> bool:
    """Whether a field called ``name`` is among ``selections`` (fragments included, directives ignored:
    a field skipped by ``@skip``/``@include`` still counts, which only costs the work of filling it)."""
    return any(f.name == name for _, f in _fields(ROOT, selections))
