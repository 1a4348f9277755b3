"""The executor's short path for scalar fields of row dicts gives exactly graphql-core's results and errors
(same values, key order, error messages, paths and null propagation), and steps aside for field middleware.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import graphql.execution.executor as executor_module
import neo4j.time
import pytest
import strawberry
from graphkit import Api, Obj, Rel, serve
from hubql.encoding import encode_json
from hubql.execution import HubExecutionContext
from hubql.generic import Domain, resolve_from_source
from hubql.scalars import SCALAR_MAP, Long
from hubql.types import (
    PREFETCHED_KEY,
    TYPENAME_KEY,
    association_resolver,
    resolve_row_type,
    row_is_type_of,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.info import Info

from graphql import ExecutionResult
from hub.reader import Prefetch


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


# --- Nested rows: associations prefetched with their source, completed on the short path ------------------


@strawberry.interface
class Node:
    mrid: strawberry.ID
    name: str | None
    resolve_type = staticmethod(resolve_row_type)


_LEVELS = Prefetch("HAS_STATION", "in", "Level", "Station")
_BASE = Prefetch("BASE", "out", "Voltage", "Level")
_OWNER = Prefetch("OWNER", "out", "Node", "Level")


@strawberry.type
class Voltage(Node):
    is_type_of = staticmethod(row_is_type_of)
    nominal: float | None
    strict: float


@strawberry.type
class Level(Node):
    is_type_of = staticmethod(row_is_type_of)
    strict: float
    point: Spot | None
    base: Voltage | None = strawberry.field(
        resolver=association_resolver(_BASE, False), graphql_type=Voltage | None
    )
    owner: Node | None = strawberry.field(
        resolver=association_resolver(_OWNER, False), graphql_type=Node | None
    )

    @strawberry.field
    async def later(self, root: Any) -> str:
        await asyncio.sleep(0)
        if root["mrid"] == "L-fail":
            raise ValueError("later failed")
        return f"later {root['mrid']}"


@strawberry.type
class Station(Node):
    is_type_of = staticmethod(row_is_type_of)
    levels: list[Node] = strawberry.field(
        resolver=association_resolver(_LEVELS, True), graphql_type=list[Node]
    )


@strawberry.type
class Page:
    nodes: list[Node | None]


def _level(mrid: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {TYPENAME_KEY: "Level", "mrid": mrid, "name": f"level {mrid}", "strict": 1.0}
    row["point"] = {"x": 1.0, "y": 2.0}
    row.update(extra)
    return row


def _voltage(mrid: str, nominal: Any) -> dict[str, Any]:
    return {TYPENAME_KEY: "Voltage", "mrid": mrid, "name": None, "nominal": nominal, "strict": 2.0}


def _station(mrid: str, levels: list[dict[str, Any]] | None) -> dict[str, Any]:
    row: dict[str, Any] = {TYPENAME_KEY: "Station", "mrid": mrid, "name": f"station {mrid}"}
    if levels is not None:  # else not prefetched: the resolver asks the (absent) loader
        row[PREFETCHED_KEY] = {_LEVELS.key: levels}
    return row


def _stations() -> list[dict[str, Any]]:
    inner = _station("S-inner", [_level("L-inner", **{PREFETCHED_KEY: {}})])
    return [
        _station(
            "S-a",
            [
                _level(
                    "L-1",
                    **{PREFETCHED_KEY: {_BASE.key: [_voltage("V-1", 400.0)], _OWNER.key: [inner]}},
                ),
                _level("L-2", point=None, **{PREFETCHED_KEY: {_BASE.key: [], _OWNER.key: []}}),
                _voltage("V-as-level", 132.0),  # a row of another possible type
            ],
        ),
        _station("S-empty", []),
        _station("S-unfetched", None),
        _station("S-null-strict", [_level("L-ok", **{PREFETCHED_KEY: {}}), _level("L-bad", strict=None)]),
        _station("S-bad-type", [_level("L-x", **{TYPENAME_KEY: "Nope"})]),
        _station("S-bad-scalar", [_level("L-3", **{PREFETCHED_KEY: {_BASE.key: [_voltage("V-2", "high")]}})]),
        _station("S-async-error", [_level("L-fail", **{PREFETCHED_KEY: {}}), _level("L-4")]),
    ]


@strawberry.type
class NestedQuery:
    @strawberry.field
    def stations(self) -> list[Station | None]:
        return _stations()  # type: ignore[return-value]

    @strawberry.field
    def page(self) -> Page:
        return {"nodes": _stations()}  # type: ignore[return-value]


def _nested_schema(short: bool) -> strawberry.Schema:
    return strawberry.Schema(
        query=NestedQuery,
        types=[Station, Level, Voltage],
        config=StrawberryConfig(default_resolver=resolve_from_source, scalar_map=SCALAR_MAP),
        execution_context_class=HubExecutionContext if short else None,
    )


NESTED_QUERIES = [
    "{ stations { __typename mrid levels { __typename mrid name ... on Level { strict base { mrid nominal } "
    "owner { __typename mrid ... on Level { strict } } } } } }",
    "{ stations { id: mrid l: levels { ...F x: mrid } levels { name } } } "
    "fragment F on Level { b: base { n: nominal mrid } later point { x } }",
    "{ page { nodes { mrid ... on Station { levels { mrid ... on Voltage { nominal } } } } } }",
    "query($s: Boolean!) { stations { levels @include(if: $s) { mrid } mrid "
    "ls: levels @skip(if: $s) { mrid } } }",
    "{ stations { levels { mrid } levels { name ... on Level { base { mrid } owner { mrid } } } } }",
    "{ stations { levels { ... on Level { owner { ... on Station { levels { mrid } } mrid } } } } }",
]


def _run_nested(schema: strawberry.Schema, query: str) -> dict[str, Any]:
    result = asyncio.run(schema.execute(query, variable_values={"s": True}))
    return {"data": result.data, "errors": [e.formatted for e in result.errors or []]}


@pytest.mark.parametrize("query", NESTED_QUERIES)
def test_nested_rows_short_path_matches_graphql_core(query: str) -> None:
    expected = _run_nested(_nested_schema(short=False), query)
    got = _run_nested(_nested_schema(short=True), query)
    # Values, key order, errors (messages, paths) and their order: all graphql-core's.
    assert json.dumps(got, default=str) == json.dumps(expected, default=str)
    assert "L-inner" in json.dumps(got["data"]) or "L-1" in json.dumps(got["data"])


def test_nested_rows_errors_are_graphql_cores() -> None:
    got = _run_nested(_nested_schema(short=True), NESTED_QUERIES[0])
    paths = {tuple(e["path"]): e["message"] for e in got["errors"]}
    # The null in a non-null field nulls the level, then (non-null items, non-null list) the station.
    assert paths[("stations", 3, "levels", 1, "strict")].startswith("Cannot return null for non-nullable")
    assert got["data"]["stations"][3] is None
    assert "Nope" in paths[("stations", 4, "levels", 0)]
    assert paths[("stations", 5, "levels", 0, "base", "nominal")].startswith("Float cannot represent")
    assert ("stations", 2, "levels") in paths  # not prefetched: the loader, which this schema lacks
    a = got["data"]["stations"][0]["levels"]
    assert [x["mrid"] for x in a] == ["L-1", "L-2", "V-as-level"]
    assert a[0]["owner"] == {"__typename": "Station", "mrid": "S-inner"} and a[1]["base"] is None
    assert got["data"]["stations"][1]["levels"] == []


def test_nested_rows_take_the_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    slow: list[str] = []
    full = HubExecutionContext.execute_field

    def counting(self: HubExecutionContext, parent_type: Any, *args: Any) -> Any:
        slow.append(f"{parent_type.name}.{args[2].key}")  # (source, fields, path, position)
        return full(self, parent_type, *args)

    monkeypatch.setattr(HubExecutionContext, "execute_field", counting)
    _run_nested(_nested_schema(short=True), NESTED_QUERIES[1])
    # Response names (aliases). Only the root, the resolver field, associations a row does not carry
    # prefetched (the resolver then asks the loader), a row of no possible type (graphql-core reports it),
    # and the value that does not coerce go through graphql-core's execute_field.
    assert sorted(set(slow)) == [
        "Level.b",
        "Level.later",
        "NestedQuery.stations",
        "Station.l",
        "Station.levels",
        "Voltage.n",
    ]
    assert slow.count("Level.b") == 4  # the levels whose rows carry no prefetched base voltage
    # S-unfetched under both names; S-bad-type under the first, whose error nulls the station
    assert slow.count("Station.l") + slow.count("Station.levels") == 3
    assert slow.count("Voltage.n") == 1


# --- The API on a real graph: the same answers with the short path as with graphql-core's executor ---------

_PUBLIC, _NGT, _HIDDEN = "classification=PUBLIC", "org=ngt", "group=bv-admins"

API_NESTED_QUERIES = [
    # the benchmark's two-hop read, on this graph
    "query($p: ID!) { substations(where: {mrid: {startsWith: $p}}, first: 10, orderBy: [{field: mrid}]) "
    "{ nodes { mrid name voltageLevels { mrid name baseVoltage { mrid nominalVoltage } } } } }",
    # aliases, fragments, __typename, the count, edges, a field selected twice, a reverse link back up
    "query($p: ID!) { substations(where: {mrid: {startsWith: $p}}, orderBy: [{field: mrid}]) "
    "{ totalCount pageInfo { hasNextPage } edges { node { id: mrid ...S } } nodes { __typename mrid "
    "vl: voltageLevels { __typename ...V bv: baseVoltage { __typename mrid label nominalVoltage } } "
    "voltageLevels { name } } } } "
    "fragment S on Substation { name label voltageLevels { mrid } } "
    "fragment V on VoltageLevel { mrid name substation { mrid name } baseVoltage { mrid } }",
    # the root interface, and generic fields beside the associations
    'query($r: String!) { objects(className: "VoltageLevel", name: $r, first: 50) { nodes { mrid className '
    "... on VoltageLevel { domain version producer baseVoltage { mrid className } "
    "substation { mrid voltageLevels { mrid } } } } } }",
]


@pytest.mark.services
def test_api_nested_reads_equal_graphql_cores_executor(
    api: Api, settings: Any, run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]
) -> None:
    from ontology.loader import load_ontology

    ontology = load_ontology()

    def rel(qname: str) -> str:
        assoc = ontology.association_by_qname(qname)
        assert assoc is not None, qname
        return assoc.rel_type

    p = f"{run_id}-"
    objects = [
        Obj(p + "s1", "Substation", _PUBLIC, f"Alpha {run_id}"),
        Obj(p + "s2", "Substation", _NGT, f"Bravo {run_id}"),
        Obj(p + "s3", "Substation", _HIDDEN, f"Hidden {run_id}"),
        Obj(p + "v1", "VoltageLevel", _PUBLIC, f"V1 {run_id}"),
        Obj(p + "v2", "VoltageLevel", _NGT, f"V2 {run_id}"),
        Obj(p + "v3", "VoltageLevel", _PUBLIC, None),
        Obj(p + "v4", "VoltageLevel", _PUBLIC, f"V4 {run_id}"),
        Obj(p + "v5", "VoltageLevel", _HIDDEN, f"V5 {run_id}"),
        Obj(p + "b1", "BaseVoltage", _PUBLIC, "400 kV", {"nominalVoltage": 400.0}),
        Obj(p + "b2", "BaseVoltage", _HIDDEN, "132 kV", {"nominalVoltage": 132.0}),
    ]
    sub, base = rel("VoltageLevel.Substation"), rel("VoltageLevel.BaseVoltage")
    rels = [
        Rel(p + "v1", sub, p + "s1"),
        Rel(p + "v2", sub, p + "s1"),
        Rel(p + "v3", sub, p + "s1"),
        Rel(p + "v4", sub, p + "s2"),
        Rel(p + "v5", sub, p + "s3"),
        Rel(p + "v1", base, p + "b1"),
        Rel(p + "v2", base, p + "b2"),  # hidden from all but bv-admins
        Rel(p + "v4", base, p + "b1"),
    ]
    graph_writer(objects, rels)
    callers = {
        "public": api.token("pub", None, "PUBLIC"),
        "ngt": api.token("ngt", "ngt", "OFFICIAL"),
        "admin": api.token("admin", "ngt", "SECRET", roles=("admin",), groups=("bv-admins",)),
    }
    # The same settings as the session's API (its own metrics port aside), with graphql-core's executor.
    with serve(settings.model_copy(update={"api_leaf_fast_path": False})) as stock:
        for who, token in callers.items():
            for query in API_NESTED_QUERIES:
                variables = {"p": p, "r": run_id}
                got = api.query(query, variables, token=token)
                expected = stock.query(query, variables, token=token)
                assert json.dumps(got) == json.dumps(expected), (who, query)  # key order included
                assert "errors" not in got, got
                text = json.dumps(got)
                assert p + "v1" in text
                if "objects" not in query:
                    # hidden objects are absent at every level, with both executors
                    assert (p + "v5" in text) == (p + "s3" in text) == (who == "admin")
                    assert (p + "b2" in text) == (who == "admin")
                    assert (p + "v2" in text) == (who != "public")
