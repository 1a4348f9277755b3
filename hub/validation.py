"""Validate one event against the envelope and the ontology, and derive what the writer stores.

``validate_event`` is on the worker's hot path: per class it builds, once, a table from every qualified
name the class accepts to a ready converter, so checking an event is the envelope model (parsed straight
from the bytes when the event is plainly well-formed) and one dictionary look-up per attribute or
reference. Property keys and relationship types in the result come from the ontology only; no text of
the event ever becomes one.

Label syntax is not checked here (the worker parses labels with :mod:`hub.labels`).
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hub.events import MRID_PATTERN, Event, EventType, normalise_mrid
from hub.storable import datetime_problem, int_problem, text_problem
from ontology.model import Association, Attribute, Ontology

_MAX_SHOWN = 120
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class EventRejected(ValueError):
    """An event that cannot be accepted; ``str()`` names the field and the offending value."""

    def __init__(self, reason: str, field: str | None = None, value: object = None) -> None:
        self.reason = reason
        self.field = field
        self.value = value
        super().__init__(reason)

    def __str__(self) -> str:
        if self.field is None:
            return self.reason if self.value is None else f"{self.reason}: {_show(self.value)}"
        return f"{self.reason} (field {self.field!r}, value {_show(self.value)})"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An accepted event with everything the writer needs, derived from the ontology."""

    event: Event
    class_name: str  # the ontology class
    mrid: str  # the subject, normalised
    properties: dict[str, object]  # property key -> converted value; None removes the property
    relationships: dict[
        str, list[str]
    ]  # relationship type -> target mRIDs (replace that association's edges)
    associations: dict[str, Association]  # relationship type -> the association it stands for
    attributes: dict[str, Attribute]  # property key -> the attribute it stands for

    @property
    def type(self) -> EventType:
        return self.event.type


# --- value conversion -------------------------------------------------------------------------------

_Converter = Callable[[object], object]


class _BadValue(Exception):
    """Raised by converters; the caller turns it into an EventRejected naming the field."""


def _to_float(value: object) -> float:
    if isinstance(value, bool):
        raise _BadValue("expected a number, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        number = float(value.strip())
    else:
        raise _BadValue("expected a number")
    if not math.isfinite(number):
        raise _BadValue("expected a finite number")
    return number


def _to_int(value: object) -> int:
    if isinstance(value, bool):
        raise _BadValue("expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
        number = int(value.strip())
    else:
        # Files write integers as "3" but also as "3.0"; a whole float is the same integer.
        real = _to_float(value)
        if not real.is_integer():
            raise _BadValue("expected an integer")
        number = int(real)
    problem = int_problem(number)
    if problem is not None:
        raise _BadValue(problem)
    return number


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "true":
            return True
        if text == "false":
            return False
    raise _BadValue("expected true or false")


def _to_string(value: object) -> str:
    if not isinstance(value, str):
        raise _BadValue("expected a string")
    problem = text_problem(value)
    if problem is not None:
        raise _BadValue(problem)
    return value


def _to_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise _BadValue("expected an RFC 3339 date-time string")
    text = value.strip()
    # fromisoformat takes any character between date and time ("2021-03-01112:00" is noon); RFC 3339
    # allows "T", "t" and a space only, and anything else is refused rather than silently misread.
    if len(text) > 10 and text[4:5] == "-" and text[10] not in "Tt ":
        raise _BadValue(f"expected 'T' between the date and the time, got {text[10]!r}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _BadValue("expected an RFC 3339 date-time") from None
    problem = datetime_problem(parsed)
    if problem is not None:
        raise _BadValue(problem)
    # CIM files often omit the zone and mean UTC; one kind of value keeps Neo4j comparisons sane.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _enum_converter(attr: Attribute) -> _Converter:
    allowed = frozenset(attr.literals)

    def convert(value: object) -> str:
        if not isinstance(value, str):
            raise _BadValue(f"expected a literal of {attr.enum}")
        # "http://...#WindingConnection.D", "WindingConnection.D" and "D" all name the literal D.
        literal = value.strip().rpartition("#")[2].rpartition(".")[2]
        if literal not in allowed:
            shown = ", ".join(attr.literals[:12]) + (", ..." if len(attr.literals) > 12 else "")
            raise _BadValue(f"not a literal of {attr.enum} ({shown})")
        return literal

    return convert


_CONVERTERS: dict[str, _Converter] = {
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "string": _to_string,
    "datetime": _to_datetime,
}


@dataclass(frozen=True, slots=True)
class _AttrSpec:
    attribute: Attribute
    convert: _Converter


@dataclass(frozen=True, slots=True)
class _ClassSpec:
    attributes: dict[str, _AttrSpec]  # qname -> spec
    associations: dict[str, Association]  # qname -> association


_tables: weakref.WeakKeyDictionary[Ontology, dict[str, _ClassSpec]] = weakref.WeakKeyDictionary()


# The last ontology's table, looked up without a weak reference: a worker checks every event against one.
_last: tuple[Ontology, dict[str, _ClassSpec]] | None = None


def _class_spec(ontology: Ontology, class_name: str) -> _ClassSpec:
    global _last
    last = _last
    if last is not None and last[0] is ontology:
        per_class = last[1]
    else:
        found = _tables.get(ontology)
        if found is None:
            found = {}
            _tables[ontology] = found
        per_class = found
        _last = (ontology, found)
    spec = per_class.get(class_name)
    if spec is None:
        attrs = {
            qname: _AttrSpec(
                attr, _enum_converter(attr) if attr.datatype == "enum" else _CONVERTERS[attr.datatype]
            )
            for qname, attr in ontology.attributes_of(class_name).items()
        }
        spec = _ClassSpec(attributes=attrs, associations=dict(ontology.associations_of(class_name)))
        per_class[class_name] = spec
    return spec


def attribute_problem(ontology: Ontology, class_name: str, qname: str, value: object) -> str | None:
    """Why the worker would refuse ``value`` for attribute ``qname`` of ``class_name``, or None if it
    takes it: lets a converter leave out one bad property instead of losing the whole object."""
    try:
        spec = _class_spec(ontology, class_name)
    except KeyError:
        return f"class {class_name!r} is not in the ontology"
    attr_spec = spec.attributes.get(qname)
    if attr_spec is None:
        return f"{qname} is not an attribute of {class_name} or its superclasses"
    if value is None:
        return None
    try:
        attr_spec.convert(value)
    except _BadValue as exc:
        return f"bad value for {qname} ({attr_spec.attribute.datatype}): {exc}"
    except (ValueError, OverflowError):
        return f"bad value for {qname} ({attr_spec.attribute.datatype})"
    return None


# --- the check --------------------------------------------------------------------------------------


def validate_event(
    raw: bytes | str | Mapping[str, Any], ontology: Ontology, *, max_bytes: int | None = None
) -> ValidEvent:
    """Check one event; return what to store, or raise :class:`EventRejected` saying why."""
    event = _fast_envelope(raw, max_bytes)
    if event is None:
        event = _envelope(_decode(raw, max_bytes))
    class_name = event.class_
    if class_name not in ontology.classes:
        raise EventRejected("class is not in the ontology", "class", class_name)
    mrid = event.subject
    if event.type is EventType.DELETE:
        # A delete removes the object whole; whatever else it carries is not stored.
        return ValidEvent(event, class_name, mrid, {}, {}, {}, {})
    if event.type is EventType.MEASUREMENT and event.references:
        first = next(iter(event.references))
        raise EventRejected(
            "measurement events carry attribute values only, no references", f"references.{first}", first
        )
    spec = _class_spec(ontology, class_name)
    properties, attributes = _attributes(event, spec, class_name)
    relationships, associations = _references(event, spec, class_name)
    return ValidEvent(event, class_name, mrid, properties, relationships, associations, attributes)


def _fast_envelope(raw: object, max_bytes: int | None) -> Event | None:
    """The envelope parsed straight from the bytes (pydantic's own JSON parser, one pass), or None to
    take the general path, which also produces every error: on any problem at all this gives up.

    Only where both paths agree on the outcome: no byte-order mark (``json`` rejects one), no escapes
    (lone surrogates), and a subject already in its plain form (the general path rewrites it first).
    """
    if type(raw) is not bytes or (max_bytes is not None and len(raw) > max_bytes):
        return None
    if b"\\" in raw or raw.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        event = Event.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError):
        return None
    return event if normalise_mrid(event.subject) == event.subject else None


def _decode(raw: bytes | str | Mapping[str, Any], max_bytes: int | None) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, bytes | bytearray | memoryview):
        size = len(raw)
    elif isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    else:
        raise EventRejected("event is neither bytes, text nor a JSON object", None, type(raw).__name__)
    if max_bytes is not None and size > max_bytes:
        raise EventRejected(f"event is larger than the limit of {max_bytes} bytes", None, size)
    try:
        text = bytes(raw).decode("utf-8") if not isinstance(raw, str) else raw
    except UnicodeDecodeError as exc:
        raise EventRejected(f"event is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise EventRejected("event JSON is nested too deeply") from None
    except ValueError as exc:
        raise EventRejected(f"event is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EventRejected("event must be a JSON object", None, type(data).__name__)
    return data


def _envelope(data: Mapping[str, Any]) -> Event:
    subject = data.get("subject")
    if isinstance(subject, str) and normalise_mrid(subject) != subject:
        # CIM writes one object as "_abc", "#_abc" or "urn:uuid:abc"; the envelope keeps the plain form.
        data = {**data, "subject": normalise_mrid(subject)}
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = ".".join(str(part) for part in first["loc"]) or None
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise EventRejected(f"bad envelope: {first['msg']}{more}", loc, first.get("input")) from None
    except RecursionError:
        raise EventRejected("event JSON is nested too deeply") from None


def _attributes(
    event: Event, spec: _ClassSpec, class_name: str
) -> tuple[dict[str, object], dict[str, Attribute]]:
    properties: dict[str, object] = {}
    attributes: dict[str, Attribute] = {}
    for qname, value in event.attributes.items():
        attr_spec = spec.attributes.get(qname)
        if attr_spec is None:
            field = f"attributes.{qname}"
            if qname in spec.associations:
                raise EventRejected(
                    f"{qname} is an association of {class_name}; send it under references", field, value
                )
            raise EventRejected(
                f"{qname} is not an attribute of {class_name} or its superclasses", field, value
            )
        attr = attr_spec.attribute
        if value is None:
            converted: object = None
        else:
            try:
                converted = attr_spec.convert(value)
            except _BadValue as exc:
                raise EventRejected(
                    f"bad value for {qname} ({attr.datatype}): {exc}", f"attributes.{qname}", value
                ) from None
            except (ValueError, OverflowError):
                raise EventRejected(
                    f"bad value for {qname} ({attr.datatype})", f"attributes.{qname}", value
                ) from None
        properties[attr.key] = converted
        attributes[attr.key] = attr
    return properties, attributes


def _references(
    event: Event, spec: _ClassSpec, class_name: str
) -> tuple[dict[str, list[str]], dict[str, Association]]:
    relationships: dict[str, list[str]] = {}
    associations: dict[str, Association] = {}
    for qname, value in event.references.items():
        assoc = spec.associations.get(qname)
        if assoc is None:
            field = f"references.{qname}"
            if qname in spec.attributes:
                raise EventRejected(
                    f"{qname} is an attribute of {class_name}; send it under attributes", field, value
                )
            raise EventRejected(
                f"{qname} is not an association of {class_name} or its superclasses", field, value
            )
        raw_targets = [value] if isinstance(value, str) else value
        if not assoc.many and len(raw_targets) > 1:
            raise EventRejected(
                f"{qname} refers to one object, got {len(raw_targets)}", f"references.{qname}", value
            )
        targets: list[str] = []
        for raw in raw_targets:
            mrid = normalise_mrid(raw)
            if not MRID_PATTERN.match(mrid):
                raise EventRejected(f"{qname} target is not a well-formed mRID", f"references.{qname}", raw)
            if mrid not in targets:
                targets.append(mrid)
        relationships[assoc.rel_type] = targets
        associations[assoc.rel_type] = assoc
    return relationships, associations
