"""How the API process meets the network: request size limits, proxy trust and uvicorn's configuration.

Limits apply before the application reads a request, so a caller without a token cannot make the API
hold a huge request in memory:

- request line and headers: uvicorn's h11 protocol buffers at most ``api_max_header_bytes`` of an
  incomplete request head; past that the request is answered 431 and the connection closed
  (:class:`HeaderLimitedH11Protocol`; uvicorn's own answer would be a bare 400);
- body: :class:`BodyLimit` answers 413 at once for a declared ``Content-Length`` over
  ``api_max_body_bytes``, and for a chunked body as soon as the bytes received pass it, then closes the
  connection so the rest is never read;
- websocket messages: at most ``api_max_ws_message_bytes`` (uvicorn's ``ws_max_size``).

``X-Forwarded-For`` is believed only from the proxies in ``api_forwarded_allow_ips`` (none by default): a
client on the same host must not be able to choose the address the audit trail records.
"""

from __future__ import annotations

from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.settings import Settings

_HEADER_TOO_LARGE = 431


class BodyTooLarge(Exception):
    """The request body passed the limit while the application was reading it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes (HUB_API_MAX_BODY_BYTES)")
        self.limit = limit


async def _send_plain(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            # Closing the connection is what stops uvicorn from reading (and discarding) the rest.
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413, declared or chunked."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_plain(send, 400, f"Content-Length {declared[:40]!r} is not a number")
                return
            if length > limit:
                text = f"request body of {length} bytes is larger than {limit} (HUB_API_MAX_BODY_BYTES)"
                await _send_plain(send, 413, text)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:  # the application answered before reading everything; nothing more to say
                raise
            await _send_plain(send, 413, str(exc))


class HeaderLimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering 431 (not 400) when the request head outgrows the limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal_status = 400
        next_event = self.conn.next_event

        def checked_next_event() -> Any:
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                # h11 hints 431 when its buffer of an incomplete request head passed the limit.
                self._refusal_status = exc.error_status_hint
                raise

        self.conn.next_event = checked_next_event  # type: ignore[method-assign]

    def send_400_response(self, msg: str) -> None:
        if self._refusal_status != _HEADER_TOO_LARGE:
            super().send_400_response(msg)
            return
        limit = self.config.h11_max_incomplete_event_size
        body = f"request line and headers are larger than {limit} bytes (HUB_API_MAX_HEADER_BYTES)"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=_HEADER_TOO_LARGE, headers=headers, reason=b"Request Header Too Large"),
            h11.Data(data=body.encode("ascii")),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def server_config(
    app: ASGIApp | str, settings: Settings, *, host: str, port: int, **extra: Any
) -> uvicorn.Config:
    """uvicorn's configuration of the API with the hub's limits; ``app`` is the app or (for several
    processes) its import path; ``extra`` goes to uvicorn as is."""
    trusted = settings.api_forwarded_allow_ips.strip()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=HeaderLimitedH11Protocol,
        h11_max_incomplete_event_size=settings.api_max_header_bytes,
        ws="websockets",
        ws_max_size=settings.api_max_ws_message_bytes,
        ws_per_message_deflate=settings.api_ws_compression,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        server_header=False,
        **extra,
    )
