"""Neo4j Community embedded in a small Java main (devstack/services/java), serving Bolt on loopback."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.services.distribution import Distribution
from devstack.services.endpoint import Endpoint, neo4j_endpoint
from devstack.services.errors import ServiceError
from devstack.services.layout import StateLayout
from hub.settings import Settings

MAIN_CLASS = "energyhub.Neo4jServer"

# Neo4j reaches into JDK internals for off-heap memory and NIO; without these it logs warnings or falls
# back to slower paths on Java 17+.
_JDK_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
]


def endpoint(settings: Settings) -> Endpoint:
    return neo4j_endpoint(settings.neo4j_uri)


def home(layout: StateLayout) -> Path:
    return layout.service_dir("neo4j") / "home"


def neo4j_conf(settings: Settings, layout: StateLayout) -> str:
    bolt = endpoint(settings)
    props = {
        "initial.dbms.default_database": settings.neo4j_database,
        "server.bolt.enabled": "true",
        "server.bolt.listen_address": f"127.0.0.1:{bolt.port}",
        "server.bolt.advertised_address": str(bolt),
        "server.bolt.tls_level": "DISABLED",
        "server.http.enabled": "false",
        "server.https.enabled": "false",
        "dbms.security.auth_enabled": "true",
        "server.memory.pagecache.size": settings.neo4j_pagecache,
        "server.directories.data": str(layout.data_dir("neo4j")),
        "server.directories.logs": str(layout.logs_dir() / "neo4j"),
        # Keep transaction logs small on a developer machine.
        "db.tx_log.rotation.retention_policy": "2 files",
        "dbms.usage_report.enabled": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def write_config(settings: Settings, layout: StateLayout) -> Path:
    config_dir = layout.config_dir("neo4j")
    config_dir.mkdir(parents=True, exist_ok=True)
    home(layout).mkdir(parents=True, exist_ok=True)
    layout.data_dir("neo4j").mkdir(parents=True, exist_ok=True)
    conf = config_dir / "neo4j.conf"
    conf.write_text(neo4j_conf(settings, layout))
    return conf


def ready_file(layout: StateLayout) -> Path:
    return layout.run_dir() / "neo4j.ready"


def command(java: str, dist: Distribution, settings: Settings, layout: StateLayout) -> list[str]:
    conf = write_config(settings, layout)
    ready_file(layout).unlink(missing_ok=True)
    return [
        java,
        f"-Xmx{settings.neo4j_heap}",
        f"-Xms{settings.neo4j_heap}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        *_JDK_OPENS,
        "-cp",
        dist.classpath,
        MAIN_CLASS,
        str(home(layout)),
        str(conf),
        str(ready_file(layout)),
    ]


def environment(settings: Settings) -> dict[str, str]:
    """The password goes to the JVM through its environment, never its command line."""
    env = dict(os.environ)
    env["HUB_NEO4J_USER"] = settings.neo4j_user
    env["HUB_NEO4J_PASSWORD"] = settings.neo4j_password
    return env


def probe(settings: Settings, timeout_s: float = 5.0) -> None:
    """Raise unless Neo4j answers ``RETURN 1`` over Bolt with the configured credentials."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError

    try:
        with GraphDatabase.driver(
            settings.neo4j_uri,
            auth=(settings.neo4j_user, settings.neo4j_password),
            connection_timeout=timeout_s,
            connection_acquisition_timeout=timeout_s,
            max_transaction_retry_time=0,
        ) as driver:
            records, _, _ = driver.execute_query("RETURN 1 AS ok", database_=settings.neo4j_database)
    except AuthError as exc:
        raise ServiceError(
            f"Neo4j at {settings.neo4j_uri} refused user {settings.neo4j_user!r} with the configured "
            f"password (HUB_NEO4J_PASSWORD): {exc.message}",
        ) from exc
    except Exception as exc:
        raise ServiceError(f"Neo4j at {settings.neo4j_uri} did not answer RETURN 1: {exc!r}") from exc
    if not records or records[0]["ok"] != 1:
        raise ServiceError(f"Neo4j at {settings.neo4j_uri} answered RETURN 1 with {records!r}")
