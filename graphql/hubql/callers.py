"""Who is calling: the one place where the API turns the credentials a request presents into a caller.

Every way into the API names its caller through :func:`identify`, so a token is verified, and a refusal
audited (``token.refused``, with the subject the token claims, marked unverified), in one place:

- HTTP, GraphQL queries and ``POST /ingest`` alike: the ``Authorization`` header, through the FastAPI
  dependency :data:`RequestCaller`; a refusal is answered 401 with the reason and nothing else.
- the CKAN API (:mod:`hubql.ckan`): as HTTP, and also the bare token with no scheme, which is how CKAN
  clients send their API token (:func:`http_caller` with ``bare_token=True``).
- websocket: the token arrives in the ``connection_init`` message, after the connection's dependencies
  have run, so :data:`RequestCaller` is ``None`` there and the GraphQL handler identifies the caller from
  the connection parameters itself (:mod:`hubql.app`); a refusal closes the socket with 4401.

The authenticator is the app's (``app.state.authenticator``, set by :func:`hubql.app.create_app`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from hub.auth import Authenticator, AuthError, audit_refusal
from hub.caller import Caller

Channel = Literal["http", "websocket"]


def authorization_param(payload: object) -> str | None:
    """The ``Authorization`` connection parameter, if there is one that is text (for the audit trail)."""
    if not isinstance(payload, dict):
        return None
    found = (v for k, v in payload.items() if str(k).lower() == "authorization" and isinstance(v, str))
    return next(found, None)


def identify(
    authenticator: Authenticator, presented: object, *, channel: Channel, client: str | None
) -> Caller:
    """The caller that ``presented`` names: the ``Authorization`` header's value (``None``: absent) over
    HTTP, the ``connection_init`` payload over a websocket. A refusal is audited, then raised as
    :class:`AuthError`, whose reason is safe to show the client."""
    if channel == "http":
        authorization = presented if isinstance(presented, str) else None
    else:
        authorization = authorization_param(presented)
    try:
        if channel == "http":
            return authenticator.authenticate(authorization)
        if not isinstance(presented, dict):
            raise AuthError("connection_init payload must be an object")
        return authenticator.authenticate_params(presented)
    except AuthError as exc:
        audit_refusal(exc, authorization, client=client, channel=channel)
        raise


def client_address(connection: HTTPConnection) -> str | None:
    """The peer's address (a trusted proxy's ``X-Forwarded-For`` only when so configured)."""
    return connection.client.host if connection.client is not None else None


def unauthorized(exc: AuthError) -> HTTPException:
    """The 401 the API answers for a failed authentication: the reason and nothing else."""
    quoted = exc.reason.replace("\\", "\\\\").replace('"', '\\"')
    return HTTPException(
        status_code=401,
        detail=exc.reason,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'},
    )


def refused(connection: HTTPConnection, reason: str) -> HTTPException:
    """The 401 for a caller a route does not admit although their credentials are good (an anonymous
    caller where a token is required), audited as a refused token is."""
    exc = AuthError(reason)
    audit_refusal(
        exc, connection.headers.get("authorization"), client=client_address(connection), channel="http"
    )
    return unauthorized(exc)


def bearer_form(authorization: str | None) -> str | None:
    """A bare token as CKAN clients send it (one word, no scheme) as ``Bearer <token>``; any other value as
    it is, so it is verified or refused exactly as any ``Authorization`` header."""
    if authorization is None:
        return None
    value = authorization.strip()
    if value and " " not in value and value.lower() != "bearer":
        return f"Bearer {value}"
    return authorization


def http_caller(connection: HTTPConnection, *, bare_token: bool = False) -> Caller:
    """The caller an HTTP request names in its ``Authorization`` header; :class:`AuthError` (audited) on a
    refusal. ``bare_token``: also accept the token alone, with no scheme (the CKAN API)."""
    authenticator: Authenticator = connection.app.state.authenticator
    presented = connection.headers.get("authorization")
    return identify(
        authenticator,
        bearer_form(presented) if bare_token else presented,
        channel="http",
        client=client_address(connection),
    )


async def request_caller(connection: HTTPConnection) -> Caller | None:
    """FastAPI dependency: the caller of an HTTP request (401 on a bad token); ``None`` on a websocket,
    whose caller is known only once ``connection_init`` has been received."""
    if connection.scope["type"] == "websocket":
        return None
    try:
        return http_caller(connection)
    except AuthError as exc:
        raise unauthorized(exc) from None


RequestCaller = Annotated[Caller | None, Depends(request_caller)]
