"""Where one request of the load benchmark's mix spends its time: per operation, the statements it sends
to Neo4j (each timed, with its rows) and the Python time around them, against a running hub.

Runs the API in this process on the hub's settings (``HUB_*``, as for :mod:`bench.load`), sends each
operation of the mix ``--repeat`` times as the user who sees the most, and prints per operation: the
wall time, the number of statements, their summed time and the rest (parsing, resolvers, serialisation);
``--profile`` also runs ``PROFILE`` on each distinct statement once and prints its db hits and rows::

    python -m bench.load_profile --repeat 5 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from typing import Any

import httpx

from bench.load import MIX, SEARCH_TEXTS, documents
from hub.guard import Guard
from hub.settings import get_settings

Statement = tuple[str, dict[str, Any], float, int]


def _variables(op: str, mrid: str, i: int) -> dict[str, Any]:
    if op in ("ObjectDetail", "Neighbourhood", "Dependencies"):
        return {"mrid": mrid, **({"depth": 2} if op == "Neighbourhood" else {})}
    if op == "ObjectsPage":
        return {"first": 100}
    if op == "Search":
        return {"text": SEARCH_TEXTS[i % len(SEARCH_TEXTS)], "first": 15}
    return {}


def _db_hits(plan: Any) -> tuple[int, int]:
    hits = int(plan.get("dbHits", 0)) if isinstance(plan, dict) else 0
    rows = int(plan.get("rows", 0)) if isinstance(plan, dict) else 0
    for child in plan.get("children", []) if isinstance(plan, dict) else []:
        hits += _db_hits(child)[0]
    return hits, rows


async def main(args: argparse.Namespace) -> None:
    from hubql.app import create_app

    settings = get_settings()
    seen: list[Statement] = []
    original = Guard.read

    async def timed(self: Guard, cypher: str, params: Any = None) -> list[dict[str, Any]]:
        started = time.perf_counter()
        rows = await original(self, cypher, params)
        seen.append((cypher, dict(params or {}), time.perf_counter() - started, len(rows)))
        return rows

    Guard.read = timed  # type: ignore[method-assign]
    app = create_app(settings, frontend_dist=None, metrics=False)
    docs = documents()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://hub") as http,
    ):
        users = (await http.get("/dev/tokens")).json()["users"]
        widest = max(users, key=lambda u: (u.get("clearance") or "", len(u.get("roles", []))))
        headers = {"Authorization": f"Bearer {widest['token']}"}
        body = {"query": docs["ObjectsPage"], "operationName": "ObjectsPage", "variables": {"first": 100}}
        page = (await http.post("/graphql", json=body, headers=headers)).json()
        for cypher, _, elapsed, rows in seen:
            print(f"    first page: {elapsed * 1000:7.1f} ms  rows {rows:5}  {cypher[:150]}")
        assert page.get("data"), str(page)[:500]
        mrids = [e["node"]["mrid"] for e in page["data"]["objects"]["edges"]]
        guard = None
        for op in MIX:
            walls, dbs, counts = [], [], []
            statements: dict[str, Statement] = {}
            for i in range(args.repeat):
                seen.clear()
                mrid = mrids[(i * 37) % len(mrids)]
                body = {"query": docs[op], "operationName": op, "variables": _variables(op, mrid, i)}
                started = time.perf_counter()
                response = await http.post("/graphql", json=body, headers=headers)
                walls.append(time.perf_counter() - started)
                assert "errors" not in response.json(), response.text[:300]
                dbs.append(sum(s[2] for s in seen))
                counts.append(len(seen))
                for s in seen:
                    statements.setdefault(s[0], s)
            wall, db = statistics.median(walls), statistics.median(dbs)
            print(
                f"{op:13} wall {wall * 1000:7.1f} ms  statements {statistics.median(counts):5.0f}  "
                f"in Neo4j {db * 1000:7.1f} ms  rest {(wall - db) * 1000:7.1f} ms"
            )
            if args.profile:
                guard = guard or app.state.hub.guard(_caller(app, widest["token"]))
                await _profile(guard, statements)


def _caller(app: Any, token: str) -> Any:
    from hubql.callers import identify

    return identify(app.state.authenticator, f"Bearer {token}", channel="http", client=None)


async def _profile(guard: Guard, statements: dict[str, Statement]) -> None:
    driver = guard.driver
    await guard.visible_ids()
    by_shape: dict[str, list[float]] = defaultdict(list)
    for cypher, params, elapsed, rows in statements.values():
        bound = {**params, "visible": guard._visible_list, "granted": guard._granted_list}
        _, summary, _ = await driver.execute_query("PROFILE " + cypher, bound, database_=guard.database)
        hits, _ = _db_hits(summary.profile)
        by_shape[cypher[:90]].append(hits)
        print(f"    {elapsed * 1000:7.1f} ms  rows {rows:5}  db hits {hits:8}  {cypher[:110]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
