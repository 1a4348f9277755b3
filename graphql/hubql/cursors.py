"""Change cursors: a subscriber's position in the change feed, sealed so that it tells the subscriber nothing.

A cursor holds, for every partition of the change topic, the offset after the last record *delivered* to that
subscriber (not after the last record read: the records it skipped as hidden must not move it). It is
encrypted and authenticated with AES-256-GCM under the server's cursor key, with the topic and the caller's
principal (issuer and subject) as associated data: a cursor cannot be read, altered, used on another topic or
replayed by another caller, nor by a namesake from another issuer. The plaintext has a fixed size per
partition, so not even its length moves with the offsets. Every failure to open one (malformed, tampered,
another key, another caller) gets the same error.

The key is ``settings.cursor_key`` (base64url of 32 bytes). Unset, development mode keeps one in the state
folder (created on first use, like the development token issuer); outside development mode each process
makes a random one, so cursors do not survive a restart and one replica refuses another's: set the key for
anything beyond a single process.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub import audit
from hub.filelock import locked
from hub.reader import ReadError
from hub.settings import Settings

log = structlog.get_logger(__name__)

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
VERSION: Final = b"\x01"
CURSOR_KEY_FILE: Final = "cursor-key"
# One partition's position: partition number and offset, fixed width.
_ENTRY: Final = struct.Struct(">IQ")


class CursorError(ReadError):
    """A cursor that does not open; the message is the same whatever the reason."""


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not base64url text") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{where} decodes to {len(key)} bytes; a cursor key is {KEY_BYTES} bytes")
    return key


def _state_key(state_dir: Path) -> bytes:
    """The development key in the state folder, created once (a lock keeps two processes from racing)."""
    path = Path(state_dir) / CURSOR_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path.parent / f".{CURSOR_KEY_FILE}.lock"):
            if not path.exists():
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)))
                os.replace(tmp, path)
                log.info("created development cursor key", path=str(path))
    return _decode_key(path.read_text(encoding="ascii"), f"cursor key file {str(path)!r}")


def cursor_key(settings: Settings) -> bytes:
    if settings.cursor_key is not None:
        return _decode_key(settings.cursor_key.get_secret_value(), "cursor_key (HUB_CURSOR_KEY)")
    if settings.dev_mode:
        return _state_key(settings.state_dir)
    log.warning(
        "cursor_key (HUB_CURSOR_KEY) is not set: this process seals change cursors with a random key, "
        "so they are refused after a restart and by other replicas"
    )
    return _process_key()


@cache
def _process_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @staticmethod
    def _context(topic: str, principal: str) -> bytes:
        # Length-prefixed so that no (topic, principal) pair can be confused with another.
        t, s = topic.encode(), principal.encode()
        return VERSION + struct.pack(">I", len(t)) + t + struct.pack(">I", len(s)) + s

    def seal(self, topic: str, principal: str, positions: Mapping[int, int]) -> str:
        plain = b"".join(_ENTRY.pack(p, o) for p, o in sorted(positions.items()))
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain, self._context(topic, principal))
        return base64.urlsafe_b64encode(VERSION + nonce + sealed).decode("ascii").rstrip("=")

    def open(self, cursor: str, topic: str, principal: str) -> dict[int, int]:
        """The positions sealed in ``cursor`` for this topic and caller; :class:`CursorError` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
            if raw[:1] != VERSION:
                raise ValueError("unknown version")
            plain = self._aead.decrypt(
                raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :], self._context(topic, principal)
            )
            if len(plain) % _ENTRY.size:
                raise ValueError("truncated")
            return dict(_ENTRY.iter_unpack(plain))
        except (binascii.Error, UnicodeError, ValueError, InvalidTag):
            audit.record("subscription.cursor_refused", principal=principal, reason="cursor does not open")
            # One message for every failure: which check failed would help someone forging cursors.
            raise CursorError(f"after = {cursor[:80]!r} is not a change cursor issued to you") from None
