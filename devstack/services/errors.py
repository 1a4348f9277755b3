"""The one error the launcher raises: its message is meant to be shown to the user as it is."""

from __future__ import annotations


class ServiceError(RuntimeError):
    """A local service could not be fetched, started, reached or stopped.

    The message says why and what to do; it is shown to the user as it is.
    """
