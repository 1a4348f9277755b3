"""Change records: the fast encoding the worker uses is byte for byte the plain JSON encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.changes import ChangeRecord

NOW = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


texts = st.text(max_size=40)


@given(
    mrid=texts,
    cls=texts,
    change=st.sampled_from(["upsert", "delete", "measurement", "stub"]),
    version=st.integers(0, 2**62),
    label=st.none() | st.integers(-(2**63), 2**63 - 1),
    event_time=st.none() | st.datetimes(timezones=st.just(UTC)) | st.datetimes(),
    event_id=st.none() | texts,
    producer=st.none() | texts,
    prev_label=st.none() | st.integers(-(2**63), 2**63 - 1),
)
def test_fast_encoding_is_byte_for_byte_the_json_encoding(
    mrid: str,
    cls: str,
    change: Any,
    version: int,
    label: int | None,
    event_time: datetime | None,
    event_id: str | None,
    producer: str | None,
    prev_label: int | None,
) -> None:
    record = ChangeRecord(mrid, cls, change, version, label, NOW, event_time, event_id, producer, prev_label)
    assert record.to_json_fast() == record.to_json()
    assert record.to_json_fast(NOW.isoformat()) == record.to_json()
    if event_time is None or event_time.tzinfo is not None:
        assert ChangeRecord.from_json(record.to_json_fast()) == record


def test_the_folds_record_goes_on_the_wire_only_once_stamped_with_its_commit_time() -> None:
    # The writer's fold makes the record before its batch commits; the worker stamps it afterwards.
    folded = ChangeRecord("m1", "ACLineSegment", "upsert", 3, 7, None, NOW, "e1", "p", 5)
    with pytest.raises(ValueError, match=r"'m1'.*time=None"):
        folded.to_json()
    with pytest.raises(ValueError, match=r"'m1'.*time=None"):
        folded.to_json_fast()
    record = folded.stamped(NOW)
    assert record.time == NOW and record[:5] == folded[:5] and record[6:] == folded[6:]
    assert json.loads(record.to_json()) == {
        "mrid": "m1",
        "class": "ACLineSegment",
        "change": "upsert",
        "version": 3,
        "label_id": 7,
        "time": NOW.isoformat(),
        "event_time": NOW.isoformat(),
        "event_id": "e1",
        "producer": "p",
        "prev_label_id": 5,
    }
    assert ChangeRecord.from_json(record.to_json_fast()) == record
