"""Plan, from a GraphQL selection, which associations to fetch in the same Cypher query as their sources.

``objects { nodes { ... on Substation { voltageLevels { bays { mrid } } } } }`` becomes one query with
nested pattern comprehensions instead of one query per association and level. Fragments are followed
(their type condition says which class's field a name means); anything the plan does not cover (deeper
than :data:`hub.reader.MAX_PREFETCH_DEPTH`, or a field it cannot place) falls back to the batch loaders.
Each planned association also carries the properties selected on the objects it reaches
(:func:`hubql.projection.selected_properties`), so nested objects are projected like top-level ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from strawberry.types.nodes import Selection

from hub.reader import MAX_PREFETCH_DEPTH, Prefetch, merge_fields
from hubql.projection import selected_fields, selected_properties
from hubql.types import ROOT, TypeRegistry


def plan(
    registry: TypeRegistry, type_name: str, selections: Sequence[Selection], depth: int = 0
) -> tuple[Prefetch, ...]:
    """Associations selected on objects of GraphQL type ``type_name``, with what is selected beneath them."""
    if depth >= MAX_PREFETCH_DEPTH:
        return ()
    found: dict[str, Prefetch] = {}
    for type_cond, field in selected_fields(type_name, selections):
        link = registry.link(type_cond, field.name)
        if link is None:
            continue
        children = plan(registry, link.other, field.selections, depth + 1)
        fields = selected_properties(registry, link.other, field.selections)
        previous = found.get(link.key)
        if previous is not None:
            children = merge(previous.children, children)
            fields = merge_fields(previous.fields, fields)
        found[link.key] = dataclasses.replace(link, children=children, fields=fields)
    return tuple(found.values())


def merge(a: tuple[Prefetch, ...], b: tuple[Prefetch, ...]) -> tuple[Prefetch, ...]:
    out = {p.key: p for p in a}
    for p in b:
        previous = out.get(p.key)
        out[p.key] = (
            dataclasses.replace(
                p,
                children=merge(previous.children, p.children),
                fields=merge_fields(previous.fields, p.fields),
            )
            if previous is not None
            else p
        )
    return tuple(out.values())


def child(selections: Sequence[Selection], *path: str) -> list[Selection]:
    """The selections under ``path`` (field names) inside ``selections``, merged over repeats."""
    current: list[Selection] = list(selections)
    for name in path:
        current = [s for _, f in selected_fields(ROOT, current) if f.name == name for s in f.selections]
    return current


def selects(selections: Sequence[Selection], name: str) -> bool:
    """Whether a field called ``name`` is among ``selections`` (fragments included, directives ignored:
    a field skipped by ``@skip``/``@include`` still counts, which only costs the work of filling it)."""
    return any(f.name == name for _, f in selected_fields(ROOT, selections))
