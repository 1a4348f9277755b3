"""Operation execution with a short path for the plain scalar fields of row objects.

graphql-core completes every field the same general way: a path entry, the resolve info, the resolver, then
value completion through the type's wrappers. For most of a large result (the scalar fields of thousands of
objects, which the schema's default resolver reads from row dicts) that machinery costs several times the
value itself. :class:`HubExecutionContext` reads such a field straight from the row and coerces it with its
scalar. Anything else goes to graphql-core unchanged: fields with resolvers or arguments, non-dict sources,
and every value that does not coerce cleanly (null in a non-null field, a value the scalar rejects), which
graphql-core then resolves again and reports exactly as it would have. Results and errors are therefore
the ones graphql-core produces, in the same order; only the work differs.

The short path is off when any extension resolves fields (a middleware must see every field).

A subscription executes its selection once per event, each time on a copy of the operation's executor.
graphql-core collects the root fields afresh for every event, so the memos keyed by the identity of a
field set (its sub-selections, our plans) missed every time and kept one entry per event for the life of
the subscription. The first event's root field set is kept and used for the next ones whenever they
collect the same fields from the same nodes (always, for one operation and its variables); the
sub-selections and plans are then made once per subscription.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, cast

from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    OperationType,
    Undefined,
    is_leaf_type,
    is_non_null_type,
)
from hubql.generic import resolve_from_source


class _Leaf(NamedTuple):
    """A scalar or enum field whose value is the row's entry under ``key``."""

    key: str
    coerce: Callable[[Any], Any]
    non_null: bool


class _Plan(NamedTuple):
    # every response name in selection order, with its leaf reader (None: graphql-core executes it)
    fields: tuple[tuple[str, _Leaf | None], ...]
    rest: GroupedFieldSet  # the fields graphql-core executes
    keep: GroupedFieldSet  # the planned field set, kept alive so its id is not reused meanwhile


# field id -> (field, how to read it); the field is held so that its id stays its own
_LEAVES: dict[int, tuple[GraphQLField, _Leaf | None]] = {}


def leaf_of(field_def: GraphQLField) -> _Leaf | None:
    """How to read ``field_def`` from a row dict, or None when it needs graphql-core's full path."""
    known = _LEAVES.get(id(field_def))
    if known is not None:
        return known[1]
    leaf = _leaf_of(field_def)
    _LEAVES[id(field_def)] = (field_def, leaf)
    return leaf


def _leaf_of(field_def: GraphQLField) -> _Leaf | None:
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(definition, StrawberryField)
        or not definition.is_basic_field  # a resolver of its own
        or definition.extensions  # field extensions (permissions and the like) wrap the resolver
        or definition.default_resolver is not resolve_from_source
        or field_def.args
    ):
        return None
    gql_type: Any = field_def.type
    non_null = is_non_null_type(gql_type)
    if non_null:
        gql_type = gql_type.of_type
    if not is_leaf_type(gql_type):
        return None
    return _Leaf(definition.python_name, gql_type.coerce_output_value, non_null)


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor (as Strawberry configures it) with the short path for leaf fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._short = not (manager is not None and getattr(manager, "middlewares", None))
        self._plans: dict[tuple[str, int], _Plan | None] = {}
        # A subscription's root field set, shared with the copies that execute its events.
        self._event_root: list[GroupedFieldSet] = []

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        position_context: Any,
    ) -> Any:
        if self.operation.operation == OperationType.SUBSCRIPTION:
            grouped_field_set = self._same_root(grouped_field_set)
        return super().execute_root_grouped_field_set(
            root_type, root_value, grouped_field_set, serially, position_context
        )

    def _same_root(self, grouped_field_set: GroupedFieldSet) -> GroupedFieldSet:
        """The first event's root field set when ``grouped_field_set`` holds the same fields (response
        names and field nodes, by identity); else ``grouped_field_set``, kept as the one to reuse."""
        kept = self._event_root
        if kept and _same_fields(kept[0], grouped_field_set):
            return kept[0]
        kept[:] = [grouped_field_set]
        return grouped_field_set

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan | None:
        # Sub-selections are collected once per operation and reused for every object of a list, so the
        # plan is made once per field set too.
        key = (parent_type.name, id(grouped_field_set))
        try:
            return self._plans[key]
        except KeyError:
            pass
        fields: list[tuple[str, _Leaf | None]] = []
        rest: GroupedFieldSet = {}
        for name, details in grouped_field_set.items():
            field_def = self.schema.get_field(parent_type, details[0].node.name.value)
            leaf = leaf_of(field_def) if field_def is not None else None
            fields.append((name, leaf))
            if leaf is None:
                rest[name] = details
        plan = _Plan(tuple(fields), rest, grouped_field_set) if len(rest) < len(grouped_field_set) else None
        self._plans[key] = plan
        return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self._short or source_value.__class__ is not dict:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        rest = plan.rest
        redo: GroupedFieldSet | None = None
        get = source_value.get
        for name, leaf in plan.fields:
            if leaf is not None:
                value = get(leaf.key)
                if value is None:
                    if not leaf.non_null:
                        results[name] = None
                        continue
                elif not isinstance(value, Exception):
                    try:
                        coerced = leaf.coerce(value)
                    except Exception:  # graphql-core resolves it again and reports the error
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        results[name] = coerced
                        continue
                # graphql-core's path decides (and reports) this value
                if redo is None:
                    redo = dict(rest)
                redo[name] = grouped_field_set[name]
            results[name] = None  # a place in selection order; filled below
        slow = redo if redo is not None else rest
        if not slow:
            return results
        # Built from the planned set so the field order graphql-core sees is the selection order.
        slow = {k: v for k, v in grouped_field_set.items() if k in slow} if redo is not None else slow
        done = super().execute_fields(parent_type, source_value, path, slow, position_context)
        if self.is_awaitable(done):
            return self._merge_later(results, slow, cast("Awaitable[dict[str, Any]]", done))
        return _merge(results, slow, cast("dict[str, Any]", done))

    @staticmethod
    async def _merge_later(
        results: dict[str, Any], slow: GroupedFieldSet, done: Awaitable[dict[str, Any]]
    ) -> dict[str, Any]:
        return _merge(results, slow, await done)


def _same_fields(a: GroupedFieldSet, b: GroupedFieldSet) -> bool:
    if a.keys() != b.keys():
        return False
    for name, details in a.items():
        other = b[name]
        if len(details) != len(other) or any(
            x.node is not y.node
            or x.defer_usage is not y.defer_usage
            or x.fragment_variable_values != y.fragment_variable_values
            for x, y in zip(details, other, strict=True)
        ):
            return False
    return True


def _merge(results: dict[str, Any], slow: GroupedFieldSet, done: dict[str, Any]) -> dict[str, Any]:
    results.update(done)
    if len(done) < len(slow):  # graphql-core leaves out fields it does not know; so do we
        for name in slow:
            if name not in done:
                del results[name]
    return results
