"""Custom scalars of the schema.

``Long``: object versions are 64-bit in Neo4j and in events (producers may use epoch milliseconds), but
GraphQL's ``Int`` is 32-bit, so a version above 2**31-1 would fail to serialise. ``Long`` is a signed 64-bit
integer sent as a JSON number; inputs are accepted as an integer or a string of digits (clients whose JSON
numbers are doubles can send large values losslessly as strings).
"""

from __future__ import annotations

from typing import Any, Final, NewType

import strawberry
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
    )
}
