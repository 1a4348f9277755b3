"""docker-compose.yml's Kafka, secured as the launcher's: its configuration, written by a one-shot container.

``hub services kafka-compose --host kafka`` (the ``kafka-init`` service) writes into the shared state
volume the CA and broker certificate, the SCRAM passwords of admin, worker and api, the broker's
``server.properties`` (SASL_SSL for containers and for the host, mutual TLS for the controller, ACLs) and
``start.sh``, which the ``apache/kafka`` container runs: it formats the storage with the SCRAM users once,
then starts the broker. ``hub services kafka-acls`` (the ``kafka-acls`` service) then grants the worker
and the API their ACLs, as the launcher does after each start.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from devstack.services import kafka_tls
from devstack.services.kafka import NODE_ID, _cluster_id, _scram_arg, security_properties
from devstack.services.layout import StateLayout
from hub.kafka_clients import ADMIN, API, SASL_MECHANISM, WORKER, ensure_credentials
from hub.settings import Settings

# Where the apache/kafka image keeps its scripts and where compose mounts its data volume.
KAFKA_HOME = "/opt/kafka"
DATA_DIR = "/var/lib/kafka/data"
INTERNAL_PORT = 29092
EXTERNAL_PORT = 9092
CONTROLLER_PORT = 9093


def _private(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)


def write_compose_config(settings: Settings, host: str) -> Path:
    """Write the container's configuration under the state folder; returns the start script."""
    layout = StateLayout.of(settings.state_dir)
    config_dir = layout.config_dir("kafka")
    config_dir.mkdir(parents=True, exist_ok=True)
    tls = kafka_tls.ensure_tls(settings, [host])
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@localhost:{CONTROLLER_PORT}",
        # INTERNAL for the hub's containers, EXTERNAL for clients on the host; both TLS and SCRAM.
        "listeners": (
            f"INTERNAL://:{INTERNAL_PORT},EXTERNAL://:{EXTERNAL_PORT},CONTROLLER://localhost:{CONTROLLER_PORT}"
        ),
        "advertised.listeners": f"INTERNAL://{host}:{INTERNAL_PORT},EXTERNAL://127.0.0.1:{EXTERNAL_PORT}",
        "listener.security.protocol.map": "INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        **security_properties(settings, tls, ["internal", "external"]),
        "log.dirs": DATA_DIR,
        "num.partitions": str(settings.topic_partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    server = config_dir / "compose-server.properties"
    _private(server, "".join(f"{key}={value}\n" for key, value in props.items()))
    admin = ensure_credentials(settings, ADMIN)
    client = config_dir / "compose-admin-client.properties"
    _private(
        client,
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={SASL_MECHANISM}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{admin.username}" password="{admin.password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={tls.ca_cert}\n",
    )
    scram = " ".join(
        f"--add-scram {shlex.quote(_scram_arg(ensure_credentials(settings, p)))}"
        for p in (ADMIN, WORKER, API)
    )
    start = config_dir / "compose-start.sh"
    _private(
        start,
        "#!/bin/bash\n"
        "# Formats the storage with the hub's SCRAM users on first start, then runs the broker.\n"
        "set -euo pipefail\n"
        f'if [ ! -f "{DATA_DIR}/meta.properties" ]; then\n'
        f"  {KAFKA_HOME}/bin/kafka-storage.sh format --cluster-id {shlex.quote(_cluster_id(layout))} "
        f"--config {server} --ignore-formatted {scram}\n"
        "fi\n"
        f"exec {KAFKA_HOME}/bin/kafka-server-start.sh {server}\n",
        mode=0o700,
    )
    return start
