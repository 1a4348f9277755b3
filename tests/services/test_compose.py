"""docker-compose.yml runs the same stack; it cannot run here, so its shape is checked against Settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hub.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


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
