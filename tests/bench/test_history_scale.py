"""The kept-history benchmark's updates: valid events, a hot tenth updated evenly, versions rising."""

from __future__ import annotations

from collections import Counter

from bench import history_scale, synthetic
from bench.history_scale import Known
from hub.validation import validate_event
from ontology.loader import load_ontology


def _objects(n: int) -> list[Known]:
    return [Known(e["subject"], e["class"], e["label"]) for e in synthetic.generate(n, seed=3)]


def test_half_the_updates_go_round_the_hot_tenth_each_as_often() -> None:
    objects = _objects(2000)
    targets, hot = history_scale.update_plan(objects, 8000, seed=4)
    assert len(hot) == 200 == len(set(hot))
    per_object = Counter(targets[0::2])
    assert set(per_object) == set(hot)
    assert set(per_object.values()) == {20}  # 4,000 updates round 200 hot objects
    assert len(set(targets[1::2])) > 1000  # the other half spread over all objects


def test_updates_are_valid_with_rising_versions_and_times() -> None:
    ontology = load_ontology()
    every = _objects(synthetic.tile_size())
    objects = history_scale.updatable(every, ontology)
    assert {o.cls for o in every} - {o.cls for o in objects} >= {"SvStatus", "PositionPoint"}
    targets, _ = history_scale.update_plan(objects, 1200, seed=1)
    events = list(history_scale.update_events(objects, targets))
    last: dict[str, tuple[int, str]] = {}
    for event, k in zip(events, targets, strict=True):
        valid = validate_event(event, ontology)
        assert valid.mrid == objects[k].mrid and valid.class_name == objects[k].cls
        assert valid.event.label == objects[k].label
        before = last.get(valid.mrid)
        if before is not None:
            assert event["version"] > before[0] and event["time"] > before[1]
        last[valid.mrid] = (event["version"], event["time"])
