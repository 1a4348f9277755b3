"""The synthetic network generator: deterministic, valid events, the real model's shape, tiles joined."""

from __future__ import annotations

import itertools

from bench import synthetic
from hub.validation import validate_event
from ontology.loader import load_ontology


def test_same_seed_same_events_other_seed_other_values() -> None:
    first = list(synthetic.generate(3000, seed=5))
    again = list(synthetic.generate(3000, seed=5))
    other = list(synthetic.generate(3000, seed=6))
    assert first == again
    assert [e["class"] for e in first] == [e["class"] for e in other]
    assert {e["subject"] for e in first}.isdisjoint(e["subject"] for e in other)


def test_events_are_valid_and_generation_streams() -> None:
    ontology = load_ontology()
    size = synthetic.tile_size()
    n = size + 500  # one whole tile and the start of the next
    stream = synthetic.generate(10**9, seed=2)  # a generator: nothing is built before it is asked for
    events = list(itertools.islice(stream, n))
    assert len({e["subject"] for e in events}) == n
    for event in events:
        valid = validate_event(event, ontology)
        assert valid.event.label is not None


def test_a_whole_tile_has_the_real_models_shape() -> None:
    tile = synthetic.load_tile()
    domains = synthetic.domain_map()
    real = synthetic.profile(tile.events, domains)
    copy = synthetic.profile(list(synthetic.generate(len(tile), seed=3)), domains)
    assert copy.classes == real.classes
    assert copy.out_degree == real.out_degree
    assert copy.in_degree == real.in_degree
    assert copy.depth == real.depth
    assert set(real.domains) == {"Electricity", "Gas"}
    # Whole-system: gas offtakes supply thermal units, each unit at most once (an offtake supplies the
    # placed units nearest to it; a unit without a position has no nearest offtake); compressors have an
    # electricity supply point.
    supplied = [
        unit
        for body in tile.events
        if body["class"] == "GasOfftake"
        for unit in body["references"]["GasOfftake.GeneratingUnits"]
    ]
    thermal = {body["subject"] for body in tile.events if body["class"] == "ThermalGeneratingUnit"}
    assert real.classes["GasOfftake"] > 0 and supplied
    assert len(supplied) == len(set(supplied)) and set(supplied) <= thermal
    fed = [
        body["references"]["ElectricitySupplyPoint.GasCompressorStation"]
        for body in tile.events
        if body["class"] == "ElectricitySupplyPoint"
    ]
    stations = {body["subject"] for body in tile.events if body["class"] == "GasCompressorStation"}
    assert fed and len(fed) == len(set(fed)) and set(fed) <= stations


def test_later_tiles_are_tied_to_earlier_ones() -> None:
    size = synthetic.tile_size()
    events = list(synthetic.generate(3 * size, seed=4))
    tiles_of = {e["subject"]: e["subject"].split("-", 1)[0] for e in events}
    cross = 0
    for event in events:
        own = tiles_of[event["subject"]]
        for value in event["references"].values():
            for target in value if isinstance(value, list) else [value]:
                if target in tiles_of and tiles_of[target] != own:
                    assert tiles_of[target] < own  # ties point back to an earlier tile
                    cross += 1
    assert cross > 0
    # Every reference stays inside the generated network.
    assert all(
        t in tiles_of
        for e in events
        for v in e["references"].values()
        for t in (v if isinstance(v, list) else [v])
    )
