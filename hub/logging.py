"""Structured logs: one JSON object per line, from our code and from the libraries underneath.

Faust, aiokafka and the Neo4j driver log through the standard library, so the standard root handler is
given structlog's formatter: every line on stderr has the same shape whatever produced it, which is what
log shippers want.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from hub.settings import Settings, get_settings

_configured = False


def add_pid(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The process id on every line: ``hub api --processes N`` runs several processes of one API."""
    event.setdefault("pid", os.getpid())
    return event


def configure_logging(settings: Settings | None = None, *, force: bool = False) -> None:
    """Set up structlog and the standard root logger once per process (``force`` redoes it)."""
    global _configured
    if _configured and not force:
        return
    settings = settings or get_settings()
    level = logging.getLevelNamesMapping().get(settings.log_level.upper())
    if level is None:
        raise ValueError(f"log_level {settings.log_level!r} is not a logging level name")

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _configured = True


def json_handler() -> logging.Handler:
    """The configured root handler, for frameworks (Faust's worker) that install their own handlers."""
    configure_logging()
    return logging.getLogger().handlers[0]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
