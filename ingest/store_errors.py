"""Why a graph write failed: the database being unavailable (wait and retry) or the events (find and
dead-letter the one at fault).

Retrying a failure that the events cause never ends: the same batch fails the same way, and no producer's
events behind it are applied, even after a restart. So only failures that say the database cannot be
reached or served the request for a passing reason are retried; everything else (a value the driver
cannot pack, a Neo4j client error such as a type or constraint error, an error of the database on this
statement) is taken to be about the events, and the batch is split until the event is found.

"Unavailable" also takes in the database refusing the worker's credentials or not (yet) existing: those
are about the store and its configuration, and no event is at fault; retrying them is the same wait as
for an outage.
"""

from __future__ import annotations

from typing import Final

import neo4j.exceptions as nx

# Client errors about the database or the session, not the statement: they fail whatever the events.
_UNAVAILABLE_CODES: Final = frozenset(
    {
        "Neo.ClientError.Database.DatabaseNotFound",
        "Neo.ClientError.Database.DatabaseUnavailable",
        "Neo.ClientError.Cluster.NotALeader",
        "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase",
    }
)
_UNAVAILABLE_PREFIXES: Final = ("Neo.ClientError.Security.", "Neo.TransientError.")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unavailable or the failure is transient: retry as is."""
    if isinstance(
        exc,
        nx.ServiceUnavailable  # incomplete commits too: the retry is idempotent
        | nx.SessionExpired
        | nx.TransientError
        | OSError,  # connection refused or reset, and TimeoutError (asyncio's too)
    ):
        return True
    if isinstance(exc, nx.Neo4jError):
        code = exc.code or ""
        # No code: raised by the driver itself, not the server on a statement; the one such error on the
        # write path is the pool's "failed to obtain a connection ... (timeout)".
        return not code or code in _UNAVAILABLE_CODES or code.startswith(_UNAVAILABLE_PREFIXES)
    return False


def describe(exc: BaseException) -> str:
    """One line naming the error: Neo4j's code and message, or the Python exception."""
    if isinstance(exc, nx.Neo4jError) and exc.code:
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
