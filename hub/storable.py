"""What the graph can store: the bounds of Neo4j and its Bolt driver, checked before a value is accepted.

A value that passes validation but that the driver cannot pack or Neo4j refuses would fail its whole
batch for a reason no retry cures. Every value an event can carry into the graph is therefore checked
here at validation, against the store's own limits:

* integers: signed 64-bit (Bolt's INTEGER and Neo4j's long);
* text: well-formed Unicode, i.e. no lone UTF-16 surrogates (JSON's ``"\\ud800"`` escape decodes to one;
  the driver sends UTF-8 and cannot encode it);
* date-times: a UTC offset within ±18 hours (Java's ``ZoneOffset``, which Neo4j uses; Python accepts up
  to ±24 hours) and of whole minutes (the driver packs no other; Python accepts seconds and fractions),
  and an instant whose UTC date is within Python's years 1 to 9999 (the driver packs it through UTC:
  ``0001-01-01T00:00+14:00`` is in year 0 there).

Text may hold NUL characters (Neo4j stores them), and a string's size is bounded by the event's
(``max_event_bytes``), far below what Bolt and Neo4j take. Floats are finite (the validator's own rule);
an event carries no lists or maps into the graph (the ontology's attributes are scalars).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_UTC_OFFSET: Final = timedelta(hours=18)


def int_problem(value: int) -> str | None:
    """Why the graph cannot store ``value``, or None if it can."""
    if not INT64_MIN <= value <= INT64_MAX:
        return f"integer {value} is out of the signed 64-bit range the graph stores"
    return None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (a lone surrogate), or None if it can."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text holds a lone UTF-16 surrogate {value[exc.start]!r} at position {exc.start}"
    return None


def datetime_problem(value: datetime) -> str | None:
    """Why the driver or the graph cannot take ``value``, or None if they can (naive values are fine)."""
    offset = value.utcoffset()
    if offset is None or not offset:
        # Naive, or in UTC (most events): nothing to check, and no conversion can overflow.
        return None
    if abs(offset) > MAX_UTC_OFFSET:
        return f"UTC offset {offset} of {value.isoformat()!r} is beyond the ±18:00 the graph stores"
    if offset % timedelta(minutes=1):
        return f"UTC offset {offset} of {value.isoformat()!r} is not a whole number of minutes"
    try:
        value.astimezone(UTC)
    except OverflowError:
        return f"{value.isoformat()!r} in UTC falls outside the years 1 to 9999"
    return None
