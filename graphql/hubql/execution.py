"""Operation execution with a short path for the fields of row objects that need no resolver call.

graphql-core completes every field the same general way: a path entry, the resolve info, the resolver, then
value completion through the type's wrappers. For most of a large result that machinery costs several times
the value itself. :class:`HubExecutionContext` takes two kinds of field straight from the row:

- a plain scalar field (the schema's default resolver reads it from the row dict): read and coerced with
  its scalar;
- an association field whose rows the source's query prefetched (:class:`hubql.types.PrefetchedLink`):
  the prefetched rows are completed as graphql-core would complete what the field's resolver returns for
  them (each row's type from its stored type name, then its selection), without the resolver call, the
  resolve info, or the generic list and abstract-type completion per row. Their own fields take the same
  short path, so a nested read (substations, their voltage levels, each one's base voltage) is completed
  level by level at the cost of its leaves.

Fields are executed in selection order, each either on the short path or by graphql-core's own
``execute_field``, exactly as graphql-core's loop does; so are list items. Anything the short path does
not cover goes to graphql-core unchanged: fields with other resolvers or arguments, non-dict sources, an
association the row does not carry prefetched (the resolver then batches it through the request's loader),
rows whose type name does not resolve to a possible type, ``@stream``, and every scalar value that does not
coerce cleanly (null in a non-null field, a value the scalar rejects), which graphql-core then resolves
again and reports exactly as it would have. Errors raised beneath a prefetched association are handled at
the item and then the field, by graphql-core's own handler, as its list and value completion would. Results
and errors are therefore the ones graphql-core produces, in the same order; only the work differs.

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
from typing import Any, NamedTuple, TypeVar, cast

from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    OperationType,
    Undefined,
    is_leaf_type,
    is_non_null_type,
)
from hubql.generic import resolve_from_source
from hubql.types import PREFETCHED_KEY, TYPENAME_KEY, prefetched_link, resolve_row_type, row_is_type_of


class _Leaf(NamedTuple):
    """A scalar or enum field whose value is the row's entry under ``key``."""

    key: str
    coerce: Callable[[Any], Any]
    non_null: bool


class _Link(NamedTuple):
    """A field whose value is rows (or a row): an association whose rows the source row may carry,
    prefetched with it, or a plain field of the source holding rows (a page's ``nodes``)."""

    key: str  # the association's key among the row's prefetched rows, or the source's key (direct)
    many: bool
    direct: bool
    return_type: GraphQLOutputType  # the field's type
    item_type: GraphQLOutputType  # a list's item type as declared
    named: GraphQLObjectType | GraphQLInterfaceType  # the type of the rows, as declared


class _Plan(NamedTuple):
    # every response name in selection order, with how to read it (None: graphql-core executes it)
    fields: tuple[tuple[str, _Leaf | _Link | None], ...]
    keep: GroupedFieldSet  # the planned field set, kept alive so its id is not reused meanwhile


# field id -> (field, how to read it); the field is held so that its id stays its own
_LEAVES: dict[int, tuple[GraphQLField, _Leaf | None]] = {}
_LINKS: dict[int, tuple[GraphQLField, _Link | None]] = {}
_SLOW: Any = object()  # the short path steps aside: graphql-core executes the field


_T = TypeVar("_T")


def _memo(
    cache: dict[int, tuple[GraphQLField, _T]], field_def: GraphQLField, make: Callable[[GraphQLField], _T]
) -> _T:
    """``make(field_def)``, worked out once per field (a field's id is its key while the field is held)."""
    known = cache.get(id(field_def))
    if known is not None:
        return known[1]
    made = make(field_def)
    cache[id(field_def)] = (field_def, made)
    return made


def _definition(field_def: GraphQLField) -> StrawberryField | None:
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(definition, StrawberryField)
        or definition.extensions  # field extensions (permissions and the like) wrap the resolver
        or field_def.args
    ):
        return None
    return definition


def leaf_of(field_def: GraphQLField) -> _Leaf | None:
    """How to read ``field_def`` from a row dict, or None when it needs graphql-core's full path."""
    return _memo(_LEAVES, field_def, _leaf_of)


def _leaf_of(field_def: GraphQLField) -> _Leaf | None:
    definition = _definition(field_def)
    if (
        definition is None
        or not definition.is_basic_field  # a resolver of its own
        or definition.default_resolver is not resolve_from_source
    ):
        return None
    gql_type: Any = field_def.type
    non_null = is_non_null_type(gql_type)
    if non_null:
        gql_type = gql_type.of_type
    if not is_leaf_type(gql_type):
        return None
    return _Leaf(definition.python_name, gql_type.coerce_output_value, non_null)


def link_of(field_def: GraphQLField) -> _Link | None:
    """How to complete ``field_def`` from the rows prefetched with its source, or None when it is not a
    prefetched association (or has a type the short path does not complete)."""
    return _memo(_LINKS, field_def, _link_of)


def _link_of(field_def: GraphQLField) -> _Link | None:
    definition = _definition(field_def)
    if definition is None:
        return None
    return_type = field_def.type
    if definition.is_basic_field:  # rows the source holds, read by the default resolver
        if definition.default_resolver is not resolve_from_source:
            return None
        unwrapped = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        key, many, direct = definition.python_name, isinstance(unwrapped, GraphQLList), True
    else:
        resolver = definition.base_resolver
        prefetched = prefetched_link(resolver.wrapped_func) if resolver is not None else None
        if prefetched is None:
            return None
        key, many, direct = prefetched.key, prefetched.many, False
    item_type: GraphQLOutputType = return_type
    if many:
        # [T!]! or [T!] or [T]: what the resolver returns is a list
        inner = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if not isinstance(inner, GraphQLList):
            return None
        item_type = inner.of_type
    elif isinstance(return_type, GraphQLNonNull) and not direct:
        return None  # a missing row would be graphql-core's error to report
    named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    if isinstance(named, GraphQLInterfaceType):
        if named.resolve_type is not resolve_row_type:
            return None
    elif not isinstance(named, GraphQLObjectType) or named.is_type_of not in (None, row_is_type_of):
        return None
    return _Link(key, many, direct, return_type, item_type, named)


def _streamed(details: FieldDetailsList) -> bool:
    return any(d.name.value == "stream" for fd in details for d in fd.node.directives or ())


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor (as Strawberry configures it) with the short path for row fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._short = not (manager is not None and getattr(manager, "middlewares", None))
        self._plans: dict[tuple[str, int], _Plan | None] = {}
        self._row_types: dict[tuple[str, Any], GraphQLObjectType | None] = {}
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
        fields: list[tuple[str, _Leaf | _Link | None]] = []
        for name, details in grouped_field_set.items():
            field_def = self.schema.get_field(parent_type, details[0].node.name.value)
            how: _Leaf | _Link | None = None
            if field_def is not None:
                how = leaf_of(field_def)
                if how is None and not _streamed(details):
                    how = link_of(field_def)
            fields.append((name, how))
        short = any(how is not None for _, how in fields)
        plan = _Plan(tuple(fields), grouped_field_set) if short else None
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
        # graphql-core's loop (Executor.execute_fields), with the short path taken where it applies.
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        get = source_value.get
        type_name = parent_type.name
        try:
            for name, how in plan.fields:
                if how.__class__ is _Leaf:
                    leaf: _Leaf = how
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
                    result = _SLOW  # graphql-core's path decides (and reports) this value
                elif how.__class__ is _Link:
                    result = self._complete_link(
                        how,
                        source_value,
                        grouped_field_set[name],
                        Path(path, name, type_name),
                        position_context,
                    )
                else:
                    result = _SLOW
                if result is _SLOW:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        grouped_field_set[name],
                        Path(path, name, type_name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                results[name] = result
                if is_awaitable(result):
                    awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[f] for f in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gather_fields(results, awaitable_fields)

    def _row_type(
        self, named: GraphQLObjectType | GraphQLInterfaceType, row: Any
    ) -> GraphQLObjectType | None:
        """The object type graphql-core completes ``row`` as (for a field of type ``named``), or None when
        that is not a plain row of a possible type (graphql-core then completes, or reports, it)."""
        if row.__class__ is not dict:
            return None
        if isinstance(named, GraphQLObjectType):
            return named
        type_name = row.get(TYPENAME_KEY)
        key = (named.name, type_name)
        try:
            return self._row_types[key]
        except KeyError:
            pass
        found = self.schema.get_type(type_name) if isinstance(type_name, str) else None
        runtime = (
            found
            if isinstance(found, GraphQLObjectType)
            and self.schema.is_sub_type(named, found)
            and found.is_type_of in (None, row_is_type_of)
            else None
        )
        self._row_types[key] = runtime
        return runtime

    def _complete_link(
        self,
        link: _Link,
        source: dict[str, Any],
        details: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """The completed value of a field of rows (as Executor.execute_field and complete_value would
        make it from what the field's resolver returns), or _SLOW."""
        if link.direct:
            rows = source.get(link.key)
            if rows is None:
                return _SLOW if link.return_type.__class__ is GraphQLNonNull else None
        else:
            store = source.get(PREFETCHED_KEY)
            rows = store.get(link.key) if store is not None else None
            if rows is None:
                return _SLOW  # not prefetched: the resolver batches it through the loader
        if not link.many:
            row = rows if link.direct else rows[0] if rows else None
            if row is None:
                return None
            runtime = self._row_type(link.named, row)
            if runtime is None:
                return _SLOW
            try:
                done = self._complete_row(runtime, details, path, row, position_context)
            except Exception as raw_error:
                self.handle_field_error(raw_error, link.return_type, details, path)
                return None
            if self.is_awaitable(done):
                return self._await_field(done, link.return_type, details, path)
            return done
        if rows.__class__ is not list:
            return _SLOW
        row_type = self._row_type
        named = link.named
        found = [row_type(named, row) for row in rows]
        if any(runtime is None for runtime in found):
            return _SLOW
        runtimes = cast("list[GraphQLObjectType]", found)
        is_awaitable = self.is_awaitable
        item_type = link.item_type
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            try:
                for index, row in enumerate(rows):
                    item_path = path.add_key(index, None)
                    try:
                        done = self._complete_row(runtimes[index], details, item_path, row, position_context)
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, item_type, details, item_path)
                        completed.append(None)
                        continue
                    if is_awaitable(done):
                        completed.append(self._await_item(done, item_type, details, item_path))
                        awaitable_indices.append(index)
                    else:
                        completed.append(done)
            except Exception:
                if awaitable_indices:
                    self.settle_in_background([completed[i] for i in awaitable_indices])
                raise
        except Exception as raw_error:
            self.handle_field_error(raw_error, link.return_type, details, path)
            return None
        if not awaitable_indices:
            return completed
        return self._await_field(_gather_items(completed, awaitable_indices), link.return_type, details, path)

    def _complete_row(
        self,
        runtime: GraphQLObjectType,
        details: FieldDetailsList,
        path: Path,
        row: dict[str, Any],
        position_context: Any,
    ) -> Any:
        # Executor.collect_and_execute_subfields: the sub-selection is collected once per type and field.
        grouped, new_defer_usages, _ = self.collect_subfields(runtime, details)
        return self.execute_collected_subfields(
            runtime, row, path, grouped, new_defer_usages, position_context
        )

    async def _await_item(
        self, done: Awaitable[Any], item_type: GraphQLOutputType, details: FieldDetailsList, path: Path
    ) -> Any:
        try:
            return await done
        except Exception as raw_error:
            self.handle_field_error(raw_error, item_type, details, path)
            return None

    async def _await_field(
        self, done: Awaitable[Any], return_type: GraphQLOutputType, details: FieldDetailsList, path: Path
    ) -> Any:
        try:
            return await done
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, details, path)
            return None


async def _gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    if len(awaitable_fields) == 1:
        name = awaitable_fields[0]
        results[name] = await results[name]
    else:
        awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results


async def _gather_items(completed: list[Any], awaitable_indices: list[int]) -> list[Any]:
    if len(awaitable_indices) == 1:
        index = awaitable_indices[0]
        completed[index] = await completed[index]
    else:
        awaited = await gather_with_cancel(*(completed[i] for i in awaitable_indices))
        for index, value in zip(awaitable_indices, awaited, strict=True):
            completed[index] = value
    return completed


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
