"""Custom scalars of the schema, and how ``DateTime`` serialises.

``Long``: object versions are 64-bit in Neo4j and in events (producers may use epoch milliseconds), but
GraphQL's ``Int`` is 32-bit, so a version above 2**31-1 would fail to serialise. ``Long`` is a signed 64-bit
integer sent as a JSON number; inputs are accepted as an integer or a string of digits (clients whose JSON
numbers are doubles can send large values losslessly as strings).

``DateTime`` is Strawberry's scalar (same name, description and input parsing) whose output also accepts
the driver's temporal values, converted to Python's first: rows keep the values Neo4j returned and only
the ones a selection asks for are converted. The text is what Python's ``isoformat`` gives (microseconds).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Final, NewType

import strawberry
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1


def _to_long(value: Any, what: str) -> int:
    # bool is an int subclass: True must not pass as version 1.
    if isinstance(value, bool):
        raise ValueError(f"Long cannot represent {what} {value!r}: not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text, 10)
        except ValueError:
            raise ValueError(f"Long cannot represent {what} {value!r}: not an integer") from None
    else:
        raise ValueError(f"Long cannot represent {what} {value!r}: not an integer")
    if not LONG_MIN <= number <= LONG_MAX:
        raise ValueError(
            f"Long cannot represent {what} {value!r}: "
            f"outside the signed 64-bit range [{LONG_MIN}, {LONG_MAX}]"
        )
    return number


def serialize_long(value: Any) -> int:
    return _to_long(value, "value")


def parse_long(value: Any) -> int:
    return _to_long(value, "input")


def native(value: Any) -> Any:
    """Neo4j temporal values as Python ones; anything else unchanged."""
    to_native = getattr(value, "to_native", None)
    return to_native() if to_native is not None else value


def serialize_datetime(value: Any) -> str:
    return str(native(value).isoformat())


Long = NewType("Long", int)

# Strawberry maps ``Long`` annotations to this definition through StrawberryConfig.scalar_map.
SCALAR_MAP: Final[dict[object, ScalarDefinition]] = {
    Long: strawberry.scalar(
        name="Long",
        description=(
            "Signed 64-bit integer, serialised as a JSON number; accepted as a number or a string of digits."
        ),
        serialize=serialize_long,
        parse_value=parse_long,
    ),
    datetime: dataclasses.replace(DateTimeDefinition, serialize=serialize_datetime),
}
