"""The cost budget of a GraphQL document, checked during validation, before anything runs.

Aliases let one document ask for the same expensive field many times; the alias limit alone still let 30
deep neighbourhoods through in one request. Every field selected costs something, counted once per alias
and once per use of a fragment:

- root fields cost what their Cypher costs, relative to one ``object`` look-up (:data:`ROOT_COSTS`);
- ``neighbourhood`` doubles with each level of ``depth`` (a traversal's frontier grows with every hop),
  ``containment`` grows by one step per level, ``relationsAmong`` with the number of mRIDs it is given;
  ``objects``, ``search``, ``history`` and ``changes`` grow with the page size they ask for (``first``);
  ``objects`` at a past time (``asOf``, ``recordedAsOf``) and ``changes`` cost :data:`AS_OF_COST` more,
  as does any field asked in a scenario (``scenario``: the typed pages and aggregates, ``search`` and
  ``counts`` too), which reads every object's state there.
  When such an argument is a variable, the largest value it may take counts: validation does not see
  variable values, and the server allows no more than that anyway;
- a field with a selection of its own (an association, a page, a subgraph) costs 1, since it may mean one
  more batched query; ``totalCount`` costs as much as a count;
- scalar fields cost nothing;
- the typed pages (``acLineSegments``) cost what ``objects`` costs, the typed aggregates 10 (and 10 more
  with ``groupBy``, 15 with ``groupByRelated``); their ``where`` adds ``5 * 2 ** (d - 1)`` for every
  relationship filter (``some``, ``none``, ``all``, ``single``) at nesting depth ``d``, since each level is
  a subquery per candidate of the level above. A ``where`` given as a variable counts as a chain of
  relationship filters as deep as the server allows (``max_filter_depth``); the resolver refuses deeper
  or larger filters anyway.

A document with an operation costing more than ``max_operation_cost`` is refused with its cost and the
budget. The page's own requests, the largest the relationships among 5,000 objects, stay inside the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    ValueNode,
    VariableNode,
)

ROOT_COSTS: Final[dict[str, int]] = {
    "me": 0,
    "ontologyClasses": 1,
    "object": 1,
    "counts": 10,
    "shortestPath": 20,
    "dependencies": 20,
    "changes": 5,
    "compare": 10,
}
NESTED_COSTS: Final[dict[str, int]] = {"totalCount": 10}
# Rows per unit of cost in a page of objects or search hits.
ROWS_PER_UNIT: Final = 100
RELATION_OPS: Final = frozenset({"some", "none", "all", "single"})
AGGREGATE_COST: Final = 10
# What reading a past time adds: ``objects`` and ``changes`` then read kept versions of every object.
AS_OF_ARGS: Final = frozenset({"asOf", "recordedAsOf", "scenario"})
AS_OF_COST: Final = 10


@dataclass(frozen=True)
class Limits:
    """The largest values an argument given as a variable may take."""

    max_neighbourhood_depth: int
    max_page_size: int
    # The typed root fields (hubql.typed) by name, and how deep their relationship filters may nest.
    typed_pages: frozenset[str] = field(default_factory=frozenset)
    typed_aggregates: frozenset[str] = field(default_factory=frozenset)
    max_filter_depth: int = 3
    max_list_items: int = 5000


def _int_arg(node: FieldNode, name: str, default: int, largest: int) -> int:
    # A value past the largest allowed is refused by the resolver with its own message; it costs as
    # much as the largest.
    for arg in node.arguments or ():
        if arg.name.value == name:
            if isinstance(arg.value, IntValueNode):
                return min(max(int(arg.value.value), 0), largest)
            if isinstance(arg.value, VariableNode):
                return largest
            return default  # null or an invalid value: the server uses (or refuses) the default
    return default


def _list_len(node: FieldNode, name: str, largest: int) -> int:
    # A list given as a variable costs as much as the longest list the server accepts.
    value = _arg(node, name)
    if isinstance(value, ListValueNode):
        return min(len(value.values), largest)
    if isinstance(value, VariableNode):
        return largest
    return 1


def relation_cost(depth: int) -> int:
    return 5 * 2 ** (depth - 1)


def _where_cost(value: ValueNode | None, depth: int, limits: Limits) -> int:
    """The cost of the relationship filters in a ``where`` value whose own depth is ``depth``."""
    if value is None:
        return 0
    if isinstance(value, VariableNode):
        return sum(relation_cost(d) for d in range(depth + 1, limits.max_filter_depth + 1))
    if isinstance(value, ListValueNode):
        return sum(_where_cost(v, depth, limits) for v in value.values)
    if not isinstance(value, ObjectValueNode):
        return 0
    total = 0
    for item in value.fields:
        inner = item.value
        ops = {f.name.value for f in inner.fields} if isinstance(inner, ObjectValueNode) else set()
        if ops and ops <= RELATION_OPS:
            assert isinstance(inner, ObjectValueNode)
            for op in inner.fields:
                total += relation_cost(depth + 1) + _where_cost(op.value, depth + 1, limits)
        elif item.name.value in ("AND", "OR", "NOT"):
            total += _where_cost(inner, depth, limits)
    return total


def _arg(node: FieldNode, name: str) -> ValueNode | None:
    for arg in node.arguments or ():
        if arg.name.value == name:
            return arg.value
    return None


class _Costing:
    def __init__(self, context: ValidationContext, limits: Limits) -> None:
        self.context = context
        self.limits = limits

    def root_field(self, node: FieldNode) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        lim = self.limits
        # At a past time (hub/history.py) objects are picked from every kept version, not sought.
        as_of = AS_OF_COST if any(a.name.value in AS_OF_ARGS for a in node.arguments or ()) else 0
        if name == "neighbourhood":
            depth = max(_int_arg(node, "depth", 1, lim.max_neighbourhood_depth), 1)
            return (5 + as_of) * 2 ** (depth - 1)
        if name == "relationsAmong":
            return 5 + as_of + math.ceil(_list_len(node, "mrids", lim.max_list_items) / ROWS_PER_UNIT)
        if name == "containment":
            return (5 + as_of) * max(_int_arg(node, "depth", 3, lim.max_neighbourhood_depth), 1)
        if name == "objects":
            return as_of + 1 + math.ceil(_int_arg(node, "first", 100, lim.max_page_size) / ROWS_PER_UNIT)
        if name == "history":
            return 1 + math.ceil(_int_arg(node, "first", 100, lim.max_page_size) / ROWS_PER_UNIT)
        if name in lim.typed_pages:
            rows = _int_arg(node, "first", 100, lim.max_page_size)
            return as_of + 1 + math.ceil(rows / ROWS_PER_UNIT) + _where_cost(_arg(node, "where"), 0, lim)
        if name in lim.typed_aggregates:
            grouped = AGGREGATE_COST if _arg(node, "groupBy") is not None else 0
            if _arg(node, "groupByRelated") is not None:
                grouped = AGGREGATE_COST + relation_cost(1)
            return as_of + AGGREGATE_COST + grouped + _where_cost(_arg(node, "where"), 0, lim)
        if name == "changes":
            return AS_OF_COST + math.ceil(_int_arg(node, "first", 100, lim.max_page_size) / ROWS_PER_UNIT)
        if name == "search":
            return as_of + 4 + math.ceil(_int_arg(node, "first", 20, lim.max_page_size) / ROWS_PER_UNIT)
        return as_of + ROOT_COSTS.get(name, 1)

    def selection(self, selections: SelectionSetNode | None, *, root: bool, seen: frozenset[str]) -> int:
        if selections is None:
            return 0
        total = 0
        for sel in selections.selections:
            if isinstance(sel, FieldNode):
                if root:
                    total += self.root_field(sel)
                elif sel.name.value in NESTED_COSTS:
                    total += NESTED_COSTS[sel.name.value]
                elif sel.selection_set is not None:
                    total += 1
                total += self.selection(sel.selection_set, root=False, seen=seen)
            elif isinstance(sel, InlineFragmentNode):
                total += self.selection(sel.selection_set, root=root, seen=seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self.context.get_fragment(name)
                # A fragment cycle is another rule's error; do not follow it round.
                if fragment is not None and name not in seen:
                    total += self.selection(fragment.selection_set, root=root, seen=seen | {name})
        return total


def cost_of(context: ValidationContext, operation: OperationDefinitionNode, limits: Limits) -> int:
    """The cost of one operation of the document being validated."""
    return _Costing(context, limits).selection(operation.selection_set, root=True, seen=frozenset())


def cost_rule(max_cost: int, limits: Limits) -> type[ValidationRule]:
    """A validation rule refusing operations that cost more than ``max_cost``.

    Built once per schema: the validation cache recognises documents already checked by the same rules.
    """

    class CostBudget(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            cost = cost_of(self.context, node, limits)
            if cost > max_cost:
                name = node.name.value if node.name else "(anonymous)"
                self.report_error(
                    GraphQLError(
                        f"operation {name!r} costs {cost}, more than the budget of {max_cost} per document "
                        "(HUB_MAX_OPERATION_COST); ask for fewer or smaller fields, or split the request",
                        node,
                    )
                )

    return CostBudget
