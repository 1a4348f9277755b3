"""The hub's GraphQL API beside the Neo4j GraphQL Library, on one Neo4j holding the same data.

Run ``python -m bench.graphql_library`` (``--scale`` objects, default 100,000; ``--no-load`` reuses the
graph the benchmark services hold, e.g. after ``python -m bench.scale --keep-services``). Needs Node 20 and
``npm ci`` in ``bench/neo4j_graphql_lib/`` (done here when ``node_modules`` is missing). Writes
``bench/results/graphql-library.json`` and ``graphql-library.md``.

The data is the synthetic whole-system network of :mod:`bench.synthetic`, published to Kafka and applied
by one ingest worker on the benchmark's own services (as :mod:`bench.scale` loads it). Both servers run as
child processes, over HTTP: the hub's API as ``hub api`` serves it, and the library (``server.js``: type
definitions for the classes benchmarked, each with an ``@authorization`` filter keeping the nodes whose
``_label`` is among the caller's label ids, given as a ``labels`` claim in an HS256 token that
``server.js`` verifies and passes to the library decoded, as its documentation allows). The label ids
of a caller are the ones the hub's guard computes for it (:class:`hub.labels.LabelCache`), so both
servers apply the same rule to the same callers.

Five operations, each as each server spells it: a typed page (100 line segments by mRID), a filtered
page (lines of at least 20 km, longest first, with the total count), a nested two-hop read (substations,
their voltage levels, each one's base voltage), an aggregate (count, min, max, average, sum of length over
the filtered lines) and a name search (the hub's ``search``; the library's ``@fulltext`` query on the
hub's own full-text index, given the Lucene query the hub builds for the text). Runs are interleaved
(hub, library, alternating who goes first), after a warm-up; medians and p95 per operation and caller.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt

from bench import scale
from bench.scale import Child, percentile, spawn, stop_child

LIBRARY_DIR = Path(__file__).resolve().parent / "neo4j_graphql_lib"
RESULTS = Path(__file__).resolve().parent / "results"
# (name, organisation, clearance): the scale benchmark's caller, and one cleared for public data only.
CALLERS = [("neso-official", "neso", "OFFICIAL"), ("public", "elsewhere", "PUBLIC")]
MIN_KM = 20.0

# name -> (hub query, library query): the same question and the same fields.
OPERATIONS: dict[str, tuple[str, str]] = {
    "typed page (100 lines by mRID)": (
        "{ acLineSegments(first: 100, orderBy: [{field: mrid}]) { nodes { mrid name length r x } } }",
        "{ acLineSegments(limit: 100, sort: [{mrid: ASC}]) { mrid name length r x } }",
    ),
    "filtered page (length >= 20 km, longest first, total count)": (
        "query($km: Float!) { acLineSegments(where: {length: {gte: $km}}, first: 100, "
        "orderBy: [{field: length, direction: DESC}, {field: mrid}]) "
        "{ totalCount nodes { mrid name length } } }",
        "query($km: Float!) { acLineSegmentsConnection(where: {length: {gte: $km}}, first: 100, "
        "sort: [{length: DESC}, {mrid: ASC}]) { totalCount edges { node { mrid name length } } } }",
    ),
    "nested two hops (100 substations, voltage levels, base voltage)": (
        "{ substations(first: 100, orderBy: [{field: mrid}]) { nodes { mrid name "
        "voltageLevels { mrid name baseVoltage { mrid nominalVoltage } } } } }",
        "{ substations(limit: 100, sort: [{mrid: ASC}]) { mrid name "
        "voltageLevels { mrid name baseVoltage { mrid nominalVoltage } } } }",
    ),
    "aggregate (count, min/max/avg/sum of length, filtered)": (
        "query($km: Float!) { acLineSegmentAggregate(where: {length: {gte: $km}}) "
        "{ count min { length } max { length } avg { length } sum { length } } }",
        "query($km: Float!) { acLineSegmentsConnection(where: {length: {gte: $km}}) "
        "{ aggregate { count { nodes } node { length { min max average sum } } } } }",
    ),
    "search (full-text index, 20 hits)": (
        "query($text: String!) { search(text: $text, first: 20) { mrid className name } }",
        "query($lucene: String!) { searchNames(phrase: $lucene, first: 20) "
        "{ edges { node { mrid _class name } } } }",
    ),
}


def ensure_node_modules() -> None:
    if not (LIBRARY_DIR / "node_modules" / "@neo4j" / "graphql").is_dir():
        scale.log("npm ci in bench/neo4j_graphql_lib")
        npm = shutil.which("npm") or "npm"
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=LIBRARY_DIR, check=True
        )


def start_library(port: int, secret: str) -> tuple[Child, str]:
    from hub.name_search import NameSearch
    from hub.settings import get_settings
    from ontology.loader import load_ontology

    s = get_settings()
    names = NameSearch(load_ontology())
    env = {
        "NEO4J_URI": s.neo4j_uri,
        "NEO4J_USER": s.neo4j_user,
        "NEO4J_PASSWORD": s.neo4j_password,
        "NEO4J_DATABASE": s.neo4j_database,
        "PORT": str(port),
        "JWT_SECRET": secret,
        "FULLTEXT_INDEX": names.index,
        "FULLTEXT_FIELDS": ",".join(names.properties),
    }
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken: choose another with --library-port")
    child = spawn("neo4j-graphql-lib", [shutil.which("node") or "node", str(LIBRARY_DIR / "server.js")], env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if child.process.poll() is not None:
            raise SystemExit(f"the library's server exited; see {child.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(base, json={"query": "{ __typename }"}, timeout=2).status_code == 200:
                return child, base
        if time.monotonic() > deadline:
            stop_child(child)
            raise SystemExit(f"the library's server did not start; see {child.log}")
        time.sleep(0.3)


def visible_label_ids(org: str, clearance: str) -> list[int]:
    """The label ids the hub's guard lets this caller see (the same evaluation, on the same label table)."""
    from hub.caller import Caller
    from hub.graph import make_driver
    from hub.labels import LabelCache

    driver = make_driver()
    try:
        records, _, _ = driver.execute_query("MATCH (l:SecurityLabel) RETURN l.id AS id, l.expr AS expr")
    finally:
        driver.close()
    caller = Caller(subject=f"bench.{org}", org=org, clearance=clearance)
    return sorted(LabelCache().visible({r["id"]: r["expr"] for r in records}, caller.authorizations))


def search_texts(n: int, seed: int, count: int) -> list[str]:
    """Substation names with a tile number, as the scale benchmark searches."""
    from bench.synthetic import load_tile

    tile = load_tile()
    rng = random.Random(seed)
    names = [
        b["attributes"].get("IdentifiedObject.name", "") for b in tile.events if b["class"] == "Substation"
    ]
    tiles = max(1, n // len(tile))
    return [f"{rng.choice([x for x in names if x])} #{rng.randrange(tiles)}" for _ in range(count)]


def summary(hub: Any, lib: Any) -> Any:
    """What both answers should agree on: the mRIDs in order (pages), the rows (two hops), the figures
    (aggregate); for search, the set of mRIDs (the hub orders hits by name length, the library by
    score, so the 20 kept may differ)."""
    if "acLineSegments" in hub and isinstance(lib.get("acLineSegments"), list):
        return [n["mrid"] for n in hub["acLineSegments"]["nodes"]], [n["mrid"] for n in lib["acLineSegments"]]
    if "acLineSegments" in hub:
        h, c = hub["acLineSegments"], lib["acLineSegmentsConnection"]
        return (h["totalCount"], [n["mrid"] for n in h["nodes"]]), (
            c["totalCount"],
            [e["node"]["mrid"] for e in c["edges"]],
        )
    if "substations" in hub:

        def rows(subs: list[dict[str, Any]]) -> list[Any]:
            return sorted(
                (s["mrid"], v["mrid"], (v["baseVoltage"] or {}).get("mrid"))
                for s in subs
                for v in s["voltageLevels"]
            )

        return rows(hub["substations"]["nodes"]), rows(lib["substations"])
    if "acLineSegmentAggregate" in hub:
        h, a = hub["acLineSegmentAggregate"], lib["acLineSegmentsConnection"]["aggregate"]
        figures = a["node"]["length"]
        return (h["count"], h["min"]["length"], h["max"]["length"], round(h["sum"]["length"] or 0, 3)), (
            a["count"]["nodes"],
            figures["min"],
            figures["max"],
            round(figures["sum"] or 0, 3),
        )
    return {x["mrid"] for x in hub["search"]}, {e["node"]["mrid"] for e in lib["searchNames"]["edges"]}


def post(client: httpx.Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = client.post(str(client.base_url).rstrip("/"), json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"GraphQL failed at {client.base_url}: {response.status_code} {str(body)[:600]}")
    return body["data"]  # type: ignore[no-any-return]


Side = tuple[httpx.Client, str, list[dict[str, Any]]]


def time_operation(hub: Side, library: Side, rounds: int) -> dict[str, Any]:
    """One operation on both servers (client, query, variables per run): the answers compared, two
    warm-up runs, then ``rounds`` interleaved timed runs, alternating which server goes first."""
    hub_answer, lib_answer = summary(
        post(hub[0], hub[1], hub[2][0]), post(library[0], library[1], library[2][0])
    )
    for k in (1, 2):  # warm-up: plans cached, pages in memory
        for client, query, variables in (hub, library):
            post(client, query, variables[k])
    times: dict[str, list[float]] = {"hub": [], "library": []}
    began = time.monotonic()
    for k in range(3, rounds + 3):
        if k >= 13 and time.monotonic() - began > 60.0:
            break  # a slow operation: enough samples within the time budget
        order = [("hub", hub), ("library", library)]
        for name, (client, query, variables) in order if k % 2 else order[::-1]:
            started = time.perf_counter()
            post(client, query, variables[k])
            times[name].append(time.perf_counter() - started)
    out: dict[str, Any] = {"runs": len(times["hub"]), "same_answer": hub_answer == lib_answer}
    for name, t in times.items():
        out[f"{name}_ms"] = {
            "p50": round(statistics.median(t) * 1000, 1),
            "p95": round(percentile(t, 0.95) * 1000, 1),
        }
    out["hub_over_library"] = round(statistics.median(times["hub"]) / statistics.median(times["library"]), 2)
    if not out["same_answer"]:
        out["answers"] = {"hub": str(hub_answer)[:300], "library": str(lib_answer)[:300]}
    return out


def measure(scale_n: int, seed: int, rounds: int, library_port: int) -> dict[str, Any]:
    from hub.auth import mint_token
    from hub.name_search import NameSearch
    from hub.settings import get_settings
    from ontology.loader import load_ontology

    settings = get_settings()
    secret = secrets.token_hex(32)
    lucene = NameSearch(load_ontology()).query
    texts = search_texts(scale_n, seed, rounds + 3)  # one per run
    api, hub_base = scale.start_api()
    library: Child | None = None
    results: dict[str, Any] = {}
    try:
        library, lib_base = start_library(library_port, secret)
        for caller, org, clearance in CALLERS:
            labels = visible_label_ids(org, clearance)
            hub_token = mint_token(f"bench.{org}", org, clearance, settings=settings)
            # 64-bit ids as strings: server.js hands them to Cypher as Neo4j integers.
            claims = {"sub": f"bench.{org}", "labels": [str(x) for x in labels]}
            lib_token = jwt.encode(claims, secret, algorithm="HS256")
            hub_client = httpx.Client(
                base_url=f"{hub_base}/graphql", headers={"Authorization": f"Bearer {hub_token}"}, timeout=120
            )
            lib_client = httpx.Client(
                base_url=lib_base, headers={"Authorization": f"Bearer {lib_token}"}, timeout=120
            )
            per_op: dict[str, Any] = {}
            for op, (hub_q, lib_q) in OPERATIONS.items():
                variables = [
                    ({"text": t}, {"lucene": lucene(t)})
                    if "search" in op
                    else ({"km": MIN_KM}, {"km": MIN_KM})
                    if "$km" in hub_q
                    else ({}, {})
                    for t in texts
                ]
                per_op[op] = time_operation(
                    (hub_client, hub_q, [h for h, _ in variables]),
                    (lib_client, lib_q, [v for _, v in variables]),
                    rounds,
                )
                scale.log(
                    f"  {caller} / {op}: hub p50 {per_op[op]['hub_ms']['p50']} ms, library p50 "
                    f"{per_op[op]['library_ms']['p50']} ms, same answer: {per_op[op]['same_answer']}"
                )
            results[caller] = {
                "org": org,
                "clearance": clearance,
                "label_ids": len(labels),
                "operations": per_op,
            }
            hub_client.close()
            lib_client.close()
    finally:
        if library is not None:
            stop_child(library)
        stop_child(api)
    return results


def library_version() -> str:
    lock = json.loads((LIBRARY_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/@neo4j/graphql"]["version"])


def write_results(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "graphql-library.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m = result["machine"]
    lines = [
        "# The hub's GraphQL API beside the Neo4j GraphQL Library",
        "",
        f"Run {result['started']} with `{result['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Neo4j {m['neo4j']} (heap {m['neo4j_heap']}, page cache "
        f"{m['neo4j_pagecache']}), Python {m['python']}, Node {result['node']}, @neo4j/graphql "
        f"{result['library']} on @apollo/server; shared with other work (load average "
        f"{', '.join(map(str, result['load_average']))} at the end).",
        "",
        f"Graph: the synthetic whole-system network, **{result['scale']:,} objects** "
        f"(seed {result['seed']}), "
        "applied by the hub's worker; both servers read the same Neo4j over HTTP end to end.",
        "",
        "Both filter every node by the caller's label ids: the hub through its guard, the library through "
        '`@authorization(filter: [{ where: { node: { _label: { in: "$jwt.labels" } } } }])` on every type, '
        "with the ids the guard computes for that caller in the token (verified by `server.js` and passed "
        "to the library decoded, since 64-bit ids need Neo4j integers). Search: the hub's `search` against "
        "the library's `@fulltext` query on the same full-text index with the Lucene query the hub builds "
        "(the hub also matches the text as an mRID and orders hits by name length; the library orders by "
        "score).",
        "",
    ]
    for caller, r in result["callers"].items():
        lines += [
            f"## Caller {caller} (organisation `{r['org']}`, clearance {r['clearance']}; "
            f"{r['label_ids']} label ids visible)",
            "",
            "| operation | runs | hub p50 ms | hub p95 ms | library p50 ms | library p95 ms | hub / library "
            "| same answer |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for op, o in r["operations"].items():
            hub, lib = o["hub_ms"], o["library_ms"]
            lines.append(
                f"| {op} | {o['runs']} | {hub['p50']} | {hub['p95']} | {lib['p50']} | {lib['p95']} "
                f"| {o['hub_over_library']:.2f}x | {'yes' if o['same_answer'] else 'no'} |"
            )
        lines.append("")
    if result.get("notes"):
        lines += ["## Reading", "", *result["notes"], ""]
    (out / "graphql-library.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=100_000, help="objects in the synthetic network")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40, help="timed runs per operation, server and caller")
    parser.add_argument("--no-load", action="store_true", help="use the graph the services hold")
    parser.add_argument("--library-port", type=int, default=25801)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-services", action="store_true")
    args = parser.parse_args(argv)
    scale.configure_environment()
    ensure_node_modules()
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.graphql_library " + " ".join(argv if argv is not None else sys.argv[1:]),
        "scale": args.scale,
        "seed": args.seed,
        "machine": scale.machine(),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "library": library_version(),
    }
    started = scale.services_up()
    try:
        if not args.no_load:
            scale.log("fresh Neo4j; the hub's worker loads the network")
            scale.fresh_neo4j()
            load, worker = scale.worker_load(scale.Run(uuid.uuid4().hex[:8]), args.scale, args.seed, 900.0)
            stop_child(worker)
            scale.log(f"loaded {load['live_objects']:,} objects")
        result["callers"] = measure(args.scale, args.seed, args.rounds, args.library_port)
    finally:
        if started and not args.keep_services:
            from devstack.services import launcher

            launcher.stop(None, started)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    write_results(result, args.out)
    print((args.out / "graphql-library.md").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main()
