"""The launcher's up / status / down cycle on its own state folder and ports (never the test services)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from devstack.services import launcher
from devstack.services.errors import ServiceError
from devstack.services.tools import java_executable, maven_executable
from hub.settings import Settings


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (other test runs and demos share this machine)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _cycle_settings(state_dir: Path, shared: Any) -> Settings:
    kafka_port, controller_port, bolt_port = _free_ports(3)
    return Settings(
        state_dir=state_dir,
        # Reuse the jars the test services were started from: nothing is downloaded twice.
        cache_dir=shared.cache_dir,
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        kafka_controller_port=controller_port,
        neo4j_uri=f"bolt://127.0.0.1:{bolt_port}",
        neo4j_password="cycle-test-password",
        kafka_heap="512m",
        neo4j_heap="512m",
        neo4j_pagecache="128m",
    )


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def _cli(cycle: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        HUB_STATE_DIR=str(cycle.state_dir),
        HUB_KAFKA_BOOTSTRAP=cycle.kafka_bootstrap,
        HUB_KAFKA_CONTROLLER_PORT=str(cycle.kafka_controller_port),
        HUB_NEO4J_URI=cycle.neo4j_uri,
        HUB_NEO4J_PASSWORD=cycle.neo4j_password,
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "hubcli.main", "services", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_up_status_down_cycle(settings: Any) -> None:
    # Not under pytest's tmp_path: concurrent pytest runs prune old tmp folders, possibly under live services.
    state = Path(tempfile.mkdtemp(prefix="hub-cycle-"))
    cycle = _cycle_settings(state, settings)
    try:
        first = launcher.ensure_up(cycle)
        assert [(s.name, s.ready) for s in first] == [("kafka", True), ("neo4j", True)]
        assert all(s.pid is not None for s in first)
        # Everything the services write stays in the state folder.
        assert (state / "logs" / "kafka.log").is_file()
        assert (state / "neo4j" / "data").is_dir()
        assert (state / "kafka" / "data" / "meta.properties").is_file()
        assert len(_pgrep(str(state))) == 2

        # Idempotent: a second `up` keeps the running processes.
        second = launcher.ensure_up(cycle)
        assert [s.pid for s in second] == [s.pid for s in first]

        shown = _cli(cycle, "status")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.count("ready") == 2
        assert cycle.kafka_bootstrap in shown.stdout
        assert cycle.neo4j_uri in shown.stdout

        # Neo4j alone can be stopped and started again (the worker tests do this mid-stream).
        assert launcher.stop_service(cycle, "neo4j") is True
        by_name = {s.name: s for s in launcher.status(cycle)}
        assert by_name["kafka"].ready
        assert not by_name["neo4j"].ready and by_name["neo4j"].detail == "stopped"
        again = launcher.start_service(cycle, "neo4j")
        assert again.ready and again.pid != first[1].pid

        down = _cli(cycle, "down")
        assert down.returncode == 0, down.stderr
        assert "Kafka" in down.stdout and "Neo4j" in down.stdout
        assert [s.detail for s in launcher.status(cycle)] == ["stopped", "stopped"]
        assert _pgrep(str(state)) == []
    finally:
        launcher.stop(cycle)
        remaining = _pgrep(str(state))
        if not remaining:
            shutil.rmtree(state, ignore_errors=True)
    assert remaining == []


def test_down_with_nothing_running_is_fine(tmp_path: Path) -> None:
    cycle = Settings(state_dir=tmp_path / "never-started")
    assert launcher.stop(cycle) == []
    assert [s.detail for s in launcher.status(cycle, ["neo4j"])] in (
        ["stopped"],
        ["not started by this launcher, but something answers on its port"],
    )


def test_port_taken_by_another_process_is_reported(tmp_path: Path, settings: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cycle = Settings(
            state_dir=tmp_path / "state",
            cache_dir=settings.cache_dir,
            kafka_bootstrap=f"127.0.0.1:{port}",
            kafka_controller_port=_free_ports(1)[0],
        )
        with pytest.raises(ServiceError, match=rf"port {port} \(HUB_KAFKA_BOOTSTRAP\) is already in use"):
            launcher.ensure_up(cycle, ["kafka"])
    assert _pgrep(str(tmp_path / "state")) == []


def test_remote_address_is_refused_naming_the_setting(tmp_path: Path) -> None:
    cycle = Settings(state_dir=tmp_path / "state", neo4j_uri="bolt://db.example.org:7687")
    with pytest.raises(ServiceError, match=r"HUB_NEO4J_URI='bolt://db.example.org:7687'"):
        launcher.ensure_up(cycle, ["neo4j"])


def test_missing_java_and_maven_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="java was not found on PATH"):
        java_executable()
    with pytest.raises(ServiceError, match=r"mvn \(Maven\) was not found on PATH"):
        maven_executable()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ServiceError, match=r"JAVA_HOME=.*no-jdk.* has no bin/java"):
        java_executable()


def test_cached_jars_are_reused_without_maven(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from devstack.services import distribution

    first = {name: distribution.ensure(settings, name) for name in ("kafka", "neo4j")}
    # With Maven gone from PATH any attempt to fetch would fail: the cache alone must serve.
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java_executable())
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(only_java))
    with pytest.raises(ServiceError):
        maven_executable()
    again = {name: distribution.ensure(settings, name) for name in ("kafka", "neo4j")}
    assert again == first
    assert (first["kafka"].lib_dir / f"kafka_2.13-{settings.kafka_version}.jar").is_file()
    assert (first["neo4j"].lib_dir / f"neo4j-{settings.neo4j_version}.jar").is_file()
    assert (first["neo4j"].lib_dir / "hub-neo4j.jar").is_file()


def test_a_service_that_dies_on_start_is_reported_with_its_log(settings: Any) -> None:
    state = Path(tempfile.mkdtemp(prefix="hub-broken-"))
    broken = _cycle_settings(state, settings).model_copy(update={"neo4j_heap": "lots"})
    try:
        with pytest.raises(ServiceError) as caught:
            launcher.ensure_up(broken, ["neo4j"], timeout_s=120)
        message = str(caught.value)
        assert "Neo4j" in message and "exited with code 1 while starting" in message
        # The tail of the service's own log says why.
        assert "Invalid maximum heap size: -Xmxlots" in message
    finally:
        launcher.stop(broken)
        assert _pgrep(str(state)) == []
        shutil.rmtree(state, ignore_errors=True)
