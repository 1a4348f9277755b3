"""The envelope's versions taken from times: microseconds since the epoch, inside signed 64 bits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.events import time_version
from hub.storable import INT64_MAX


def test_a_version_counts_microseconds_since_the_epoch_whatever_the_zone() -> None:
    assert time_version(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1
    assert time_version(datetime(2024, 5, 1, 11, 0, tzinfo=UTC)) == 1_714_561_200_000_000
    same_instant = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert time_version(same_instant) == 1_714_561_200_000_000


def test_later_times_give_larger_versions_and_the_last_one_fits_in_64_bits() -> None:
    start = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    times = [start + timedelta(microseconds=step) for step in (0, 1, 999_999, 10**6, 86_400 * 10**6)]
    versions = [time_version(t) for t in times]
    assert versions == sorted(set(versions))
    latest = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-18)))
    assert 0 < time_version(latest) <= INT64_MAX


@pytest.mark.parametrize(
    ("time", "message"),
    [
        (datetime(2024, 5, 1, 11, 0), "'2024-05-01T11:00:00' has no time zone"),
        (datetime(1970, 1, 1, tzinfo=UTC), "'1970-01-01T00:00:00+00:00' is not after 1970-01-01"),
        (datetime(1969, 7, 20, 20, 17, tzinfo=UTC), "'1969-07-20T20:17:00+00:00' is not after"),
    ],
)
def test_a_time_that_cannot_be_a_version_is_named(time: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        time_version(time)
