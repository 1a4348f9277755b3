"""The stage benchmark runs the worker's own checks, fold and change records on the pipeline benchmark's
events, every one of them accepted."""

from __future__ import annotations

from bench.worker_stages import measure


def test_every_stage_is_measured_on_accepted_events() -> None:
    stages = measure(60, repeat=1, batch=20)
    assert set(stages) == {"check", "fold", "records"}
    assert all(value > 0 for value in stages.values())
