"""The ``Long`` scalar: versions beyond 32 bits (epoch milliseconds) reach clients exactly, and bad inputs
are refused with a message naming the value."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import strawberry
from graphkit import Api, Obj, Rel
from hubql.scalars import LONG_MAX, LONG_MIN, SCALAR_MAP, Long, parse_long, serialize_long
from strawberry.schema.config import StrawberryConfig

EPOCH_MS = 1_700_000_000_000


@strawberry.type
class _Echo:
    @strawberry.field
    def echo(self, value: Long) -> Long:
        return value


ECHO_SCHEMA = strawberry.Schema(query=_Echo, config=StrawberryConfig(scalar_map=SCALAR_MAP))


@pytest.mark.services
def test_object_version_beyond_32_bits_is_exact(
    api: Api, run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]
) -> None:
    mrid = f"{run_id}-brk"
    graph_writer([Obj(mrid, "Breaker", "classification=PUBLIC", f"Breaker {run_id}", version=EPOCH_MS)], [])
    token = api.token()
    body = api.query(
        """query($m: ID!, $n: String) {
             object(mrid: $m) { mrid version }
             objects(className: "Breaker", name: $n) { edges { node { version } } } }""",
        {"m": mrid, "n": run_id},
        token=token,
    )
    assert "errors" not in body, body
    assert body["data"]["object"] == {"mrid": mrid, "version": EPOCH_MS}
    assert [e["node"]["version"] for e in body["data"]["objects"]["edges"]] == [EPOCH_MS]
    # The wire format is a JSON number, not a string.
    raw = api.query("query($m: ID!) { object(mrid: $m) { version } }", {"m": mrid}, token=token, raw=True)
    assert raw.content == b'{"data":{"object":{"version":1700000000000}}}'


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("1700000000000", EPOCH_MS),
        ('"1700000000000"', EPOCH_MS),
        (str(LONG_MIN), LONG_MIN),
        (str(LONG_MAX), LONG_MAX),
    ],
)
def test_parses_int_and_numeric_string_literals(literal: str, expected: int) -> None:
    result = ECHO_SCHEMA.execute_sync(f"{{ echo(value: {literal}) }}")
    assert result.errors is None, result.errors
    assert result.data == {"echo": expected}


@pytest.mark.parametrize("value", [EPOCH_MS, str(EPOCH_MS), " 42 "])
def test_parses_variables(value: int | str) -> None:
    result = ECHO_SCHEMA.execute_sync("query($v: Long!) { echo(value: $v) }", variable_values={"v": value})
    assert result.errors is None, result.errors
    assert result.data == {"echo": int(value)}


@pytest.mark.parametrize("value", [LONG_MAX + 1, LONG_MIN - 1, str(LONG_MAX + 1)])
def test_rejects_values_outside_64_bits(value: int | str) -> None:
    result = ECHO_SCHEMA.execute_sync("query($v: Long!) { echo(value: $v) }", variable_values={"v": value})
    assert result.errors is not None
    message = result.errors[0].message
    assert "outside the signed 64-bit range" in message and str(value) in message, message
    with pytest.raises(ValueError, match="outside the signed 64-bit range"):
        serialize_long(value)


@pytest.mark.parametrize("value", ["12a", "1.5", 1.5, True, None, [1]])
def test_rejects_non_integers(value: object) -> None:
    with pytest.raises(ValueError, match="not an integer") as info:
        parse_long(value)
    assert repr(value) in str(info.value)


def test_rejected_literal_names_the_value() -> None:
    result = ECHO_SCHEMA.execute_sync('{ echo(value: "twelve") }')
    assert result.errors is not None
    assert "'twelve'" in result.errors[0].message and "not an integer" in result.errors[0].message
