"""Apache Kafka as one KRaft node (broker and controller in one JVM) on loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import uuid
from pathlib import Path

from devstack.services import kafka_tls
from devstack.services.async_run import run_coroutine
from devstack.services.distribution import Distribution
from devstack.services.endpoint import Endpoint, kafka_endpoint
from devstack.services.errors import ServiceError
from devstack.services.layout import StateLayout
from hub.kafka_access import admin_client, grant, producer_grants, service_grants
from hub.kafka_clients import (
    ADMIN,
    API,
    SASL_MECHANISM,
    WORKER,
    Credentials,
    KafkaCredentialsError,
    aiokafka_options,
    ensure_credentials,
    secured,
)
from hub.settings import Settings

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1
# Written next to the storage once it was formatted with the SCRAM users of admin, worker and api.
SCRAM_MARKER = "scram-users"


def endpoint(settings: Settings) -> Endpoint:
    return kafka_endpoint(settings.kafka_bootstrap)


def controller_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("127.0.0.1", settings.kafka_controller_port)


def _listener_properties(settings: Settings, layout: StateLayout) -> dict[str, str]:
    broker = endpoint(settings)
    controller = controller_endpoint(settings)
    if not secured(settings):
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://{controller}",
            # Clients are sent back the address they were configured with (127.0.0.1 or localhost).
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }
    tls = kafka_tls.ensure_tls(settings, [broker.host])
    return {
        # Clients: TLS and SCRAM. Controller: mutual TLS, where only the broker's own certificate is accepted.
        "listeners": f"CLIENT://127.0.0.1:{broker.port},CONTROLLER://{controller}",
        "advertised.listeners": f"CLIENT://{broker}",
        "listener.security.protocol.map": "CONTROLLER:SSL,CLIENT:SASL_SSL",
        # On one node the broker's only peer is itself.
        "inter.broker.listener.name": "CLIENT",
        **security_properties(settings, tls, ["client"]),
    }


def security_properties(
    settings: Settings, tls: kafka_tls.TlsFiles, sasl_listeners: list[str]
) -> dict[str, str]:
    """SCRAM on ``sasl_listeners`` (the broker signs in to itself there as the admin), the broker's
    certificate, mutual TLS on the controller listener, and ACLs with the admin as the only super user
    (besides the broker's own certificate). Shared by the launcher and docker-compose.yml's Kafka."""
    admin = ensure_credentials(settings, ADMIN)
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{admin.username}" password="{admin.password}";'
    )
    return {
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        **{
            f"listener.name.{name}.{SASL_MECHANISM.lower()}.sasl.jaas.config": jaas for name in sasl_listeners
        },
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca_cert),
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{admin.username};{tls.broker_principal}",
    }


def server_properties(settings: Settings, layout: StateLayout) -> str:
    broker = endpoint(settings)
    controller = controller_endpoint(settings)
    if controller.port == broker.port:
        raise ServiceError(
            f"HUB_KAFKA_CONTROLLER_PORT={settings.kafka_controller_port} is the broker's port too "
            f"(HUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}); pick another"
        )
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{controller}",
        **_listener_properties(settings, layout),
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(layout.data_dir("kafka")),
        "num.partitions": str(settings.topic_partitions),
        "auto.create.topics.enable": "true",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # A single node cannot hold three replicas of the internal topics.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Fewer offset partitions than the default 50 make the first consumer group start quicker.
        "offsets.topic.num.partitions": "8",
        # Consumer groups start at once instead of waiting for more members that never come.
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J_PROPERTIES = """\
# Everything to stdout, which the launcher appends to the service's log file.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


def write_config(settings: Settings, layout: StateLayout) -> Path:
    config_dir = layout.config_dir("kafka")
    config_dir.mkdir(parents=True, exist_ok=True)
    layout.data_dir("kafka").mkdir(parents=True, exist_ok=True)
    (config_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
    server = config_dir / "server.properties"
    # Holds the admin's password (the broker's own login): readable by the owner only.
    fd = os.open(server, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(server_properties(settings, layout))
    os.chmod(server, 0o600)
    return server


def _jvm_flags(layout: StateLayout, heap: str) -> list[str]:
    return [
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={layout.logs_dir()}",
        f"-Dlog4j.configuration=file:{layout.config_dir('kafka') / 'log4j.properties'}",
    ]


def _cluster_id(layout: StateLayout) -> str:
    """The cluster id the storage was formatted with (made once per state folder)."""
    path = layout.service_dir("kafka") / "cluster.id"
    if path.is_file():
        return path.read_text().strip()
    while True:
        # Kafka's own id format: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cluster_id + "\n")
    return cluster_id


def format_storage(java: str, dist: Distribution, settings: Settings, layout: StateLayout) -> None:
    """Format the KRaft log folder on first start; a formatted folder is left alone."""
    server = write_config(settings, layout)
    marker = layout.service_dir("kafka") / SCRAM_MARKER
    if (layout.data_dir("kafka") / "meta.properties").is_file():
        if secured(settings) and not marker.is_file():
            raise ServiceError(
                f"the Kafka storage in {layout.data_dir('kafka')} was formatted without the hub's SCRAM "
                f"users, so no client could sign in (HUB_KAFKA_SECURITY={settings.kafka_security!r}). Stop "
                f"Kafka and delete {layout.service_dir('kafka')} (its topics are lost) to format it again"
            )
        return
    # The SCRAM users are written into the storage, so every later start (secured or not) knows them.
    scram = [
        arg
        for principal in (ADMIN, WORKER, API)
        for arg in ("--add-scram", _scram_arg(ensure_credentials(settings, principal)))
    ]
    argv = [
        java,
        *_jvm_flags(layout, "256m"),
        "-cp",
        dist.classpath,
        STORAGE_TOOL,
        "format",
        "--cluster-id",
        _cluster_id(layout),
        "--config",
        str(server),
        "--ignore-formatted",
        *scram,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    with layout.log_file("kafka").open("a") as log:
        log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage in {layout.data_dir('kafka')} failed (exit {proc.returncode}):\n"
            + (proc.stderr or proc.stdout)[-3000:]
        )
    marker.write_text(",".join((ADMIN, WORKER, API)) + "\n")


def _scram_arg(creds: Credentials) -> str:
    # Passwords are URL-safe base64, so nothing in them can break the tool's [name=..,password=..] syntax.
    return f"{SASL_MECHANISM}=[name={creds.username},password={creds.password}]"


def command(java: str, dist: Distribution, settings: Settings, layout: StateLayout) -> list[str]:
    return [
        java,
        *_jvm_flags(layout, settings.kafka_heap),
        "-cp",
        dist.classpath,
        MAIN_CLASS,
        str(layout.config_dir("kafka") / "server.properties"),
    ]


def probe(settings: Settings, timeout_s: float = 5.0) -> None:
    """Raise unless a broker answers a metadata request listing itself (asked as the admin principal)."""
    run_coroutine(_probe(settings, timeout_s))


async def _probe(settings: Settings, timeout_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = settings.kafka_bootstrap
    # aiokafka logs every refused connection at ERROR while we poll a starting broker.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        options = aiokafka_options(settings, ADMIN)
    except KafkaCredentialsError as exc:
        raise ServiceError(str(exc)) from None
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception as exc:
        raise ServiceError(f"Kafka at {bootstrap} did not answer a metadata request: {exc!r}") from exc
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise ServiceError(f"Kafka at {bootstrap} answered but lists no broker yet")


def apply_service_acls(settings: Settings) -> None:
    """Give the worker and the API their ACLs, and every configured producer its own (see
    hub.kafka_access), so that a state folder made before a grant was added gets it too; idempotent."""
    if secured(settings):
        run_coroutine(_apply_service_acls(settings))


async def _apply_service_acls(settings: Settings) -> None:
    admin = await admin_client(settings)
    try:
        await grant(admin, service_grants(settings))
        for producer_id in sorted(settings.producers):
            await grant(admin, producer_grants(settings, producer_id))
    finally:
        await admin.close()
