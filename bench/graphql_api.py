"""Benchmark of the GraphQL API against the same Cypher sent straight through the driver.

Run ``python -m bench.graphql_api`` (needs Neo4j: ``hub services up neo4j``; settings from ``HUB_*``). The
benchmark replaces its own objects (mRIDs starting ``bench-gql-``) and nothing else; point it at a Neo4j
that no test wipes meanwhile.
Writes ``bench/results/graphql_api.json`` and ``graphql_api.md``.

A synthetic grid network is written once (``--side`` connectivity nodes per side; every lattice edge is a
line with two terminals), labelled so that the benchmark caller may see most but not all of it. Workloads:

- depth-2 neighbourhood of a connectivity node in the middle of the grid;
- one page of 5,000 lines with their attributes;
- a shortest path between two connectivity nodes three lattice steps apart (12 hops).

Each workload runs through GraphQL in process (``schema.execute`` on the app's schema with the request
context the API builds, plus JSON encoding of the result as the API encodes responses), and end to end over
HTTP to a uvicorn in the same process (whose start-up tunes the collector as the API process does). The Cypher
each GraphQL run sent is recorded and replayed through the driver: that is the floor (goal: GraphQL at most
1.5x it). The label filter's cost is the replayed Cypher with ``x._label IN $visible`` against the same
Cypher with the predicate replaced by ``true`` (goal: at most 1.2x).

``--grants N`` first stores N live access grants (:mod:`hub.grants`) for ngt's data product, held by other
subjects and one by the benchmark's own caller, so that every read also carries the grant's
``[producer, label]`` pairs; ``--name`` names the result files (``bench/results/<name>.json`` and ``.md``).
The API reads the demo's data contracts (the products) in every run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import re
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from neo4j import AsyncGraphDatabase, GraphDatabase, Query, RoutingControl

from devstack.demo.producers import PRODUCER_CONFIG
from hub import count_keys
from hub import guard as guard_module
from hub.auth import DevIssuer, mint_token
from hub.caller import Caller
from hub.graph import ensure_schema
from hub.graph_schema import LABEL, OWNER, cypher
from hub.guard import LabelDirectory
from hub.labels import intern
from hub.logging import configure_logging
from hub.one_record import Columns
from hub.settings import Settings, get_settings
from ontology.loader import load_ontology

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "bench-gql-"
LABELS = {"public": "classification=PUBLIC", "own": "org=bench-a", "secret": "classification=SECRET"}
CONTRACTS = Path(__file__).resolve().parents[1] / "devstack" / "demo" / "contracts"
GRANTEE = "bench-grantee-"
# The benchmark's grants, removed before and after a run.
_DROP_GRANTS = (
    "MATCH (r:AccessRequest) WHERE r.subject STARTS WITH $grantee OR r.purpose = 'benchmark' DETACH DELETE r "
    "WITH count(*) AS n MERGE (v:AccessLedger {id: 'grants'}) SET v.version = coalesce(v.version, 0) + 1"
)


def bench_caller(settings: Settings) -> Caller:
    return Caller(subject="bench", org="bench-a", clearance="OFFICIAL", issuer=settings.oidc_issuer)


async def store_grants(settings: Settings, driver: Any, desk: Any, n: int) -> int:
    """``n`` live grants of ngt's product (n - 1 for other subjects, one for the benchmark's caller), loaded
    into the API's book; the number the book holds."""
    from hub.grants import RequestStore

    await driver.execute_query(_DROP_GRANTS, {"grantee": GRANTEE}, database_=settings.neo4j_database)
    store = RequestStore(driver, settings.neo4j_database)
    now = time.time()
    for i in range(n):
        subject = "bench" if i == 0 else f"{GRANTEE}{i:05d}"
        await store.create(
            {
                "id": f"bench-grant-{i:05d}",
                "issuer": settings.oidc_issuer,
                "subject": subject,
                "requester_org": "bench-a",
                "product": "ngt",
                "owner": "ngt",
                "attributes": ["org=ngt"],
                "purpose": "benchmark",
                "licence": "",
                "requested_until": now + 86400,
                "created_at": now,
                "status": "approved",
                "granted_attributes": ["org=ngt"],
                "granted_until": now + 86400,
            }
        )
    loaded = await store.live_grants(time.time())
    desk.book.load(loaded, await store.version())
    return sum(1 for g in loaded if g.purpose == "benchmark")


MAX_ROUNDS = 400
SETTLE_MAX_S = 0.2

NEIGHBOURHOOD = """query Nb($m: ID!) { neighbourhood(mrid: $m, depth: 2) {
  nodes { mrid className domain name label point { x y } } edges { source target type key } } }"""
PAGE = """query Page($n: String) { objects(className: "ACLineSegment", name: $n, first: 5000) {
  pageInfo { hasNextPage endCursor }
  nodes { mrid className name label version ... on ACLineSegment { r x bch length } } } }"""
PATH = """query Path($a: ID!, $b: ID!) { shortestPath(from: $a, to: $b) {
  nodes { mrid className name label } edges { source target type key } } }"""


# --- data -------------------------------------------------------------------------------------------


def cn(i: int, j: int) -> str:
    return f"{PREFIX}cn-{i}-{j}"


def write_grid(settings: Settings, side: int) -> dict[str, int]:
    ont = load_ontology()
    rel = {
        q: ont.association_by_qname(q).rel_type  # type: ignore[union-attr]
        for q in ("Terminal.ConnectivityNode", "Terminal.ConductingEquipment")
    }
    label_ids = {k: intern(v) for k, v in LABELS.items()}
    cns, lines, terminals, edges_cn, edges_ce = [], [], [], [], []
    for i in range(side):
        for j in range(side):
            cns.append(
                {
                    "mrid": cn(i, j),
                    "name": f"{PREFIX}node {i},{j}",
                    "x": float(i),
                    "y": float(j),
                    "label": label_ids["public"][0],
                }
            )
    n = 0
    for i in range(side):
        for j in range(side):
            for di, dj in ((1, 0), (0, 1)):
                if i + di >= side or j + dj >= side:
                    continue
                n += 1
                kind = "secret" if n % 20 == 0 else "own" if n % 20 == 1 else "public"
                line = f"{PREFIX}line-{n:06d}"
                lines.append(
                    {
                        "mrid": line,
                        "name": f"{PREFIX}line {n}",
                        "label": label_ids[kind][0],
                        "r": 0.01 * (n % 50),
                        "x": 0.1,
                        "bch": 1e-6,
                        "length": 1.0 + n % 7,
                    }
                )
                for end, (a, b) in enumerate(((i, j), (i + di, j + dj))):
                    t = f"{line}-t{end + 1}"
                    terminals.append(
                        {"mrid": t, "name": f"{PREFIX}terminal {n}.{end + 1}", "label": label_ids[kind][0]}
                    )
                    edges_cn.append({"s": t, "t": cn(a, b)})
                    edges_ce.append({"s": t, "t": line})
    driver = GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    try:
        ensure_schema(driver, settings.neo4j_database)  # the constraint and indexes every worker creates
        while True:
            records, _, _ = driver.execute_query(
                "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p WITH n LIMIT 20000 DETACH DELETE n "
                "RETURN count(*) AS c",
                p=PREFIX,
                database_=settings.neo4j_database,
            )
            if records[0]["c"] == 0:
                break
        driver.execute_query(
            "UNWIND $rows AS r MERGE (l:SecurityLabel {id: r.id}) SET l.expr = r.expr",
            rows=[{"id": i, "expr": e} for i, e in label_ids.values()],
            database_=settings.neo4j_database,
        )

        def write(cls: str, rows: list[dict[str, Any]], extra: str) -> None:
            labels = ":".join(f"`{x}`" for x in ont.neo4j_labels(cls))
            for k in range(0, len(rows), 5000):
                driver.execute_query(
                    cypher(
                        f"UNWIND $rows AS r CREATE (n:Entity:{labels} {{mrid: r.mrid}}) SET n.name = r.name, "
                        f"n.@class = $cls, n.@domain = $domain, n.@version = 1, n.@owner = 'bench', "
                        f"n.@producer = 'bench', n.@updated = datetime(), n.@label = r.label{extra} "
                        f"SET {count_keys.assignment('n')} {count_keys.listed('n')}"
                    ),
                    rows=rows[k : k + 5000],
                    cls=cls,
                    domain=ont.domain(cls),
                    database_=settings.neo4j_database,
                )

        write("ConnectivityNode", cns, cypher(", n.@x = r.x, n.@y = r.y"))
        write("ACLineSegment", lines, ", n.r = r.r, n.x = r.x, n.bch = r.bch, n.length = r.length")
        write("Terminal", terminals, "")
        for rel_type, rows in (
            (rel["Terminal.ConnectivityNode"], edges_cn),
            (rel["Terminal.ConductingEquipment"], edges_ce),
        ):
            for k in range(0, len(rows), 5000):
                driver.execute_query(
                    "UNWIND $rows AS r MATCH (a:Entity {mrid: r.s}), (b:Entity {mrid: r.t}) "
                    f"CREATE (a)-[:`{rel_type}`]->(b)",
                    rows=rows[k : k + 5000],
                    database_=settings.neo4j_database,
                )
    finally:
        driver.close()
    return {
        "connectivity_nodes": len(cns),
        "lines": len(lines),
        "terminals": len(terminals),
        "relationships": len(edges_cn) + len(edges_ce),
    }


# --- measuring --------------------------------------------------------------------------------------


class Recorder:
    """Captures the Cypher every guarded read sends (the floor replays exactly these)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.on = False
        original = guard_module.Guard.read
        recorder = self

        async def read(self: guard_module.Guard, cypher: str, params: Any = None) -> list[dict[str, Any]]:
            if recorder.on:
                await self.visible_ids()
                bound = dict(params or {})
                bound["visible"] = self._visible_list
                bound["granted"] = self._granted_list
                recorder.calls.append((cypher, bound))
            return await original(self, cypher, params)

        guard_module.Guard.read = read  # type: ignore[method-assign]


async def interleaved(
    fns: list[Callable[[], Awaitable[Any]]], repeat: int, min_time_s: float = 0.0
) -> list[list[float]]:
    """Time each function round-robin, so that load drifting on a shared machine hits every variant
    alike (a warm-up round first, for caches and query plans). At least ``repeat`` rounds, more for quick
    workloads until the rounds take about ``min_time_s``: a median of a few milliseconds-long runs on a
    shared machine is mostly noise."""
    started = time.perf_counter()
    for fn in fns:
        await fn()
    warm_up = time.perf_counter() - started
    rounds = max(repeat, min(MAX_ROUNDS, math.ceil(min_time_s / max(warm_up, 1e-6))))
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            started = time.perf_counter()
            await fn()
            elapsed = time.perf_counter() - started
            out[k].append(elapsed)
            # Untimed pause: the server thread finishes an HTTP request after the client has the response
            # (freeing the result, the audit line), which must not land in the next variant's time.
            await asyncio.sleep(min(SETTLE_MAX_S, elapsed))
    return out


def unfiltered(cypher: str) -> str:
    guard = rf"\((\w+)\.{LABEL} IN \$visible OR \[\1\.{OWNER}, \1\.{LABEL}\] IN \$granted\)"
    return re.sub(guard, "true", cypher)


async def run(
    settings: Settings, repeat: int, side: int, min_time_s: float, grants: int = 0
) -> dict[str, Any]:
    from hubql.app import create_app
    from hubql.context import HubContext
    from hubql.encoding import encode_json
    from hubql.serving import server_config

    sizes = write_grid(settings, side)
    recorder = Recorder()
    app = create_app(settings, frontend_dist=None)
    # A free port, so that runs side by side do not collide.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    # Served as `hub api` serves it (its HTTP protocol and request limits).
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the API did not start"
        await asyncio.sleep(0.05)
    services = app.state.hub
    # The schema the API serves (one per process, built with the app) rather than a second copy.
    gql_schema = app.state.schema
    token = mint_token("bench", "bench-a", "OFFICIAL", settings=settings)
    mid = side // 2
    workloads = {
        "neighbourhood_depth2": (NEIGHBOURHOOD, {"m": cn(mid, mid)}),
        "page_5000": (PAGE, {"n": PREFIX}),
        "shortest_path_12_hops": (PATH, {"a": cn(mid, mid), "b": cn(mid + 3, mid)}),
    }
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password),
        notifications_min_severity="OFF",
    )
    # The server thread has its own loop and driver; in-process runs use this loop's driver, like the floor.
    services = dataclasses.replace(
        services,
        driver=driver,
        directory=LabelDirectory(driver, settings.neo4j_database, settings.label_cache_ttl_s),
    )
    caller = bench_caller(settings)
    live = await store_grants(settings, driver, services.desk, grants) if grants else 0
    if grants:
        # The API's own refresh (on the server thread) reads the same grants from the store.
        await asyncio.sleep(settings.grant_refresh_s * 2)
        print(
            f"live grants in the book: {live}; the caller's: {services.desk.book.access(caller)}", flush=True
        )
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for name, (query, variables) in workloads.items():

            async def graphql(q: str = query, v: dict[str, Any] = variables) -> Any:
                ctx = HubContext(services, caller)
                result = await gql_schema.execute(q, variable_values=v, context_value=ctx)
                assert not result.errors, result.errors
                return encode_json({"data": result.data})  # as the API encodes its responses

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
            sample = json.loads(await graphql())
            recorder.on = False
            calls = list(recorder.calls)

            # Each statement's columns, from its first replay (the warm-up round): from then on its rows
            # come in one record, as the guard reads them (hub/one_record.py), the fastest the driver gives.
            columns = Columns(4096)

            async def replay(
                filtered: bool = True,
                calls: list[tuple[str, dict[str, Any]]] = calls,
                columns: Columns = columns,
            ) -> Any:
                out = []
                for cypher, params in calls:
                    text = cypher if filtered else unfiltered(cypher)
                    prepared = columns.prepared(text)
                    records, _, keys = await driver.execute_query(
                        Query(prepared[0] if prepared else text, timeout=settings.query_timeout_s),
                        params,
                        database_=settings.neo4j_database,
                        routing_=RoutingControl.READ,
                    )
                    out.append(columns.answer(text, prepared, keys, records))
                return out

            async def replay_unfiltered() -> Any:
                return await replay(False)

            t_gql, t_http, t_raw, t_unf = await interleaved(
                [graphql, http, replay, replay_unfiltered], repeat, min_time_s
            )
            data = sample["data"]
            size = (
                len(data["objects"]["nodes"])
                if "objects" in data
                else len((data.get("neighbourhood") or data.get("shortestPath") or {}).get("nodes", []))
            )
            med = {
                k: statistics.median(v)
                for k, v in {
                    "graphql": t_gql,
                    "http": t_http,
                    "cypher": t_raw,
                    "cypher_unfiltered": t_unf,
                }.items()
            }
            results[name] = {
                "objects_returned": size,
                "runs": len(t_gql),
                "cypher_queries": len(calls),
                "median_s": med,
                "best_s": {
                    k: min(v)
                    for k, v in {
                        "graphql": t_gql,
                        "http": t_http,
                        "cypher": t_raw,
                        "cypher_unfiltered": t_unf,
                    }.items()
                },
                "graphql_over_cypher": med["graphql"] / med["cypher"],
                "http_over_cypher": med["http"] / med["cypher"],
                "filter_over_unfiltered": med["cypher"] / med["cypher_unfiltered"],
            }
            print(f"{name}: {json.dumps(results[name]['median_s'])}", flush=True)
    if grants:
        await driver.execute_query(_DROP_GRANTS, {"grantee": GRANTEE}, database_=settings.neo4j_database)
    server.should_exit = True
    thread.join(timeout=10)
    await driver.close()
    return {"dataset": sizes, "repeat": repeat, "live_grants": live, "workloads": results}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(result: dict[str, Any], out: str = "graphql_api") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"run": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), **result}
    (RESULTS / f"{out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    d = result["dataset"]
    lines = [
        "# GraphQL API benchmark",
        "",
        f"Run {result['run']} with `python -m bench.graphql_api`.",
        "",
        f"Machine: {result['machine']['cpus']} cores, CPython {result['machine']['python']}, "
        f"{result['machine']['platform']}; shared and noisy (load average "
        f"{', '.join(map(str, result['machine']['load_average']))} at the end). "
        f"Medians of at least {result['repeat']} runs per variant, interleaved (quick workloads get more "
        "runs: see the runs column).",
        "",
        f"Live access grants in the store: {result.get('live_grants', 0):,}.",
        "",
        f"Graph: a grid of {d['connectivity_nodes']:,} connectivity nodes, {d['lines']:,} lines and "
        f"{d['terminals']:,} terminals ({d['relationships']:,} relationships); 5% of lines and their "
        "terminals carry a label the caller does not satisfy, 5% one it satisfies through its organisation.",
        "",
        "| workload | objects | Cypher queries | runs | GraphQL in process s | HTTP end to end s "
        "| same Cypher via driver s | GraphQL / Cypher (goal <= 1.5) | HTTP / Cypher | unfiltered Cypher s "
        "| filter cost (goal <= 1.2) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, w in result["workloads"].items():
        m = w["median_s"]
        lines.append(
            f"| {name} | {w['objects_returned']:,} | {w['cypher_queries']} "
            f"| {w.get('runs', result['repeat'])} "
            f"| {m['graphql']:.4f} | "
            f"{m['http']:.4f} | "
            f"{m['cypher']:.4f} | {w['graphql_over_cypher']:.2f}x | {w['http_over_cypher']:.2f}x | "
            f"{m['cypher_unfiltered']:.4f} | {w['filter_over_unfiltered']:.2f}x |"
        )
    lines += [
        "",
        "GraphQL in process = `schema.execute` with the context the API builds for a request (guard, label",
        "evaluation, loaders) plus JSON encoding of the result. HTTP adds the server, token verification and",
        "the client. The floor replays, through the async driver, exactly the Cypher the GraphQL run sent",
        "(recorded from the guard) and materialises the rows (each statement's rows in one record, as the",
        "guard reads them, after a first replay as written). The filter cost compares that Cypher with",
        "`x._label IN $visible` against the same text with the predicate replaced by `true`.",
        "",
        "Conditions, the same for every variant since all run in one process: the schema is the one the app",
        "serves (not a second copy); logging is set up as `hub api` sets it up, so each operation writes its",
        "audit line (stderr, JSON); the result is encoded as the API encodes responses (orjson); the",
        "collector is tuned as the API process tunes it at start-up (long-lived objects frozen, young",
        "generation collected every 50,000 allocations), which the floor's runs enjoy as much as GraphQL's.",
        "After each timed run an untimed pause (as long as the run, at most 0.2 s) lets the server",
        "thread finish an HTTP request (freeing the result, writing the audit line) outside the next",
        "variant's time. Run-to-run noise on this machine is large next to GraphQL's own cost (the page's",
        "medians move by 10-20% between runs, and a ratio below 1.0x is that noise); compare ratios within",
        "a run, and the best times in graphql_api.json for a view with less load in it.",
        "",
    ]
    (RESULTS / f"{out}.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=11, help="least number of timed runs per variant")
    parser.add_argument(
        "--min-time",
        type=float,
        default=20.0,
        help="quick workloads get more runs, until all variants together take about this many seconds",
    )
    parser.add_argument("--side", type=int, default=60, help="connectivity nodes per side of the grid")
    parser.add_argument("--grants", type=int, default=0, help="live access grants to store first")
    parser.add_argument("--name", default="graphql_api", help="name of the result files")
    args = parser.parse_args()
    # As a production API runs: no development mode, keys from a JWKS file (the development issuer's, whose
    # key mints the bench's token), and no metrics port to contend for.
    issuer = DevIssuer(get_settings())
    issuer.ensure()
    settings = get_settings().model_copy(
        update={
            "jwks_file": issuer.jwks_path,
            "api_metrics_port": 0,
            "contracts_dir": CONTRACTS,
            "producers": {**PRODUCER_CONFIG, **get_settings().producers},
        }
    )
    # Logging as `hub api` sets it up: the audit line of every operation is part of what an operation costs.
    configure_logging(settings)
    result = asyncio.run(run(settings, args.repeat, args.side, args.min_time, args.grants))
    write_results(result, args.name)
    print((RESULTS / f"{args.name}.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
