"""Change records: what the worker tells ``cim.changes`` after each committed batch.

One record per affected object, keyed by mRID so a consumer sees one object's changes in order. The
record carries the label id, so subscribers can filter through the access guard without reading the
graph for objects the caller may not see.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

ChangeKind = Literal["upsert", "delete", "measurement", "stub"]
CHANGE_KINDS: frozenset[str] = frozenset({"upsert", "delete", "measurement", "stub"})

# (topic, key, value) -> a future that resolves when the broker has the record.
SendFn = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    mrid: str
    class_: str
    change: ChangeKind
    version: int
    label_id: int | None
    time: datetime
    event_time: datetime | None
    event_id: str | None
    producer: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mrid": self.mrid,
            "class": self.class_,
            "change": self.change,
            "version": self.version,
            "label_id": self.label_id,
            "time": self.time.isoformat(),
            "event_time": self.event_time.isoformat() if self.event_time is not None else None,
            "event_id": self.event_id,
            "producer": self.producer,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ChangeRecord:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"change record must be a JSON object, got {data!r}")
        change = data.get("change")
        if change not in CHANGE_KINDS:
            raise ValueError(
                f"change record field 'change' = {change!r} is not one of {sorted(CHANGE_KINDS)}"
            )
        event_time = data.get("event_time")
        return cls(
            mrid=str(data["mrid"]),
            class_=str(data["class"]),
            change=change,
            version=int(data["version"]),
            label_id=data.get("label_id"),
            time=datetime.fromisoformat(data["time"]),
            event_time=datetime.fromisoformat(event_time) if event_time else None,
            event_id=data.get("event_id"),
            producer=data.get("producer"),
        )


async def publish(send: SendFn, topic: str, records: Iterable[ChangeRecord]) -> list[Awaitable[Any]]:
    """Hand every record to the producer; returns the delivery futures, which the caller must await."""
    return [await send(topic, r.mrid.encode(), r.to_json()) for r in records]
