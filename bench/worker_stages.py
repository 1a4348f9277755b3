"""The worker's CPU per event, stage by stage, in one process and without services.

``python -m bench.worker_stages [--events N] [--repeat R] [--name NAME]``

The pipeline benchmark (:mod:`bench.pipeline`) measures the worker's whole CPU per event, which on a
shared machine moves by tens of percent between runs. This one runs the worker's own per-event Python
on the pipeline benchmark's events (:func:`bench.pipeline.generate`, as JSON bytes) and reads the process'
CPU time around each stage, the best of ``R`` repeats:

* ``check``: :class:`ingest.records.RecordChecker` (envelope, ontology, key, ownership, label) for each
  record, as the agent calls it;
* ``fold``: :meth:`hub.writer.GraphWriter.plan` on batches of the worker's size, every object new (the
  pipeline benchmark's case), with history on as the worker's default;
* ``records``: each change record stamped, partitioned and encoded as
  :class:`ingest.change_publisher.ChangePublisher` does before handing it to the Kafka client.

What it leaves out is the libraries' share: Faust's stream, the Kafka client's fetch and send, TLS, the
Neo4j driver's packing. Results go to ``bench/results/<NAME>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PRODUCER = "bench"


def _best_us(stage: Callable[[], object], events: int, repeat: int) -> float:
    """CPU microseconds per event of ``stage`` (which handles ``events`` events), the best of
    ``repeat`` runs after one untimed run."""
    stage()
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        stage()
        best = min(best, time.process_time() - started)
    return best / events * 1e6


def measure(n: int, repeat: int, batch: int) -> dict[str, float]:
    from bench.pipeline import generate
    from hub.changes import ChangeRecord
    from hub.settings import Settings
    from hub.writer import Accepted, GraphWriter
    from ingest.change_publisher import murmur2
    from ingest.records import RecordChecker
    from ontology.loader import load_ontology

    # The worker's producer, as the pipeline benchmark configures it; the rest from HUB_* variables.
    settings = Settings(producers={PRODUCER: {"org": "bench", "clearance": "OFFICIAL"}})
    ontology = load_ontology()
    checker = RecordChecker(ontology, settings)
    topic = settings.ingest_topic_prefix + PRODUCER
    values = [json.dumps(e, separators=(",", ":")).encode() for e in generate(n, "bws", PRODUCER)]
    keys = [json.loads(v)["subject"].encode() for v in values]
    headers: list[tuple[str, bytes]] = []

    def check() -> list[Any]:
        return [checker.check(topic, k, v, headers, None) for k, v in zip(keys, values, strict=True)]

    accepted: list[Accepted] = [a for a in check() if isinstance(a, Accepted)]
    if len(accepted) != n:
        raise RuntimeError(f"{n - len(accepted)} of the benchmark's events were refused")
    for offset, event in enumerate(accepted):
        event.source, event.offset = f"{topic}#0", offset
    writer = GraphWriter(ontology, database=settings.neo4j_database, history=settings.writer_history)

    def fold() -> None:
        for i in range(0, n, batch):
            writer.plan(accepted[i : i + batch], {}, {})

    changes = [c for i in range(0, n, batch) for c in writer.plan(accepted[i : i + batch], {}, {}).changes]
    partitions = 4

    def records() -> list[tuple[int, bytes]]:
        committed = datetime.now(UTC)
        time_text = committed.isoformat()
        return [
            ((murmur2(c.mrid.encode()) & 0x7FFFFFFF) % partitions, ChangeRecord.to_json_fast(c, time_text))
            for c in [c.stamped(committed) for c in changes]
        ]

    return {
        "check": _best_us(check, n, repeat),
        "fold": _best_us(fold, n, repeat),
        "records": _best_us(records, n, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--name", default="", help="results file under bench/results/ (no extension)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    stages = measure(args.events, args.repeat, args.batch)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "repeat": args.repeat,
        "batch": args.batch,
        "cpu_us_per_event": {k: round(v, 2) for k, v in stages.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
    }
    print(json.dumps(result), file=sys.stdout)
    if args.name:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
