"""Benchmark of fetching only what is asked, and of name search through the full-text index.

Run ``python -m bench.projection`` (needs Neo4j and Kafka: ``hub services up``; settings from ``HUB_*``).
It writes the grid of :mod:`bench.graphql_api` (``--side`` connectivity nodes per side; objects with mRIDs
starting ``bench-gql-``, replaced, nothing else touched) and measures, interleaved in one process:

- pages of 100, 1,000 and 5,000 lines with four fields (mrid, name, length, r), over HTTP end to end and
  as the Cypher the API sent, replayed through the driver; beside it the same Cypher reading every
  property (``n {.*}``, what the API sent before it projected the selection), each with the label filter
  and with the filter replaced by ``true`` (unguarded);
- name search of two words over HTTP, its Cypher (full-text index), and the substring scan the API ran
  before (``toLower(n.name) CONTAINS``), guarded and unguarded.

Writes ``bench/results/projection.json`` and ``projection.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from neo4j import AsyncGraphDatabase, Query, RoutingControl

from bench.graphql_api import PREFIX, RESULTS, Recorder, interleaved, machine, unfiltered, write_grid
from hub.auth import DevIssuer, mint_token
from hub.logging import configure_logging
from hub.reader import lite
from hub.settings import Settings, get_settings

PAGE = """query Page($n: String, $first: Int) { objects(className: "ACLineSegment", name: $n, first: $first) {
  pageInfo { hasNextPage endCursor } nodes { mrid name ... on ACLineSegment { length r } } } }"""
SEARCH = """query Search($t: String!) { search(text: $t, first: 20) { mrid className name } }"""
SEARCH_TEXT = "line 123"
# The Cypher of ``search`` before the full-text index: a substring test on every object's name.
SEARCH_BEFORE = (
    "MATCH (n:Entity) WHERE (n.mrid = $exact OR toLower(n.name) CONTAINS $text) AND n._label IN $visible "
    f"RETURN {lite('n')} AS n ORDER BY n.mrid <> $exact, size(coalesce(n.name, '')), n.mrid LIMIT $limit"
)
_PROJECTION = re.compile(r"RETURN n \{[^{}]*\} AS n")


def all_properties(cypher: str) -> str:
    """The page's Cypher reading every property of each row, as before the projection."""
    out, count = _PROJECTION.subn("RETURN n {.*} AS n", cypher)
    assert count == 1, cypher
    return out


async def run(settings: Settings, repeat: int, side: int, min_time_s: float) -> dict[str, Any]:
    from hubql.app import create_app

    sizes = write_grid(settings, side)
    recorder = Recorder()
    app = create_app(settings, frontend_dist=None)
    port = 18766
    server = uvicorn.Server(_config(app, settings, port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.05)
    token = mint_token("bench", "bench-a", "OFFICIAL", settings=settings)
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password),
        notifications_min_severity="OFF",
    )
    results: dict[str, Any] = {}
    workloads: dict[str, tuple[str, dict[str, Any]]] = {
        "page_100": (PAGE, {"n": PREFIX, "first": 100}),
        "page_1000": (PAGE, {"n": PREFIX, "first": 1000}),
        "page_5000": (PAGE, {"n": PREFIX, "first": 5000}),
        "search": (SEARCH, {"t": SEARCH_TEXT}),
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for name, (query, variables) in workloads.items():

            async def http(q: str = query, v: dict[str, Any] = variables) -> Any:
                r = await client.post(
                    "/graphql",
                    json={"query": q, "variables": v},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
                assert b'"errors"' not in r.content[:200], r.content[:500]
                return r.content

            recorder.calls.clear()
            recorder.on = True
            sample = json.loads(await http())
            recorder.on = False
            calls = list(recorder.calls)
            assert len(calls) == 1, calls
            cypher, params = calls[0]
            if name == "search":
                before = SEARCH_BEFORE
                before_params = {
                    "exact": SEARCH_TEXT,
                    "text": SEARCH_TEXT.lower(),
                    "limit": 20,
                    "visible": params["visible"],
                }
                returned = len(sample["data"]["search"])
            else:
                before, before_params = all_properties(cypher), params
                returned = len(sample["data"]["objects"]["nodes"])

            def replay(text: str, p: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
                async def go() -> Any:
                    records, _, _ = await driver.execute_query(
                        Query(text, timeout=settings.query_timeout_s),  # type: ignore[arg-type]
                        p,
                        database_=settings.neo4j_database,
                        routing_=RoutingControl.READ,
                    )
                    return [dict(r.items()) for r in records]

                return go

            variants = {
                "http": http,
                "cypher": replay(cypher, params),
                "cypher_unguarded": replay(unfiltered(cypher), params),
                "before_cypher": replay(before, before_params),
                "before_cypher_unguarded": replay(unfiltered(before), before_params),
            }
            before_rows = len(await variants["before_cypher"]())
            times = await interleaved(list(variants.values()), repeat, min_time_s)
            med = {k: statistics.median(t) for k, t in zip(variants, times, strict=True)}
            p95 = {
                k: sorted(t)[max(0, round(0.95 * len(t)) - 1)] for k, t in zip(variants, times, strict=True)
            }
            results[name] = {
                "returned": returned,
                "before_rows": before_rows,
                "runs": len(times[0]),
                "median_s": med,
                "p95_s": p95,
                "cypher": cypher,
            }
            print(f"{name}: {json.dumps(med)}", flush=True)
    server.should_exit = True
    thread.join(timeout=10)
    await driver.close()
    return {"dataset": sizes, "repeat": repeat, "workloads": results}


def _config(app: Any, settings: Settings, port: int) -> uvicorn.Config:
    from hubql.serving import server_config

    return server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")


def table(result: dict[str, Any]) -> list[str]:
    """One run's medians as a Markdown table."""
    lines = [
        "| workload | rows | runs | HTTP s | Cypher s | unguarded s | guard cost | before: Cypher s "
        "| before: unguarded s | before: guard cost | Cypher before / after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, w in result["workloads"].items():
        t = w["median_s"]
        lines.append(
            f"| {name} | {w['returned']:,} | {w['runs']} | {t['http']:.4f} | {t['cypher']:.4f} "
            f"| {t['cypher_unguarded']:.4f} | {t['cypher'] / t['cypher_unguarded']:.2f}x "
            f"| {t['before_cypher']:.4f} | {t['before_cypher_unguarded']:.4f} "
            f"| {t['before_cypher'] / t['before_cypher_unguarded']:.2f}x "
            f"| {t['before_cypher'] / t['cypher']:.2f}x |"
        )
    return lines


EXPLANATION = [
    "Medians of interleaved runs (p95 in projection.json). Pages select four fields (mrid, name, length,",
    "r). HTTP = the operation end to end against the API in the same process. Cypher = exactly the query",
    "the API sent for the operation, replayed through the driver; unguarded = the same with the label",
    "filter replaced by `true`; before = the page's query reading every property (`n {.*}`, as the API did",
    "before it projected the selection) and, for search, the substring scan (`toLower(n.name) CONTAINS`)",
    "the API ran before the full-text index. All five variants of a workload run round-robin, so the",
    "ratios within a row see the same load.",
]


def write_results(result: dict[str, Any], note: str) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"run": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), **result}
    (RESULTS / "projection.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    d, m = result["dataset"], result["machine"]
    lines = [
        "# Fetch only what is asked, and name search through the full-text index",
        "",
        f"Run {result['run']} with `python -m bench.projection`. {note}",
        "",
        f"Machine: {m['cpus']} cores shared with other work, CPython {m['python']}; busy (load average "
        f"{', '.join(map(str, m['load_average']))} at the end): absolute times are inflated and noisy,",
        "compare the ratios, which come from variants interleaved in the same run.",
        "",
        f"Graph (small): a grid of {d['connectivity_nodes']:,} connectivity nodes, {d['lines']:,} lines and "
        f"{d['terminals']:,} terminals; 5% of lines carry a label the caller does not satisfy.",
        "",
        *table(result),
        "",
        *EXPLANATION,
        "",
    ]
    (RESULTS / "projection.md").write_text("\n".join(lines), encoding="utf-8")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=11, help="least number of timed runs per variant")
    parser.add_argument("--min-time", type=float, default=10.0, help="seconds per workload for quick ones")
    parser.add_argument("--side", type=int, default=60, help="connectivity nodes per side of the grid")
    parser.add_argument("--note", default="", help="a sentence for the report (e.g. what else ran)")
    args = parser.parse_args()
    issuer = DevIssuer(get_settings())
    issuer.ensure()
    settings = get_settings().model_copy(update={"jwks_file": issuer.jwks_path, "api_metrics_port": 0})
    configure_logging(settings)
    result = asyncio.run(run(settings, args.repeat, args.side, args.min_time))
    write_results(result, args.note)
    print((RESULTS / "projection.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
