"""Objects' stored state as the graph's only writer last left or read it, kept between batches.

Folding a batch needs the stored state of every object it names, one index look-up each; most objects of
a stream come back batch after batch (their own updates and measurements, references to them). While one
worker holds every partition of every ingest topic it is the only process writing objects, so what it
wrote or read is still what the graph holds: it can skip those look-ups. The cache says "absent" too,
for an object it read and found missing.

Entries are trusted only within one *epoch*. :meth:`StateCache.clear` starts a new one, and the worker
calls it whenever it might no longer be the only writer (partitions revoked or reassigned) and whenever a
write's outcome is not exactly what was planned (a failure, a retry, a batch applied afresh). What a
batch learned in an earlier epoch is dropped (:meth:`remember` with that epoch). Offsets are not cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, NamedTuple


class VersionState(NamedTuple):
    """An object's latest kept version as the writer wrote it (hub/history.py): its attributes (none
    ``None``) and its references by relationship type, in the order the version lists them."""

    props: Mapping[str, Any]
    refs: Mapping[str, list[str]]


class Stored(NamedTuple):
    """An object's state in the graph (a tuple: one is made for every object a batch names); its
    ``status`` is one of :mod:`hub.writer`'s ``ABSENT``, ``STUBBED``, ``LIVE``, ``DEAD``. Defined here,
    below the writer, so that the writer imports the cache and nothing imports back."""

    status: int
    version: int
    owner: str | None
    cls: str | None
    labels: tuple[str, ...]
    label_id: int | None
    # The object's latest kept version, when this writer wrote it (None: not known here, or no history),
    # so that the next version is built without reading that one back.
    kept: VersionState | None = None


class StateCache:
    """At most ``capacity`` objects' states (``None``: absent from the graph), least recently used
    dropped first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"state cache capacity must be >= 0, got {capacity!r}")
        self.capacity = capacity
        self.epoch = 0
        self._states: dict[str, Stored | None] = {}

    def __len__(self) -> int:
        return len(self._states)

    def split(self, mrids: Iterable[str]) -> tuple[dict[str, Stored], list[str]]:
        """The cached states among ``mrids`` (absent ones left out) and the mRIDs still to be read."""
        known: dict[str, Stored] = {}
        unknown: list[str] = []
        states = self._states
        for mrid in mrids:
            if mrid in states:
                # Recently used: moved to the end, so eviction takes the oldest first.
                state = states.pop(mrid)
                states[mrid] = state
                if state is not None:
                    known[mrid] = state
            else:
                unknown.append(mrid)
        return known, unknown

    def remember(self, states: Mapping[str, Stored | None], epoch: int) -> None:
        """Record ``states`` (as the graph holds them now), learned during ``epoch``."""
        if epoch != self.epoch or not self.capacity:
            return
        cached = self._states
        for mrid, state in states.items():
            cached.pop(mrid, None)
            cached[mrid] = state
        excess = len(cached) - self.capacity
        if excess > 0:
            for mrid in list(islice(cached, excess)):  # the oldest: dicts keep insertion order
                del cached[mrid]

    def clear(self) -> None:
        self._states.clear()
        self.epoch += 1
