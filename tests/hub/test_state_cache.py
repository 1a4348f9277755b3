"""The worker's state cache: what it answers, what it forgets, and when it refuses what it is told.

Its use in folding batches ahead against a real Neo4j is in test_writer.py (the "cached" variant of the
read-ahead property test); the worker tests run it end to end.
"""

from __future__ import annotations

import pytest

from hub.state_cache import StateCache, Stored
from hub.writer import LIVE, STUBBED


def state(version: int, status: int = LIVE) -> Stored:
    return Stored(status, version, "p", "Terminal", ("Entity", "Terminal"), 1)


def test_known_states_and_absences_are_answered_the_rest_read() -> None:
    cache = StateCache(10)
    cache.remember({"a": state(1), "b": None}, cache.epoch)
    known, unknown = cache.split(["a", "b", "c"])
    assert known == {"a": state(1)}
    # "b" is known to be absent: neither answered with a state nor read again.
    assert unknown == ["c"]


def test_a_later_state_replaces_an_earlier_one() -> None:
    cache = StateCache(10)
    cache.remember({"a": None}, cache.epoch)
    cache.remember({"a": state(3, STUBBED)}, cache.epoch)
    assert cache.split(["a"]) == ({"a": state(3, STUBBED)}, [])


def test_the_least_recently_used_go_first() -> None:
    cache = StateCache(3)
    cache.remember({"a": state(1), "b": state(1), "c": state(1)}, cache.epoch)
    cache.split(["a"])  # used: now the most recent
    cache.remember({"d": state(1)}, cache.epoch)
    assert len(cache) == 3
    known, unknown = cache.split(["a", "b", "c", "d"])
    assert set(known) == {"a", "c", "d"}
    assert unknown == ["b"]


def test_clearing_starts_an_epoch_and_refuses_what_an_older_one_learned() -> None:
    cache = StateCache(10)
    before = cache.epoch
    cache.remember({"a": state(1)}, before)
    cache.clear()
    assert len(cache) == 0
    cache.remember({"b": state(2)}, before)  # a batch folded before the clear, committed after it
    assert cache.split(["a", "b"]) == ({}, ["a", "b"])
    cache.remember({"b": state(2)}, cache.epoch)
    assert cache.split(["b"]) == ({"b": state(2)}, [])


def test_a_cache_of_no_objects_remembers_nothing() -> None:
    cache = StateCache(0)
    cache.remember({"a": state(1)}, cache.epoch)
    assert cache.split(["a"]) == ({}, ["a"])
    with pytest.raises(ValueError, match="-1"):
        StateCache(-1)
