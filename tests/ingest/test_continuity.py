"""The gate that keeps each partition's events in sequence (ingest.continuity), record by record: what
the consumer's thread fetched from where, and in what order the pipeline is handed it. The worker tests
(tests/ingest/test_worker.py) run it against Kafka, through rebalances."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from ingest.continuity import LINK, Continuity, Link

P = TP("cim.ingest.p", 0)


@dataclass
class Record:
    offset: int


class Reader:
    """The consumer's thread for one partition: seeks and fetches, linked as the thread links them. Each
    fetched copy of a record keeps its own link (``copies``: offset -> links of the copies not handed to
    the gate yet, oldest first)."""

    def __init__(self, c: Continuity) -> None:
        self.c = c
        self.position: int | None = None
        self.copies: dict[int, list[Link | None]] = {}

    def seek(self, position: int | None) -> None:
        self.c.eras[P] = self.c.eras.get(P, 0) + 1
        self.position = position

    def read(self, offsets: range | list[int]) -> None:
        batch = [Record(o) for o in offsets]
        Continuity.link(batch, self.position, self.c.eras.get(P, 0))
        self.position = batch[-1].offset + 1
        for record in batch:
            self.copies.setdefault(record.offset, []).append(getattr(record, LINK))

    def admit(self, offset: int) -> bool | int | None:
        """The gate's verdict on the oldest copy of ``offset`` fetched."""
        return self.c.admit(P, offset, self.copies[offset].pop(0))


def started(committed: int | None) -> tuple[Continuity, Reader]:
    c = Continuity()
    reader = Reader(c)
    reader.seek(committed or 0)
    c.start(P, committed)
    return c, reader


def test_events_in_sequence_are_admitted_and_committed_after_the_last_acknowledged() -> None:
    c, reader = started(10)
    reader.read(range(10, 15))
    assert [reader.admit(o) for o in range(10, 15)] == [True] * 5
    for o in range(10, 13):
        c.acknowledged(P, o)
    assert c.committable(P) == 13


def test_events_after_dropped_ones_are_held_and_the_partition_read_again_once() -> None:
    c, reader = started(10)
    reader.read(range(10, 15))
    reader.read(range(15, 20))
    assert reader.admit(10) is True
    # 11 to 14 were dropped from the buffers: 15 is not next.
    assert reader.admit(15) == 11
    assert reader.admit(16) is None  # asked for already
    reader.seek(11)
    reader.read(range(11, 20))
    assert [reader.admit(o) for o in range(11, 20)] == [True] * 9
    c.acknowledged(P, 19)
    assert c.committable(P) == 20


def test_records_fetched_before_a_seek_and_handed_over_after_it_never_pass_what_they_jump() -> None:
    """The second rebalance loss: a fetch from the old position reaches the pipeline after the seek."""
    c, reader = started(10)
    reader.position = 40
    reader.read(range(40, 45))  # fetched before the seek, handed over after it
    reader.seek(10)
    reader.read(range(10, 12))
    assert reader.admit(40) is None  # stale: the seek reads past it again
    assert reader.admit(41) is None
    assert reader.admit(10) is True
    assert reader.admit(11) is True
    c.acknowledged(P, 11)
    assert c.committable(P) == 12


def test_a_stale_copy_handed_over_before_the_copy_read_again_does_not_take_its_place() -> None:
    _, reader = started(0)
    reader.read([0, 1, 2, 3])
    assert reader.admit(0) is True
    # 1 was dropped; 2 and 3 are still queued when the partition is read again from 1.
    assert reader.admit(2) == 1
    reader.seek(1)
    reader.read([1, 2, 3])
    assert reader.admit(3) is None  # the stale copy
    assert [reader.admit(o) for o in [1, 2, 3]] == [True, True, True]


def test_offsets_holding_no_record_are_stepped_over() -> None:
    # Transaction markers (or compaction) leave offsets without a record: the fetch says what follows.
    c, reader = started(0)
    reader.read([0, 1, 4, 5, 9])
    assert [reader.admit(o) for o in [0, 1, 4, 5, 9]] == [True] * 5
    c.acknowledged(P, 9)
    assert c.committable(P) == 10


def test_a_fetch_that_starts_past_the_sought_position_steps_over_what_it_skipped() -> None:
    _, reader = started(7)
    reader.read([9, 10])
    assert reader.admit(9) is True


def test_copies_below_the_position_are_dropped_and_do_not_move_the_commit_back() -> None:
    c, reader = started(10)
    reader.read(range(10, 13))
    for o in range(10, 13):
        assert reader.admit(o) is True
        c.acknowledged(P, o)
    # A rebalance: read again from the committed offset.
    reader.seek(11)
    c.start(P, 11)
    reader.read(range(11, 14))
    # The first copies are in earlier batches: the writer skips these.
    assert [reader.admit(o) for o in range(11, 14)] == [True] * 3
    # The same events once more: dropped.
    reader.seek(12)
    reader.read(range(12, 14))
    assert [reader.admit(o) for o in range(12, 14)] == [None, None]
    c.acknowledged(P, 11)
    assert c.committable(P) == 13


def test_records_fetched_before_a_rebalance_are_stale_unless_they_continue_the_sequence() -> None:
    c, reader = started(10)
    reader.read(range(10, 20))
    assert reader.admit(10) is True
    assert reader.admit(11) is True
    # A rebalance drops 12 from the buffers; the committed offset is 11.
    reader.seek(11)
    c.start(P, 11)
    assert reader.admit(13) is None  # fetched before: the seek reads it again
    reader.read(range(11, 15))
    assert [reader.admit(o) for o in range(11, 15)] == [True] * 4


def test_a_position_the_client_set_by_itself_is_not_trusted() -> None:
    _, reader = started(10)
    reader.position = None  # a new assignment: the client reset the position itself
    reader.read(range(30, 32))
    assert reader.admit(30) == 10  # fetched in the current era, and it does not follow: read again
    reader.seek(10)
    reader.read(range(10, 12))
    assert reader.admit(10) is True


def test_a_held_event_fetched_after_the_last_rewind_asks_again() -> None:
    _, reader = started(0)
    reader.read([0])
    assert reader.admit(0) is True
    reader.read([1, 2])
    assert reader.admit(2) == 1
    reader.seek(1)
    # The events read again were dropped once more (a fetch the flow threw away, say).
    reader.read([1, 2])
    reader.copies[1].pop()
    reader.copies[2].pop()
    reader.read([3])
    assert reader.admit(3) == 1


def test_a_partition_that_is_not_started_is_held_without_a_rewind() -> None:
    reader = Reader(Continuity())
    reader.read([5])
    assert reader.admit(5) is None
