"""The executor's short path for scalar fields of row dicts gives exactly graphql-core's results and errors
(same values, key order, error messages, paths and null propagation), and steps aside for field middleware.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import graphql.execution.executor as executor_module
import neo4j.time
import pytest
import strawberry
from hubql.encoding import encode_json
from hubql.execution import HubExecutionContext
from hubql.generic import Domain, resolve_from_source
from hubql.scalars import SCALAR_MAP, Long
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.info import Info

from graphql import ExecutionResult


@strawberry.type
class Spot:
    x: float
    y: float


@strawberry.interface
class Thing:
    mrid: strawberry.ID
    name: str | None

    @staticmethod
    def resolve_type(obj: Any, info: Any, abstract_type: Any) -> str:
        return str(obj["kind"])


def _is_row(obj: Any, info: Any) -> bool:
    return True  # rows are routed by resolve_type, as in the generated types


@strawberry.type
class Line(Thing):
    is_type_of = staticmethod(_is_row)
    r: float | None
    version: Long
    domain: Domain
    updated: datetime
    point: Spot | None
    strict_r: float = strawberry.field(name="strictR")

    @strawberry.field
    def shout(self, root: Any) -> str:
        return str(root["name"]).upper()

    @strawberry.field
    async def later(self, root: Any) -> str:
        await asyncio.sleep(0)
        return f"later {root['mrid']}"


@strawberry.type
class Bay(Thing):
    is_type_of = staticmethod(_is_row)
    count: int


def _rows() -> list[dict[str, Any]]:
    when = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    base = {
        "kind": "Line",
        "domain": Domain.GAS,
        "updated": when,
        "point": None,
        "strict_r": 1.5,
        "version": 7,
    }
    return [
        {**base, "mrid": "a", "name": "alpha", "r": 0.5, "point": {"x": 1.0, "y": 2.0}},
        {**base, "mrid": "b", "name": None, "r": None, "version": 2**40},
        # neo4j's own temporal type, as rows carry it
        {**base, "mrid": "c", "name": "c", "r": 1, "updated": neo4j.time.DateTime.from_native(when)},
        {"kind": "Bay", "mrid": "d", "name": "bay", "count": 3},
        {**base, "mrid": "e", "name": "bad float", "r": "not a number"},
        {**base, "mrid": "f", "name": "null in non-null", "strict_r": None},
        {**base, "mrid": "g", "name": "too long", "version": 2**64},
        {**base, "mrid": "h", "name": "an exception value", "r": ValueError("stored error")},
        {**base, "mrid": "i", "name": "bad enum", "domain": "Water"},
    ]


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        return _rows()  # type: ignore[return-value]

    @strawberry.field
    def spot(self) -> Spot:
        return Spot(x=1.0, y=2.0)

    @strawberry.field
    def things_in_map(self) -> list[Line | None]:
        return [r for r in _rows() if r["kind"] == "Line"]  # type: ignore[misc]


class CountingMiddleware(SchemaExtension):
    calls = 0

    def resolve(self, _next: Any, root: Any, info: Info, *args: Any, **kwargs: Any) -> Any:
        CountingMiddleware.calls += 1
        return _next(root, info, *args, **kwargs)


def _schema(short: bool, extensions: list[Any] | None = None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        types=[Line, Bay],
        config=StrawberryConfig(default_resolver=resolve_from_source, scalar_map=SCALAR_MAP),
        extensions=extensions or [],
        execution_context_class=HubExecutionContext if short else None,
    )


QUERIES = [
    "{ things { __typename mrid name ... on Line { r version domain updated strictR } } }",
    "{ things { ... on Line { version shout r later updated } mrid n: name m: mrid } }",
    "{ things { mrid ...L ...B } } fragment L on Line { r point { x y } } fragment B on Bay { count }",
    "query($s: Boolean!) { things { mrid name @skip(if: $s) ... on Line { r @include(if: $s) } } }",
    "{ spot { x y } thingsInMap { mrid strictR r } }",
]


def _run(schema: strawberry.Schema, query: str) -> dict[str, Any]:
    result = asyncio.run(schema.execute(query, variable_values={"s": True}))
    errors = [e.formatted for e in result.errors or []]
    return {"data": result.data, "errors": sorted(errors, key=lambda e: json.dumps(e, sort_keys=True))}


@pytest.mark.parametrize("query", QUERIES)
def test_short_path_matches_graphql_core(query: str) -> None:
    expected = _run(_schema(short=False), query)
    got = _run(_schema(short=True), query)
    assert json.dumps(got) == json.dumps(expected)  # key order included
    assert "mrid" in json.dumps(got["data"])


def test_bad_values_are_reported_like_graphql_core() -> None:
    got = _run(_schema(short=True), QUERIES[0] + " ")
    messages = {(tuple(e["path"]), e["message"].split(":")[0]) for e in got["errors"]}
    assert ((("things", 4, "r"), "Float cannot represent non numeric value")) in messages
    assert (("things", 5, "strictR"), "Cannot return null for non-nullable field Line.strictR.") in messages
    assert any(p == ("things", 6, "version") and "Long cannot represent" in m for p, m in messages)
    assert (("things", 7, "r"), "stored error") in messages
    things = got["data"]["things"]
    assert things[5] is None  # null propagated to the nullable list item
    assert things[4]["r"] is None and things[4]["mrid"] == "e"
    assert things[1]["version"] == 2**40


def test_temporal_values_serialise_as_python_isoformat() -> None:
    got = _run(_schema(short=True), "{ things { mrid ... on Line { updated } } }")
    updated = {t["mrid"]: t.get("updated") for t in got["data"]["things"] if t}
    assert updated["a"] == updated["c"] == "2026-01-02T03:04:05.123456+00:00"


def test_middleware_sees_every_field_so_short_path_is_off() -> None:
    CountingMiddleware.calls = 0
    query = "{ things { mrid ... on Line { r } } }"
    got = _run(_schema(short=True, extensions=[CountingMiddleware]), query)
    with_short = CountingMiddleware.calls
    CountingMiddleware.calls = 0
    expected = _run(_schema(short=False, extensions=[CountingMiddleware]), query)
    assert got == expected
    assert with_short == CountingMiddleware.calls > len(_rows())  # every leaf went through it


def test_json_encoding() -> None:
    expected = '{"data":{"a":[1,2.5,"é",null,true]}}'
    assert encode_json({"data": {"a": [1, 2.5, "é", None, True]}}) == expected
    assert json.loads(encode_json({"v": float("nan")})) == {"v": None}  # valid JSON, unlike json.dumps
    assert json.loads(encode_json({"v": 2**70})) == {"v": 2**70}  # beyond orjson: the fallback


def test_short_path_takes_the_plain_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    slow: list[str] = []
    full = HubExecutionContext.execute_field

    def counting(self: HubExecutionContext, parent_type: Any, *args: Any) -> Any:
        slow.append(f"{parent_type.name}.{args[2].key}")  # (source, fields, path, position)
        return full(self, parent_type, *args)

    monkeypatch.setattr(HubExecutionContext, "execute_field", counting)
    _run(_schema(short=True), "{ things { mrid name ... on Line { r version shout } } }")
    # The root field, the resolver field of the lines, and the values that fail to coerce. The line
    # whose version does not fit is nulled at that field, before its resolver field runs.
    assert sorted(set(slow)) == ["Line.r", "Line.shout", "Line.version", "Query.things"]
    assert slow.count("Line.r") == 2 and slow.count("Line.version") == 1
    assert slow.count("Line.shout") == sum(r["kind"] == "Line" for r in _rows()) - 1


@pytest.mark.parametrize("short", [True, False], ids=["leaf-fast-path", "graphql-core-path"])
def test_the_api_schema_executes_as_its_setting_says(short: bool) -> None:
    # HUB_API_LEAF_FAST_PATH=false: graphql-core's executor as Strawberry configures it, no subclass.
    from hubql.schema import build_schema

    from hub.settings import Settings
    from ontology.loader import load_ontology

    schema, _ = build_schema(load_ontology(), Settings(api_leaf_fast_path=short))
    stock = StrawberryGraphQLCoreExecutionContext
    assert schema.execution_context_class is (HubExecutionContext if short else stock)
    assert issubclass(HubExecutionContext, stock)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def things(self, n: int) -> AsyncIterator[list[Thing | None]]:
        for _ in range(n):
            yield _rows()  # type: ignore[misc]


def _events(schema: strawberry.Schema, query: str, n: int) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        stream = await schema.subscribe(query, variable_values={"n": n})
        assert not isinstance(stream, ExecutionResult), stream
        out = []
        async for result in stream:
            errors = [e.formatted for e in result.errors or []]
            out.append({"data": result.data, "errors": sorted(errors, key=lambda e: json.dumps(e))})
        return out

    return asyncio.run(collect())


def test_subscription_events_reuse_the_selection_collected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def schema(short: bool) -> strawberry.Schema:
        return strawberry.Schema(
            query=Query,
            subscription=Subscription,
            types=[Line, Bay],
            config=StrawberryConfig(default_resolver=resolve_from_source, scalar_map=SCALAR_MAP),
            execution_context_class=HubExecutionContext if short else None,
        )

    query = "subscription($n: Int!) { things(n: $n) { mrid ... on Line { r version point { x } } } }"
    expected = _events(schema(short=False), query, 20)
    collected: list[str] = []
    real = executor_module.collect_subfields

    def counting(*args: Any) -> Any:
        collected.append(args[4].name)  # (schema, fragments, variables, operation, return type, fields)
        return real(*args)

    monkeypatch.setattr(executor_module, "collect_subfields", counting)
    assert _events(schema(short=True), query, 20) == expected
    assert len(expected) == 20 and expected[0]["errors"]  # the rows' bad values are reported every time
    # Each object type's sub-selection is collected once for the subscription, not once per event.
    assert sorted(collected) == sorted(set(collected)) and "Line" in collected
