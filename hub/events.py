"""The event envelope every producer sends: one JSON object per Kafka message (see DESIGN.md)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.storable import INT64_MAX, datetime_problem, text_problem

MRID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")


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
