"""The envelope: versions taken from times (microseconds since the epoch, inside signed 64 bits), and the
scenario it names (an id the hub assigned, never a name)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from hub.events import Event, time_version
from hub.scenarios import new_id
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


def _envelope(scenario: str) -> dict[str, object]:
    return {
        "id": "e1",
        "source": "tso",
        "type": "upsert",
        "subject": "line-1",
        "time": "2026-01-01T00:00:00Z",
        "version": 1,
        "class": "ACLineSegment",
        "scenario": scenario,
    }


def test_an_envelope_names_a_scenario_by_the_id_the_hub_assigned() -> None:
    fresh = new_id()
    assert re.fullmatch(r"scn-[0-9a-f]{32}", fresh) and fresh != new_id()
    assert Event.model_validate(_envelope(fresh)).scenario == fresh


@pytest.mark.parametrize(
    "scenario",
    ["plan-2027", "scn-", "scn-" + "A" * 32, "scn-" + "0" * 31, "scn-" + "0" * 33, " scn-" + "0" * 32],
)
def test_an_envelope_naming_anything_but_a_scenario_id_is_refused(scenario: str) -> None:
    with pytest.raises(ValidationError, match="scenario"):
        Event.model_validate(_envelope(scenario))
