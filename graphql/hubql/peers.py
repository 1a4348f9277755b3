"""The other processes of one ``hub api --processes N``, for what one process keeps and another is asked.

What a process keeps for a caller in memory, the status of an HTTP ingest batch (:mod:`hubql.batch_status`),
is asked for again in a later request, which the kernel may hand to any of the processes. Each process
therefore listens on a Unix socket of its own, ``<folder>/<tag>.sock`` in a folder only the API's user
can open (the supervisor creates it, :mod:`hubql.processes`), and puts its random tag in the ids it hands
out (``<tag>-<random>``): a process that does not hold a batch asks the one whose tag the id carries.

The question carries the subject the asking process has already verified; the answer is exactly what
that process would have answered itself (the batch's status for that subject, or nothing), so a caller
learns nothing new from being served by another process. An id whose process is gone is answered as an
id that never was a batch, as after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

log = structlog.get_logger(__name__)

# Set by the supervisor for its children: the folder of their sockets.
FOLDER_VARIABLE: Final = "HUB_API_PEERS_DIR"
_TAG = re.compile(r"[0-9a-f]{8}")
ASK_TIMEOUT_S: Final = 5.0
# Largest answer read from a peer (a batch of HUB_INGEST_MAX_BATCH events with their reasons).
ANSWER_LIMIT: Final = 64 * 1024 * 1024

Answer = Callable[[str, str], dict[str, Any] | None]


class Peers:
    """This process's socket and the way to ask the others."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tag = secrets.token_hex(4)
        self._server: asyncio.Server | None = None

    @classmethod
    def from_environment(cls) -> Peers | None:
        folder = os.environ.get(FOLDER_VARIABLE)
        return cls(Path(folder)) if folder else None

    @property
    def prefix(self) -> str:
        """What this process's ids start with."""
        return f"{self.tag}-"

    def _path(self, tag: str) -> Path:
        return self.folder / f"{tag}.sock"

    async def start(self, answer: Answer) -> None:
        """Answer the others' questions (``answer(subject, batch_id)``) until :meth:`stop`."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                question = orjson.loads(await reader.readline())
                reply = answer(str(question["subject"]), str(question["batch"]))
                writer.write(orjson.dumps(reply) + b"\n")
                await writer.drain()
            except (ValueError, KeyError, TypeError, OSError) as exc:
                log.warning("peer question not answered", error=f"{type(exc).__name__}: {exc}")
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(handle, path=self._path(self.tag), limit=ANSWER_LIMIT)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._path(self.tag).unlink(missing_ok=True)

    async def batch_status(self, subject: str, batch_id: str) -> dict[str, Any] | None:
        """The status of a batch another process of this API accepted; None: none for this caller."""
        tag, _, rest = batch_id.partition("-")
        if not rest or tag == self.tag or not _TAG.fullmatch(tag):
            return None
        path = self._path(tag)
        if not path.exists():
            return None
        try:
            async with asyncio.timeout(ASK_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(path, limit=ANSWER_LIMIT)
                try:
                    writer.write(orjson.dumps({"subject": subject, "batch": batch_id}) + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
            reply = orjson.loads(line)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("peer did not answer", peer=tag, error=f"{type(exc).__name__}: {exc}")
            return None
        return reply if isinstance(reply, dict) else None
