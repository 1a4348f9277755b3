"""The scale benchmark's report: ratios beside each query, how busy the machine was, a run's own load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import scale


def _result() -> dict[str, Any]:
    return {
        "started": "2026-12-07T04:00:00+00:00",
        "command": "python -m bench.scale --scale 1000",
        "total_s": 12.0,
        "scale": 1000,
        "seed": 1,
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "memory_gib": 8.0,
            "python": "3.11",
            "platform": "linux",
            "neo4j": "5",
            "neo4j_heap": "2g",
            "neo4j_pagecache": "3g",
            "kafka": "3",
            "topic_partitions": 4,
            "worker_batch_size": 500,
        },
        "load": None,
        "hub_load": {
            "produce": {"sent": 1000, "seconds": 1.5, "events_per_s": 666.7},
            "applied_events": 1000,
            "seconds": 4.0,
            "events_per_s": 250.0,
            "live_objects": 1000,
            "dead_letters": 0,
        },
        "queries": {
            "counts per class": {
                "graphql_ms": {"p50": 30.0, "p95": 60.0},
                "cypher_ms": {"p50": 20.0, "p95": 40.0},
                "ratio": {"p50": 1.5, "p95": 1.5},
                "repeats": 20,
            },
            # Results written before ratios were stored: computed from the percentiles.
            "search by name": {
                "graphql_ms": {"p50": 10.0, "p95": 30.0},
                "cypher_ms": {"p50": 5.0, "p95": 10.0},
            },
        },
        "load_average": [1.0, 2.0, 3.0],
    }


def test_markdown_gives_each_query_its_ratios_and_the_run_its_own_load(tmp_path: Path) -> None:
    result = _result()
    with scale.MachineSampler(every_s=0.05) as sampler:
        pass
    result["machine_during_run"] = sampler.summary()
    result["store_gib"] = 0.5
    scale.write_markdown(result, tmp_path / "r.md")
    text = (tmp_path / "r.md").read_text()
    assert "| counts per class | 30.0 | 60.0 | 20.0 | 40.0 | 1.5x | 1.5x | 20 |" in text
    assert "| search by name | 10.0 | 30.0 | 5.0 | 10.0 | 2.0x | 3.0x |  |" in text
    assert "change feed) | 1,000 | 4.0 | 250 |" in text
    assert "ingest workers: 1 (batch size 500)" in text
    result["analysis"] = ["Why a figure is what it is."]
    scale.write_markdown(result, tmp_path / "r.md")
    assert "## Notes on the figures\n\nWhy a figure is what it is." in (tmp_path / "r.md").read_text()
    assert "Neo4j store on disk after the load: 0.5 GiB" in text
    samples = result["machine_during_run"]["samples"]
    assert len(samples) >= 2  # one when started, one when stopped
    assert all(load >= 0 and avail > 0 for _, load, avail in samples)


def test_render_only_adds_a_note_and_carries_skipped_sections(tmp_path: Path) -> None:
    previous = _result() | {"started": "2026-11-28T10:00:00+00:00", "scale": 1_000_000}
    previous["freshness"] = [
        {
            "offered_rate": 1000.0,
            "achieved_send_rate": 999.0,
            "applied_rate": 950.0,
            "freshness_ms": {"p50": 300.0, "p99": 900.0, "max": 1000.0},
            "baseline_transport_ms": {"p50": 6.0, "p99": 16.0},
        }
    ]
    (tmp_path / "old.json").write_text(json.dumps(previous))
    (tmp_path / "new.json").write_text(json.dumps(_result()))
    scale.main(
        [
            "--render-only",
            "--out",
            str(tmp_path),
            "--name",
            "new",
            "--note",
            "A note on the run.",
            "--carry-from",
            str(tmp_path / "old.json"),
            "--skip",
            "freshness",
        ]
    )
    text = (tmp_path / "new.md").read_text()
    assert "A note on the run." in text
    assert "## Freshness at a steady rate (from the run of 2026-11-28T10:00:00+00:00, 1,000,000" in text
    assert json.loads((tmp_path / "new.json").read_text())["note"] == "A note on the run."
