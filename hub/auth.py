"""Authentication: OIDC bearer tokens (RS256/ES256 JWTs) turned into a :class:`~hub.caller.Caller`.

Signing keys come from a JWKS file (``HUB_JWKS_FILE``), a JWKS URL (``HUB_JWKS_URL``) or, in development
mode with neither configured, from a development issuer whose RSA key lives in the state folder and which
mints tokens for the demo users (``hub token``, ``GET /dev/tokens``).

Every failure is an :class:`AuthError` whose reason is safe to show the client: the API answers 401 with
that reason and no data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub import audit
from hub.caller import ANONYMOUS, Caller
from hub.filelock import locked
from hub.labels import canonical_level
from hub.settings import Settings, get_settings

log = structlog.get_logger(__name__)

ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
DEV_ISSUER_DIR = "dev-issuer"


class AuthError(Exception):
    """Authentication failed; ``reason`` is meant for the client (401 body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthConfigError(ValueError):
    """The auth settings cannot work; the message names the setting and value."""


# ------------------------------------------------------------------------------------------ key sources


class KeySource(Protocol):
    def key(self, kid: str | None) -> jwt.PyJWK: ...


def _pick(keys: list[jwt.PyJWK], kid: str | None, where: str) -> jwt.PyJWK | None:
    signing = [k for k in keys if k.public_key_use in (None, "sig")]
    if kid is None:
        # Without a kid the choice is only unambiguous when the set holds exactly one key.
        if len(signing) == 1:
            return signing[0]
        raise AuthError(f"token has no 'kid' header and {where} holds {len(signing)} signing keys")
    return next((k for k in signing if k.key_id == kid), None)


def _load_jwks(data: object, where: str) -> list[jwt.PyJWK]:
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise AuthConfigError(f"{where} is not a JWKS document (an object with a 'keys' list)")
    keys: list[jwt.PyJWK] = []
    for i, entry in enumerate(data["keys"]):
        try:
            keys.append(jwt.PyJWK.from_dict(entry))
        except jwt.PyJWTError as exc:
            # Skip keys of types we do not use (e.g. encryption keys) but say so.
            log.warning("ignoring unusable JWKS entry", source=where, index=i, error=str(exc))
    return keys


class FileKeySource:
    """A JWKS file, re-read when it changes on disk (key rotation without restart)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[jwt.PyJWK] = []

    def keys(self) -> list[jwt.PyJWK]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise AuthConfigError(f"jwks_file = {str(self.path)!r} cannot be read: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise AuthConfigError(
                        f"jwks_file = {str(self.path)!r} is not valid JSON: {exc}"
                    ) from None
                self._keys = _load_jwks(data, f"jwks_file {str(self.path)!r}")
                self._stamp = stamp
            return self._keys

    def key(self, kid: str | None) -> jwt.PyJWK:
        found = _pick(self.keys(), kid, "the key set")
        if found is None:
            raise AuthError(f"token signed with unknown key id {kid!r}")
        return found


class UrlKeySource:
    """A JWKS URL, cached for ``jwks_cache_s``; an unknown kid triggers one refetch (rotation)."""

    def __init__(self, url: str, lifespan_s: float) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=max(lifespan_s, 1.0), timeout=10)

    def key(self, kid: str | None) -> jwt.PyJWK:
        try:
            if kid is None:
                found = _pick(self._client.get_signing_keys(), None, "the key set")
                assert found is not None
                return found
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.error("cannot fetch JWKS", url=self.url, error=str(exc))
            raise AuthError("signing keys are unavailable") from None
        except jwt.PyJWKClientError:
            raise AuthError(f"token signed with unknown key id {kid!r}") from None


# ---------------------------------------------------------------------------------------- dev issuer


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    # RFC 7638: the SHA-256 of the required members in lexicographic order, no whitespace.
    required = {k: jwk[k] for k in ("e", "kty", "n")}
    text = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(text.encode("utf-8")).digest())


class DevIssuer:
    """Development token issuer: an RSA key created on first use in ``<state_dir>/dev-issuer``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = Path(settings.state_dir) / DEV_ISSUER_DIR
        self.private_path = self.dir / "private.pem"
        self.jwks_path = self.dir / "jwks.json"
        self._private: rsa.RSAPrivateKey | None = None
        self._kid = ""

    def ensure(self) -> None:
        """Create the key pair once; a lock keeps two processes from creating different keys."""
        if self.private_path.exists() and self.jwks_path.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / ".lock"):
            if self.private_path.exists() and self.jwks_path.exists():
                return
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=_thumbprint(jwk), alg="RS256", use="sig")
            _write_atomic(self.private_path, pem, mode=0o600)
            _write_atomic(self.jwks_path, json.dumps({"keys": [jwk]}, indent=2).encode(), mode=0o644)
            log.info("created development token issuer", path=str(self.dir))

    def _load(self) -> tuple[rsa.RSAPrivateKey, str]:
        if self._private is None:
            self.ensure()
            key = serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise AuthConfigError(f"{self.private_path} does not hold an RSA private key")
            jwks = json.loads(self.jwks_path.read_text(encoding="utf-8"))
            self._private, self._kid = key, jwks["keys"][0]["kid"]
        return self._private, self._kid

    def key_source(self) -> FileKeySource:
        self.ensure()
        return FileKeySource(self.jwks_path)

    def mint(
        self,
        user: str,
        org: str | None,
        clearance: str,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        ttl: float = 8 * 3600,
    ) -> str:
        if not user:
            raise ValueError("user must not be empty")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        level = canonical_level(clearance)
        key, kid = self._load()
        s = self.settings
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": s.oidc_issuer,
            "aud": s.oidc_audience,
            "sub": user,
            "preferred_username": user,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": uuid.uuid4().hex,
        }
        _set_claim(claims, s.claim_clearance, level)
        if org:
            _set_claim(claims, s.claim_org, org)
        _set_claim(claims, s.claim_roles, list(roles))
        _set_claim(claims, s.claim_groups, list(groups))
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DemoUser:
    user: str
    org: str
    clearance: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    description: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "ops.engineer",
        "neso",
        "OFFICIAL-SENSITIVE",
        ("operator",),
        ("control-room",),
        "control engineer at the electricity system operator",
    ),
    DemoUser(
        "gas.planner",
        "nggt",
        "OFFICIAL",
        ("planner",),
        ("gas-planning",),
        "network planner at the gas transmission owner",
    ),
    DemoUser(
        "grid.planner",
        "ngt",
        "OFFICIAL",
        ("planner",),
        ("grid-planning",),
        "network planner at the electricity transmission owner",
    ),
    DemoUser(
        "grid.officer",
        "ngt",
        "OFFICIAL",
        ("data-officer",),
        (),
        "data officer at the electricity transmission owner: decides access requests for its data products",
    ),
    DemoUser(
        "gas.officer",
        "nggt",
        "OFFICIAL",
        ("data-officer",),
        (),
        "data officer at the gas transmission owner: decides access requests for its data products",
    ),
    DemoUser(
        "public.analyst", "public", "PUBLIC", ("analyst",), (), "analyst with access to public data only"
    ),
    DemoUser(
        "hub.admin",
        "hub",
        "SECRET",
        ("admin",),
        ("hub-admins",),
        "hub administrator: sees only what its clearance, org, role and group satisfy, "
        "e.g. stubs (role=admin); no superuser",
    ),
)


def mint_token(
    user: str,
    org: str | None,
    clearance: str,
    roles: Iterable[str] = (),
    groups: Iterable[str] = (),
    ttl: float = 8 * 3600,
    *,
    settings: Settings | None = None,
) -> str:
    """A token from the development issuer (created on first use)."""
    return DevIssuer(settings or get_settings()).mint(user, org, clearance, roles, groups, ttl)


def dev_tokens(settings: Settings | None = None, ttl: float = 8 * 3600) -> list[dict[str, Any]]:
    """Every demo user with a fresh token (for ``GET /dev/tokens``; callers must check ``dev_mode``)."""
    issuer = DevIssuer(settings or get_settings())
    return [
        {
            "user": u.user,
            "org": u.org,
            "clearance": u.clearance,
            "roles": list(u.roles),
            "groups": list(u.groups),
            "description": u.description,
            "token": issuer.mint(u.user, u.org, u.clearance, u.roles, u.groups, ttl),
        }
        for u in DEMO_USERS
    ]


# ------------------------------------------------------------------------------------------- claims


def _set_claim(claims: dict[str, Any], name: str, value: object) -> None:
    # Dotted names address nested claims (e.g. Keycloak's "realm_access.roles").
    *parents, leaf = name.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _get_claim(claims: Mapping[str, Any], name: str) -> object:
    node: object = claims
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _string_list(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _get_claim(claims, name)
    if value is None:
        return ()
    if isinstance(value, str):
        # Some issuers send roles as one space- or comma-separated string (like OAuth "scope").
        return tuple(dict.fromkeys(p for p in value.replace(",", " ").split() if p))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(v for v in value if v))
    raise AuthError(f"claim {name!r} must be a list of strings, got {value!r}")


def _expiry(claims: Mapping[str, Any]) -> float | None:
    # The verifier requires a numeric ``exp``; claims given without one (tests, tools) have no expiry.
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _issuer(claims: Mapping[str, Any]) -> str | None:
    # The verifier requires ``iss`` (and checks it); claims given without one (tests, tools) have none.
    iss = claims.get("iss")
    return iss if isinstance(iss, str) and iss else None


def caller_from_claims(claims: Mapping[str, Any], settings: Settings) -> Caller:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("claim 'sub' must be a non-empty string")
    raw_level = _get_claim(claims, settings.claim_clearance)
    try:
        # An authenticated caller without a clearance claim is treated as cleared for PUBLIC only.
        clearance = "PUBLIC" if raw_level is None else canonical_level(str(raw_level))
    except ValueError:
        raise AuthError(f"claim {settings.claim_clearance!r} has unknown level {raw_level!r}") from None
    org = _get_claim(claims, settings.claim_org)
    if org is not None and (not isinstance(org, str) or not org):
        raise AuthError(f"claim {settings.claim_org!r} must be a non-empty string, got {org!r}")
    return Caller(
        subject=subject,
        org=org,
        clearance=clearance,
        roles=_string_list(claims, settings.claim_roles),
        groups=_string_list(claims, settings.claim_groups),
        anonymous=False,
        issuer=_issuer(claims),
        expires_at=_expiry(claims),
    )


# ------------------------------------------------------------------------------------ authenticator


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token verified earlier: its caller, the key that signed it, and until when it may be believed."""

    caller: Caller
    kid: str | None
    key: jwt.PyJWK
    until: float  # wall-clock seconds


class VerifiedTokens:
    """Tokens verified recently, so that a client sending the same token on every request pays the
    signature check once per ``lifespan_s`` rather than per request (about a third of a millisecond of
    an API process's time each, a few per cent of a small query's).

    Keyed by the whole token text, so any other text (one changed byte of its signature) is verified
    afresh; only accepted tokens are kept (every refusal is decided, and audited, anew). An entry is
    believed until the earliest of its expiry as the verifier reads it (``exp`` plus the leeway), its
    lifespan, and the moment its signing key is no longer the one the key set gives for its ``kid``
    (asked on each use: a rotated-out key stops its tokens at once, as without the cache). Bounded to
    ``size`` entries, least recently used out first."""

    def __init__(self, lifespan_s: float, size: int) -> None:
        self.lifespan_s = lifespan_s
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Verified] = OrderedDict()

    def get(self, token: str, keys: KeySource) -> Caller | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if time.time() > entry.until:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
        try:
            current = keys.key(entry.kid)
        except (AuthError, AuthConfigError):
            current = None
        if current is not entry.key:
            with self._lock:
                self._entries.pop(token, None)
            return None
        return entry.caller

    def put(self, token: str, caller: Caller, kid: str | None, key: jwt.PyJWK, leeway_s: float) -> None:
        if self.lifespan_s <= 0 or self.size <= 0:
            return
        until = time.time() + self.lifespan_s
        if caller.expires_at is not None:
            until = min(until, caller.expires_at + leeway_s)
        with self._lock:
            self._entries[token] = _Verified(caller, kid, key, until)
            self._entries.move_to_end(token)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class Authenticator:
    def __init__(self, settings: Settings, keys: KeySource | None = None) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else self._key_source(settings)
        self.verified = VerifiedTokens(settings.token_cache_s, settings.token_cache_size)
        if isinstance(self.keys, FileKeySource):
            # Fail at start-up, naming the setting, rather than on the first request.
            self.keys.keys()

    @staticmethod
    def _key_source(settings: Settings) -> KeySource:
        if settings.jwks_file is not None:
            return FileKeySource(settings.jwks_file)
        if settings.jwks_url:
            return UrlKeySource(settings.jwks_url, settings.jwks_cache_s)
        if settings.dev_mode:
            return DevIssuer(settings).key_source()
        raise AuthConfigError(
            "no token signing keys: set jwks_file (HUB_JWKS_FILE) or jwks_url (HUB_JWKS_URL), "
            "or enable dev_mode for the development issuer"
        )

    def verify(self, token: str) -> Caller:
        """Verify a bearer token and return its caller; :class:`AuthError` on any problem."""
        known = self.verified.get(token, self.keys)
        if known is not None:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("token is malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError(f"token algorithm {alg!r} is not accepted (accepted: {', '.join(ALGORITHMS)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("token 'kid' header must be a string")
        try:
            key = self.keys.key(kid)
        except AuthConfigError as exc:
            log.error("token signing keys unavailable", error=str(exc))
            raise AuthError("signing keys are unavailable") from None
        # The key decides the algorithm, so a token cannot pick a weaker or mismatched one.
        if key.algorithm_name != alg:
            raise AuthError(f"token algorithm {alg!r} does not match its key ({key.algorithm_name})")
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.oidc_audience,
                issuer=s.oidc_issuer,
                leeway=s.oidc_leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not yet valid") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {s.oidc_audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {s.oidc_issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidIssuedAtError:
            raise AuthError("token issued-at time is invalid") from None
        except jwt.DecodeError:
            raise AuthError("token is malformed") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"token is invalid: {exc}") from None
        caller = caller_from_claims(claims, s)
        self.verified.put(token, caller, kid, key, s.oidc_leeway_s)
        return caller

    def anonymous(self) -> Caller:
        if not self.settings.anonymous_access:
            raise AuthError("authentication required")
        return ANONYMOUS

    def authenticate(self, authorization: str | None) -> Caller:
        """Caller from an ``Authorization`` header value (``None`` or empty: anonymous rules)."""
        if authorization is None or not authorization.strip():
            return self.anonymous()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return self.verify(token)

    def authenticate_params(self, params: Mapping[str, object] | None) -> Caller:
        """Caller from websocket connection params (``{"Authorization": "Bearer ..."}``)."""
        if not params:
            return self.anonymous()
        if not isinstance(params, Mapping):
            raise AuthError("connection params must be an object")
        value = next(
            (v for k, v in params.items() if isinstance(k, str) and k.lower() == "authorization"), None
        )
        if value is not None and not isinstance(value, str):
            raise AuthError("connection param 'Authorization' must be a string")
        return self.authenticate(value)


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def unverified_subject(token: str | None) -> str | None:
    """The ``sub`` a refused token claims, read without verifying it (for the audit trail only)."""
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    # Bounded: the claim is whatever the sender wrote.
    return sub[:256] if isinstance(sub, str) and sub else None


def audit_refusal(exc: AuthError, authorization: str | None, *, client: str | None, channel: str) -> None:
    """Record a refused token (or a refused anonymous request): the subject it claims, marked
    unverified, the reason and the client address."""
    audit.record(
        "token.refused",
        subject=unverified_subject(_bearer(authorization)),
        subject_verified=False,
        reason=exc.reason,
        client=client,
        channel=channel,
    )
