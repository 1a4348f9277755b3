"""The gate that keeps each partition's events in sequence (ingest.continuity), record by record: what
the consumer's thread fetched from where, and in what order the pipeline is handed it. The worker tests
(tests/ingest/test_worker.py) run it against Kafka, through rebalances."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from ingest.continuity import Continuity

P = TP("cim.ingest.p", 0)


@dataclass
class Record:
    offset: int


class Reader:
    """The consumer's thread for one partition: seeks and fetches, noted as the thread notes them."""

    def __init__(self, c: Continuity) -> None:
        self.c = c
        self.position: int | None = None

    def seek(self, position: int | None) -> None:
        self.c.eras[P] = self.c.eras.get(P, 0) + 1
        self.position = position

    def fetch(self, offsets: range | list[int]) -> list[Record]:
        """A fetch, noted where it started; handed over to the event loop later (``hand``)."""
        batch = [Record(o) for o in offsets]
        self.c.starts[id(batch)] = (self.position, self.c.eras.get(P, 0))
        self.position = batch[-1].offset + 1
        return batch

    def hand(self, batch: list[Record]) -> None:
        self.c.fetched(P, batch)

    def read(self, offsets: range | list[int]) -> None:
        self.hand(self.fetch(offsets))


def started(committed: int | None) -> tuple[Continuity, Reader]:
    c = Continuity()
    c.rebalanced()
    reader = Reader(c)
    reader.seek(committed or 0)
    c.start(P, committed)
    return c, reader


def test_events_in_sequence_are_admitted_and_committed_after_the_last_acknowledged() -> None:
    c, reader = started(10)
    reader.read(range(10, 15))
    assert [c.admit(P, o) for o in range(10, 15)] == [True] * 5
    for o in range(10, 13):
        c.acknowledged(P, o)
    assert c.committable(P) == 13


def test_events_after_dropped_ones_are_held_and_the_partition_read_again_once() -> None:
    c, reader = started(10)
    reader.read(range(10, 15))
    reader.read(range(15, 20))
    assert c.admit(P, 10) is True
    # 11 to 14 were dropped from the buffers: 15 is not next.
    assert c.admit(P, 15) == 11
    assert c.admit(P, 16) is None  # asked for already
    reader.seek(11)
    reader.read(range(11, 20))
    assert [c.admit(P, o) for o in range(11, 20)] == [True] * 9
    c.acknowledged(P, 19)
    assert c.committable(P) == 20


def test_records_fetched_before_a_seek_and_handed_over_after_it_never_pass_what_they_jump() -> None:
    """The second rebalance loss: a fetch from the old position reaches the drain after the seek."""
    c, reader = started(10)
    reader.position = 40
    stale = reader.fetch(range(40, 45))  # fetched before the seek...
    reader.seek(10)
    fresh = reader.fetch(range(10, 12))
    reader.hand(stale)  # ...handed over after it
    reader.hand(fresh)
    assert c.admit(P, 40) is None  # stale: the seek reads past it again
    assert c.admit(P, 41) is None
    assert c.admit(P, 10) is True
    assert c.admit(P, 11) is True
    c.acknowledged(P, 11)
    assert c.committable(P) == 12


def test_offsets_holding_no_record_are_stepped_over() -> None:
    # Transaction markers (or compaction) leave offsets without a record: the fetch says what follows.
    c, reader = started(0)
    reader.read([0, 1, 4, 5, 9])
    assert [c.admit(P, o) for o in [0, 1, 4, 5, 9]] == [True] * 5
    c.acknowledged(P, 9)
    assert c.committable(P) == 10


def test_a_fetch_that_starts_past_the_sought_position_steps_over_what_it_skipped() -> None:
    c, reader = started(7)
    reader.read([9, 10])
    assert c.admit(P, 9) is True


def test_copies_below_the_position_are_dropped_and_do_not_move_the_commit_back() -> None:
    c, reader = started(10)
    reader.read(range(10, 13))
    for o in range(10, 13):
        assert c.admit(P, o) is True
        c.acknowledged(P, o)
    c.rebalanced()
    reader.seek(11)
    c.start(P, 11)
    reader.read(range(11, 14))
    # Read again from the committed offset: the first copies are in earlier batches, the writer skips.
    assert [c.admit(P, o) for o in range(11, 14)] == [True] * 3
    # The same events once more: dropped.
    reader.seek(12)
    reader.read(range(12, 14))
    assert [c.admit(P, o) for o in range(12, 14)] == [None, None]
    c.acknowledged(P, 11)
    assert c.committable(P) == 13


def test_a_rebalance_makes_every_record_fetched_before_it_stale() -> None:
    c, reader = started(10)
    reader.read(range(10, 20))
    assert c.admit(P, 10) is True
    c.rebalanced()
    reader.seek(11)
    c.start(P, 11)
    assert c.admit(P, 11) is None  # fetched before the rebalance: read again after the seek
    reader.read(range(11, 13))
    assert c.admit(P, 11) is True


def test_a_position_the_client_set_by_itself_is_not_trusted() -> None:
    c, reader = started(10)
    reader.position = None  # a new assignment: the client reset the position itself
    reader.read(range(30, 32))
    assert c.admit(P, 30) == 10  # fetched in the current era, and it does not follow: read again
    reader.seek(10)
    reader.read(range(10, 12))
    assert c.admit(P, 10) is True


def test_a_held_event_fetched_after_the_last_rewind_asks_again() -> None:
    c, reader = started(0)
    reader.read([0])
    assert c.admit(P, 0) is True
    reader.read([1, 2])
    assert c.admit(P, 2) == 1
    reader.seek(1)
    # The events read again were dropped once more (a fetch the flow threw away, say).
    reader.fetch([1, 2])
    reader.read([3])
    assert c.admit(P, 3) == 1


def test_a_partition_that_is_not_started_is_held_without_a_rewind() -> None:
    c = Continuity()
    Reader(c).read([5])
    assert c.admit(P, 5) is None
