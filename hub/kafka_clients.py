"""How every Kafka client of the hub connects: settings and a principal in, client options out.

Each client (worker, API, producers, tools, benchmarks, tests) is built from these options, so one
setting secures all of them alike. With ``HUB_KAFKA_SECURITY=sasl_ssl`` (the default) a client speaks TLS
to the broker, trusting ``HUB_KAFKA_CA_FILE``, and authenticates with SCRAM-SHA-512 as a principal whose
ACLs say what it may read and write (see :mod:`hub.kafka_access`); ``plaintext`` does neither and exists
for comparison runs only.

Principals: ``admin`` (the launcher, ``hub producers add``, tests; a Kafka super user), ``worker``,
``api`` and ``producer-<id>`` for each producer. Their passwords are kept in the state folder, one file
per principal readable only by its owner, written by the launcher and ``hub producers add``; a process
given ``HUB_KAFKA_USERNAME``/``HUB_KAFKA_PASSWORD`` uses those for every client instead (a deployment's
process runs as one principal).
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.settings import Settings

ADMIN = "admin"
WORKER = "worker"
API = "api"
SASL_MECHANISM = "SCRAM-SHA-512"
_PRODUCER_PREFIX = "producer-"


class KafkaCredentialsError(RuntimeError):
    """A client cannot be configured: the message names the principal, file or setting involved."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def producer_principal(producer_id: str) -> str:
    return f"{_PRODUCER_PREFIX}{producer_id}"


def secured(settings: Settings) -> bool:
    return settings.kafka_security == "sasl_ssl"


def tls_dir(settings: Settings) -> Path:
    return settings.state_dir.expanduser().resolve() / "kafka" / "tls"


def ca_file(settings: Settings) -> Path:
    return settings.kafka_ca_file or tls_dir(settings) / "ca.pem"


def credentials_dir(settings: Settings) -> Path:
    return settings.state_dir.expanduser().resolve() / "kafka" / "users"


def credentials_file(settings: Settings, principal: str) -> Path:
    if not principal or "/" in principal or principal.startswith("."):
        raise KafkaCredentialsError(f"principal {principal!r} is not a valid principal name")
    return credentials_dir(settings) / f"{principal}.json"


def load_credentials(settings: Settings, principal: str) -> Credentials:
    """The credentials a client acting as ``principal`` authenticates with."""
    if settings.kafka_username or settings.kafka_password:
        if not (settings.kafka_username and settings.kafka_password):
            raise KafkaCredentialsError(
                f"HUB_KAFKA_USERNAME={settings.kafka_username!r} needs HUB_KAFKA_PASSWORD too "
                "(and the reverse)"
            )
        return Credentials(settings.kafka_username, settings.kafka_password)
    path = credentials_file(settings, principal)
    try:
        data = json.loads(path.read_text())
        return Credentials(str(data["username"]), str(data["password"]))
    except FileNotFoundError:
        raise KafkaCredentialsError(
            f"no Kafka credentials for principal {principal!r}: {path} is missing (the launcher writes those "
            f"of admin, worker and api; `hub producers add ID` those of producer-ID; or set "
            f"HUB_KAFKA_USERNAME and HUB_KAFKA_PASSWORD)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KafkaCredentialsError(
            f"Kafka credentials file {path} of {principal!r} is unusable: {exc}"
        ) from None


def ensure_credentials(settings: Settings, principal: str) -> Credentials:
    """The stored credentials of ``principal``, made (random password, owner-only file) when missing."""
    path = credentials_file(settings, principal)
    if path.is_file():
        return load_credentials(
            settings.model_copy(update={"kafka_username": None, "kafka_password": None}), principal
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    made = Credentials(principal, secrets.token_urlsafe(24))
    # Created with mode 0600 from the start (never readable by others, not even briefly), then renamed into
    # place so a reader sees the whole file or none.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"username": made.username, "password": made.password}, out)
    os.replace(tmp, path)
    return made


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS that trusts only the hub's CA file and checks the broker's name against its certificate."""
    path = ca_file(settings)
    if not path.is_file():
        raise KafkaCredentialsError(
            f"HUB_KAFKA_CA_FILE={str(path)!r} does not exist (the launcher writes it on first start; "
            f"HUB_KAFKA_SECURITY={settings.kafka_security!r})"
        )
    return ssl.create_default_context(cafile=str(path))


def aiokafka_options(settings: Settings, principal: str, *, bootstrap: str | None = None) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin) acting as ``principal``."""
    options: dict[str, Any] = {"bootstrap_servers": bootstrap or settings.kafka_bootstrap}
    if not secured(settings):
        return options
    creds = load_credentials(settings, principal)
    options.update(
        security_protocol="SASL_SSL",
        sasl_mechanism=SASL_MECHANISM,
        sasl_plain_username=creds.username,
        sasl_plain_password=creds.password,
        ssl_context=ssl_context(settings),
    )
    return options


def faust_credentials(settings: Settings, principal: str) -> Any:
    """``broker_credentials`` for a Faust app acting as ``principal`` (None when security is off)."""
    if not secured(settings):
        return None
    import faust

    creds = load_credentials(settings, principal)
    return faust.SASLCredentials(
        username=creds.username,
        password=creds.password,
        ssl_context=ssl_context(settings),
        mechanism=SASL_MECHANISM,
    )


def admin_options(bootstrap: str | None = None) -> dict[str, Any]:
    """Options of a client acting as the admin principal under this process's settings: operator tools,
    benchmarks and tests, which set up and inspect topics rather than take part in the data flow."""
    from hub.settings import get_settings

    return aiokafka_options(get_settings(), ADMIN, bootstrap=bootstrap)
