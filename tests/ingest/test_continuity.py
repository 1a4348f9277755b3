"""The gate that keeps each partition's events in sequence (ingest.continuity), record by record: what
the consumer fetched, and in what order the pipeline is handed it. The worker tests
(tests/ingest/test_worker.py) run it against Kafka, through rebalances."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from ingest.continuity import Continuity

P = TP("cim.ingest.p", 0)


@dataclass
class Record:
    offset: int


def fetched(c: Continuity, offsets: range | list[int], settled: bool = True) -> None:
    c.fetched({P: [Record(o) for o in offsets]}, settled)


def started(committed: int | None) -> Continuity:
    c = Continuity()
    c.rebalanced()
    c.start(P, committed)
    c.settle(P, committed or 0)
    return c


def test_events_in_sequence_are_admitted_and_committed_after_the_last_acknowledged() -> None:
    c = started(10)
    fetched(c, range(10, 15))
    assert [c.admit(P, o) for o in range(10, 15)] == [True] * 5
    for o in range(10, 13):
        c.acknowledged(P, o)
    assert c.committable(P) == 13


def test_events_after_dropped_ones_are_held_and_the_partition_read_again_once() -> None:
    c = started(10)
    fetched(c, range(10, 20))
    assert c.admit(P, 10) is True
    # 11 to 14 were dropped from the buffers: 15 is not next.
    assert c.admit(P, 15) == 11
    assert c.admit(P, 16) is None  # asked for already
    c.unsettle([P])
    c.settle(P, 11)
    fetched(c, range(11, 20))
    assert [c.admit(P, o) for o in range(11, 20)] == [True] * 9
    c.acknowledged(P, 19)
    assert c.committable(P) == 20


def test_records_fetched_before_a_seek_never_pass_the_gap_they_jump() -> None:
    c = started(10)
    c.unsettle([P])
    # A fetch that was under way during the seek: where its first record follows is unknown.
    fetched(c, range(40, 45), settled=False)
    c.settle(P, 10)
    fetched(c, range(10, 12))
    assert c.admit(P, 40) is None
    assert c.admit(P, 41) is None
    assert c.admit(P, 10) is True
    assert c.admit(P, 11) is True


def test_offsets_holding_no_record_are_stepped_over() -> None:
    # Transaction markers (or compaction) leave offsets without a record: the fetch says what follows.
    c = started(0)
    fetched(c, [0, 1, 4, 5, 9])
    assert [c.admit(P, o) for o in [0, 1, 4, 5, 9]] == [True] * 5
    c.acknowledged(P, 9)
    assert c.committable(P) == 10


def test_a_fetch_that_starts_past_the_sought_position_steps_over_what_it_skipped() -> None:
    c = started(7)
    fetched(c, [9, 10])
    assert c.admit(P, 9) is True


def test_copies_below_the_position_are_dropped_and_do_not_move_the_commit_back() -> None:
    c = started(10)
    fetched(c, range(10, 13))
    for o in range(10, 13):
        assert c.admit(P, o) is True
        c.acknowledged(P, o)
    c.rebalanced()
    c.start(P, 11)
    c.settle(P, 11)
    fetched(c, range(11, 14))
    # Read again from the committed offset: the first copies are in earlier batches, the writer skips.
    assert [c.admit(P, o) for o in range(11, 14)] == [True] * 3
    # The same events once more (a fetch that crossed the seek, say): dropped.
    fetched(c, range(12, 14))
    assert [c.admit(P, o) for o in range(12, 14)] == [None, None]
    c.acknowledged(P, 11)
    assert c.committable(P) == 13


def test_a_rebalance_makes_every_record_fetched_before_it_stale() -> None:
    c = started(10)
    fetched(c, range(10, 20))
    assert c.admit(P, 10) is True
    c.rebalanced()
    c.start(P, 11)
    assert c.admit(P, 11) is None  # fetched before the rebalance: read again after the seek
    c.settle(P, 11)
    fetched(c, range(11, 13))
    assert c.admit(P, 11) is True


def test_a_held_event_fetched_after_the_last_rewind_asks_again() -> None:
    c = started(0)
    fetched(c, [0])
    assert c.admit(P, 0) is True
    fetched(c, [1, 2])
    assert c.admit(P, 2) == 1
    c.unsettle([P])
    c.settle(P, 1)
    # The events read again were dropped once more (a fetch the flow threw away, say).
    fetched(c, [1, 2])
    fetched(c, [3])
    assert c.admit(P, 3) == 1


def test_a_partition_that_is_not_started_is_held_without_a_rewind() -> None:
    c = Continuity()
    fetched(c, [5])
    assert c.admit(P, 5) is None
