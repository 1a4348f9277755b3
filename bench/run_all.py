"""Every benchmark of the hub in one command: ``python -m bench`` (or ``python -m bench.run_all``).

Runs, in order: the converter benchmark (:mod:`bench.converters`), the scale benchmark
(:mod:`bench.scale`: bulk load, freshness and queries on a synthetic whole-system network), the ingest
pipeline benchmark (:mod:`bench.pipeline`) and the GraphQL API benchmark (:mod:`bench.graphql_api`), the
last three on the benchmark's own Kafka and Neo4j (``.hub-bench/``), then writes
``bench/results/summary.md`` with the machine's description and links to each result. ``--scale``
(default 1,000,000 objects) sizes the scale benchmark; ``--quick`` runs everything small and short.
The full run is sized to finish within 30 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import converters, scale

RESULTS = Path(__file__).resolve().parent / "results"


def _with_argv(entry: Callable[[], object], argv: list[str]) -> None:
    """Call a benchmark whose ``main()`` reads ``sys.argv`` itself."""
    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        entry()
    finally:
        sys.argv = saved


def write_summary(
    out: Path, started: str, total: float, result: dict[str, Any], shown: list[str], quick: bool
) -> None:
    """``summary.md``: the machine, links to every benchmark's results and the scale run's headlines."""
    m = result["machine"]
    lines = [
        "# Benchmarks of the hub",
        "",
        f"Run {started} with `{' '.join(['python -m bench', *shown])}`, {total / 60:.1f} minutes.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB memory, Python {m['python']}, "
        f"{m['platform']}. The machine is shared with other work, so figures vary between runs.",
        "",
        "| benchmark | results |",
        "| --- | --- |",
        "| converters: CGMES and GasLib files to events, speed and memory | [converters.md](converters.md), "
        "[converters.json](converters.json) |",
        f"| scale: bulk load, freshness, queries on {result['scale']:,} objects | [scale.md](scale.md), "
        "[scale.json](scale.json) |",
        "| ingest pipeline: worker beside a plain loader, throughput and freshness | "
        "[pipeline.md](pipeline.md), [pipeline.json](pipeline.json) |",
        "| GraphQL API beside the Cypher it sends | [graphql_api.md](graphql_api.md), "
        "[graphql_api.json](graphql_api.json) |",
        "",
    ]
    load = result.get("load") or {}
    if load.get("baseline") and load.get("hub"):
        lines.append(
            f"- Bulk load: worker {load['hub']['events_per_s']:,.0f} events/s, plain Cypher "
            f"{load['baseline']['objects_per_s']:,.0f} objects/s."
        )
    for step in result.get("freshness") or []:
        lines.append(
            f"- Freshness at {step['offered_rate']:,.0f}/s offered: p50 {step['freshness_ms']['p50']} ms, "
            f"p99 {step['freshness_ms']['p99']} ms (Kafka transport p50 "
            f"{step['baseline_transport_ms']['p50']} ms); applied {step['applied_rate']:,.0f}/s."
        )
    for name, q in (result.get("queries") or {}).items():
        lines.append(
            f"- {name}: GraphQL p50 {q['graphql_ms']['p50']} ms, raw Cypher p50 {q['cypher_ms']['p50']} ms."
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "started": started,
                "minutes": round(total / 60, 1),
                "scale": result["scale"],
                "quick": quick,
            },
            indent=2,
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=1_000_000, help="objects in the synthetic network")
    parser.add_argument("--quick", action="store_true", help="small and short (checks)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-services", action="store_true", help="leave the benchmark's services up")
    args = parser.parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    began = time.monotonic()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)

    scale.log("converter benchmark")
    converters.main(["--out", str(args.out), *(["--repeats", "1"] if args.quick else [])])
    scale.configure_environment()
    started_services = scale.services_up()
    try:
        scale.log("scale benchmark")
        scale_args = ["--scale", str(args.scale), "--out", str(args.out), "--keep-services"]
        if args.quick:
            scale_args.append("--quick")
        result = scale.main(scale_args)
        scale.log("ingest pipeline benchmark")
        from bench import pipeline

        pipeline.main(
            ["--events", "3000", "--warmup-events", "1000", "--stream-seconds", "5"] if args.quick else []
        )
        scale.log("GraphQL API benchmark")
        from bench import graphql_api

        _with_argv(graphql_api.main, ["--repeat", "2", "--side", "15"] if args.quick else [])
    finally:
        if started_services and not args.keep_services:
            from devstack.services import launcher

            launcher.stop(None, started_services)
    total = time.monotonic() - began
    write_summary(args.out, started, total, result, shown, args.quick)
    scale.log(f"all benchmarks done in {total / 60:.1f} minutes; see {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
