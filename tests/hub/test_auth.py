"""Bearer-token authentication: verification failures, claims to caller, key sources, dev issuer, CLI."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.auth import (
    DEMO_USERS,
    AuthConfigError,
    Authenticator,
    AuthError,
    DevIssuer,
    dev_tokens,
    mint_token,
)
from hub.caller import ANONYMOUS, Caller
from hub.labels import Authorizations, evaluate, parse
from hub.settings import Settings

ISSUER = "https://login.example.test/realms/energy"
AUDIENCE = "energy-hub"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "dev_mode": True,
        "jwks_file": None,
        "jwks_url": None,
        "anonymous_access": True,
        "oidc_leeway_s": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


class KeyPair:
    """A signing key and its public JWK, the way an identity provider holds them."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        self.alg = "RS256" if kind == "rsa" else "ES256"
        if kind == "rsa":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algo: Any = jwt.algorithms.RSAAlgorithm
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            algo = jwt.algorithms.ECAlgorithm
        self.jwk = json.loads(algo.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, alg=self.alg, use="sig")

    def sign(self, claims: dict[str, Any], *, kid: str | None = "same", alg: str | None = None) -> str:
        headers = {} if kid is None else {"kid": self.kid if kid == "same" else kid}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "clearance": "official",
        "org": "ngt",
        "roles": ["planner", "operator"],
        "groups": ["grid-planning"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def rsa_key() -> KeyPair:
    return KeyPair("rsa", "rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> KeyPair:
    return KeyPair("ec", "ec-1")


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key: KeyPair, ec_key: KeyPair) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk, ec_key.jwk]}))
    return path


@pytest.fixture
def auth(tmp_path: Path, jwks_file: Path) -> Authenticator:
    return Authenticator(make_settings(tmp_path, jwks_file=jwks_file))


def reason(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthError) as info:
        auth.verify(token)
    return info.value.reason


# ---------------------------------------------------------------------------------- good tokens


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_good_token_gives_the_right_caller(
    auth: Authenticator, rsa_key: KeyPair, ec_key: KeyPair, kind: str
) -> None:
    key = rsa_key if kind == "rsa" else ec_key
    caller = auth.verify(key.sign(claims()))
    assert caller == Caller(
        subject="alice",
        org="ngt",
        clearance="OFFICIAL",
        roles=("planner", "operator"),
        groups=("grid-planning",),
        anonymous=False,
        issuer=ISSUER,
    )
    assert caller.authorizations == Authorizations(
        "OFFICIAL",
        frozenset({"org=ngt", "role=planner", "role=operator", "group=grid-planning"}),
    )
    assert evaluate(parse("org=ngt&role=planner&classification=OFFICIAL"), caller.authorizations)
    assert not evaluate(parse("classification=OFFICIAL-SENSITIVE"), caller.authorizations)
    assert not caller.is_admin


def test_single_key_set_needs_no_kid(tmp_path: Path, ec_key: KeyPair) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"keys": [ec_key.jwk]}))
    auth = Authenticator(make_settings(tmp_path, jwks_file=path))
    assert auth.verify(ec_key.sign(claims(), kid=None)).subject == "alice"


def test_missing_kid_is_ambiguous_with_several_keys(auth: Authenticator, rsa_key: KeyPair) -> None:
    assert "no 'kid'" in reason(auth, rsa_key.sign(claims(), kid=None))


def test_claim_names_from_settings(tmp_path: Path, jwks_file: Path, rsa_key: KeyPair) -> None:
    auth = Authenticator(
        make_settings(
            tmp_path,
            jwks_file=jwks_file,
            claim_roles="realm_access.roles",
            claim_org="organisation",
            claim_clearance="sec.level",
            claim_groups="teams",
        )
    )
    token = rsa_key.sign(
        claims(
            roles=None,
            org=None,
            clearance=None,
            groups=None,
            organisation="nggt",
            realm_access={"roles": ["admin"]},
            sec={"level": "SECRET"},
            teams="gas-ops  on-call",
        )
    )
    caller = auth.verify(token)
    assert (caller.org, caller.clearance, caller.roles, caller.groups) == (
        "nggt",
        "SECRET",
        ("admin",),
        ("gas-ops", "on-call"),
    )
    assert caller.is_admin


def test_missing_clearance_claim_means_public(auth: Authenticator, rsa_key: KeyPair) -> None:
    caller = auth.verify(rsa_key.sign(claims(clearance=None, roles=None, groups=None)))
    assert caller.clearance == "PUBLIC"
    assert caller.roles == () and caller.groups == ()
    assert caller.authorizations == Authorizations("PUBLIC", frozenset({"org=ngt"}))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"clearance": "TOP-SECRET"}, "claim 'clearance' has unknown level 'TOP-SECRET'"),
        ({"roles": ["a", 3]}, "claim 'roles' must be a list of strings"),
        ({"org": ["ngt"]}, "claim 'org' must be a non-empty string"),
        ({"sub": ""}, "claim 'sub'"),
    ],
)
def test_bad_claim_values_are_rejected(
    auth: Authenticator, rsa_key: KeyPair, overrides: dict[str, Any], fragment: str
) -> None:
    assert fragment in reason(auth, rsa_key.sign(claims(**overrides)))


# ----------------------------------------------------------------------------------- bad tokens


def test_expired_token(auth: Authenticator, rsa_key: KeyPair) -> None:
    now = int(time.time())
    assert reason(auth, rsa_key.sign(claims(iat=now - 3600, exp=now - 120))) == "token has expired"


def test_leeway_tolerates_small_clock_skew(tmp_path: Path, jwks_file: Path, rsa_key: KeyPair) -> None:
    token = rsa_key.sign(claims(exp=int(time.time()) - 5))
    assert Authenticator(make_settings(tmp_path, jwks_file=jwks_file)).verify(token).subject == "alice"
    strict = Authenticator(make_settings(tmp_path, jwks_file=jwks_file, oidc_leeway_s=0))
    assert reason(strict, token) == "token has expired"


def test_not_yet_valid_token(auth: Authenticator, rsa_key: KeyPair) -> None:
    assert reason(auth, rsa_key.sign(claims(nbf=int(time.time()) + 3600))) == "token is not yet valid"


def test_wrong_audience(auth: Authenticator, rsa_key: KeyPair) -> None:
    assert reason(auth, rsa_key.sign(claims(aud="another-api"))) == "token audience is not 'energy-hub'"


def test_wrong_issuer(auth: Authenticator, ec_key: KeyPair) -> None:
    assert reason(auth, ec_key.sign(claims(iss="https://evil.test"))) == f"token issuer is not {ISSUER!r}"


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss"])
def test_required_claims(auth: Authenticator, rsa_key: KeyPair, claim: str) -> None:
    assert reason(auth, rsa_key.sign(claims(**{claim: None}))) == f"token lacks the {claim!r} claim"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signed_by_another_key_with_a_known_kid(auth: Authenticator, kind: str) -> None:
    impostor = KeyPair(kind, "rsa-1" if kind == "rsa" else "ec-1")
    assert reason(auth, impostor.sign(claims())) == "token signature is invalid"


def test_tampered_payload(auth: Authenticator, rsa_key: KeyPair) -> None:
    header, _, signature = rsa_key.sign(claims()).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(clearance="SECRET")).encode()).decode()
    assert reason(auth, f"{header}.{forged}.{signature}") == "token signature is invalid"


def test_unknown_kid(auth: Authenticator, rsa_key: KeyPair) -> None:
    token = rsa_key.sign(claims(), kid="rotated-away")
    assert reason(auth, token) == "token signed with unknown key id 'rotated-away'"


def test_algorithm_must_match_the_key(auth: Authenticator, rsa_key: KeyPair) -> None:
    # An RSA key's token relabelled as ES256, an HMAC token keyed with public material, an unsigned token.
    other = KeyPair("ec", "rsa-1")
    assert "does not match its key" in reason(auth, other.sign(claims(), kid="rsa-1"))
    hmac = jwt.encode(claims(), "x" * 32, algorithm="HS256", headers={"kid": "rsa-1"})
    assert "'HS256' is not accepted" in reason(auth, hmac)
    unsigned = jwt.encode(claims(), "", algorithm="none", headers={"kid": "rsa-1"})
    assert "'none' is not accepted" in reason(auth, unsigned)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"])
def test_malformed_token(auth: Authenticator, garbage: str) -> None:
    assert reason(auth, garbage) == "token is malformed"


# ---------------------------------------------------------------------------- headers, anonymous


def test_no_token_is_anonymous_public(auth: Authenticator) -> None:
    for header in (None, "", "   "):
        caller = auth.authenticate(header)
        assert caller is ANONYMOUS
    assert ANONYMOUS.anonymous and ANONYMOUS.clearance == "PUBLIC"
    assert ANONYMOUS.authorizations == Authorizations("PUBLIC", frozenset())
    assert evaluate(parse("classification=PUBLIC"), ANONYMOUS.authorizations)
    assert not evaluate(parse("classification=OFFICIAL|org=public"), ANONYMOUS.authorizations)


def test_no_token_rejected_when_anonymous_access_is_off(tmp_path: Path, jwks_file: Path) -> None:
    auth = Authenticator(make_settings(tmp_path, jwks_file=jwks_file, anonymous_access=False))
    with pytest.raises(AuthError, match="authentication required"):
        auth.authenticate(None)
    with pytest.raises(AuthError, match="authentication required"):
        auth.authenticate_params({})


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "Token abc"])
def test_authorization_header_must_be_bearer(auth: Authenticator, header: str) -> None:
    with pytest.raises(AuthError, match="must be 'Bearer <token>'"):
        auth.authenticate(header)


def test_bearer_scheme_is_case_insensitive(auth: Authenticator, rsa_key: KeyPair) -> None:
    assert auth.authenticate(f"bearer {rsa_key.sign(claims())}").subject == "alice"


def test_websocket_connection_params(auth: Authenticator, ec_key: KeyPair) -> None:
    token = ec_key.sign(claims(sub="bob"))
    assert auth.authenticate_params({"Authorization": f"Bearer {token}"}).subject == "bob"
    assert auth.authenticate_params({"authorization": f"Bearer {token}"}).subject == "bob"
    assert auth.authenticate_params(None) is ANONYMOUS
    assert auth.authenticate_params({"other": 1}) is ANONYMOUS
    with pytest.raises(AuthError, match="must be a string"):
        auth.authenticate_params({"Authorization": 42})
    with pytest.raises(AuthError, match="audience"):
        auth.authenticate_params({"Authorization": f"Bearer {ec_key.sign(claims(aud='x'))}"})


# ----------------------------------------------------------------------------------- key sources


def test_jwks_file_is_reread_after_rotation(tmp_path: Path, jwks_file: Path, rsa_key: KeyPair) -> None:
    auth = Authenticator(make_settings(tmp_path, jwks_file=jwks_file))
    assert auth.verify(rsa_key.sign(claims())).subject == "alice"
    new = KeyPair("rsa", "rsa-2")
    jwks_file.write_text(json.dumps({"keys": [new.jwk]}))
    # Guarantee a different mtime even on coarse-grained file systems.
    later = time.time() + 5
    os.utime(jwks_file, (later, later))
    assert auth.verify(new.sign(claims(sub="carol"))).subject == "carol"
    assert "unknown key id 'rsa-1'" in reason(auth, rsa_key.sign(claims()))


def counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the signature checks the authenticator makes (PyJWT's own ``decode`` still does each)."""
    checked: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr("hub.auth.jwt.decode", decode)
    return checked


def test_a_verified_token_is_believed_again_without_a_signature_check(
    auth: Authenticator, rsa_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = counting_decode(monkeypatch)
    token = rsa_key.sign(claims())
    first = auth.verify(token)
    assert auth.verify(token) == first and auth.authenticate(f"Bearer {token}") == first
    assert len(checked) == 1
    # Any other text is checked afresh: the same claims with one byte of the signature changed are refused.
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    assert reason(auth, forged) == "token signature is invalid"
    assert len(checked) == 2


def test_a_believed_token_stops_when_its_key_leaves_the_key_set(
    tmp_path: Path, jwks_file: Path, rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    auth = Authenticator(make_settings(tmp_path, jwks_file=jwks_file))
    token = rsa_key.sign(claims())
    assert auth.verify(token).subject == "alice"
    jwks_file.write_text(json.dumps({"keys": [ec_key.jwk]}))
    later = time.time() + 5
    os.utime(jwks_file, (later, later))
    assert "unknown key id 'rsa-1'" in reason(auth, token)


def test_a_believed_token_stops_at_its_expiry(tmp_path: Path, jwks_file: Path, rsa_key: KeyPair) -> None:
    auth = Authenticator(make_settings(tmp_path, jwks_file=jwks_file, oidc_leeway_s=0))
    token = rsa_key.sign(claims(exp=int(time.time()) + 2))
    assert auth.verify(token).subject == "alice"
    time.sleep(3.1)
    assert reason(auth, token) == "token has expired"


def test_believed_tokens_are_bounded_and_can_be_turned_off(
    tmp_path: Path, jwks_file: Path, rsa_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = counting_decode(monkeypatch)
    small = Authenticator(make_settings(tmp_path, jwks_file=jwks_file, token_cache_size=2))
    tokens = [rsa_key.sign(claims(sub=name)) for name in ("a", "b", "c")]
    for token in tokens:
        small.verify(token)
    small.verify(tokens[2])  # still known
    small.verify(tokens[0])  # the least recently used, let go when "c" came
    assert len(checked) == 4
    off = Authenticator(make_settings(tmp_path, jwks_file=jwks_file, token_cache_s=0))
    off.verify(tokens[0])
    off.verify(tokens[0])
    assert len(checked) == 6


def test_jwks_file_problems_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"jwks_file = .*missing\.json"):
        Authenticator(make_settings(tmp_path, jwks_file=tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AuthConfigError, match="not valid JSON"):
        Authenticator(make_settings(tmp_path, jwks_file=bad))
    bad.write_text('{"kty": "RSA"}')
    with pytest.raises(AuthConfigError, match="not a JWKS document"):
        Authenticator(make_settings(tmp_path, jwks_file=bad))


def test_no_key_source_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="HUB_JWKS_FILE"):
        Authenticator(make_settings(tmp_path, dev_mode=False))


@pytest.fixture
def jwks_server(rsa_key: KeyPair, ec_key: KeyPair) -> Iterator[tuple[str, list[int]]]:
    hits: list[int] = []
    body = json.dumps({"keys": [rsa_key.jwk, ec_key.jwk]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs", hits
    finally:
        server.shutdown()
        server.server_close()


def test_jwks_url_is_fetched_once_and_cached(
    tmp_path: Path, jwks_server: tuple[str, list[int]], rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    url, hits = jwks_server
    auth = Authenticator(make_settings(tmp_path, jwks_url=url, dev_mode=False))
    assert auth.verify(rsa_key.sign(claims())).subject == "alice"
    assert auth.verify(ec_key.sign(claims(sub="bob"))).subject == "bob"
    assert len(hits) == 1
    assert "signature is invalid" in reason(auth, KeyPair("rsa", "rsa-1").sign(claims()))


def test_unreachable_jwks_url(tmp_path: Path, rsa_key: KeyPair) -> None:
    auth = Authenticator(make_settings(tmp_path, jwks_url="http://127.0.0.1:9/certs", dev_mode=False))
    assert reason(auth, rsa_key.sign(claims())) == "signing keys are unavailable"


# ------------------------------------------------------------------------------------ dev issuer


def test_dev_issuer_creates_keys_once_and_verifies_its_tokens(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    auth = Authenticator(settings)
    issuer_dir = settings.state_dir / "dev-issuer"
    assert stat.S_IMODE((issuer_dir / "private.pem").stat().st_mode) == 0o600
    kid = json.loads((issuer_dir / "jwks.json").read_text())["keys"][0]["kid"]
    token = mint_token("dana", "nggt", "official", ["planner"], ["gas-planning"], 600, settings=settings)
    assert jwt.get_unverified_header(token)["kid"] == kid
    caller = auth.verify(token)
    assert (caller.subject, caller.org, caller.clearance, caller.roles, caller.groups) == (
        "dana",
        "nggt",
        "OFFICIAL",
        ("planner",),
        ("gas-planning",),
    )
    # A second issuer on the same state folder (another process) reuses the key.
    DevIssuer(settings).ensure()
    assert json.loads((issuer_dir / "jwks.json").read_text())["keys"][0]["kid"] == kid
    assert Authenticator(settings).verify(token).subject == "dana"


def test_dev_tokens_expire(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, oidc_leeway_s=0)
    token = mint_token("eve", None, "PUBLIC", ttl=1, settings=settings)
    time.sleep(2.1)
    assert reason(Authenticator(settings), token) == "token has expired"


def test_mint_rejects_bad_input(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match="'TOP'"):
        mint_token("x", "ngt", "TOP", settings=settings)
    with pytest.raises(ValueError, match="user"):
        mint_token("", "ngt", "PUBLIC", settings=settings)
    with pytest.raises(ValueError, match="ttl"):
        mint_token("x", "ngt", "PUBLIC", ttl=0, settings=settings)


def test_demo_users(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    auth = Authenticator(settings)
    listed = dev_tokens(settings)
    assert [d["user"] for d in listed] == [u.user for u in DEMO_USERS]
    callers = {d["user"]: auth.verify(d["token"]) for d in listed}
    assert {c.clearance for c in callers.values()} == {"PUBLIC", "OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"}
    admins = [u for u, c in callers.items() if c.is_admin]
    assert len(admins) == 1 and callers[admins[0]].clearance == "SECRET"
    assert evaluate(parse("role=admin"), callers[admins[0]].authorizations)
    ops = callers["ops.engineer"]
    assert evaluate(parse("classification=OFFICIAL-SENSITIVE"), ops.authorizations)
    assert not evaluate(parse("classification=OFFICIAL"), callers["public.analyst"].authorizations)
