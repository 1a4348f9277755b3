"""Serving a process's Prometheus metrics on a port of their own, for the worker and the API alike.

The metrics themselves belong to the process that counts them (:mod:`ingest.metrics`, and the API's in
:mod:`hubql`); only the server is shared, so neither process imports the other's metrics.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server


def metrics_server(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> WSGIServer:
    """Serve /metrics on ``addr`` (loopback unless told otherwise) from a thread; port 0 picks a free
    port. ``registry``: what is served (the process's own metrics unless told otherwise).
    ``shutdown()`` and ``server_close()`` stop it."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> int:
    """:func:`metrics_server` for the life of the process. Returns the bound port."""
    return int(metrics_server(port, addr).server_address[1])
