"""What the loader answers with: classes, their attributes and associations, and the queries over them.

Everything here is plain data built once from the OWL files; the per-class tables (inherited attributes,
associations, labels, key lookups) are computed when the ontology is built so that validation on the hot
path only does dictionary look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Datatype = Literal["float", "int", "bool", "string", "datetime", "enum"]
Domain = Literal["Electricity", "Gas"]

# Namespaces whose local names are the ontology's own names (CIM 16 + its ENTSO-E extension, CIM 100 +
# its European extension, the hub's gas and coupling vocabularies). Stored without the trailing "#".
CIM16_NS = "http://iec.ch/TC57/2013/CIM-schema-cim16"
ENTSOE16_NS = "http://entsoe.eu/CIM/SchemaExtension/3/1"
CIM100_NS = "http://iec.ch/TC57/CIM100"
EU100_NS = "http://iec.ch/TC57/CIM100-European"
GAS_NS = "https://w3id.org/energy-hub/gas"
COUPLING_NS = "https://w3id.org/energy-hub/coupling"
GASLIB_NS = "http://gaslib.zib.de/Gas"
HUB_NS = "https://w3id.org/energy-hub/ontology"

CIM16_NAMESPACES = frozenset({CIM16_NS, ENTSOE16_NS})
CIM100_NAMESPACES = frozenset({CIM100_NS, EU100_NS})
HUB_NAMESPACES = frozenset({GAS_NS, COUPLING_NS})


def normalise_namespace(namespace: str) -> str:
    """Files write a namespace as ``...#``, ``...#`` inside ``{}`` or bare; compare them in one form."""
    return namespace.strip().strip("{}").rstrip("#/")


@dataclass(frozen=True, slots=True)
class Attribute:
    qname: str
    owner: str
    key: str
    datatype: Datatype
    enum: str | None
    literals: tuple[str, ...]
    unit: str | None
    description: str


@dataclass(frozen=True, slots=True)
class Association:
    qname: str
    owner: str
    key: str
    rel_type: str
    target: str
    many: bool
    inverse_key: str
    description: str


@dataclass(frozen=True, slots=True)
class OntClass:
    name: str
    parents: tuple[str, ...]
    domain: Domain
    abstract: bool
    description: str
    attributes: dict[str, Attribute]
    associations: dict[str, Association]


@dataclass(slots=True)
class _ClassTables:
    """Precomputed answers for one class (inheritance already folded in)."""

    ancestors: tuple[str, ...]
    descendants: frozenset[str]
    attributes: dict[str, Attribute]
    associations: dict[str, Association]
    incoming: list[Association]
    labels: tuple[str, ...]


class Ontology:
    """The loaded ontology. Build with :func:`ontology.loader.load_ontology`, never by hand."""

    def __init__(
        self,
        classes: dict[str, OntClass],
        aliases: dict[tuple[str, str], str],
        gaslib_classes: dict[str, str],
        gaslib_members: dict[str, dict[str, str]],
        source_hash: str,
    ) -> None:
        self.classes = classes
        # (namespace kind, foreign name) -> ontology name, for names that differ between CIM 16 and 100.
        self._aliases = aliases
        self._gaslib_classes = gaslib_classes
        self._gaslib_members = gaslib_members
        self.source_hash = source_hash
        self._tables: dict[str, _ClassTables] = {}
        self._attributes_by_qname: dict[str, Attribute] = {}
        self._associations_by_qname: dict[str, Association] = {}
        self._build_tables()

    # --- construction -------------------------------------------------------------------------------

    def _build_tables(self) -> None:
        children: dict[str, list[str]] = {name: [] for name in self.classes}
        for cls in self.classes.values():
            for parent in cls.parents:
                if parent not in self.classes:
                    raise ValueError(f"class {cls.name!r} names unknown parent {parent!r}")
                children[parent].append(cls.name)
            self._attributes_by_qname.update(cls.attributes)
            self._associations_by_qname.update(cls.associations)

        def ancestors(name: str, seen: tuple[str, ...] = ()) -> tuple[str, ...]:
            if name in seen:
                raise ValueError(f"class hierarchy has a cycle through {name!r}")
            result = [name]
            for parent in self.classes[name].parents:
                for anc in ancestors(parent, (*seen, name)):
                    if anc not in result:
                        result.append(anc)
            return tuple(result)

        def descendants(name: str) -> frozenset[str]:
            found = {name}
            for child in children[name]:
                found |= descendants(child)
            return frozenset(found)

        incoming_by_target: dict[str, list[Association]] = {}
        for assoc in self._associations_by_qname.values():
            if assoc.target not in self.classes:
                raise ValueError(f"association {assoc.qname!r} targets unknown class {assoc.target!r}")
            incoming_by_target.setdefault(assoc.target, []).append(assoc)

        for name, cls in self.classes.items():
            ancs = ancestors(name)
            attrs: dict[str, Attribute] = {}
            assocs: dict[str, Association] = {}
            incoming: list[Association] = []
            for anc in ancs:
                attrs.update(self.classes[anc].attributes)
                assocs.update(self.classes[anc].associations)
                incoming.extend(incoming_by_target.get(anc, ()))
            self._tables[name] = _ClassTables(
                ancestors=ancs,
                descendants=descendants(name),
                attributes=attrs,
                associations=assocs,
                incoming=sorted(incoming, key=lambda a: a.qname),
                labels=(*ancs, cls.domain),
            )

    # --- class questions ----------------------------------------------------------------------------

    def get(self, name: str) -> OntClass:
        try:
            return self.classes[name]
        except KeyError:
            raise KeyError(f"class {name!r} is not in the ontology") from None

    def _t(self, name: str) -> _ClassTables:
        try:
            return self._tables[name]
        except KeyError:
            raise KeyError(f"class {name!r} is not in the ontology") from None

    def ancestors(self, name: str) -> tuple[str, ...]:
        return self._t(name).ancestors

    def descendants(self, name: str) -> frozenset[str]:
        return self._t(name).descendants

    def is_a(self, name: str, other: str) -> bool:
        return other in self._t(name).ancestors

    def domain(self, name: str) -> str:
        return self.get(name).domain

    def attributes_of(self, name: str) -> dict[str, Attribute]:
        return self._t(name).attributes

    def associations_of(self, name: str) -> dict[str, Association]:
        return self._t(name).associations

    def attribute(self, name: str, qname: str) -> Attribute | None:
        return self._t(name).attributes.get(qname)

    def association(self, name: str, qname: str) -> Association | None:
        return self._t(name).associations.get(qname)

    def incoming_of(self, name: str) -> list[Association]:
        return self._t(name).incoming

    def neo4j_labels(self, name: str) -> tuple[str, ...]:
        return self._t(name).labels

    def rel_types(self) -> set[str]:
        return {a.rel_type for a in self._associations_by_qname.values()}

    def property_keys(self) -> set[str]:
        return {a.key for a in self._attributes_by_qname.values()}

    def attribute_by_qname(self, qname: str) -> Attribute | None:
        return self._attributes_by_qname.get(qname)

    def association_by_qname(self, qname: str) -> Association | None:
        return self._associations_by_qname.get(qname)

    # --- names in files -----------------------------------------------------------------------------

    def canonical_class(self, name: str, namespace: str) -> str | None:
        """The ontology class a file's element ``{namespace}name`` stands for, or None if unknown."""
        ns = normalise_namespace(namespace)
        if ns == GASLIB_NS:
            return self._gaslib_classes.get(name)
        kind = _namespace_kind(ns)
        if kind is None:
            return None
        candidate = self._aliases.get((kind, name), name)
        return candidate if candidate in self.classes else None

    def canonical_qname(self, qname: str, namespace: str) -> str | None:
        """The ontology qname a file's property ``{namespace}Class.member`` stands for, or None.

        For GasLib the qname is ``element.attribute`` as in the .net files ("pipe.length", "source.x").
        """
        ns = normalise_namespace(namespace)
        owner, dot, member = qname.partition(".")
        if not dot or not owner or not member:
            return None
        if ns == GASLIB_NS:
            cls = self._gaslib_classes.get(owner)
            if cls is None:
                return None
            for anc in self._t(cls).ancestors:
                found = self._gaslib_members.get(anc, {}).get(member)
                if found is not None:
                    return found
            return None
        kind = _namespace_kind(ns)
        if kind is None:
            return None
        aliased = self._aliases.get((kind, qname))
        if aliased is not None:
            return aliased
        cls_name = self._aliases.get((kind, owner), owner)
        if cls_name not in self.classes:
            return None
        own = f"{cls_name}.{member}"
        if own in self._attributes_by_qname or own in self._associations_by_qname:
            return own
        return None


def _namespace_kind(ns: str) -> str | None:
    if ns in CIM16_NAMESPACES:
        return "cim16"
    if ns in CIM100_NAMESPACES:
        return "cim100"
    if ns in HUB_NAMESPACES:
        return "hub"
    return None
