"""Each partition's events reach the graph as an unbroken sequence, and its committed offset never passes
an event that was not applied or dead-lettered.

Why the worker needs it: Faust can hand the agent an event while events before it in its partition were
dropped, and then commit past them.

- A rebalance clears the stream buffers, and a fetch that comes back while the flow is stopped is thrown
  away; Faust relies on seeking every partition back to its committed offset afterwards.
- But records the Kafka client returned before that seek can reach Faust's drain after it: a fetch
  issued from the event loop runs in the client's thread and may finish while a rebalance (or a seek)
  happens. The drain delivers them (they carry the new generation: it is stamped when the records are
  converted, after the fetch), and remembers the highest offset delivered per partition. The events read
  again from the committed offset come after it and are below that offset: the drain drops them as
  already delivered. Meanwhile it recorded the jump from the committed offset to the stale record as a
  "gap" (its way of stepping over offsets that hold no record, such as transaction markers), and when
  the stale events are acknowledged it counts the gap as acknowledged too: the commit moves past events
  nobody applied. Faust also commits ``committed + 1`` onward when only the event at the committed offset
  is missing (its gap check is off by one).
- The graph's replay check makes it worse: the writer skips an event at or below the highest offset it
  stored for the partition (:mod:`hub.writer`), so once a later event is applied, the earlier ones would
  be skipped even if they came again.

What this module does instead (the consumer, :mod:`ingest.consumer`, and the pipeline,
:mod:`ingest.pipeline`, use it):

- Links. For each record the consumer fetches it notes the offset below which the log holds nothing
  between it and the record: the record before it in the same fetch, or for a fetch's first record the
  position the fetch started from, minus one. The position is taken in the Kafka client's own thread,
  where fetches and seeks run one after another: the position left by the partition's previous fetch,
  or the one it was last sought to. A partition whose position the client set by itself (a new
  assignment, before Faust seeks it) has an unknown link. Every seek starts a new "era" of the
  partition.
- The gate. Per partition the pipeline knows the last offset admitted (after a rebalance: the committed
  offset minus one). An event is admitted when its link reaches that offset (the offsets in between hold
  no record); one at or below it is a copy of an event admitted already (or committed), and is dropped.
  Any other event is held back, never acknowledged, and the partition is read again from the first
  offset not admitted: once per era, by a held event fetched since the last seek (older ones are
  stale: the seek reads them again). Events admitted again after a rebalance (from the committed
  offset on) reach the writer again, which skips those it holds (by offset, and by version).
- Commits. Events are acknowledged in the order they were admitted, so the offset after the highest one
  acknowledged has nothing unapplied below it: that is what is committed, never Faust's gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import TP

# The attribute of a fetched record, and of the message made of it: (offset the log holds nothing after
# until the record, or None when unknown; era of the partition when it was fetched).
LINK = "hub_link"

Link = tuple[int | None, int]


class Continuity:
    """The partitions' eras, the gate's positions and the committable offsets of one consumer.

    ``eras`` is written by the Kafka client's thread, one item at a time; everything else belongs to the
    event loop."""

    def __init__(self) -> None:
        # Per partition: how many times it was sought (written by the client's thread).
        self.eras: dict[Any, int] = {}
        # Per partition: the last offset admitted (or the start minus one).
        self._done: dict[Any, int] = {}
        # Per partition: the era in which a rewind was asked for (once per era).
        self._rewound_in: dict[Any, int] = {}
        # Per partition: the offset after the highest acknowledged.
        self._committable: dict[Any, int] = {}

    @staticmethod
    def link(records: Sequence[Any], start: int | None, era: int) -> None:
        """Give each of ``records`` (one partition's, in log order, from one fetch that started at
        ``start``, None: unknown) its link."""
        previous = start - 1 if start is not None else None
        for record in records:
            setattr(record, LINK, (previous, era))
            previous = record.offset

    # The consumer's side.

    def start(self, tp: TP, committed: int | None) -> None:
        """After a rebalance the gate starts from ``tp``'s committed offset (None: nothing committed)."""
        self._done[tp] = (committed if committed is not None and committed > 0 else 0) - 1
        self._rewound_in.pop(tp, None)

    def rewind_failed(self, tp: TP) -> None:
        """The rewind asked for ``tp`` did not happen: the next held event asks again."""
        self._rewound_in.pop(tp, None)

    def acknowledged(self, tp: TP, offset: int) -> None:
        if offset >= self._committable.get(tp, 0):
            self._committable[tp] = offset + 1

    def committable(self, tp: TP) -> int | None:
        """The offset ``tp`` may be committed at: nothing below it is unapplied (None: nothing yet)."""
        return self._committable.get(tp)

    # The pipeline's side.

    def admit(self, tp: TP, offset: int, link: Link | None) -> bool | int | None:
        """Whether the event at ``offset`` of ``tp``, fetched with ``link``, may be written: True when it
        is next in sequence; otherwise it is dropped, unacknowledged, and the result is the offset to
        read ``tp`` again from, or None: it was admitted already (or lies below the committed offset), a
        rewind was asked for already, it is stale, or the partition is not this consumer's."""
        done = self._done.get(tp)
        if done is None or link is None:
            return None
        if offset <= done:
            return None  # its first copy is written, or being written, in an earlier batch
        previous, era = link
        if previous is not None and previous <= done:
            self._done[tp] = offset
            return True
        if era == self.eras.get(tp, 0) and self._rewound_in.get(tp) != era:
            self._rewound_in[tp] = era
            return done + 1
        return None
