"""The API process around GraphQL: bearer tokens, guard rails, producers' HTTP ingest, health, metrics and
development tokens, all through a real server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric import rsa
from graphkit import Api, serve

from hub.auth import DevIssuer
from hub.kafka_clients import admin_options
from hub.kafka_topics import partition_ids, topic_admin

pytestmark = pytest.mark.services

ME = "{ me { subject anonymous } }"


def _claims(api: Api, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": api.settings.oidc_issuer,
        "aud": api.settings.oidc_audience,
        "sub": "someone",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "clearance": "SECRET",
    }
    claims.update(over)
    return claims


def _sign(api: Api, claims: dict[str, Any], key: Any = None) -> str:
    private, kid = DevIssuer(api.settings)._load()
    return jwt.encode(claims, key or private, algorithm="RS256", headers={"kid": kid})


def _post(api: Api, token: str | None, query: str = ME) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{api.base}/graphql", json={"query": query}, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token has expired"),
        ("audience", "token audience is not"),
        ("issuer", "token issuer is not"),
        ("signature", "token signature is invalid"),
        ("garbage", "token is malformed"),
    ],
)
def test_bad_tokens_get_401_with_reason_and_no_data(api: Api, case: str, reason: str) -> None:
    now = int(time.time())
    if case == "expired":
        token = _sign(api, _claims(api, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    elif case == "audience":
        token = _sign(api, _claims(api, aud="someone-else"))
    elif case == "issuer":
        token = _sign(api, _claims(api, iss="https://evil.example/"))
    elif case == "signature":
        token = _sign(api, _claims(api), key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    else:
        token = "not.a.token"
    response = _post(api, token)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"detail"} and body["detail"].startswith(reason)
    assert "data" not in response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_no_token_is_anonymous_or_401(api: Api, settings: Any) -> None:
    response = _post(api, None)
    assert response.status_code == 200
    assert response.json()["data"]["me"] == {"subject": "anonymous", "anonymous": True}
    with serve(settings.model_copy(update={"anonymous_access": False})) as closed:
        refused = _post(closed, None)
        assert refused.status_code == 401
        assert refused.json() == {"detail": "authentication required"}
        assert _post(closed, closed.token("ok", "ngt", "OFFICIAL")).status_code == 200


def test_guard_rails(api: Api) -> None:
    token = api.token("rails", None, "PUBLIC")
    deep = (
        '{ object(mrid: "x") { '
        + "... on Terminal { conductingEquipment { terminals { " * 7
        + "mrid"
        + " } } }" * 7
        + " } }"
    )
    body = _post(api, token, deep).json()
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    aliases = "{ " + " ".join(f"a{i}: me {{ subject }}" for i in range(api.settings.max_aliases + 1)) + " }"
    body = _post(api, token, aliases).json()
    assert "aliases found" in body["errors"][0]["message"]
    body = _post(api, token, '{ neighbourhood(mrid: "x", depth: 99) { nodes { mrid } } }').json()
    assert body["errors"][0]["message"].startswith("depth must be between 0 and")
    body = _post(api, token, '{ objects(className: "NoSuchClass") { totalCount } }').json()
    assert body["errors"][0]["message"] == "className 'NoSuchClass' is not a class of the ontology"


def test_guard_rails_hold_for_documents_seen_before(api: Api) -> None:
    """Parsing and validation are cached per document text: a document refused once is refused again,
    and an accepted one stays accepted with other variables."""
    token = api.token("rails-again", None, "PUBLIC")
    deep = '{ object(mrid: "x") { ' + "... on Terminal { conductingEquipment { terminals { " * 7
    deep += "mrid" + " } } }" * 7 + " } }"
    aliases = "{ " + " ".join(f"a{i}: me {{ subject }}" for i in range(api.settings.max_aliases + 1)) + " }"
    tokens = "{ " + "me { subject } " * (api.settings.max_tokens // 4 + 1) + "}"
    for _ in range(3):
        assert "exceeds maximum operation depth" in _post(api, token, deep).json()["errors"][0]["message"]
        assert "aliases found" in _post(api, token, aliases).json()["errors"][0]["message"]
        response = _post(api, token, tokens)
        assert response.status_code == 200 and response.json()["data"] is None
        assert "more than" in response.json()["errors"][0]["message"]
        assert "tokens" in response.json()["errors"][0]["message"]
    query = "query($m: ID!) { object(mrid: $m) { mrid } }"
    for mrid in ("a", "b"):
        assert api.query(query, {"m": mrid}, token=token) == {"data": {"object": None}}


def test_errors_masked_outside_dev_mode(settings: Any) -> None:
    with serve(
        settings.model_copy(update={"dev_mode": False, "jwks_file": DevIssuer(settings).jwks_path})
    ) as prod:
        token = prod.token("m", None, "PUBLIC")
        # a client error keeps its message; GraphiQL and dev tokens are gone
        body = _post(prod, token, "{ objects(first: -1) { totalCount } }").json()
        assert body["errors"][0]["message"] == "first must not be negative, got -1"
        assert httpx.get(f"{prod.base}/graphql", headers={"Accept": "text/html"}).status_code != 200
        assert httpx.get(f"{prod.base}/dev/tokens").status_code == 404


def test_health_metrics_and_dev_tokens(api: Api) -> None:
    assert httpx.get(f"{api.base}/healthz").json() == {"status": "ok"}
    _post(api, None)
    # Metrics are served on their own port, not the API's.
    assert httpx.get(f"{api.base}/metrics").status_code == 404
    metrics = httpx.get(f"http://127.0.0.1:{api.settings.api_metrics_port}/metrics").text
    assert "hub_api_operations_total" in metrics and "hub_api_operation_seconds_bucket" in metrics
    users = httpx.get(f"{api.base}/dev/tokens").json()["users"]
    assert {u["user"] for u in users} >= {"hub.admin", "public.analyst"}
    planner = next(u for u in users if u["user"] == "grid.planner")
    me = _post(api, planner["token"], "{ me { subject org clearance } }").json()["data"]["me"]
    assert me == {"subject": "grid.planner", "org": "ngt", "clearance": "OFFICIAL"}
    assert "GraphiQL" in httpx.get(f"{api.base}/graphql", headers={"Accept": "text/html"}).text


def _event(source: str, mrid: str, **over: Any) -> dict[str, Any]:
    event = {
        "id": uuid.uuid4().hex,
        "source": source,
        "type": "upsert",
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": 1,
        "class": "ACLineSegment",
        "attributes": {"IdentifiedObject.name": "line", "ACLineSegment.r": "0.25"},
    }
    event.update(over)
    return event


async def _read(bootstrap: str, topic: str, expect: int) -> list[Any]:
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        for _ in range(50):
            async with topic_admin(admin_options(bootstrap)) as admin:
                parts = await partition_ids(admin, topic)
            if parts:
                break
            await asyncio.sleep(0.2)
        else:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + 20
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(msgs)
        return out
    finally:
        await consumer.stop()


def test_http_ingest(api: Api, settings: Any, run_id: str) -> None:
    producer = f"{run_id}-prod"
    prefix = f"{run_id}.cim.ingest."
    ingest_settings = settings.model_copy(
        update={
            "ingest_topic_prefix": prefix,
            "producers": {producer: {"org": f"{run_id}-org", "clearance": "OFFICIAL"}},
        }
    )
    with serve(ingest_settings) as srv:
        url = f"{srv.base}/ingest"
        token = srv.token("feeder", f"{run_id}-org", "OFFICIAL", roles=(f"producer:{producer}",))
        assert httpx.post(url, json=_event(producer, "x1")).status_code == 401
        # The producer's organisation alone does not make a caller its producer.
        member = srv.token("member", f"{run_id}-org", "OFFICIAL")
        response = httpx.post(
            url, json=_event(producer, f"{run_id}-m"), headers={"Authorization": f"Bearer {member}"}
        )
        assert response.status_code == 422
        [refused] = response.json()["rejected"]
        assert refused["field"] == "source" and f"role 'producer:{producer}'" in refused["reason"]
        # one bad event rejects the batch, with reasons, and writes nothing
        bad = [
            _event(producer, f"{run_id}-a"),
            _event(producer, f"{run_id}-b", **{"class": "NoSuchClass"}),
            _event("someone-else", f"{run_id}-c"),
            _event(producer, f"{run_id}-d", label="classification=SECRET"),
        ]
        response = httpx.post(url, json=bad, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 422
        rejected = response.json()["rejected"]
        assert [(r["index"], r["field"]) for r in rejected] == [(1, "class"), (2, "source"), (3, "label")]
        assert rejected[0]["value"] == "NoSuchClass"
        good = {"events": [_event(producer, f"{run_id}-a"), _event(producer, f"{run_id}-b", version=2)]}
        response = httpx.post(url, json=good, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 202, response.text
        body = response.json()
        batch = body.pop("batch")
        assert body == {
            "accepted": 2,
            "rejected": [],
            "topics": [prefix + producer],
            "status": f"/ingest/batches/{batch}",
        }
        assert response.headers["location"] == f"/ingest/batches/{batch}"
        single = httpx.post(
            url, json=_event(producer, f"{run_id}-c"), headers={"Authorization": f"Bearer {token}"}
        )
        assert single.status_code == 202
    records = asyncio.run(_read(settings.kafka_bootstrap, prefix + producer, 3))
    assert sorted(r.key.decode() for r in records) == [f"{run_id}-a", f"{run_id}-b", f"{run_id}-c"]
    assert {json.loads(r.value)["subject"] for r in records} == {f"{run_id}-a", f"{run_id}-b", f"{run_id}-c"}
    # Each record carries the caller's rights, which the worker holds the write to.
    for record in records:
        headers = dict(record.headers)
        assert json.loads(headers["Hub-Writer-Authorizations"]) == {
            "clearance": "OFFICIAL",
            "tokens": [f"org={run_id}-org", f"role=producer:{producer}"],
        }
        assert headers["Hub-Writer-Declassify"] == b"false" and headers["Hub-Writer-Subject"] == b"feeder"


def test_audit_line_for_every_operation(api: Api) -> None:
    from structlog.testing import capture_logs

    token = api.token("auditor", "ngt", "OFFICIAL")
    with capture_logs() as logs:
        body = api.query(
            "query Probe($m: ID!) { object(mrid: $m) { mrid } }",
            {"m": "no-such"},
            token=token,
            operation_name="Probe",
        )
        _post(api, token, "{ broken")
    assert body == {"data": {"object": None}}
    lines = [e for e in logs if e["event"] == "graphql operation"]
    probe = next(e for e in lines if e["operation"] == "Probe")
    assert probe["subject"] == "auditor" and probe["org"] == "ngt"
    assert probe["variables_hash"] and "no-such" not in json.dumps(probe)
    assert probe["rows"] == 0 and probe["withheld"] == 0 and probe["duration_ms"] >= 0
    assert probe["outcome"] == "ok"
    assert any(e["outcome"] == "error" and e["subject"] == "auditor" for e in lines)
