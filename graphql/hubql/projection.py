"""Which stored properties a GraphQL selection reads, so a query fetches those and nothing else.

``objects { nodes { mrid name ... on ACLineSegment { length } } }`` needs ``mrid``, ``name`` and ``length``
(and the class, which every row carries); the reader then projects ``n {.mrid, .`_class`, .length,
.name}`` instead of returning every property of every row. Fragments are followed (their type condition
says which class's attribute a field name means). A field the projection cannot place (``attributes``,
which lists every attribute, or a name it does not know) asks for all properties: the answer is never
wrong, only as costly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from hub.graph_schema import DOMAIN, LABEL, OWNER, PRODUCER, UPDATED, VERSION, X, Y
from hub.reader import Fields
from ontology.model import Ontology


class TypeRegistry(Protocol):
    """What the projection reads of the API's type registry (:class:`hubql.types.TypeRegistry`); a protocol,
    because that module imports this one."""

    @property
    def ontology(self) -> Ontology: ...

    @property
    def class_of_type(self) -> Mapping[str, str]: ...

    def link(self, type_name: str, key: str) -> object | None: ...


# Generic fields of every object (hubql.types) -> the stored properties their values come from. Fields
# resolved by batch loaders from the mRID (geometry, diagramPoints, level) need none of their own.
GENERIC_PROPERTIES: Final[dict[str, frozenset[str]]] = {
    "__typename": frozenset(),
    "mrid": frozenset(),
    "className": frozenset(),
    "domain": frozenset({DOMAIN}),
    "name": frozenset({"name"}),
    "label": frozenset({LABEL}),
    "producer": frozenset({PRODUCER, OWNER}),
    "version": frozenset({VERSION}),
    "updated": frozenset({UPDATED}),
    "point": frozenset({X, Y}),
    "geometry": frozenset(),
    "diagramPoints": frozenset(),
    "level": frozenset(),
}
# Generic fields that read every attribute of the row.
ALL_PROPERTIES: Final = frozenset({"attributes"})


def selected_fields(type_name: str, selections: Iterable[Selection]) -> Iterable[tuple[str, SelectedField]]:
    """Every field in ``selections`` with the GraphQL type it is selected on (fragments followed)."""
    for sel in selections:
        if isinstance(sel, SelectedField):
            yield type_name, sel
        elif isinstance(sel, InlineFragment | FragmentSpread):
            yield from selected_fields(sel.type_condition or type_name, sel.selections)


def selected_properties(registry: TypeRegistry, type_name: str, selections: Sequence[Selection]) -> Fields:
    """The stored properties that the fields selected on objects of GraphQL type ``type_name`` read
    (None: all of them). Associations are not properties: :mod:`hubql.prefetch` plans those."""
    ontology = registry.ontology
    keys: set[str] = set()
    for type_cond, field in selected_fields(type_name, selections):
        name = field.name
        generic = GENERIC_PROPERTIES.get(name)
        if generic is not None:
            keys |= generic
            continue
        if name in ALL_PROPERTIES:
            return None
        if registry.link(type_cond, name) is not None:
            continue
        cls = registry.class_of_type.get(type_cond)
        attributes = ontology.attributes_of(cls) if cls in ontology.classes else {}
        key = next((a.key for a in attributes.values() if a.key == name), None)
        if key is None:
            return None  # a field this module does not know: read everything rather than guess
        keys.add(key)
    return frozenset(keys)
