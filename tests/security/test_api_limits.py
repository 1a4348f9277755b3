"""Denial of service without a token: oversized requests, huge list arguments, expensive documents,
slow operations and one caller's concurrent work, all against real servers."""

from __future__ import annotations

import asyncio
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphkit import Api, Obj, serve, write_graph
from hardening import secure

from graphql import parse, validate

pytestmark = pytest.mark.services

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"


def _post(api: Api, token: str | None, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {"query": query, "variables": variables or {}}
    return httpx.post(f"{api.base}/graphql", json=body, headers=headers, timeout=120)


def _address(api: Api) -> tuple[str, int]:
    host, _, port = api.base.removeprefix("http://").partition(":")
    return host, int(port)


def _response_while_sending(
    api: Api, head: bytes, pieces: Iterator[bytes], limit_s: float = 20
) -> tuple[bytes, int]:
    """Send ``head`` then ``pieces`` until the server answers or closes; returns what it answered and how
    many bytes of ``pieces`` went out before that."""
    sent = 0
    answer = b""
    with socket.create_connection(_address(api), timeout=limit_s) as sock:
        # A small send buffer, so that what counts as sent is what the server took in, not megabytes the
        # client's kernel queued while a loaded server was still answering.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        sock.sendall(head)
        deadline = time.monotonic() + limit_s
        for piece in pieces:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable or time.monotonic() > deadline:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.settimeout(limit_s)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


# ------------------------------------------------------------------------------------- request sizes


def test_declared_oversized_body_is_refused_before_it_is_read(hardened: Api) -> None:
    limit = hardened.settings.api_max_body_bytes
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000000\r\n\r\n"
    )
    started = time.monotonic()
    # Not one byte of the 200 MB is sent: the answer must come from the declaration alone.
    answer, _ = _response_while_sending(hardened, head, iter(()), limit_s=10)
    assert _status(answer) == 413
    assert time.monotonic() - started < 5
    assert str(limit).encode() in answer or b"413" in answer


def test_chunked_oversized_body_is_refused_while_it_streams(hardened: Api) -> None:
    limit = hardened.settings.api_max_body_bytes
    # With a valid token: an anonymous request is refused before its body is read at all.
    token = hardened.token("streamer", None, "PUBLIC")
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 16384
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    total = 200 * 1024 * 1024
    answer, sent = _response_while_sending(hardened, head, (chunk for _ in range(total // len(piece))))
    assert _status(answer) == 413
    assert b"HUB_API_MAX_BODY_BYTES" in answer or sent < total
    # The server stopped reading soon after the limit, far from the 200 MB on offer.
    assert sent < 8 * limit, sent


def test_oversized_headers_are_refused_with_431(hardened: Api) -> None:
    limit = hardened.settings.api_max_header_bytes
    head = b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Padding: "
    total = 64 * 1024 * 1024
    answer, sent = _response_while_sending(hardened, head, (b"a" * 4096 for _ in range(total // 4096)))
    assert _status(answer) == 431
    assert sent < 64 * limit, sent


# ------------------------------------------------------------------------------------------- lists


def test_a_huge_list_argument_is_refused_quickly(hardened: Api, bulk: str) -> None:
    from ontology.loader import load_ontology

    rel_type = sorted(load_ontology().rel_types())[0]
    token = hardened.token("lister", None, "PUBLIC")
    query = "query($m: ID!, $t: [String!]) { neighbourhood(mrid: $m, types: $t) { nodes { mrid } } }"
    started = time.monotonic()
    body = _post(hardened, token, query, {"m": f"{bulk}-00000", "t": [rel_type] * 30_000}).json()
    assert time.monotonic() - started < 5
    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert "types has 30000 entries" in message and "HUB_MAX_LIST_ITEMS" in message
    # Under the cap, duplicates are dropped before the query is built.
    started = time.monotonic()
    body = _post(hardened, token, query, {"m": f"{bulk}-00000", "t": [rel_type] * 4_000}).json()
    assert body == {"data": {"neighbourhood": {"nodes": [{"mrid": f"{bulk}-00000"}]}}}
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------------------- costs


def _alias_document(field: str, n: int) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(n)) + " }"


def test_too_expensive_documents_are_refused_before_execution(hardened: Api) -> None:
    token = hardened.token("spender", None, "PUBLIC")
    budget = hardened.settings.max_operation_cost
    for field in (
        'shortestPath(from: "a", to: "b") { nodes { mrid } }',
        'neighbourhood(mrid: "a", depth: 4) { nodes { mrid } edges { source } }',
        "counts { className count }",
    ):
        document = _alias_document(field, hardened.settings.max_aliases)
        started = time.monotonic()
        body = _post(hardened, token, document).json()
        # Refused in validation: no data at all, not a data object of nulls from executed fields.
        assert body["data"] is None, body
        message = body["errors"][0]["message"]
        assert f"more than the budget of {budget}" in message and "HUB_MAX_OPERATION_COST" in message
        assert time.monotonic() - started < 2
    # A single such field is within the budget and runs.
    one = _post(hardened, token, '{ shortestPath(from: "a", to: "b") { nodes { mrid } } }').json()
    assert one == {"data": {"shortestPath": None}}


def test_the_pages_own_documents_fit_the_budget(settings: Any) -> None:
    from hubql.cost import Limits, cost_rule
    from hubql.schema import build_schema, graphql_core_schema

    from hub.settings import Settings
    from ontology.loader import load_ontology

    defaults = Settings.model_fields
    budget = defaults["max_operation_cost"].default
    limits = Limits(defaults["max_neighbourhood_depth"].default, defaults["max_page_size"].default)
    schema, _ = build_schema(load_ontology(), settings)
    rule = cost_rule(budget, limits)
    node_fields = "mrid className domain name label point { x y }"
    # frontend/src/queries.ts batchNeighbourhoods(25), more than the page asks at once (DISCOVERY_BATCH).
    batch = "query NeighbourhoodBatch(" + ", ".join(f"$m{i}: ID!" for i in range(25)) + ") {\n"
    batch += "\n".join(
        f"n{i}: neighbourhood(mrid: $m{i}, depth: 1) {{ nodes {{ {node_fields} }} "
        "edges { source target type key } }"
        for i in range(25)
    )
    batch += "\n}"
    documents = {p.name: p.read_text() for p in sorted(OPERATIONS.glob("*.graphql"))}
    documents["NeighbourhoodBatch(25)"] = batch
    assert len(documents) > 10
    for name, text in documents.items():
        errors = validate(graphql_core_schema(schema), parse(text), [rule])
        assert errors == [], (name, errors)
    # Two deep neighbourhoods more and the batch is past it: the budget is not so loose it means nothing.
    deep = "neighbourhood(mrid: $m0, depth: 4) { nodes { mrid } }"
    over = batch.removesuffix("\n}") + f"\nx: {deep}\ny: {deep}\n}}"
    assert validate(graphql_core_schema(schema), parse(over), [rule])


# ------------------------------------------------------------------------- deadline and concurrency

ROWS = 5000


@pytest.fixture(scope="module")
def bulk(neo4j_driver: Any, settings: Any) -> Iterator[str]:
    """``ROWS`` public objects whose names share a prefix, for operations that take a while."""
    from ontology.loader import load_ontology

    prefix = "bulk" + uuid.uuid4().hex[:8]
    objects = [
        Obj(f"{prefix}-{i:05d}", "Substation", "classification=PUBLIC", name=f"{prefix} substation {i}")
        for i in range(ROWS)
    ]
    write_graph(neo4j_driver, load_ontology(), objects, [], label_ttl_s=settings.label_cache_ttl_s)
    yield prefix
    neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


DEADLINE_S = 0.5


@pytest.fixture(scope="module")
def tight(settings: Any) -> Iterator[Api]:
    """An API with a short operation deadline, one operation per caller at a time and room in the budget
    for heavy documents (so that the deadline, not the budget, is what stops them)."""
    update = {
        "query_timeout_s": DEADLINE_S,
        "max_concurrent_operations": 1,
        "max_subscriptions_per_caller": 1,
        "max_operation_cost": 100_000,
    }
    with serve(secure(settings, **update)) as api:
        yield api


def _heavy(prefix: str, aliases: int = 1) -> str:
    # Every stored property of each row: reads only fetch what is selected, so a document of names alone
    # is no longer slow enough to outlast the deadline (a derived field such as level outlasts the default
    # deadline too).
    field = (
        f'objects(name: "{prefix}", first: {ROWS}) '
        "{ totalCount nodes { mrid name label updated attributes { key value } } }"
    )
    return _alias_document(field, aliases)


def test_heavy_document_takes_longer_than_the_deadline_without_one(settings: Any, bulk: str) -> None:
    # The control for the next test: the same document, with the default deadline, runs to the end.
    with serve(secure(settings, max_operation_cost=100_000)) as roomy:
        token = roomy.token("heavy", None, "PUBLIC")
        started = time.monotonic()
        body = _post(roomy, token, _heavy(bulk)).json()
    elapsed = time.monotonic() - started
    assert "errors" not in body, (elapsed, body)
    assert all(len(page["nodes"]) == ROWS for page in body["data"].values())
    assert elapsed > 2 * DEADLINE_S, elapsed


def test_the_deadline_bounds_the_whole_operation(tight: Api, bulk: str) -> None:
    token = tight.token("heavy", None, "PUBLIC")
    started = time.monotonic()
    body = _post(tight, token, _heavy(bulk)).json()
    elapsed = time.monotonic() - started
    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert f"deadline of {DEADLINE_S:g} s" in message and "HUB_QUERY_TIMEOUT_S" in message
    assert elapsed < DEADLINE_S + 1.5, elapsed


async def _answers(api: Api, requests: list[tuple[str, str]]) -> list[tuple[httpx.Response, float]]:
    """Each request's response and seconds taken, all sent at once."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as client:

        async def one(token: str, query: str) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await client.post(
                f"{api.base}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
            )
            return response, time.monotonic() - started

        return await asyncio.gather(*(one(t, q) for t, q in requests))


async def _concurrently(api: Api, requests: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The bodies of requests sent at once; a refusal for the caller's cap is a 429 with Retry-After."""
    bodies = []
    for response, _ in await _answers(api, requests):
        body: dict[str, Any] = response.json()
        if _too_busy(body):
            assert response.status_code == 429, (response.status_code, body)
            assert response.headers["retry-after"] == "1"
        else:
            assert response.status_code == 200, (response.status_code, body)
        bodies.append(body)
    return bodies


def _too_busy(body: dict[str, Any]) -> bool:
    return any("HUB_MAX_CONCURRENT_OPERATIONS" in e["message"] for e in body.get("errors", []))


def _saturated(body: dict[str, Any]) -> bool:
    return any("HUB_API_MAX_RUNNING_OPERATIONS" in e["message"] for e in body.get("errors", []))


def test_one_callers_concurrent_operations_are_capped_not_others(tight: Api, bulk: str) -> None:
    greedy = tight.token("greedy", None, "PUBLIC")
    other = tight.token("other", None, "PUBLIC")
    heavy = _heavy(bulk)
    results = asyncio.run(_concurrently(tight, [(greedy, heavy)] * 4 + [(other, heavy)]))
    greedy_results, other_result = results[:4], results[4]
    refused = [r for r in greedy_results if _too_busy(r)]
    assert 1 <= len(refused) <= 3, greedy_results
    assert refused[0]["data"] is None
    assert "already has 1 operations running" in refused[0]["errors"][0]["message"]
    assert not _too_busy(other_result), other_result
    # Once the first has finished, the same caller is admitted again.
    assert not _too_busy(_post(tight, greedy, "{ me { subject } }").json())


ADMISSION_WAIT_S = 0.2


def _burst(api: Api, bulk: str, callers: int) -> list[tuple[httpx.Response, float]]:
    """One heavy operation from each of ``callers`` different callers, all at once."""
    tokens = [api.token(f"burst-{i}", None, "PUBLIC") for i in range(callers)]
    return asyncio.run(_answers(api, [(t, _heavy(bulk)) for t in tokens]))


def test_a_saturated_api_refuses_at_once_with_503_and_keeps_the_admitted_whole(
    settings: Any, bulk: str
) -> None:
    # Two places for the whole process and eight callers, none of them over its own cap: the first two
    # run, the rest wait at most ADMISSION_WAIT_S for a place and are then told to come back, instead of
    # all eight running at once and each answering late.
    # The deadline is far beyond the documents' run time: on a busy machine the admitted operations must
    # not turn into timeouts, which would hide what is tested here (who is admitted, who is refused).
    update = {
        "api_max_running_operations": 2,
        "api_admission_wait_s": ADMISSION_WAIT_S,
        "max_operation_cost": 100_000,
        "query_timeout_s": 120.0,
    }
    with serve(secure(settings, **update)) as api:
        answers = _burst(api, bulk, 8)
    admitted = [(r, s) for r, s in answers if r.status_code == 200]
    refused = [(r, s) for r, s in answers if r.status_code == 503]
    assert len(admitted) + len(refused) == len(answers), [(r.status_code, r.text[:200]) for r, _ in answers]
    assert len(admitted) >= 2 and refused, [(r.status_code, s) for r, s in answers]
    for response, _ in admitted:
        pages = response.json()["data"].values()
        assert all(len(page["nodes"]) == ROWS for page in pages)
    for response, seconds in refused:
        body = response.json()
        assert body["data"] is None and _saturated(body), body
        assert "HUB_API_ADMISSION_WAIT_S" in body["errors"][0]["message"]
        assert response.headers["retry-after"] == "1"
        # Refused after the wait, not after waiting out the operations ahead of it.
        assert seconds < ADMISSION_WAIT_S + 2.0, seconds


def test_the_same_burst_without_the_process_cap_runs_everything(settings: Any, bulk: str) -> None:
    # The control for the test above: with no process cap, the eight run together and none is refused.
    update = {"api_max_running_operations": 0, "max_operation_cost": 100_000, "query_timeout_s": 120.0}
    with serve(secure(settings, **update)) as api:
        answers = _burst(api, bulk, 8)
    assert [r.status_code for r, _ in answers] == [200] * 8
    assert not any(_saturated(r.json()) for r, _ in answers)


async def _over_websocket(api: Api, token: str, query: str) -> dict[str, Any]:
    import json

    import websockets

    async with websockets.connect(api.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return answer


def test_queries_over_the_websocket_are_refused(tight: Api, bulk: str) -> None:
    # Over the websocket a query would run without the HTTP deadline and per-caller cap.
    token = tight.token("socket", None, "PUBLIC")
    answer = asyncio.run(_over_websocket(tight, token, _heavy(bulk)))
    assert answer == {"id": "1", "type": "error", "payload": [{"message": "queries are not allowed"}]}


def test_a_huge_list_argument_of_a_subscription_is_refused(hardened: Api) -> None:
    token = hardened.token("watcher", None, "PUBLIC")
    mrids = ", ".join(f'"m{i}"' for i in range(hardened.settings.max_list_items + 1))
    subscription = f"subscription {{ changes(mrids: [{mrids}]) {{ mrid }} }}"
    answer = asyncio.run(_over_websocket(hardened, token, subscription))
    assert answer["type"] == "next" and answer["payload"]["data"] is None, answer
    message = answer["payload"]["errors"][0]["message"]
    assert f"mrids has {hardened.settings.max_list_items + 1} entries" in message


async def _oversized_websocket_message(api: Api, token: str) -> int | None:
    """Sends a message one byte over ``api_max_ws_message_bytes``; the close code the server answers with."""
    import json

    import websockets

    async with websockets.connect(
        api.ws_url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send("x" * (api.settings.api_max_ws_message_bytes + 1))
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        return None


def test_an_oversized_websocket_message_closes_the_socket(hardened: Api) -> None:
    token = hardened.token("talker", None, "PUBLIC")
    # 1009: message too big (RFC 6455), before anything parses it.
    assert asyncio.run(_oversized_websocket_message(hardened, token)) == 1009


SUBSCRIPTION = "subscription { changes { mrid } }"


async def _subscribe(api: Api, token: str) -> tuple[Any, dict[str, Any] | None]:
    """An open websocket with one ``changes`` subscription, and its first answer within a second and a half
    (None: none, as for a subscription that runs and has nothing to say yet)."""
    import json

    import websockets

    ws = await websockets.connect(api.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    try:
        answer: dict[str, Any] | None = json.loads(await asyncio.wait_for(ws.recv(), 1.5))
    except TimeoutError:
        answer = None
    return ws, answer


def test_one_callers_open_subscriptions_are_capped_not_others(tight: Api) -> None:
    greedy = tight.token("greedy-watcher", None, "PUBLIC")
    other = tight.token("other-watcher", None, "PUBLIC")

    async def scenario() -> None:
        first, answer = await _subscribe(tight, greedy)
        assert answer is None, answer
        second, refused = await _subscribe(tight, greedy)
        assert refused is not None and refused["type"] == "next", refused
        message = refused["payload"]["errors"][0]["message"]
        assert "max_subscriptions_per_caller = 1" in message, message
        third, answer = await _subscribe(tight, other)
        assert answer is None, answer
        # Closing the first frees its place.
        await first.close()
        await asyncio.sleep(1.0)
        fourth, answer = await _subscribe(tight, greedy)
        assert answer is None, answer
        for ws in (second, third, fourth):
            await ws.close()

    asyncio.run(scenario())
