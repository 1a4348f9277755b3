"""Turning the configured service addresses into the loopback host and port a local service binds."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from devstack.services.errors import ServiceError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def kafka_endpoint(bootstrap: str) -> Endpoint:
    """The first entry of HUB_KAFKA_BOOTSTRAP; the launcher runs a single local broker."""
    first = bootstrap.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ServiceError(f"HUB_KAFKA_BOOTSTRAP={bootstrap!r} is not host:port")
    return _local("HUB_KAFKA_BOOTSTRAP", bootstrap, host, int(port))


def neo4j_endpoint(uri: str) -> Endpoint:
    parts = urlsplit(uri)
    if parts.scheme not in {"bolt", "neo4j"}:
        raise ServiceError(
            f"HUB_NEO4J_URI={uri!r}: the local Neo4j speaks bolt:// (or neo4j://), not {parts.scheme!r}"
        )
    try:
        port = parts.port or 7687
    except ValueError as exc:
        raise ServiceError(f"HUB_NEO4J_URI={uri!r} has an invalid port") from exc
    return _local("HUB_NEO4J_URI", uri, parts.hostname or "", port)


def _local(key: str, value: str, host: str, port: int) -> Endpoint:
    if host not in LOOPBACK_HOSTS:
        raise ServiceError(
            f"{key}={value!r} points at {host!r}; the launcher only runs services on 127.0.0.1. "
            "Unset it to use the local services, or start that service yourself."
        )
    if not 0 < port < 65536:
        raise ServiceError(f"{key}={value!r} has port {port}, outside 1-65535")
    return Endpoint(host, port)
