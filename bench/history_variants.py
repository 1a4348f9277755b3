"""Neo4j CPU of a version write, in variants, each on a label of its own on one database.

``python -m bench.history_variants --versions 8000 --rounds 3 [VARIANT ...]`` writes ``versions`` new
version nodes a variant (batches of 500, the writer's whole-version statement shape: six attributes, two
references, bookkeeping) and reports the Neo4j process's CPU per version (read from ``/proc`` around the
batches, so the database must run on this machine) and the database hits of one more batch under
``PROFILE``. Variants take turns within each round, so a shared machine's drifting load weighs on all
alike. Variant labels (``BenchVersion*``), their nodes and indexes are removed afterwards.

Variants: ``datetime`` (times as datetimes, three indexes: mrid, valid-from, recorded), ``millis`` (times
as epoch milliseconds, same indexes: what the writer keeps now), ``mrid_index_only`` (datetimes, no
time indexes), ``no_indexes``, ``no_lookup`` (datetimes, without the look-up of a kept version),
``blob`` (the attributes and references as one JSON string).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import time
import uuid
from typing import Any, Final

import neo4j

from hub.graph_schema import cypher
from hub.settings import Settings

BATCH: Final = 500
_SET_COMMON: Final = (
    "v.mrid = h.m, v.@version = r.v, v.@deleted = r.d, v.@class = r.c, v.@domain = $domains[r.c], "
    "v.@label = r.l, v.@owner = r.pr, v.@producer = r.pr, v.@event_id = r.e"
)
_LOOKUP: Final = (
    "CALL (h) {{ OPTIONAL MATCH (p:{label} {{mrid: h.m}}) USING INDEX SEEK p:{label}(mrid) "
    "WHERE p.@version >= h.lo RETURN max(p.@version) AS top }} "
    "UNWIND h.vs AS r WITH h, r, top WHERE top IS NULL OR top < r.v "
)
_DATETIMES: Final = "v.@valid_from = datetime({{epochMillis: r.t}}), v.@recorded = datetime()"
_MILLIS: Final = "v.@valid_from = r.t, v.@recorded = timestamp()"
_REFS: Final = "v.@ref_types = r.rt, v.@ref_targets = r.rg"


def _statement(lookup: bool, times: str, blob: bool) -> str:
    head = "UNWIND $versions AS h " + (_LOOKUP if lookup else "UNWIND h.vs AS r ")
    state = "v.state = r.s" if blob else f"v += r.p, {_REFS}"
    return head + f"CREATE (v:{{label}}) SET {state}, {_SET_COMMON}, {times}"


# name: (label, indexed keys, statement)
VARIANTS: Final[dict[str, tuple[str, list[str], str]]] = {
    "datetime": ("BenchVersionA", ["mrid", "@valid_from", "@recorded"], _statement(True, _DATETIMES, False)),
    "millis": ("BenchVersionB", ["mrid", "@valid_from", "@recorded"], _statement(True, _MILLIS, False)),
    "mrid_index_only": ("BenchVersionC", ["mrid"], _statement(True, _DATETIMES, False)),
    "no_indexes": ("BenchVersionD", [], _statement(False, _DATETIMES, False)),
    "no_lookup": (
        "BenchVersionE",
        ["mrid", "@valid_from", "@recorded"],
        _statement(False, _DATETIMES, False),
    ),
    "blob": ("BenchVersionF", ["mrid", "@valid_from", "@recorded"], _statement(True, _DATETIMES, True)),
}
DOMAINS: Final = {"ACLineSegment": "electricity"}


def _neo4j_pid(settings: Settings) -> int:
    out = subprocess.check_output(["pgrep", "-f", f"{settings.state_dir}.*neo4j|neo4j.*{settings.state_dir}"])
    return int(out.split()[0])


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rows(n: int, blob: bool) -> list[dict[str, Any]]:
    t0 = int(time.time() * 1000)
    out = []
    for i in range(n):
        props = {
            "name": f"line {i}",
            "description": "a line",
            "ratedS": random.random() * 100,
            "ratedU": 11000.0 + i,
            "normalOpen": False,
            "aliasName": f"A{i}",
        }
        version: dict[str, Any] = {
            "v": 1,
            "d": False,
            "c": "ACLineSegment",
            "l": "public",
            "pr": "bench",
            "e": str(uuid.uuid4()),
            "t": t0 + i,
            "p": props,
            "rt": ["Terminal", "Terminal"],
            "rg": [str(uuid.uuid4()), str(uuid.uuid4())],
        }
        if blob:
            version["s"] = json.dumps({"p": props, "rt": version["rt"], "rg": version["rg"]})
        out.append({"m": str(uuid.uuid4()), "lo": 1, "vs": [version]})
    return out


def _hits(plan: Any) -> int:
    return int(plan.get("dbHits", 0)) + sum(_hits(c) for c in plan.get("children", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    settings = Settings()
    pid = _neo4j_pid(settings)
    driver = neo4j.GraphDatabase.driver(
        settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
    )
    cpu: dict[str, list[float]] = {name: [] for name in args.variants}
    hits: dict[str, int] = {}
    try:
        with driver.session(database=settings.neo4j_database) as session:
            for name in args.variants:
                label, keys, _ = VARIANTS[name]
                for key in keys:
                    index = f"bench_{label}_{key.strip('@')}"
                    session.run(
                        cypher(f"CREATE INDEX {index} IF NOT EXISTS FOR (v:{label}) ON (v.{key})")
                    ).consume()
            session.run("CALL db.awaitIndexes(300)").consume()
            for rnd in range(args.rounds):
                for name in args.variants:
                    label, _, template = VARIANTS[name]
                    statement = cypher(template.format(label=label))
                    rows = _rows(args.versions + BATCH, name == "blob")
                    session.run(statement, versions=rows[:BATCH], domains=DOMAINS).consume()  # planned, warm
                    before = _cpu_s(pid)
                    for i in range(BATCH, len(rows), BATCH):
                        chunk = rows[i : i + BATCH]
                        session.execute_write(
                            lambda tx, c=chunk, q=statement: tx.run(q, versions=c, domains=DOMAINS).consume()
                        )
                    cpu[name].append((_cpu_s(pid) - before) / args.versions * 1e6)
                    summary = session.run(
                        "PROFILE " + statement, versions=_rows(BATCH, name == "blob"), domains=DOMAINS
                    ).consume()
                    hits[name] = _hits(summary.profile)
                    print(f"round {rnd + 1} {name:16s} neo4j CPU {cpu[name][-1]:6.1f} us/version", flush=True)
            for name in args.variants:
                label = VARIANTS[name][0]
                session.run(
                    f"MATCH (v:{label}) CALL (v) {{ DELETE v }} IN TRANSACTIONS OF 10000 ROWS"
                ).consume()
                for record in list(
                    session.run(
                        "SHOW INDEXES YIELD name WHERE name STARTS WITH $p RETURN name", p=f"bench_{label}_"
                    )
                ):
                    session.run(f"DROP INDEX `{record['name']}`").consume()
    finally:
        driver.close()
    print("| variant | Neo4j CPU us/version, median (rounds) | db hits / 500 |")
    print("| --- | --- | ---: |")
    for name in args.variants:
        runs = ", ".join(f"{c:.0f}" for c in cpu[name])
        print(f"| {name} | {statistics.median(cpu[name]):.0f} ({runs}) | {hits[name]} |")


if __name__ == "__main__":
    main()
