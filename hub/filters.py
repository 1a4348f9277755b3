"""The ``where`` language of the typed queries, compiled to a parameterised Cypher predicate.

A filter is a plain mapping, as the API's input types produce it::

    {"nominalVoltage": {"gte": 400.0}, "name": {"startsWith": "North"},
     "OR": [{...}, {...}], "NOT": {...},
     "terminals": {"some": {"connected": {"eq": True}}}}

Keys are the generic fields (``mrid``, ``name``, ``domain``, ``producer``, ``label``, ``version``,
``updated``), the class's attributes by ontology key, its associations by field key (forward and inverse, as
the object type shows them) and ``AND`` / ``OR`` / ``NOT``. Property keys and relationship types reach the
Cypher text only from the ontology; every value is a parameter.

Guard: a relationship filter (``some`` / ``none`` / ``all`` / ``single``) only ever looks at related objects
the caller may see: each subquery matches its objects with the guard's :func:`hub.guard.visible` first, so a
hidden neighbour counts for nothing: ``none`` and ``all`` behave as if it did not exist, exactly as
``some`` and ``single`` do. Over a scenario's states (``states``) the related objects are the states there
that a state's references name, or whose references name it, each the caller may see there
(:meth:`hub.history.History.related_states`).

Truth: a comparison with a missing value is false (never unknown), also under ``NOT`` and ``all``: the
predicate is read with two values, the way the oracle of the tests reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hub.graph_schema import CLASS, DOMAIN, LABEL, OWNER, PRODUCER, UPDATED, VERSION
from hub.guard import visible
from hub.labels import intern
from hub.reader import Prefetch, ReadError
from ontology.model import Attribute, Ontology

# Operators by the kind of value they compare.
ORDERED: Final = ("eq", "in", "lt", "lte", "gt", "gte", "isNull")
TEXT: Final = ("eq", "in", "contains", "startsWith", "isNull")
OPERATORS: Final[dict[str, tuple[str, ...]]] = {
    "float": ORDERED,
    "int": ORDERED,
    "datetime": ORDERED,
    "string": TEXT,
    "enum": TEXT,
    "bool": ("eq", "isNull"),
    "id": ("eq", "in", "startsWith"),
    "choice": ("eq", "in"),
}
_CYPHER_OPS: Final = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
RELATION_OPS: Final = ("some", "none", "all", "single")
LOGIC: Final = ("AND", "OR", "NOT")
DOMAINS: Final = ("Electricity", "Gas")


@dataclass(frozen=True)
class GenericField:
    """A field every object has, as the filter and sort name it: Cypher expression of ``{v}`` and kind."""

    expr: str
    kind: str


# ``producer`` reads as the object type shows it: the last writer, else the first.
GENERIC_FIELDS: Final[dict[str, GenericField]] = {
    "mrid": GenericField("{v}.mrid", "id"),
    "name": GenericField("{v}.name", "string"),
    "domain": GenericField(f"{{v}}.{DOMAIN}", "choice"),
    "producer": GenericField(f"coalesce({{v}}.{PRODUCER}, {{v}}.{OWNER})", "choice"),
    "label": GenericField(f"{{v}}.{LABEL}", "label"),
    "version": GenericField(f"{{v}}.{VERSION}", "int"),
    "updated": GenericField(f"{{v}}.{UPDATED}", "datetime"),
}
RESERVED: Final = frozenset({*GENERIC_FIELDS, *LOGIC})
# Generic fields with an index on every object (hub.graph), by preference, and the operators an index
# seek serves; the property each index is on.
SEEKABLE: Final[dict[str, frozenset[str]]] = {
    "mrid": frozenset({"eq", "in", "startsWith"}),
    "name": frozenset({"eq", "in", "startsWith"}),
    "updated": frozenset({"eq", "in", "lt", "lte", "gt", "gte"}),
}
INDEXED_KEYS: Final[dict[str, str]] = {"mrid": "mrid", "name": "name", "updated": UPDATED}


def filterable_attributes(ontology: Ontology, class_name: str) -> dict[str, Attribute]:
    """The attributes of a class a filter, sort or aggregate may name, by key: every one (inherited ones
    too) whose key is not a generic field's (``mRID`` restates ``mrid``)."""
    found: dict[str, Attribute] = {}
    for attr in sorted(ontology.attributes_of(class_name).values(), key=lambda a: (a.key, a.qname)):
        if attr.key in RESERVED or attr.key in ("mRID",) or attr.key.startswith("_"):
            continue
        found.setdefault(attr.key, attr)
    return found


@dataclass(frozen=True)
class FilterLimits:
    """How large a filter may be: relationship filters nested, and terms (comparisons, relationship
    filters) in all; a list operand's length."""

    max_depth: int
    max_terms: int
    max_list: int


@dataclass
class Compiled:
    """A predicate over the node variable it was compiled for, its parameters, and the indexed generic
    fields a top-level conjunct compares in a way an index seek serves (see :data:`SEEKABLE`)."""

    predicate: str
    params: dict[str, Any] = field(default_factory=dict)
    seekable: list[str] = field(default_factory=list)

    def index_hint(self, var: str) -> str:
        """``USING INDEX`` for the best indexed field the filter pins down, or nothing. The guard's own
        ``_label IN $visible`` is indexed too, and on a graph whose statistics are thin the planner may
        start from it, reading every visible object: the hint keeps a look-up a look-up."""
        for key in SEEKABLE:
            if key in self.seekable:
                return f" USING INDEX {var}:Entity({INDEXED_KEYS[key]})"
        return ""


class StateReads(Protocol):
    """What reads the objects related to a state (hub/history.py) where a filter is over states, not
    nodes (a scenario's): see :meth:`hub.history.History.related_states`."""

    def related_states(self, var: str, rel: str, direction: str, other: str) -> str: ...


class FilterError(ReadError):
    """A filter naming what the class does not have, or larger than the limits allow."""


class FilterCompiler:
    """Compiles filters of one ontology: ``links`` gives, per class, its association fields (the same
    table the object types are generated from), so a filter names exactly what an object shows."""

    def __init__(
        self, ontology: Ontology, links: Mapping[str, Mapping[str, Prefetch]], limits: FilterLimits
    ) -> None:
        self.ontology = ontology
        self.links = links
        self.limits = limits

    def compile(
        self,
        class_name: str,
        where: Mapping[str, Any] | None,
        var: str = "n",
        *,
        states: StateReads | None = None,
    ) -> Compiled:
        """``states``: ``var`` is not a node but a state (a scenario's, hub/history.py), whose related
        objects ``states`` reads."""
        if class_name not in self.ontology.classes:
            raise FilterError(f"{class_name!r} is not a class of the ontology")
        state = _State(self.limits, states)
        predicate = self._where(class_name, where or {}, var, state, depth=0, top=True)
        return Compiled(predicate, state.params, sorted(state.seekable))

    # --- recursion ----------------------------------------------------------------------------------

    def _where(
        self, cls: str, where: Mapping[str, Any], var: str, state: _State, depth: int, top: bool = False
    ) -> str:
        """``top``: this filter's conjuncts are conjuncts of the whole predicate (it may use an index)."""
        parts: list[str] = []
        attributes = filterable_attributes(self.ontology, cls)
        links = self.links.get(cls, {})
        for key, value in where.items():
            if value is None:
                continue
            if key == "AND":
                parts.extend(f"({self._where(cls, w, var, state, depth, top)})" for w in value)
            elif key == "OR":
                alternatives = [f"({self._where(cls, w, var, state, depth)})" for w in value]
                parts.append("(" + " OR ".join(alternatives) + ")" if alternatives else "false")
            elif key == "NOT":
                parts.append(f"NOT coalesce({self._where(cls, value, var, state, depth)}, false)")
            elif key in GENERIC_FIELDS:
                spec = GENERIC_FIELDS[key]
                parts.extend(self._leaf(key, spec.expr.format(v=var), spec.kind, value, state))
                if (
                    top
                    and key in SEEKABLE
                    and any(v is not None for op, v in value.items() if op in SEEKABLE[key])
                ):
                    state.seekable.add(key)
            elif key in attributes:
                attr = attributes[key]
                parts.extend(self._leaf(key, f"{var}.`{attr.key}`", attr.datatype, value, state))
            elif key in links:
                parts.extend(self._relation(key, links[key], var, value, state, depth))
            else:
                raise FilterError(f"where: {cls} has no field {key!r} to filter on")
        return " AND ".join(parts) if parts else "true"

    def _leaf(self, key: str, expr: str, kind: str, ops: Mapping[str, Any], state: _State) -> list[str]:
        allowed = OPERATORS.get(kind, ("eq", "in"))
        out = []
        for op, value in ops.items():
            if value is None:
                continue
            if op not in allowed:
                raise FilterError(f"where: {key} does not take {op!r} (it takes {', '.join(allowed)})")
            state.term()
            if kind == "label":
                out.append(self._label(key, expr, op, value, state))
            elif op == "isNull":
                out.append(f"{expr} IS NULL" if value else f"{expr} IS NOT NULL")
            elif op == "in":
                values = list(value)
                if len(values) > self.limits.max_list:
                    raise FilterError(
                        f"where: {key}.in has {len(values)} values; at most {self.limits.max_list} are "
                        "allowed (HUB_MAX_LIST_ITEMS)"
                    )
                if kind == "choice" and key == "domain":
                    values = [_domain(v) for v in values]
                out.append(f"{expr} IN {state.param(values)}")
            else:
                if kind == "choice" and key == "domain":
                    value = _domain(value)
                if op == "eq":
                    out.append(f"{expr} = {state.param(value)}")
                elif op == "contains":
                    out.append(f"{expr} CONTAINS {state.param(str(value))}")
                elif op == "startsWith":
                    out.append(f"{expr} STARTS WITH {state.param(str(value))}")
                else:
                    out.append(f"{expr} {_CYPHER_OPS[op]} {state.param(value)}")
        return out

    def _label(self, key: str, expr: str, op: str, value: Any, state: _State) -> str:
        """``label`` compares the object's canonical label; the texts given are read as labels (so any
        spelling of the same expression matches) and compared by their ids."""
        texts = [value] if op == "eq" else list(value)
        ids = []
        for text in texts:
            try:
                ids.append(intern(str(text))[0])
            except ValueError as exc:
                raise FilterError(f"where: {key} {str(text)[:80]!r} is not a security label: {exc}") from None
        return f"{expr} IN {state.param(ids)}"

    def _relation(
        self, key: str, link: Prefetch, var: str, ops: Mapping[str, Any], state: _State, depth: int
    ) -> list[str]:
        if depth + 1 > self.limits.max_depth:
            raise FilterError(
                f"where: relationship filters nest deeper than {self.limits.max_depth} at {key!r} "
                "(HUB_MAX_FILTER_DEPTH)"
            )
        if link.rel_type not in self.ontology.rel_types() or link.other not in self.ontology.classes:
            raise FilterError(f"where: {key!r} is not an association of the ontology")
        out = []
        for op, sub in ops.items():
            if sub is None:
                continue
            if op not in RELATION_OPS:
                raise FilterError(f"where: {key} takes {', '.join(RELATION_OPS)}, not {op!r}")
            state.term()
            other = state.var()
            if state.reads is not None:
                # States: the related objects' states the caller may see there, of the class.
                classes = sorted(c for c in self.ontology.classes if link.other in self.ontology.ancestors(c))
                pattern = (
                    state.reads.related_states(var, state.param(link.rel_type), link.direction, other)
                    + f" AND {other}.{CLASS} IN {state.param(classes)}"
                )
            else:
                arrow = f"-[:`{link.rel_type}`]->" if link.direction == "out" else f"<-[:`{link.rel_type}`]-"
                pattern = f"MATCH ({var}){arrow}({other}:`{link.other}`) WHERE {visible(other)}"
            inner = self._where(link.other, sub, other, state, depth + 1)
            if op == "some":
                out.append(f"EXISTS {{ {pattern} AND {inner} }}")
            elif op == "none":
                out.append(f"NOT EXISTS {{ {pattern} AND {inner} }}")
            elif op == "all":
                out.append(f"NOT EXISTS {{ {pattern} AND NOT coalesce({inner}, false) }}")
            else:
                out.append(f"COUNT {{ {pattern} AND {inner} }} = 1")
        return out


def _domain(value: Any) -> str:
    text = getattr(value, "value", value)
    if text not in DOMAINS:
        raise FilterError(f"where: domain {text!r} is not one of {', '.join(DOMAINS)}")
    return str(text)


class _State:
    """Parameters and variables of one compilation, and the count of its terms."""

    def __init__(self, limits: FilterLimits, reads: StateReads | None = None) -> None:
        self.limits = limits
        self.reads = reads
        self.params: dict[str, Any] = {}
        self.seekable: set[str] = set()
        self.terms = 0
        self._vars = 0

    def param(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def var(self) -> str:
        self._vars += 1
        return f"m{self._vars}"

    def term(self) -> None:
        self.terms += 1
        if self.terms > self.limits.max_terms:
            raise FilterError(
                f"where has more than {self.limits.max_terms} comparisons and relationship filters "
                "(HUB_MAX_FILTER_TERMS)"
            )
