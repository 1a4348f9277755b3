"""Sorting of the typed pages and their cursors: an order stable across pages, whatever the sort keys.

A page is ordered by the requested keys (attributes by ontology key, or ``name``, ``updated``,
``version``), each ascending or descending, with missing values last in either direction, and ties are
broken by mRID: every object has one place in the order, so a cursor marks a position between two objects
and no object is skipped or repeated from one page to the next.

Without sort keys a page is ordered by mRID and its cursors are the plain mRID cursors of ``objects``
(:func:`hub.reader.encode_page_cursor`). With sort keys a cursor carries the sort values of the last
object of the page (an object the caller could see, so it tells nothing new) and the keys it was made
for; a cursor made for another order is refused, not misread.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.filters import GENERIC_FIELDS, FilterError, filterable_attributes
from hub.reader import ReadError, decode_page_cursor, encode_page_cursor
from ontology.model import Ontology

SORTABLE_GENERIC: Final = ("name", "updated", "version", "domain", "producer", "mrid")
_PREFIX: Final = "sort:"


@dataclass(frozen=True)
class SortKey:
    """One key of an order: its name, the Cypher expression over ``{v}``, and whether it is a date-time
    (cursor values of date-times go through Cypher's ``datetime()`` to keep their nanoseconds)."""

    name: str
    expr: str
    datetime: bool
    descending: bool

    def of(self, var: str) -> str:
        return self.expr.format(v=var)


def sort_keys(ontology: Ontology, class_name: str, spec: Sequence[tuple[str, bool]]) -> list[SortKey]:
    """``spec``: (field, descending) pairs, most significant first. ``mrid`` may only come last (it is
    the tie-breaker anyway)."""
    attributes = filterable_attributes(ontology, class_name)
    keys = []
    seen = set()
    for name, descending in spec:
        if name in seen:
            raise FilterError(f"orderBy names {name!r} twice")
        seen.add(name)
        if name in SORTABLE_GENERIC:
            generic = GENERIC_FIELDS[name]
            keys.append(SortKey(name, generic.expr, generic.kind == "datetime", descending))
        elif name in attributes:
            attr = attributes[name]
            keys.append(SortKey(name, f"{{v}}.`{attr.key}`", attr.datatype == "datetime", descending))
        else:
            raise FilterError(f"orderBy: {class_name} has no field {name!r} to sort on")
    if keys and keys[-1].name == "mrid" and not keys[-1].descending:
        keys.pop()  # the tie-breaker already
    return keys


def order_by(keys: Sequence[SortKey], var: str) -> str:
    parts = []
    for key in keys:
        expr = key.of(var)
        parts.append(f"{expr} IS NULL")
        parts.append(f"{expr} DESC" if key.descending else expr)
    parts.append(f"{var}.mrid")
    return ", ".join(parts)


def sort_values(keys: Sequence[SortKey], var: str) -> str:
    """A Cypher list of the sort values of ``var``, returned beside each row to make its cursor."""
    return "[" + ", ".join(key.of(var) for key in keys) + "]"


# --------------------------------------------------------------------------------------------- cursors


def _fingerprint(keys: Sequence[SortKey]) -> list[str]:
    return [("-" if k.descending else "+") + k.name for k in keys]


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    iso = getattr(value, "iso_format", None)  # the driver's DateTime keeps nanoseconds
    if iso is not None:
        return {"dt": iso()}
    if hasattr(value, "isoformat"):
        return {"dt": value.isoformat()}
    return str(value)


def encode_cursor(keys: Sequence[SortKey], values: Sequence[Any], mrid: str) -> str:
    if not keys:
        return encode_page_cursor(mrid)
    body = json.dumps({"o": _fingerprint(keys), "v": [_json_value(v) for v in values], "m": mrid})
    return base64.urlsafe_b64encode((_PREFIX + body).encode()).decode()


def _bad(cursor: str) -> FilterError:
    return FilterError(f"after {cursor[:120]!r} is not a cursor returned by this API for this orderBy")


def decode_cursor(keys: Sequence[SortKey], cursor: str) -> tuple[list[Any], str]:
    if not keys:
        try:
            return [], decode_page_cursor(cursor)
        except ReadError:
            raise _bad(cursor) from None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_PREFIX):
            raise ValueError("not a sorted cursor")
        body = json.loads(text[len(_PREFIX) :])
        order, values, mrid = body["o"], body["v"], body["m"]
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        raise _bad(cursor) from None
    if order != _fingerprint(keys) or not isinstance(values, list) or len(values) != len(keys):
        raise _bad(cursor)
    if not isinstance(mrid, str):
        raise _bad(cursor)
    return values, mrid


def after(keys: Sequence[SortKey], var: str, cursor: str, params: dict[str, Any]) -> str:
    """The predicate "comes after the cursor's position" in the order of ``keys`` (missing values last,
    mRID breaking ties), its values bound in ``params``."""
    values, mrid = decode_cursor(keys, cursor)

    def bind(value: Any, key: SortKey) -> str:
        name = f"c{len(params)}"
        if isinstance(value, dict) and set(value) == {"dt"} and key.datetime:
            params[name] = str(value["dt"])
            return f"datetime(${name})"
        if isinstance(value, dict | list):
            raise _bad(cursor)
        params[name] = value
        return f"${name}"

    alternatives = []
    equal: list[str] = []
    for key, value in zip(keys, values, strict=True):
        expr = key.of(var)
        if value is None:
            # Missing values come last: nothing is after them within this key.
            equal.append(f"{expr} IS NULL")
            continue
        bound = bind(value, key)
        later = f"({expr} IS NULL OR {expr} {'<' if key.descending else '>'} {bound})"
        alternatives.append(" AND ".join([*equal, later]))
        equal.append(f"{expr} = {bound}")
    name = f"c{len(params)}"
    params[name] = mrid
    alternatives.append(" AND ".join([*equal, f"{var}.mrid > ${name}"]))
    return "(" + " OR ".join(f"({a})" for a in alternatives) + ")"
