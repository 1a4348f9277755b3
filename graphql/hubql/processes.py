"""``hub api`` on several cores: N uvicorn processes sharing one listening socket.

The parent binds the API's address once and starts ``api_processes`` children (uvicorn's supervisor:
it replaces a child that dies or does not answer its health check within ``api_process_healthcheck_s``,
and stops them all on SIGINT or SIGTERM); the kernel hands each new
connection to whichever child accepts it first. ``api_processes = 0`` sizes this to the machine: one
process per core available to the API, at most :data:`MAX_AUTO_PROCESSES`.

Each child is a whole API (:func:`hubql.app.create_app`) with the process-local state below. For each,
why it stays correct when there are several processes (and several replicas behind a load balancer):

- **change subscriptions**: each process has one shared reader of the change topic in a consumer group
  of its own, so every process sees every record; a subscription lives on one websocket, hence in one
  process. Cursors are sealed topic positions, valid in any process that has the same cursor key: the
  parent gives its children one (``HUB_CURSOR_KEY`` when set, the development key in dev mode, else a
  key drawn at start, shared by the children but not by a restart or another replica).
- **label table, grants, token keys**: caches read from the graph or the issuers, each refreshed on its
  own period (``label_cache_ttl_s``, ``grant_refresh_s``); every process reads the same sources, and a
  label id never seen before makes the guard read the table at once. Expiry records are claimed once per
  audit trail in the graph (:mod:`hub.grants`), not per process.
- **admission and caps**: ``api_max_running_operations`` bounds what one process (one event loop) runs at
  once, so N processes run up to N times that; ``max_concurrent_operations`` and
  ``max_subscriptions_per_caller`` count a caller's work in the process that serves it, so a caller
  spread over N processes may hold up to N times its cap. They protect each process from a caller,
  which is what they are for; a deployment that needs a global per-caller cap puts it in its proxy.
  ``max_subscriptions_per_socket`` is exact (a socket lives in one process).
- **metrics**: the children count into files of a folder the parent owns (Prometheus's multi-process
  mode); the parent serves their sum on ``api_metrics_port``, as one process would.
- **audit trail**: each process sends its own records; every log line carries its ``pid``.
- **HTTP ingest batch status** (``GET /ingest/batches/{id}``): kept by the process that accepted the
  batch, whose tag starts the id; another process asked for it asks that one over a Unix socket
  (:mod:`hubql.peers`). Across replicas a load balancer must send a batch's status requests to the
  replica that accepted it (or route on the tag).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import tempfile
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from hub.settings import Settings, get_settings
from hubql.peers import FOLDER_VARIABLE as PEERS_DIR_VARIABLE
from hubql.peers import Peers

log = structlog.get_logger(__name__)

# The most processes ``api_processes = 0`` starts, however many cores there are: past a few, the graph
# database, not the API, is what answers slower.
MAX_AUTO_PROCESSES = 4
# Where Prometheus's client keeps the counts of each process (read when it is imported).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def cores() -> int:
    """Cores this process may run on (its CPU affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - systems without affinity
        return os.cpu_count() or 1


def process_count(settings: Settings) -> int:
    """How many API processes ``hub api`` runs: the setting, or (0) one per core up to four."""
    if settings.api_processes < 0:
        raise ValueError(f"api_processes (HUB_API_PROCESSES) is {settings.api_processes}; it is 0 or more")
    return settings.api_processes or min(cores(), MAX_AUTO_PROCESSES)


def process_app() -> FastAPI:
    """The app of one child (uvicorn's factory): settings from the environment the parent prepared; its
    metrics are served by the parent."""
    from hub.logging import configure_logging
    from hubql.app import create_app

    settings = get_settings()
    configure_logging(settings)
    try:
        return create_app(settings, metrics=False, peers=Peers.from_environment())
    except Exception as exc:
        # A setting that stops one process stops them all: the supervisor ends on this exit status
        # rather than starting the process again and again.
        log.error("the API cannot start", error=f"{type(exc).__name__}: {exc}")
        raise SystemExit(STARTUP_FAILURE) from None


def _share_cursor_key(settings: Settings) -> None:
    """Give every child the same cursor key: one set, the development key (read from the state folder by
    each child), or one drawn now."""
    if settings.cursor_key is not None or settings.dev_mode:
        return
    key = base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")
    os.environ["HUB_CURSOR_KEY"] = key
    log.warning(
        "cursor_key (HUB_CURSOR_KEY) is not set: the API's processes share a key drawn at start, so change "
        "cursors are refused after a restart and by other replicas"
    )


def supervise(settings: Settings, processes: int) -> None:
    """Serve the API from ``processes`` uvicorn processes on one socket until SIGINT or SIGTERM."""
    from hub.auth import Authenticator
    from hubql.app import serve_metrics
    from hubql.serving import server_config

    # The token keys, checked here as one process checks them before it binds anything: without them no
    # process could start, and that is what the operator is told (not that a port is taken).
    Authenticator(settings)
    # Only the API's user may open it (mkdtemp: mode 0700): the children's counts and sockets.
    folder = Path(tempfile.mkdtemp(prefix="hub-api-"))
    metrics_dir, peers_dir = folder / "metrics", folder / "peers"
    metrics_dir.mkdir()
    peers_dir.mkdir()
    # Read by the children's settings, by Prometheus's client when a child imports it, and by hubql.peers.
    os.environ.update(
        {
            "HUB_API_HOST": settings.api_host,
            "HUB_API_PORT": str(settings.api_port),
            METRICS_DIR_VARIABLE: str(metrics_dir),
            PEERS_DIR_VARIABLE: str(peers_dir),
        }
    )
    _share_cursor_key(settings)
    config = server_config(
        "hubql.processes:process_app",
        settings,
        host=settings.api_host,
        port=settings.api_port,
        factory=True,
        workers=processes,
        timeout_worker_healthcheck=settings.api_process_healthcheck_s,
        log_config=None,
    )
    server = None
    try:
        sock: socket.socket = config.bind_socket()
        if settings.api_metrics_port:  # the sum of the children's counts
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(metrics_dir))
            server = serve_metrics(settings, registry)
        log.info(
            "api processes starting",
            processes=processes,
            host=settings.api_host,
            port=settings.api_port,
            metrics_port=settings.api_metrics_port,
        )
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            raise SystemExit(STARTUP_FAILURE)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def run(settings: Settings | None = None) -> None:
    """``hub api``: one process in this one, or a supervisor of several (``api_processes``)."""
    from hub.logging import configure_logging

    settings = settings or get_settings()
    configure_logging(settings)
    processes = process_count(settings)
    if processes == 1:
        from hubql.app import serve

        serve(settings)
        return
    supervise(settings, processes)
