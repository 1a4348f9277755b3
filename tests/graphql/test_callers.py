"""The API's one caller dependency (hubql.callers): HTTP answers and the audit of refusals, per channel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hubql.callers import RequestCaller, identify
from structlog.testing import capture_logs

from hub.auth import Authenticator, AuthError
from hub.caller import ANONYMOUS
from hub.settings import Settings

ISSUER = "https://login.example.test/realms/energy"
AUDIENCE = "energy-hub"
KID = "rsa-1"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def auth(tmp_path: Path, key: rsa.RSAPrivateKey) -> Authenticator:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="RS256", use="sig")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings = Settings(
        state_dir=tmp_path / "state",
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        dev_mode=True,
        jwks_file=jwks,
        jwks_url=None,
        anonymous_access=True,
        oidc_leeway_s=30.0,
    )
    return Authenticator(settings)


def sign(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "clearance": "official",
        "org": "ngt",
        "roles": ["planner", "operator"],
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def test_http_dependency(auth: Authenticator, key: rsa.RSAPrivateKey) -> None:
    api = FastAPI()
    api.state.authenticator = auth

    @api.get("/me")
    def me(caller: RequestCaller) -> dict[str, Any]:
        assert caller is not None
        return {
            "subject": caller.subject,
            "clearance": caller.clearance,
            "anonymous": caller.anonymous,
            "roles": list(caller.roles),
        }

    client = TestClient(api)
    ok = client.get("/me", headers={"Authorization": f"Bearer {sign(key)}"})
    assert ok.status_code == 200
    assert ok.json() == {
        "subject": "alice",
        "clearance": "OFFICIAL",
        "anonymous": False,
        "roles": ["planner", "operator"],
    }
    assert client.get("/me").json()["anonymous"] is True
    now = int(time.time())
    with capture_logs() as logs:
        bad = client.get("/me", headers={"Authorization": f"Bearer {sign(key, exp=now - 999)}"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "token has expired"}
    assert bad.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    [refusal] = [entry for entry in logs if entry.get("action") == "token.refused"]
    assert (refusal["subject"], refusal["subject_verified"], refusal["channel"]) == ("alice", False, "http")
    assert refusal["reason"] == "token has expired"


def test_websocket_connection_params_and_their_refusals(auth: Authenticator, key: rsa.RSAPrivateKey) -> None:
    token = sign(key, sub="bob")
    caller = identify(auth, {"Authorization": f"Bearer {token}"}, channel="websocket", client="192.0.2.1")
    assert caller.subject == "bob"
    assert identify(auth, {}, channel="websocket", client=None) is ANONYMOUS
    with capture_logs() as logs:
        with pytest.raises(AuthError, match="payload must be an object"):
            identify(auth, ["Bearer x"], channel="websocket", client="192.0.2.1")
        with pytest.raises(AuthError, match="audience"):
            identify(
                auth, {"authorization": f"Bearer {sign(key, aud='x')}"}, channel="websocket", client=None
            )
    refusals = [entry for entry in logs if entry.get("action") == "token.refused"]
    assert [(r["channel"], r["subject"], r["client"]) for r in refusals] == [
        ("websocket", None, "192.0.2.1"),
        ("websocket", "alice", None),
    ]
