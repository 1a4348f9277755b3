"""Kept history at scale: queries on a large graph after many updates, as of now and as of earlier times.

``python -m bench.history_scale [--objects N] [--updates U] [--no-load] [--repeats R] [--name NAME]``

Runs on the benchmark's own services (those of :mod:`bench.scale`; ``HUB_*`` variables given in the
environment win, e.g. to use a kept 1,000,000-object graph with ``--no-load``). Steps, each measured:

1. **The graph**: ``N`` objects of the synthetic whole-system network (:mod:`bench.synthetic`) applied by
   the worker, unless ``--no-load`` (the graph the services hold, read back: mRIDs, classes, labels).
2. **Updates**: ``U`` upserts published to a topic of their own, then applied by one worker with kept
   history on; events per second from its first to its last committed offset. Half of them go round a
   *hot* tenth of the objects (so each of those is updated ``U / 2 / (N / 10)`` times: ten or more for
   ``U >= 2N``), the other half to objects drawn at random from all of them (identified objects only:
   state variables and position points have no description). Each update sets
   ``IdentifiedObject.description``; update ``i`` has version ``2 + i`` and valid time ``UPDATE_START +
   i`` seconds, so the as-of instants below fall between versions of every hot object.
3. **Storage**: the Neo4j data folder and the number of version nodes before and after the updates.
4. **As of an earlier time beside now**: through the GraphQL API (the access guard on, a caller cleared
   OFFICIAL of organisation ``neso``), the same query current and with ``asOf`` at an instant a quarter,
   half and three quarters through the updates, interleaved (current, as-of, as-of, current, ...):
   an object by mRID (a hot one), a page of 100 line segments, a substation's neighbourhood to depth 2;
   and, with no current counterpart, a hot object's history and the changes within a day.
5. **Current queries with and without kept history**: :func:`bench.scale.query_latencies` (the scale
   benchmark's queries, each beside the same Cypher unguarded) with the version nodes kept, then again
   after every version node is removed: the same current graph without history. The Cypher times are the
   drift control of a shared machine: compare the guarded/Cypher ratios, not only the times.

The version nodes are removed at step 5: run it on a graph kept for benchmarks only. Results go to
``bench/results/NAME.json`` and ``.md`` (default ``history-scale``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scale import (
    BENCH_PRODUCER,
    QUERY_USER,
    RESULTS,
    MachineSampler,
    Run,
    _await_applied,
    configure_environment,
    live_objects,
    log,
    machine,
    percentile,
    produce_all,
    query_latencies,
    services_up,
    start_api,
    start_worker,
    stop_child,
    store_size_gib,
    topic_end,
    worker_load,
)
from hub.graph_schema import cypher
from ontology.loader import load_ontology
from ontology.model import Ontology

# Updates are stamped from here on, a second apart: well after the synthetic network's own times.
UPDATE_START = datetime(2025, 1, 1, tzinfo=UTC)
HOT_SHARE = 0.1
AS_OF_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass(frozen=True, slots=True)
class Known:
    """One object of the graph, as the updates need it."""

    mrid: str
    cls: str
    label: str


def read_objects() -> list[Known]:
    """Every live object of the graph with its class and label text, in mRID order."""
    from hub.graph import make_driver

    driver = make_driver()
    try:
        labels = {
            int(r["id"]): str(r["expr"])
            for r in driver.execute_query("MATCH (l:SecurityLabel) RETURN l.id AS id, l.expr AS expr").records
        }
        records = driver.execute_query(
            cypher(
                "MATCH (n:Entity) WHERE n.@version > 0 AND NOT n:Tombstone AND n.@class IS NOT NULL "
                "RETURN n.mrid AS m, n.@class AS c, n.@label AS l ORDER BY m"
            )
        ).records
        return [Known(r["m"], r["c"], labels[int(r["l"])]) for r in records]
    finally:
        driver.close()


def updatable(objects: Sequence[Known], ontology: Ontology) -> list[Known]:
    """The objects an update can go to: those with ``IdentifiedObject.description`` (state variables and
    position points are not identified objects)."""
    return [o for o in objects if ontology.is_a(o.cls, "IdentifiedObject")]


def update_plan(objects: Sequence[Known], updates: int, seed: int) -> tuple[list[int], list[int]]:
    """Which object each update goes to (indices into ``objects``), and the hot objects' indices."""
    rng = random.Random(seed)
    hot = rng.sample(range(len(objects)), max(1, int(len(objects) * HOT_SHARE)))
    targets = [
        hot[(i // 2) % len(hot)] if i % 2 == 0 else rng.randrange(len(objects)) for i in range(updates)
    ]
    return targets, hot


def update_events(objects: Sequence[Known], targets: Sequence[int]) -> Iterator[dict[str, Any]]:
    for i, k in enumerate(targets):
        o = objects[k]
        version = 2 + i
        yield {
            "id": f"{o.mrid}/{version}",
            "source": BENCH_PRODUCER,
            "type": "upsert",
            "subject": o.mrid,
            "time": (UPDATE_START + timedelta(seconds=i)).isoformat(),
            "version": version,
            "class": o.cls,
            "attributes": {"IdentifiedObject.description": f"revision {version}"},
            "references": {},
            "label": o.label,
        }


def version_count() -> int:
    from hub.graph import make_driver

    driver = make_driver()
    try:
        return int(driver.execute_query("MATCH (v:ObjectVersion) RETURN count(v) AS c").records[0]["c"])
    finally:
        driver.close()


def apply_updates(objects: Sequence[Known], targets: Sequence[int], timeout_s: float) -> dict[str, Any]:
    """Publish the updates, then time one worker (kept history on) applying them."""
    from hub.settings import get_settings

    run = Run(uuid.uuid4().hex[:8])
    bootstrap = get_settings().kafka_bootstrap
    log(f"publishing {len(targets):,} updates to {run.topic}")
    produced = asyncio.run(produce_all(run, update_events(objects, targets)))
    log(f"published at {produced['events_per_s']:,.0f} events/s; starting the worker")
    worker = start_worker(run)
    try:
        t_first, c_first, done_at, done = _await_applied(worker, bootstrap, run, produced["sent"], timeout_s)
    finally:
        stop_child(worker)
    seconds = max(done_at - t_first, 1e-9)
    return {
        "updates": len(targets),
        "produce": produced,
        "applied_events": done - c_first,
        "seconds": round(seconds, 2),
        "events_per_s": round((done - c_first) / seconds, 1),
        "dead_letters": topic_end(bootstrap, run.deadletter),
        "note": "timed from the worker's first committed offset to its last",
    }


def _ms(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(times, 0.5) * 1000, 1),
        "p95": round(percentile(times, 0.95) * 1000, 1),
        "mean": round(statistics.fmean(times) * 1000, 1),
    }


def as_of_latencies(
    objects: Sequence[Known], hot: Sequence[int], updates: int, repeats: int, seed: int
) -> dict:
    """Each query now and as of instants through the updates, interleaved, through the API's guard."""
    import httpx

    from hub.auth import mint_token
    from hub.settings import get_settings

    settings = get_settings()
    rng = random.Random(seed)
    instants = [(UPDATE_START + timedelta(seconds=int(updates * f))).isoformat() for f in AS_OF_FRACTIONS]
    substations = [o.mrid for o in objects if o.cls == "Substation"]
    api, base = start_api()
    try:
        token = mint_token(QUERY_USER["user"], QUERY_USER["org"], QUERY_USER["clearance"], settings=settings)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300)

        def gql(query: str, variables: dict[str, Any]) -> tuple[float, Any]:
            began = time.perf_counter()
            response = client.post("/graphql", json={"query": query, "variables": variables})
            took = time.perf_counter() - began
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise SystemExit(f"GraphQL failed: {response.status_code} {str(body)[:500]}")
            return took, body["data"]

        def hot_mrid() -> str:
            return objects[rng.choice(hot)].mrid

        paired = [
            (
                "object by mRID (a hot object)",
                "query($m: ID!, $t: DateTime) { object(mrid: $m, asOf: $t) { mrid className name version } }",
                lambda: {"m": hot_mrid()},
            ),
            (
                "page of 100 line segments",
                'query($t: DateTime) { objects(className: "ACLineSegment", first: 100, asOf: $t) '
                "{ edges { node { mrid name } } } }",
                dict,
            ),
            (
                "neighbourhood depth 2 of a substation",
                "query($m: ID!, $t: DateTime) { neighbourhood(mrid: $m, depth: 2, asOf: $t) "
                "{ nodes { mrid } edges { source target } } }",
                lambda: {"m": rng.choice(substations)},
            ),
        ]
        results: dict[str, Any] = {"instants": instants, "paired": {}, "alone": {}}
        for name, text, make in paired:
            current: list[float] = []
            past: list[float] = []
            for k in range(repeats + 2):
                v = make()
                t = instants[k % len(instants)]
                first_current = k % 2 == 0
                for is_current in (first_current, not first_current):
                    took, _ = gql(text, {**v, "t": None if is_current else t})
                    if k >= 2:  # two warm-up pairs: plans cached, pages in memory
                        (current if is_current else past).append(took)
            results["paired"][name] = {
                "current_ms": _ms(current),
                "as_of_ms": _ms(past),
                "ratio_p50": round(percentile(past, 0.5) / percentile(current, 0.5), 2),
                "repeats": len(current),
            }
            log(f"  {name}: current p50 {_ms(current)['p50']} ms, as of {_ms(past)['p50']} ms")
        # The state as of the last update equals the current one (a check on the run, not a timing).
        m = hot_mrid()
        end = (UPDATE_START + timedelta(seconds=updates)).isoformat()
        q = "query($m: ID!, $t: DateTime) { object(mrid: $m, asOf: $t) { mrid name version } }"
        _, now = gql(q, {"m": m, "t": None})
        _, then = gql(q, {"m": m, "t": end})
        if now != then:
            raise SystemExit(f"as of the last update {then} differs from now {now}")
        alone = [
            (
                "history of a hot object (50 versions)",
                "query($m: ID!) { history(mrid: $m, first: 50) { version validFrom } }",
                lambda: {"m": hot_mrid()},
            ),
            (
                "changes within a day (first 100)",
                "query($a: DateTime!, $b: DateTime!) { changes(from: $a, to: $b, first: 100) "
                "{ changes { mrid } } }",
                lambda: {
                    "a": instants[1],
                    "b": (datetime.fromisoformat(instants[1]) + timedelta(days=1)).isoformat(),
                },
            ),
        ]
        for name, text, make in alone:
            times = []
            for k in range(repeats + 2):
                took, _ = gql(text, make())
                if k >= 2:
                    times.append(took)
            results["alone"][name] = {"ms": _ms(times), "repeats": len(times)}
            log(f"  {name}: p50 {_ms(times)['p50']} ms")
        client.close()
        return results
    finally:
        stop_child(api)


def remove_versions() -> dict[str, Any]:
    """Every version node removed, in transactions of 10,000: the same current graph without history."""
    from hub.graph import make_driver

    driver = make_driver()
    began = time.monotonic()
    try:
        with driver.session() as session:
            session.run(
                "MATCH (v:ObjectVersion) CALL (v) { DELETE v } IN TRANSACTIONS OF 10000 ROWS"
            ).consume()
    finally:
        driver.close()
    return {"seconds": round(time.monotonic() - began, 1), "left": version_count()}


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    u = result["updates"]
    s = result["storage"]
    lines = [
        "# Kept history at scale",
        "",
        f"Run {result['started']} with `{result['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Neo4j {m['neo4j']} (heap "
        f"{m['neo4j_heap']}, page cache {m['neo4j_pagecache']}); load average (1, 5, 15 min) "
        f"{result['load_average']['start']} at the start, {result['load_average']['end']} at the end "
        "(a shared machine: compare figures of one table, not across runs).",
        "",
        f"Graph: **{result['objects']:,} objects**; **{u['updates']:,} updates** applied by the worker with "
        f"kept history on, each to one of the {result.get('updatable_objects', result['objects']):,} "
        "identified objects (the others, state variables and position points, have no description): half "
        f"of them round a hot tenth ({result['hot_objects']:,} objects, {result['updates_per_hot_object']:g} "
        "each), half to objects drawn at random.",
        "",
        "## Ingest of the updates (kept history on)",
        "",
        f"{u['events_per_s']:,.0f} events/s ({u['applied_events']:,} events in {u['seconds']:,} s; "
        f"{u['dead_letters']} dead letters); published at {u['produce']['events_per_s']:,.0f} events/s "
        "beforehand.",
        "",
        "## Storage",
        "",
        "| | before the updates | after | growth |",
        "| --- | ---: | ---: | ---: |",
        f"| version nodes | {s['versions_before']:,} | {s['versions_after']:,} | "
        f"{s['versions_after'] - s['versions_before']:,} |",
        f"| Neo4j data folder (GiB) | {s['store_gib_before']} | {s['store_gib_after']} | "
        f"{s['bytes_per_version']:,} bytes per version |",
        "",
        "## As of an earlier time beside now (through the API's guard)",
        "",
        f"Instants: {', '.join(result['as_of']['instants'])} (a quarter, half and three quarters through the "
        "updates); each query run now and as of an instant, interleaved.",
        "",
        "| query | current p50 / p95 ms | as of p50 / p95 ms | as of / current (p50; goal <= 2x) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in result["as_of"]["paired"].items():
        lines.append(
            f"| {name} | {r['current_ms']['p50']} / {r['current_ms']['p95']} | {r['as_of_ms']['p50']} / "
            f"{r['as_of_ms']['p95']} | **{r['ratio_p50']}x** |"
        )
    lines += ["", "| query (no current counterpart) | p50 / p95 ms |", "| --- | ---: |"]
    for name, r in result["as_of"]["alone"].items():
        lines.append(f"| {name} | {r['ms']['p50']} / {r['ms']['p95']} |")
    lines += [
        "",
        "## Current queries with and without kept history",
        "",
        f"The scale benchmark's queries with the version nodes kept, then after all were removed "
        f"({result['removal']['seconds']} s). Cypher is the same query unguarded, the drift control.",
        "",
        "| query | GraphQL p50 ms with / without history | with / without (goal <= 1.1x) "
        "| Cypher p50 ms with / without | Cypher with / without | GraphQL's over Cypher's |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    with_h, without = result["current"]["with_history"], result["current"]["without_history"]
    for name, r in with_h.items():
        o = without.get(name)
        if o is None:
            continue
        g = r["graphql_ms"]["p50"] / o["graphql_ms"]["p50"]
        c = r["cypher_ms"]["p50"] / o["cypher_ms"]["p50"]
        lines.append(
            f"| {name} | {r['graphql_ms']['p50']} / {o['graphql_ms']['p50']} | **{g:.2f}x** | "
            f"{r['cypher_ms']['p50']} / {o['cypher_ms']['p50']} | {c:.2f}x | {g / c:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1_000_000, help="objects to load (not with --no-load)")
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--no-load", action="store_true", help="use the graph the services hold")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds allowed for each worker run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="history-scale")
    parser.add_argument("--keep-services", action="store_true")
    args = parser.parse_args(argv)
    configure_environment()
    from devstack.services import launcher

    started = services_up()
    sampler = MachineSampler().__enter__()
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.history_scale " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
    }
    try:
        if not args.no_load:
            from bench.scale import Run as LoadRun
            from bench.scale import fresh_neo4j

            fresh_neo4j()
            loaded, worker = worker_load(LoadRun(uuid.uuid4().hex[:8]), args.objects, args.seed, args.timeout)
            stop_child(worker)
            result["load"] = loaded
        graph = read_objects()
        objects = updatable(graph, load_ontology())
        result["objects"] = len(graph)
        result["updatable_objects"] = len(objects)
        log(f"{len(graph):,} objects in the graph, {len(objects):,} of them identified objects")
        targets, hot = update_plan(objects, args.updates, args.seed)
        result["hot_objects"] = len(hot)
        result["updates_per_hot_object"] = round(args.updates / 2 / len(hot), 1)
        storage: dict[str, Any] = {"versions_before": version_count(), "store_gib_before": store_size_gib()}
        result["updates"] = apply_updates(objects, targets, args.timeout)
        log(f"updates applied at {result['updates']['events_per_s']:,.0f} events/s")
        storage["versions_after"] = version_count()
        storage["store_gib_after"] = store_size_gib()
        added = max(1, storage["versions_after"] - storage["versions_before"])
        storage["bytes_per_version"] = round(
            ((storage["store_gib_after"] or 0) - (storage["store_gib_before"] or 0)) * 1024**3 / added
        )
        result["storage"] = storage
        log("as-of queries")
        result["as_of"] = as_of_latencies(objects, hot, args.updates, args.repeats, args.seed)
        n = live_objects()
        log("current queries with kept history")
        current = {"with_history": query_latencies(n, args.seed, args.repeats)}
        log("removing the version nodes")
        result["removal"] = remove_versions()
        log("current queries without kept history")
        current["without_history"] = query_latencies(n, args.seed, args.repeats)
        result["current"] = current
    finally:
        sampler.__exit__(None, None, None)
        if started and not args.keep_services:
            launcher.stop(None, started)
    result["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine_samples"] = sampler.summary()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out / f"{args.name}.md")
    log(f"results in {args.out / args.name}.md")
    return result


if __name__ == "__main__":
    main()
