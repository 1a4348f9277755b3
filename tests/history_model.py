"""The reference model of kept history: events replayed one at a time, every applied upsert and delete
leaving a whole version, and the state at a valid and a recorded time picked from those versions.

The rules mirror hub/writer.py (an event applies only when its version is newer than the object's; an
upsert patches, ``None`` removing; a delete of a live object empties it; an upsert after a delete starts
from empty) and hub/history.py (the state at (T, R) is the highest version with valid-from <= T recorded
by R; a deleted state, or one whose label the caller may not see, is absent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Step:
    """One event, as the model needs it; ``recorded`` orders what the hub recorded (its batch)."""

    mrid: str
    kind: str  # "upsert" or "delete"
    version: int
    cls: str
    time: datetime
    label: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    rels: dict[str, list[str]] = field(default_factory=dict)
    recorded: int = 0


@dataclass
class Version:
    mrid: str
    version: int
    deleted: bool
    cls: str
    label: str | None
    props: dict[str, Any]
    refs: dict[str, list[str]]
    valid_from: datetime
    recorded: int


def versions(steps: Iterable[Step]) -> dict[str, list[Version]]:
    """Every object's versions, in the order they were applied."""
    out: dict[str, list[Version]] = {}
    for s in steps:
        kept = out.setdefault(s.mrid, [])
        last = kept[-1] if kept else None
        if last is not None and s.version <= last.version:
            continue  # stale
        if s.kind == "delete":
            if last is None:
                continue  # nothing published to delete: ignored, nothing kept
            # A delete of a deleted object still moves its version; nobody sees that one.
            label = None if last.deleted else last.label
            kept.append(Version(s.mrid, s.version, True, s.cls, label, {}, {}, s.time, s.recorded))
            continue
        base_props = {} if last is None or last.deleted else dict(last.props)
        base_refs = {} if last is None or last.deleted else dict(last.refs)
        for k, v in s.props.items():
            if v is None:
                base_props.pop(k, None)
            else:
                base_props[k] = v
        for t, targets in s.rels.items():
            base_refs[t] = list(dict.fromkeys(targets))
        kept.append(
            Version(s.mrid, s.version, False, s.cls, s.label, base_props, base_refs, s.time, s.recorded)
        )
    return out


def state_at(
    kept: list[Version],
    as_of: datetime | None,
    recorded_as_of: int | None,
    sees: Callable[[str | None], bool],
) -> Version | None:
    """The state a caller who sees labels by ``sees`` reads at (as_of, recorded_as_of); None: absent."""
    candidates = [
        v
        for v in kept
        if (as_of is None or v.valid_from <= as_of)
        and (recorded_as_of is None or v.recorded <= recorded_as_of)
    ]
    if not candidates:
        return None
    top = max(candidates, key=lambda v: v.version)
    if top.deleted or not sees(top.label):
        return None
    return top


def visible_versions(kept: list[Version], sees: Callable[[str | None], bool]) -> list[Version]:
    return [v for v in sorted(kept, key=lambda v: v.version) if sees(v.label)]
