"""docker-compose.yml runs the same stack; it cannot run here, so its shape is checked against Settings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_services_of_the_stack_exist() -> None:
    services = _compose()["services"]
    assert {"kafka", "neo4j", "worker", "api"} <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["neo4j"]["image"].startswith("neo4j:5.26") and "community" in services["neo4j"]["image"]
    for hub_service in ("worker", "api"):
        assert "build" in services[hub_service]
        assert (COMPOSE.parent / services[hub_service]["build"].get("dockerfile", "Dockerfile")).is_file()
    assert services["worker"]["command"][:2] == ["hub", "worker"]
    assert services["api"]["command"][:2] == ["hub", "api"]


def test_every_hub_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    anchors = _compose().get("x-hub-environment", {})
    seen: set[str] = set()
    for name, service in _compose()["services"].items():
        for key in _environment(service):
            if key.startswith("HUB_"):
                assert key.removeprefix("HUB_") in fields, f"{name}: {key} is not a field of Settings"
                seen.add(key)
    for key in anchors:
        assert key.removeprefix("HUB_") in fields, f"x-hub-environment: {key} is not a field of Settings"
    assert {"HUB_KAFKA_BOOTSTRAP", "HUB_NEO4J_URI", "HUB_NEO4J_PASSWORD"} <= seen


def test_hub_services_reach_kafka_and_neo4j_by_service_name() -> None:
    services = _compose()["services"]
    for name in ("worker", "api"):
        env = _environment(services[name])
        assert re.fullmatch(r"kafka:\d+", env["HUB_KAFKA_BOOTSTRAP"])
        assert re.fullmatch(r"bolt://neo4j:\d+", env["HUB_NEO4J_URI"])
        assert set(services[name]["depends_on"]) >= {"kafka", "neo4j"}


def test_compose_kafka_is_secured_like_the_launcher(tmp_path: Path) -> None:
    """Kafka in the compose stack runs the configuration `hub services kafka-compose` writes, which has no
    plaintext listener, SCRAM users for admin, worker and api, and ACLs; the hub's containers sign in."""
    from devstack.services.kafka_compose import write_compose_config
    from hub.kafka_clients import ADMIN, API, WORKER

    services = _compose()["services"]
    state = "/var/lib/hub"
    init, kafka, acls = services["kafka-init"], services["kafka"], services["kafka-acls"]
    assert "hub services kafka-compose --host kafka" in " ".join(init["command"])
    assert _environment(init)["HUB_STATE_DIR"] == state
    assert kafka["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert not any(k.startswith("KAFKA_LISTENER") for k in _environment(kafka)), (
        "listeners come from the file"
    )
    assert kafka["command"][-1] == f"{state}/kafka/config/compose-start.sh"
    assert f"{state}/kafka/config/compose-admin-client.properties" in " ".join(kafka["healthcheck"]["test"])
    assert acls["command"] == ["hub", "services", "kafka-acls"]
    for name in ("worker", "api"):
        env = _environment(services[name])
        assert env["HUB_KAFKA_SECURITY"] == "sasl_ssl" and env["HUB_STATE_DIR"] == state
        assert services[name]["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"
        assert any(v.endswith(f":{state}") for v in services[name]["volumes"])

    # What the init container writes, here into a temporary state folder.
    settings = Settings(state_dir=tmp_path)
    start = write_compose_config(settings, "kafka")
    config = start.parent
    assert start.name == Path(kafka["command"][-1]).name
    props = dict(
        line.split("=", 1) for line in (config / "compose-server.properties").read_text().splitlines() if line
    )
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert protocols == {"INTERNAL": "SASL_SSL", "EXTERNAL": "SASL_SSL", "CONTROLLER": "SSL"}
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["advertised.listeners"].startswith("INTERNAL://kafka:29092")
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"].split(";") == [f"User:{ADMIN}", "User:CN=hub-kafka-node"]
    script = start.read_text()
    for principal in (ADMIN, WORKER, API):
        assert f"name={principal},password=" in script
    for secret in (start, config / "compose-server.properties", config / "compose-admin-client.properties"):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} must be readable by its owner only"
    assert "SASL_SSL" in (config / "compose-admin-client.properties").read_text()


_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _as_deployed(value: str) -> str:
    """A compose value with nothing set in the shell: each ``${NAME:-default}`` becomes its default."""
    assert "${" not in _DEFAULTED.sub("", value), f"{value!r}: a variable without a default"
    return _DEFAULTED.sub(lambda m: m.group(2), value)


def test_compose_defaults_are_the_secure_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``docker compose up`` with no variables set runs the API and the worker as production does: no
    development tokens, GraphiQL or introspection (all dev_mode), no anonymous access, metrics on
    loopback, no trusted proxy; every published port is on the host's loopback."""
    # Only what compose sets: not the test session's HUB_* variables, nor an .env file here.
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    services = _compose()["services"]
    for name in ("worker", "api"):
        env = {k: _as_deployed(v) for k, v in _environment(services[name]).items() if k.startswith("HUB_")}
        settings = Settings(**{k.removeprefix("HUB_").lower(): v for k, v in env.items()})
        assert settings.dev_mode is False, name
        assert settings.anonymous_access is False, name
        assert settings.api_metrics_host == "127.0.0.1", name
        assert settings.metrics_host == "127.0.0.1", name
        assert settings.api_forwarded_allow_ips == "", name
    # Every published port is on the host's loopback only, the API's included.
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert "127.0.0.1:8000:8000" in published["api"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
