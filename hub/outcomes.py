"""What became of each sent event: applied, dead-lettered, superseded, unchanged, or not known yet.

Shared by ``hub produce --wait`` (:mod:`hubcli.outcomes`) and HTTP ingest's batch status
(``hubql.batch_status``); each brings its own Kafka reader and hands this ledger what it reads.

Every sent event is known by where the broker put it (topic, partition and offset), which the send's
acknowledgement tells. The worker reports on it in one of two places:

* a dead letter, whose ``source-topic``/``-partition``/``-offset`` headers name exactly that record, with
  the reason (see :mod:`hub.dead_letter_headers`);
* a change record on the change feed, which carries the event's ``id``, its producer and the object's
  mRID (see :class:`hub.changes.ChangeRecord`): the event was applied.

Some events get neither: the worker folds the events of one object in a batch into one change that names
the last of them, and writes nothing for an event whose version is not newer than the stored one (stale,
or a repetition). Once the worker's consumer group (``HUB_WORKER_ID``) has committed offsets past an
event, every answer about it is on the broker (the worker publishes an event's dead letter and change
records before it commits the event), so an event still without one is then *superseded* (a newer
version of its object was written meanwhile) or *unchanged* (no change for any other reason). Until then
it is *unknown*.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub.changes import ChangeRecord
from hub.dead_letter_headers import read


class Outcome(StrEnum):
    applied = "applied"
    dead_lettered = "dead-lettered"
    superseded = "superseded"
    unchanged = "unchanged"
    unknown = "unknown"
    rejected_locally = "rejected-locally"


# What each outcome means, for summaries.
MEANING: Final = {
    Outcome.applied: "a change record names it",
    Outcome.dead_lettered: "the worker refused it",
    Outcome.superseded: "no change of its own: a newer version of its object was written meanwhile",
    Outcome.unchanged: "the worker passed it without a change: stale (not newer than the stored version) "
    "or ignored",
    Outcome.unknown: "the worker had not reached it when the wait ended",
    Outcome.rejected_locally: "never sent: the local checks refused it",
}


@dataclass(eq=False)  # one per event, told apart by identity (two sends of one event are two)
class Tracked:
    """One event and, once known, what became of it."""

    event_id: str | None
    subject: str | None
    mrid: str | None
    class_name: str | None
    version: int | None
    topic: str | None = None
    producer: str | None = None
    partition: int | None = None
    offset: int | None = None
    outcome: Outcome = Outcome.unknown
    reason_class: str | None = None
    reason: str | None = None
    change: str | None = None
    # For a superseded event: the version and event id of the change that took its place.
    by: tuple[int, str | None] | None = None
    # The newest change of its object seen since it was tracked, (version, event id).
    newest: tuple[int, str | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "subject": self.subject,
            "class": self.class_name,
            "version": self.version,
            "partition": self.partition,
            "offset": self.offset,
            "outcome": self.outcome.value,
            "reason_class": self.reason_class,
            "reason": self.reason,
            "change": self.change,
            "superseded_by": None if self.by is None else {"version": self.by[0], "id": self.by[1]},
        }


def event_id_of(value: bytes) -> str | None:
    """The ``id`` of an encoded envelope (None when it has none that is text)."""
    try:
        body = json.loads(value)
    except ValueError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None


class Ledger:
    """The events being followed, indexed by where they lie and by (event id, mRID), and settled by the
    change records and dead letters handed to it. Events are added with :meth:`track` once the broker
    has placed them and dropped with :meth:`forget`; a change record is looked at only when it is about a
    tracked object, and then only from the events it may settle or supersede."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, int, int], Tracked] = {}
        self._by_id: dict[tuple[str, str], list[Tracked]] = {}
        # Tracked events per mRID key: change records of other objects are passed over unparsed.
        self._by_key: dict[bytes, list[Tracked]] = {}

    def __len__(self) -> int:
        return len(self._at)

    def track(self, tracked: Tracked) -> None:
        assert tracked.topic is not None and tracked.partition is not None and tracked.offset is not None
        self._at[(tracked.topic, tracked.partition, tracked.offset)] = tracked
        if tracked.mrid is not None:
            self._by_key.setdefault(tracked.mrid.encode(), []).append(tracked)
            if tracked.event_id is not None:
                self._by_id.setdefault((tracked.event_id, tracked.mrid), []).append(tracked)

    def forget(self, events: Iterable[Tracked]) -> None:
        for tracked in events:
            if tracked.topic is None or tracked.partition is None or tracked.offset is None:
                continue
            if self._at.get((tracked.topic, tracked.partition, tracked.offset)) is not tracked:
                continue
            del self._at[(tracked.topic, tracked.partition, tracked.offset)]
            if tracked.mrid is None:
                continue
            key = tracked.mrid.encode()
            others = [t for t in self._by_key.get(key, []) if t is not tracked]
            if others:
                self._by_key[key] = others
            else:
                self._by_key.pop(key, None)
            if tracked.event_id is not None:
                same = self._by_id.get((tracked.event_id, tracked.mrid), [])
                rest = [t for t in same if t is not tracked]
                if rest:
                    self._by_id[(tracked.event_id, tracked.mrid)] = rest
                else:
                    self._by_id.pop((tracked.event_id, tracked.mrid), None)

    def change(self, key: bytes | None, value: bytes | None) -> list[Tracked]:
        """Note a change-feed record; returns the events it settles as applied."""
        same = self._by_key.get(key) if key is not None else None
        if not same or value is None:
            return []
        try:
            change = ChangeRecord.from_json(value)
        except (ValueError, KeyError, TypeError):
            return []  # not a change record the API would read either
        # Newer versions written after an event was sent: what supersedes it, if nothing names it.
        for t in same:
            if t.outcome is Outcome.unknown and (t.newest is None or change.version >= t.newest[0]):
                t.newest = (change.version, change.event_id)
        if change.event_id is None:
            return []
        matches = [
            t
            for t in self._by_id.get((change.event_id, change.mrid), ())
            if t.outcome is Outcome.unknown and t.producer == change.producer
        ]
        # One id sent twice for one object: the change names the version it wrote.
        exact = [t for t in matches if t.version == change.version] or matches
        for tracked in exact:
            tracked.outcome, tracked.change = Outcome.applied, change.change
        return exact

    def dead_letter(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Tracked | None:
        """Note a dead letter; returns the event it settles, if it is one of those tracked."""
        letter = read(key, value, headers)
        if letter.source is None:
            return None
        tracked = self._at.get(letter.source)
        if tracked is None or tracked.outcome is not Outcome.unknown:
            return None  # another sender's event, or a second refusal after a redelivery
        tracked.outcome = Outcome.dead_lettered
        tracked.reason_class, tracked.reason = letter.reason_class, letter.reason
        return tracked

    def passed(self, tracked: Tracked) -> None:
        """Settle an event the worker has committed without a change record or dead letter naming it."""
        if tracked.outcome is not Outcome.unknown:
            return
        newer = tracked.newest
        if newer is not None and tracked.version is not None and newer[0] > tracked.version:
            tracked.outcome, tracked.by = Outcome.superseded, newer
        else:
            tracked.outcome = Outcome.unchanged


def last_offsets(events: Iterable[Tracked]) -> dict[TopicPartition, int]:
    """The offset of the last of ``events`` in each partition they lie in."""
    last: dict[TopicPartition, int] = {}
    for t in events:
        if t.topic is None or t.partition is None or t.offset is None:
            continue
        tp = TopicPartition(t.topic, t.partition)
        last[tp] = max(t.offset, last.get(tp, -1))
    return last


async def committed_past(
    admin: AIOKafkaAdminClient, group: str, last: dict[TopicPartition, int]
) -> set[TopicPartition]:
    """The partitions of ``last`` in which ``group`` has committed an offset past the one given."""
    if not last:
        return set()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(last))
    except KafkaError as exc:
        # A broker that has just started has no group coordinator until its offsets topic exists
        # (GroupCoordinatorNotAvailable, CoordinatorLoadInProgress, NotCoordinator): nothing is known to be
        # committed yet, and the caller asks again on its next round.
        if not exc.retriable:
            raise
        return set()
    return {tp for tp, offset in last.items() if tp in committed and committed[tp].offset > offset}
