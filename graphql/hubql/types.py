"""GraphQL object types generated from the ontology, so a class added there is queryable with no code change.

Design:

- Every ontology class with subclasses becomes a GraphQL *interface* of its name, implementing the interfaces
  of all its ancestors; a query on ``ConductingEquipment`` therefore returns lines, transformers, switches.
- Every class also gets a *concrete* object type: a leaf class under its own name; a class with subclasses
  under ``<Name>Instance`` (objects of non-leaf classes exist: ``Switch``, ``GeneratingUnit``, stubs whose
  class is only known as the target of an association).
- ``IdentifiedObject`` is the root interface. It carries the generic fields (mrid, className, domain, name,
  label, producer, version, updated, point, geometry, diagramPoints, level, attributes); a class whose
  ancestry does not reach the ontology's ``IdentifiedObject`` (if there is one) implements it directly.
- Fields: one per attribute (scalar by datatype; enumerations as String, the literals in the description)
  and per association: forward under ``key`` (a list when ``many``), reverse under ``inverse_key`` on the
  target class (always a list). Associations resolve through per-request batch loaders: one Cypher query
  per association and nesting level, never one per object.

Rows are dicts (the Cypher property map plus the generic values), read by the schema's default resolver.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final, NamedTuple

import strawberry
import structlog
from strawberry.types.info import Info

from hub.graph_schema import CLASS, DOMAIN, LABEL, OWNER, PRODUCER, RECORDED, UPDATED, VERSION, X, Y
from hub.reader import Prefetch
from hubql.generic import (
    DIAGRAM_POINTS_DESCRIPTION,
    DOMAIN_BY_NAME,
    GENERIC_FIELD_NAMES,
    GENERIC_TYPE_NAMES,
    GEOMETRY_DESCRIPTION,
    LEVEL_DESCRIPTION,
    POINT_DEPRECATION,
    AttributeValue,
    DiagramPoint,
    Domain,
    Geometry,
    NetworkLevel,
    Point,
    resolve_diagram_points,
    resolve_geometry,
    resolve_level,
)
from hubql.projection import selected_properties
from hubql.scalars import Long, native
from ontology.model import Association, Attribute, Ontology

log = structlog.get_logger(__name__)

ROOT: Final = "IdentifiedObject"
INSTANCE_SUFFIX: Final = "Instance"
TYPENAME_KEY: Final = "__hub_type"
PREFETCHED_KEY: Final = "__hub_prefetched"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAME_RE: Final = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
# Attributes the generic fields already show (IdentifiedObject.name) or that restate the id.
_SKIPPED_KEYS: Final = frozenset({"name", "mRID", "mrid"})
_BY_MRID: Final = itemgetter("mrid")

_SCALARS: Final[dict[str, Any]] = {
    "float": float | None,
    "int": int | None,
    "bool": bool | None,
    "string": str | None,
    "enum": str | None,
    "datetime": datetime | None,
}


def _json_value(value: Any) -> Any:
    value = native(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


@dataclass
class TypeRegistry:
    """The generated types and the facts needed to turn Cypher maps into rows."""

    ontology: Ontology
    interfaces: dict[str, type] = field(default_factory=dict)  # class -> interface (non-leaf classes)
    objects: dict[str, type] = field(default_factory=dict)  # class -> concrete object type
    typenames: dict[str, str] = field(default_factory=dict)  # class -> concrete GraphQL type name
    root: type | None = None
    fallback_typename: str = ""
    # property key -> python field name, only where they differ (key clashes with a generic field)
    renamed: dict[str, str] = field(default_factory=dict)
    attribute_index: dict[str, list[Attribute]] = field(default_factory=dict)
    # class -> association field key -> how to fetch it (inherited fields included)
    links: dict[str, dict[str, Prefetch]] = field(default_factory=dict)
    # GraphQL type name (interface or object) -> ontology class
    class_of_type: dict[str, str] = field(default_factory=dict)

    def link(self, type_name: str, key: str) -> Prefetch | None:
        cls = self.class_of_type.get(type_name)
        return None if cls is None else self.links.get(cls, {}).get(key)

    def edge_key(self, source_class: str | None, rel_type: str) -> str:
        """The field name of a relationship on its source object's type."""
        if source_class in self.ontology.classes:
            for assoc in self.ontology.associations_of(source_class).values():
                if assoc.rel_type == rel_type:
                    return assoc.key
        return rel_type.lower()

    def output_type(self, class_name: str) -> type:
        """The type a field returning objects of ``class_name`` (or its subclasses) has."""
        return self.interfaces.get(class_name) or self.objects[class_name]

    def all_types(self) -> list[type]:
        return [*self.interfaces.values(), *self.objects.values()]

    def row(
        self,
        props: dict[str, Any],
        label_text: Callable[[int | None], str],
        prefetch: Sequence[Prefetch] = (),
    ) -> dict[str, Any]:
        """Turn a Cypher property map of a visible node into a row the generated types read;
        ``prefetch`` is the plan the map was fetched with (its associations become nested rows)."""
        get = props.get
        cls = get(CLASS)
        props[TYPENAME_KEY] = self.typenames.get(cls, self.fallback_typename)  # type: ignore[arg-type]
        props["class_name"] = cls or ""
        props["domain"] = DOMAIN_BY_NAME.get(get(DOMAIN), Domain.ELECTRICITY)
        props["label"] = label_text(get(LABEL))
        props["producer"] = get(PRODUCER) or get(OWNER) or ""
        props["version"] = get(VERSION) or 0
        # Temporal values stay as the driver returned them: the DateTime scalar converts the selected ones.
        # A kept version (as of a time, or in a scenario) was last updated when the hub recorded it.
        updated = get(UPDATED)
        if updated is None:
            updated = get(RECORDED)
        props["updated"] = updated if updated is not None else EPOCH
        x, y = get(X), get(Y)
        props["point"] = {"x": x, "y": y} if x is not None and y is not None else None
        if self.renamed:
            for key, python_name in self.renamed.items():
                if key in props:
                    props[python_name] = props[key]
        if prefetch:
            nested = {}
            row = self.row
            for p in prefetch:
                key = p.key
                found = props.pop(key, None)
                if found is not None:
                    children = p.children
                    nested[key] = sorted([row(x, label_text, children) for x in found], key=_BY_MRID)
            props[PREFETCHED_KEY] = nested
        return props

    def attributes(self, row: Mapping[str, Any]) -> list[AttributeValue]:
        cls = row.get(CLASS)
        if not isinstance(cls, str) or cls not in self.ontology.classes:
            return []
        out = []
        for attr in self.ontology.attributes_of(cls).values():
            value = row.get(attr.key)
            if value is None or attr.key in ("mrid",):
                continue
            out.append(
                AttributeValue(key=attr.key, qname=attr.qname, value=_json_value(value), unit=attr.unit)
            )
        return out


def _python_name(key: str, taken: set[str]) -> str:
    name = key
    if keyword.iskeyword(name) or name in taken or name.startswith("_"):
        name = f"f_{key}"
    return name


def _attribute_description(attr: Attribute) -> str:
    parts = [attr.description.strip()] if attr.description.strip() else []
    if attr.unit:
        parts.append(f"Unit: {attr.unit}.")
    if attr.datatype == "enum" and attr.literals:
        parts.append(f"One of: {', '.join(attr.literals)}.")
    parts.append(f"({attr.qname})")
    return " ".join(parts)


class PrefetchedLink(NamedTuple):
    """What an association field's resolver returns for a row that carries the field's rows prefetched:
    ``row[PREFETCHED_KEY][key]``, the whole list when ``many``, else its first row or None. The executor
    (:mod:`hubql.execution`) reads it from the resolver (:func:`prefetched_link`) to complete such rows
    without calling it."""

    key: str
    many: bool


_LINK_ATTRIBUTE: Final = "hub_prefetched_link"


def prefetched_link(resolver: Any) -> PrefetchedLink | None:
    """The :class:`PrefetchedLink` of an association field's resolver, None for any other function."""
    found = getattr(resolver, _LINK_ATTRIBUTE, None)
    return found if isinstance(found, PrefetchedLink) else None


def resolve_row_type(obj: Any, info: Any, abstract_type: Any) -> Any:
    """The concrete GraphQL type of a row (:meth:`TypeRegistry.row` stores it), for every interface."""
    return obj[TYPENAME_KEY]


def row_is_type_of(obj: Any, info: Any) -> bool:
    """Every row reaching an object type belongs to it: rows are routed by :func:`resolve_row_type`."""
    return True


def association_resolver(link: Prefetch, many: bool) -> Callable[..., Any]:
    """Resolver of an association field: what the source's query prefetched for this selection, else
    batched through the request's loader for (type, direction, class).

    A plain function, not a coroutine function: the prefetched rows are returned as they are, and only the
    batch loader's answer is awaited. The executor then completes prefetched objects without an awaitable
    per object and level (which cost more than reading them on a page of nested objects); it completes
    them without calling this function at all when it can (:class:`PrefetchedLink`)."""
    rel_type, direction, other, key = link.rel_type, link.direction, link.other, link.key

    async def load(root: Any, info: Info) -> Any:
        fields = selected_properties(info.context.registry, other, info.selected_fields[0].selections)
        rows = await info.context.related(rel_type, direction, other, fields).load(root["mrid"])
        if many:
            return rows
        return rows[0] if rows else None

    def resolve(root: Any, info: Info) -> Any:
        prefetched = root.get(PREFETCHED_KEY)
        rows = prefetched.get(key) if prefetched is not None else None
        if rows is None:
            return load(root, info)
        if many:
            return rows
        return rows[0] if rows else None

    setattr(resolve, _LINK_ATTRIBUTE, PrefetchedLink(key, many))
    return resolve


def _attributes_resolver(root: Any, info: Info) -> list[AttributeValue]:
    return info.context.registry.attributes(root)


def _generic_namespace() -> dict[str, Any]:
    annotations: dict[str, Any] = {
        "mrid": strawberry.ID,
        "class_name": str,
        "domain": Domain,
        "name": str | None,
        "label": str,
        "producer": str,
        "version": Long,
        "updated": datetime,
        "point": Point | None,
    }
    ns: dict[str, Any] = {
        "__annotations__": annotations,
        "mrid": strawberry.field(description="Master resource identifier (the object's id)."),
        "class_name": strawberry.field(description="Ontology class of the object."),
        "domain": strawberry.field(description="Energy domain of the object's class."),
        "name": strawberry.field(default=None, description="Human-readable name (IdentifiedObject.name)."),
        "label": strawberry.field(description="Canonical security label the object carries."),
        "producer": strawberry.field(description="Producer that last wrote the object."),
        "version": strawberry.field(description="Version of the last applied event."),
        "updated": strawberry.field(description="Commit time of the last change."),
        "point": strawberry.field(
            default=None,
            description="The raw x/y the object was published with (geographic or diagram-layout).",
            deprecation_reason=POINT_DEPRECATION,
        ),
        "geometry": strawberry.field(
            resolver=resolve_geometry, graphql_type=Geometry | None, description=GEOMETRY_DESCRIPTION
        ),
        "diagram_points": strawberry.field(
            resolver=resolve_diagram_points,
            graphql_type=list[DiagramPoint],
            description=DIAGRAM_POINTS_DESCRIPTION,
        ),
        "level": strawberry.field(
            resolver=resolve_level, graphql_type=NetworkLevel | None, description=LEVEL_DESCRIPTION
        ),
        "attributes": strawberry.field(
            resolver=_attributes_resolver,
            graphql_type=list[AttributeValue],
            description="Every attribute with a value, by ontology key and qualified name.",
        ),
    }
    return ns


def build_types(ontology: Ontology) -> TypeRegistry:
    """Generate interfaces and object types for every class of the ontology."""
    reg = TypeRegistry(ontology=ontology)
    classes = ontology.classes
    for name in classes:
        if not _NAME_RE.match(name):
            raise ValueError(f"ontology class {name!r} is not a valid GraphQL type name")
        if name in GENERIC_TYPE_NAMES:
            raise ValueError(f"ontology class {name!r} clashes with a generic type of the schema")
    has_children = {n for n in classes if len(ontology.descendants(n)) > 1}
    root_in_ontology = ROOT in classes
    if root_in_ontology and ROOT not in has_children:
        has_children.add(ROOT)  # the root is always an interface
    for name in has_children:
        if f"{name}{INSTANCE_SUFFIX}" in classes:
            raise ValueError(f"ontology classes {name!r} and {name}{INSTANCE_SUFFIX!r} clash in GraphQL")

    generic_python = {
        "mrid",
        "class_name",
        "domain",
        "name",
        "label",
        "producer",
        "version",
        "updated",
        "point",
        "geometry",
        "diagram_points",
        "level",
        "attributes",
        "resolve_type",
        "is_type_of",
    }

    # 1. raw (undecorated) classes in ancestry order, so that bases exist before subclasses
    order = sorted(classes, key=lambda n: (n != ROOT, len(ontology.ancestors(n)), n))
    raw: dict[str, type] = {}

    root_ns = _generic_namespace()
    root_ns["resolve_type"] = staticmethod(resolve_row_type)
    root_ns["__doc__"] = "Any object of the hub's graph."
    if not root_in_ontology:
        raw[ROOT] = type(ROOT, (), root_ns)

    taken_python: set[str] = set(generic_python)

    own_links: dict[str, dict[str, Prefetch]] = {}

    def fields_for(name: str) -> dict[str, Any]:
        cls = classes[name]
        annotations: dict[str, Any] = {}
        ns: dict[str, Any] = {"__annotations__": annotations}
        for attr in sorted(cls.attributes.values(), key=lambda a: a.key):
            if attr.key in _SKIPPED_KEYS or attr.key in GENERIC_FIELD_NAMES:
                continue
            py = _python_name(attr.key, taken_python)
            if py != attr.key:
                reg.renamed[attr.key] = py
            annotations[py] = _SCALARS[attr.datatype]
            ns[py] = strawberry.field(name=attr.key, default=None, description=_attribute_description(attr))
        links: list[tuple[str, Association, str]] = [(a.key, a, "out") for a in cls.associations.values()]
        links += [(a.inverse_key, a, "in") for a in ontology.incoming_of(name) if a.target == name]
        seen_keys: set[str] = set()
        for key, assoc, direction in sorted(links, key=lambda t: t[0]):
            if key in GENERIC_FIELD_NAMES or key in seen_keys or not _NAME_RE.match(key):
                log.warning("association field skipped (name clash)", cls=name, key=key, qname=assoc.qname)
                continue
            seen_keys.add(key)
            other = assoc.target if direction == "out" else assoc.owner
            many = assoc.many if direction == "out" else True
            link = Prefetch(assoc.rel_type, direction, other, name)
            own_links.setdefault(name, {})[key] = link
            py = f"a_{key}"
            ns[py] = strawberry.field(
                name=key,
                resolver=association_resolver(link, many),
                description=(assoc.description.strip() + " " if assoc.description.strip() else "")
                + (f"({assoc.qname})" if direction == "out" else f"(inverse of {assoc.qname})"),
            )
            ns[f"__hub_link_{py}"] = (other, many)
        return ns

    link_types: dict[tuple[str, str], tuple[str, bool]] = {}
    for name in order:
        cls = classes[name]
        bases: tuple[type, ...] = tuple(raw[p] for p in cls.parents if p in raw)
        if not bases and name != ROOT:
            bases = (raw[ROOT],)
        ns = fields_for(name)
        for key in list(ns):
            if key.startswith("__hub_link_"):
                link_types[(name, key[len("__hub_link_") :])] = ns.pop(key)
        if name == ROOT:
            merged = dict(root_ns)
            merged["__annotations__"] = {**root_ns["__annotations__"], **ns.pop("__annotations__")}
            merged.update(ns)
            ns = merged
        ns["__doc__"] = cls.description.strip() or f"Ontology class {name}."
        raw[name] = type(name, bases, ns)

    # 2. association field types, now that every class exists (forward references and cycles)
    def target_type(other: str) -> type:
        return raw[other]

    for (name, py), (other, many) in link_types.items():
        t = target_type(other)
        raw[name].__dict__[py].type = list[t] if many else t | None  # type: ignore[valid-type]

    # 3. decorate, bases first: interfaces for classes with subclasses, object types for the rest
    for name in ([ROOT] if not root_in_ontology else []) + order:
        cls_raw = raw[name]
        description = (cls_raw.__doc__ or "").strip()
        if name in has_children or (name == ROOT):
            reg.interfaces[name] = strawberry.interface(cls_raw, name=name, description=description)
            concrete_name = f"{name}{INSTANCE_SUFFIX}"
            concrete = type(
                concrete_name,
                (cls_raw,),
                {
                    "__doc__": f"An object whose class is {name} itself (not a subclass).",
                    "is_type_of": staticmethod(row_is_type_of),
                },
            )
            reg.objects[name] = strawberry.type(
                concrete, name=concrete_name, description=f"An object of class {name} itself."
            )
            reg.typenames[name] = concrete_name
        else:
            cls_raw.is_type_of = staticmethod(row_is_type_of)  # type: ignore[attr-defined]
            reg.objects[name] = strawberry.type(cls_raw, name=name, description=description)
            reg.typenames[name] = name

    for name in classes:
        inherited: dict[str, Prefetch] = {}
        for anc in reversed(ontology.ancestors(name)):
            inherited.update(own_links.get(anc, {}))
        reg.links[name] = inherited
    reg.class_of_type = {**{n: n for n in reg.interfaces}, **{t: n for n, t in reg.typenames.items()}}
    reg.root = reg.interfaces[ROOT]
    reg.fallback_typename = reg.typenames[ROOT]
    return reg
