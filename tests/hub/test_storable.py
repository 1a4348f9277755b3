"""Every value the validator accepts is one the Neo4j driver can pack and Neo4j can store.

The bounds themselves are checked on the values that broke ingest (a version of 2**64, a lone surrogate,
offsets Neo4j or the driver refuse), and a property-based test sends whatever the validator accepts
through the real Neo4j, in a transaction that is rolled back: the driver must pack it, Neo4j must store
it, and it must come back as sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import neo4j
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.graph_schema import EVENT_ID, EVENT_TIME, VERSION
from hub.storable import INT64_MAX, INT64_MIN
from hub.validation import EventRejected, validate_event
from hub.writer import _millis
from ontology import load_ontology

ONTO = load_ontology()
CLASS = "AccumulatorValue"  # int, float, datetime and string attributes


def envelope(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt-1",
        "source": "ngt",
        "type": "upsert",
        "subject": "7f43f508-2496-4b64-9146-0a40406cbe49",
        "time": "2024-05-01T12:00:00Z",
        "version": 3,
        "class": CLASS,
    }
    event.update(overrides)
    return event


def as_bytes(event: dict[str, Any]) -> bytes:
    # ensure_ascii writes a lone surrogate as the escape "\ud800", as any JSON producer may.
    return json.dumps(event).encode()


def rejected(event: dict[str, Any]) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        validate_event(as_bytes(event), ONTO)
    return info.value


# --- the values that stopped ingest --------------------------------------------------------------------


def test_a_version_beyond_64_bits_is_rejected_naming_field_and_value() -> None:
    exc = rejected(envelope(version=2**64))
    assert exc.field == "version"
    assert str(2**64) in str(exc)
    assert validate_event(as_bytes(envelope(version=INT64_MAX)), ONTO).event.version == INT64_MAX


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "evt-\ud800"),
        ("label", "org=ngt\udfff"),
    ],
)
def test_envelope_text_with_a_lone_surrogate_is_rejected(field: str, value: str) -> None:
    exc = rejected(envelope(**{field: value}))
    assert exc.field == field
    assert "surrogate" in str(exc) or "unicode string" in str(exc), str(exc)


def test_attribute_text_with_a_lone_surrogate_is_rejected() -> None:
    exc = rejected(envelope(attributes={"IdentifiedObject.name": "line\ud83d"}))
    assert exc.field == "attributes.IdentifiedObject.name"
    assert "surrogate" in str(exc)
    # A whole surrogate pair is one character and fine.
    ok = validate_event(as_bytes(envelope(attributes={"IdentifiedObject.name": "line\U0001f600"})), ONTO)
    assert ok.properties["name"] == "line\U0001f600"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2024-05-01T12:00:00+20:00", "beyond"),
        ("2024-05-01T12:00:00-18:01", "beyond"),
        ("2024-05-01T12:00:00+05:00:30", "whole number of minutes"),
        ("2024-05-01T12:00:00+05:00:00.250000", "whole number of minutes"),
        ("0001-01-01T00:00:00+14:00", "years 1 to 9999"),
        ("9999-12-31T23:00:00-02:00", "years 1 to 9999"),
    ],
)
def test_date_times_the_store_refuses_are_rejected(text: str, why: str) -> None:
    exc = rejected(envelope(attributes={"MeasurementValue.timeStamp": text}))
    assert exc.field == "attributes.MeasurementValue.timeStamp"
    assert why in str(exc), str(exc)
    # The envelope's time: pydantic itself refuses offsets with seconds; the rest is the bound's.
    exc = rejected(envelope(time=text))
    assert exc.field == "time"
    assert text in str(exc), str(exc)


def test_date_times_at_the_bounds_are_accepted() -> None:
    for text in ("2024-05-01T12:00:00+18:00", "2024-05-01T12:00:00-18:00", "0001-01-01T00:00:00"):
        valid = validate_event(as_bytes(envelope(attributes={"MeasurementValue.timeStamp": text})), ONTO)
        assert valid.properties["timeStamp"] == datetime.fromisoformat(text).replace(
            tzinfo=datetime.fromisoformat(text).tzinfo or UTC
        )


# --- whatever is accepted, the store takes -------------------------------------------------------------

# Every code point, lone surrogates included (hypothesis leaves them out unless asked).
_any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
_text = st.one_of(
    st.text(_any_char, max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "nul\x00in", "\U0001f600"]),
)
_offsets = st.one_of(
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
    st.integers(-24 * 60 + 1, 24 * 60 - 1).map(lambda m: timedelta(minutes=m)),
    st.sampled_from([timedelta(hours=18), timedelta(hours=-18), timedelta(hours=18, minutes=1)]),
)


@st.composite
def _datetime_text(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)))
    offset = draw(st.none() | _offsets)
    return (moment if offset is None else moment.replace(tzinfo=timezone(offset))).isoformat()


_ints = st.one_of(
    st.integers(),
    st.integers(INT64_MAX - 2, INT64_MAX + 2),
    st.integers(INT64_MIN - 2, INT64_MIN + 2),
    st.integers(2**64 - 1, 2**64 + 1),
)
_numbers = st.one_of(
    _ints,
    st.floats(allow_nan=True, allow_infinity=True),
    _ints.map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)

_events = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just("evt-1"), _text.filter(bool)),
        "source": st.just("ngt"),
        "type": st.just("upsert"),
        "subject": st.just("7f43f508-2496-4b64-9146-0a40406cbe49"),
        "time": _datetime_text(),
        "version": st.one_of(st.integers(1, INT64_MAX), _ints),
        "class": st.just(CLASS),
        "attributes": st.fixed_dictionaries(
            {},
            optional={
                "AccumulatorValue.value": _numbers,
                "MeasurementValue.sensorAccuracy": _numbers,
                "MeasurementValue.timeStamp": _datetime_text(),
                "IdentifiedObject.name": _text,
                "IdentifiedObject.description": _text,
            },
        ),
    }
)

_ROUND_TRIP = "CREATE (n:StorableProbe) SET n = $props RETURN properties(n) AS props"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=_events)
def test_whatever_the_validator_accepts_neo4j_stores(event: dict[str, Any], neo4j_driver: Any) -> None:
    try:
        valid = validate_event(as_bytes(event), ONTO)
    except EventRejected as exc:
        assert exc.reason  # rejected with a reason: nothing reaches the store
        return
    env = valid.event
    # What the writer stores of the envelope (see hub.writer), beside the converted attributes.
    props: dict[str, Any] = {
        **{k: v for k, v in valid.properties.items() if v is not None},
        VERSION: env.version,
        EVENT_ID: env.id,
        EVENT_TIME: _millis(env.time),
        "mrid": valid.mrid,
    }
    with neo4j_driver.session() as session, session.begin_transaction() as tx:
        try:
            stored = tx.run(_ROUND_TRIP, props=props).single(strict=True)["props"]
        except (neo4j.exceptions.Neo4jError, ValueError, OverflowError, TypeError) as exc:
            pytest.fail(f"validator accepted {event!r} but the store refused {props!r}: {exc!r}")
        finally:
            tx.rollback()
    for key, value in props.items():
        got = stored[key]
        if isinstance(value, datetime):
            got = got.to_native()
        assert got == value, (key, value, got)
