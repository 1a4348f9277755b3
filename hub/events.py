"""The event envelope every producer sends: one JSON object per Kafka message (see DESIGN.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.storable import INT64_MAX, datetime_problem, text_problem

MRID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
# A scenario's id (hub/scenarios.py), assigned by the hub when the scenario is created: what an event
# names to be written into that scenario.
SCENARIO_ID_PATTERN = r"^scn-[0-9a-f]{32}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The step of versions taken from times: a datetime's finest, so distinct times never share a version.
# Year 9999 is about 2.5e17 microseconds after the epoch, far inside the signed 64 bits a version has.
VERSION_STEP = timedelta(microseconds=1)


class EventType(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    MEASUREMENT = "measurement"


def normalise_mrid(raw: str) -> str:
    """One form for the three ways CIM files name an object: ``_abc``, ``#_abc`` and ``urn:uuid:abc``."""
    value = raw.strip()
    if value.startswith("urn:uuid:"):
        value = value[len("urn:uuid:") :]
    value = value.removeprefix("#")
    return value.removeprefix("_")


def time_version(time: datetime) -> int:
    """The version of a record stamped ``time``: microseconds since 1970-01-01T00:00:00Z.

    Later times give larger versions, so of several readings of one object the worker keeps the latest,
    whatever order they arrive in. ``ValueError`` names the time when it has no zone or is not after the
    epoch (versions are positive).
    """
    if time.utcoffset() is None:
        raise ValueError(f"time {time.isoformat()!r} has no time zone, so it cannot be a version")
    version = (time - EPOCH) // VERSION_STEP
    if version < 1:
        raise ValueError(
            f"time {time.isoformat()!r} is not after 1970-01-01T00:00:00Z, so it cannot be a version"
        )
    return version


class Event(BaseModel):
    """The envelope; field names follow CloudEvents (``id``, ``source``, ``type``, ``subject``, ``time``)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    type: EventType
    subject: str
    time: datetime
    # The graph stores versions as signed 64-bit integers; a larger one could never be written.
    version: int = Field(gt=0, le=INT64_MAX)
    class_: str = Field(alias="class", min_length=1)
    attributes: dict[str, Any] = Field(default_factory=dict)
    references: dict[str, str | list[str]] = Field(default_factory=dict)
    label: str | None = None
    # The scenario the event is written into (hub/scenarios.py), apart from the live graph; None: live.
    scenario: str | None = Field(default=None, pattern=SCENARIO_ID_PATTERN)

    @field_validator("subject")
    @classmethod
    def _mrid(cls, value: str) -> str:
        if not MRID_PATTERN.match(value):
            raise ValueError(f"subject {value!r} is not a well-formed mRID")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError(f"time {value.isoformat()!r} has no time zone (RFC 3339 requires one)")
        problem = datetime_problem(value)
        if problem is not None:
            raise ValueError(f"time: {problem}")
        return value

    @field_validator("label")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        # Stored in the graph as text. Pydantic refuses lone surrogates in a plain str field (id), but
        # lets them through in this optional one.
        problem = None if value is None else text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
