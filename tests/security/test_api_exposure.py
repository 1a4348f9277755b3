"""What the API exposes to anyone who can reach it: its defaults, its metrics, group claims, the client
address it believes, and the audit record of every refused token. All against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric import rsa
from graphkit import Api, Obj, Rel
from hardening import free_port, secure
from prometheus_client.parser import text_string_to_metric_families

from hub.auth import DevIssuer
from hub.kafka_clients import admin_options
from hub.settings import Settings
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

INTROSPECTION = "{ __schema { queryType { name } } }"


def _post(api: Api, token: str | None, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(
        f"{api.base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=60,
    )


# ------------------------------------------------------------------------------------------- defaults


def test_settings_default_to_secure() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["dev_mode"] is False
    assert defaults["anonymous_access"] is False
    assert defaults["api_metrics_host"] == "127.0.0.1"
    assert defaults["metrics_host"] == "127.0.0.1"
    assert defaults["api_forwarded_allow_ips"] == ""


def _hub_api(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    hub = Path(sys.executable).parent / "hub"
    return subprocess.Popen(
        [str(hub), "api"], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _clean_env(settings: Any, state_dir: Path) -> dict[str, str]:
    """Only what locates the services and the state folder: every other setting is its default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_STATE_DIR=str(state_dir),
        HUB_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        HUB_NEO4J_URI=settings.neo4j_uri,
        HUB_NEO4J_PASSWORD=settings.neo4j_password,
    )
    return env


def test_hub_api_without_keys_refuses_to_start(settings: Any, tmp_path: Path) -> None:
    env = _clean_env(settings, tmp_path)
    env["HUB_API_PORT"] = str(free_port())
    process = _hub_api(env, tmp_path)
    out, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    # Without dev mode there is no development issuer: the API says which setting it needs.
    assert b"HUB_JWKS_FILE" in out and b"dev_mode" in out, out[-2000:]


def test_hub_api_with_default_settings_serves_no_dev_tokens_graphiql_introspection_or_anonymous(
    settings: Any, tmp_path: Path
) -> None:
    issuer = DevIssuer(settings)
    issuer.ensure()
    port, metrics_port = free_port(), free_port()
    env = _clean_env(settings, tmp_path)
    env.update(
        HUB_API_PORT=str(port), HUB_API_METRICS_PORT=str(metrics_port), HUB_JWKS_FILE=str(issuer.jwks_path)
    )
    # One process starts within the wait on a busy machine; several are tested in
    # tests/graphql/test_processes.py, out of development mode too.
    env["HUB_API_PROCESSES"] = "1"
    process = _hub_api(env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()[-3000:] if process.stdout else ""
            assert time.monotonic() < deadline, "hub api did not answer"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert httpx.get(f"{base}/dev/tokens").status_code == 404
        graphiql = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
        assert graphiql.status_code != 200 and "graphiql" not in graphiql.text.lower()
        anonymous = httpx.post(f"{base}/graphql", json={"query": "{ me { subject } }"})
        assert anonymous.status_code == 401 and anonymous.json() == {"detail": "authentication required"}
        token = issuer.mint("prod.user", "ngt", "SECRET", ("admin",))
        headers = {"Authorization": f"Bearer {token}"}
        introspection = httpx.post(f"{base}/graphql", json={"query": INTROSPECTION}, headers=headers).json()
        assert introspection["data"] is None
        assert "introspection" in introspection["errors"][0]["message"].lower()
        me = httpx.post(f"{base}/graphql", json={"query": "{ me { subject } }"}, headers=headers).json()
        assert me == {"data": {"me": {"subject": "prod.user"}}}
        assert httpx.get(f"{base}/metrics").status_code == 404
        assert "hub_api_operations_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    finally:
        process.terminate()
        process.wait(timeout=30)


# -------------------------------------------------------------------------------------------- metrics


def _hub_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every hub_* count: operation durations and series creation times are left out."""
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("hub_") or family.name == "hub_api_operation_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):  # when a series first appeared: a time, not a count
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _delta(scrape: Callable[[], str], action: Callable[[], None]) -> dict[Any, float]:
    before = _hub_samples(scrape())
    action()
    after = _hub_samples(scrape())
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_metrics_are_not_served_on_the_api_port(hardened: Api) -> None:
    for path in ("/metrics", "/metrics/", "/graphql/metrics"):
        response = httpx.get(f"{hardened.base}{path}")
        assert response.status_code == 404
        assert "hub_api" not in response.text


def _rel(qname: str) -> str:
    assoc = load_ontology().association_by_qname(qname)
    assert assoc is not None, qname
    return assoc.rel_type


def test_metrics_do_not_depend_on_hidden_data(
    hardened: Api, graph_writer: Callable[[list[Obj], list[Rel]], None], run_id: str
) -> None:
    hidden = [
        Obj(f"{run_id}-hidden-{i}", "ACLineSegment", "org=elsewhere", name=f"{run_id} secret line {i}")
        for i in range(3)
    ]
    # Two visible voltage levels: one holds the three hidden lines, the other holds nothing.
    crowded = Obj(f"{run_id}-vl-crowded", "VoltageLevel", "classification=PUBLIC", name=f"{run_id} crowded")
    empty = Obj(f"{run_id}-vl-empty", "VoltageLevel", "classification=PUBLIC", name=f"{run_id} empty")
    graph_writer(
        [*hidden, crowded, empty],
        [Rel(line.mrid, _rel("Equipment.EquipmentContainer"), crowded.mrid) for line in hidden],
    )
    token = hardened.token("outsider", "public", "PUBLIC")
    metrics_url = f"http://127.0.0.1:{hardened.settings.api_metrics_port}/metrics"

    def scrape() -> str:
        return httpx.get(metrics_url).text

    def ask(query: str, variables: dict[str, Any]) -> Callable[[], None]:
        def run() -> None:
            body = _post(hardened, token, query, variables).json()
            assert "errors" not in body, body

        return run

    one = "query($m: ID!) { object(mrid: $m) { mrid } }"
    hidden_one = _delta(scrape, ask(one, {"m": hidden[0].mrid}))
    missing_one = _delta(scrape, ask(one, {"m": f"{run_id}-missing"}))
    assert hidden_one == missing_one
    assert hidden_one, "the scrape did not see the operation at all"
    by_name = "query($n: String) { objects(name: $n) { totalCount nodes { mrid } } }"
    hidden_names = _delta(scrape, ask(by_name, {"n": f"{run_id} secret"}))
    no_names = _delta(scrape, ask(by_name, {"n": f"{run_id} nothing"}))
    assert hidden_names == no_names
    # A visible node's hidden neighbours: neighbourhood and containment of the node with three hidden
    # lines move the metrics exactly as those of the node with none.
    around = "query($m: ID!) { neighbourhood(mrid: $m, depth: 2) { nodes { mrid } edges { source } } }"
    assert _delta(scrape, ask(around, {"m": crowded.mrid})) == _delta(scrape, ask(around, {"m": empty.mrid}))
    inside = "query($m: ID!) { containment(mrid: $m) { nodes { mrid } } }"
    assert _delta(scrape, ask(inside, {"m": crowded.mrid})) == _delta(scrape, ask(inside, {"m": empty.mrid}))
    # Hidden objects per class (of this test's names, so that other tests' visible objects play no part):
    # a class with three hidden members against a class with none.
    per_class = "query($c: String, $n: String) { objects(className: $c, name: $n, first: 5) { totalCount } }"
    with_hidden = _delta(scrape, ask(per_class, {"c": "ACLineSegment", "n": run_id}))
    without = _delta(scrape, ask(per_class, {"c": "Bay", "n": run_id}))
    assert with_hidden == without


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of the IPv4/IPv6 sockets listening on ``port``."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as fh:
            next(fh)
            for line in fh:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def test_metrics_listen_on_loopback_only(hardened: Api) -> None:
    from hub.metrics_server import start_metrics_server

    assert _listening(hardened.settings.api_metrics_port) == {"0100007F"}  # 127.0.0.1
    # The worker's metrics server, with its default address.
    worker_port = start_metrics_server(0)
    assert _listening(worker_port) == {"0100007F"}


# --------------------------------------------------------------------------------------------- groups


def test_group_claims_named_like_attributes_grant_nothing(
    hardened: Api, graph_writer: Callable[[list[Obj], list[Rel]], None], run_id: str
) -> None:
    objects = [
        Obj(f"{run_id}-neso", "Substation", "org=neso", name=f"{run_id} neso"),
        Obj(f"{run_id}-admin", "Substation", "role=admin", name=f"{run_id} admin"),
    ]
    graph_writer(objects, [])
    query = "query($n: String) { objects(name: $n) { totalCount nodes { mrid } } }"

    def seen(token: str) -> set[str]:
        body = _post(hardened, token, query, {"n": run_id}).json()
        assert "errors" not in body, body
        return {n["mrid"] for n in body["data"]["objects"]["nodes"]}

    grouped = hardened.token("grouped", "public", "SECRET", groups=("org=neso", "role=admin"))
    assert seen(grouped) == set()
    for mrid in (o.mrid for o in objects):
        body = _post(hardened, grouped, "query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid}).json()
        assert body == {"data": {"object": None}}
    # The real attributes do grant them, so the objects were there to be seen.
    assert seen(hardened.token("member", "neso", "SECRET")) == {f"{run_id}-neso"}
    assert seen(hardened.token("admin", "hub", "SECRET", roles=("admin",))) == {f"{run_id}-admin"}


# ---------------------------------------------------------------------- refused tokens and addresses


async def _audit_records(
    bootstrap: str, topic: str, want: Callable[[dict[str, Any]], bool], n: int
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, **admin_options(bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while len(found) < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    entry = json.loads(record.value)
                    if want(entry):
                        found.append(entry)
    finally:
        await consumer.stop()
    return found


async def _ws_refused(api: Api, token: str) -> int:
    async with websockets.connect(api.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=10)
        return int(closed.value.rcvd.code) if closed.value.rcvd else -1


def _forged_token(settings: Any, subject: str) -> str:
    """A well-formed token for this API's issuer and audience, signed by a key the API does not hold."""
    now = int(time.time())
    claims = {
        "iss": settings.oidc_issuer,
        "aud": settings.oidc_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "clearance": "SECRET",
    }
    _, kid = DevIssuer(settings)._load()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, "RS256", headers={"kid": kid})


def _refused(entry: dict[str, Any]) -> bool:
    return entry.get("action") == "token.refused"


def test_refused_tokens_reach_the_audit_topic_with_the_real_client_address(
    settings: Any, kafka_bootstrap: str
) -> None:
    from graphkit import serve

    subject = f"intruder-{uuid.uuid4().hex[:8]}"
    forged = _forged_token(settings, subject)
    spoof = {"Authorization": f"Bearer {forged}", "X-Forwarded-For": "203.0.113.7"}
    # Started here: the process's audit records go to the publisher of the API started last.
    with serve(secure(settings)) as api:
        response = httpx.post(f"{api.base}/graphql", json={"query": "{ me { subject } }"}, headers=spoof)
        assert response.status_code == 401
        anonymous = httpx.post(f"{api.base}/graphql", json={"query": "{ me { subject } }"})
        assert anonymous.status_code == 401
        assert asyncio.run(_ws_refused(api, forged)) == 4401
        records = asyncio.run(_audit_records(kafka_bootstrap, api.settings.audit_topic, _refused, 3))
    by_channel = {(r["channel"], r["subject"]): r for r in records}
    http = by_channel[("http", subject)]
    assert http["subject_verified"] is False
    assert http["reason"] == "token signature is invalid"
    # Not the address the request claimed: nothing tells this API to believe a proxy.
    assert http["client"] == "127.0.0.1"
    ws = by_channel[("websocket", subject)]
    assert ws["subject_verified"] is False
    assert ws["reason"] == "token signature is invalid" and ws["client"] == "127.0.0.1"
    assert by_channel[("http", None)]["reason"] == "authentication required"

    # The control: an API told to believe X-Forwarded-For from loopback records the claimed address.
    with serve(secure(settings, api_forwarded_allow_ips="127.0.0.1")) as proxied:
        response = httpx.post(f"{proxied.base}/graphql", json={"query": "{ me { subject } }"}, headers=spoof)
        assert response.status_code == 401
        records = asyncio.run(_audit_records(kafka_bootstrap, proxied.settings.audit_topic, _refused, 1))
    assert records[0]["client"] == "203.0.113.7"
