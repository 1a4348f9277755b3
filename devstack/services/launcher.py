"""Bringing the local Kafka and Neo4j up, reporting on them and stopping them: the launcher's Python API.

Everything a service owns (configuration, data, logs, pid) lives under ``settings.state_dir``; the jars
come from ``settings.cache_dir``, shared by every state folder. ``ensure_up`` is idempotent and returns
only once each service answers a real request; ``stop`` signals only processes recorded in our pid files
whose command line names our state folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack.services import distribution, kafka, neo4j
from devstack.services.endpoint import Endpoint
from devstack.services.errors import ServiceError
from devstack.services.layout import SERVICE_NAMES, ServiceName, StateLayout
from devstack.services.process import alive, exit_code, log_tail, port_open, recorded_pid, spawn, terminate
from devstack.services.tools import java_executable
from hub.filelock import locked
from hub.settings import Settings, get_settings

Progress = Callable[[str], None]

TITLES: dict[ServiceName, str] = {"kafka": "Kafka", "neo4j": "Neo4j"}
_POLL_S = 0.5
_LOG_LINES = 40


@dataclass(frozen=True)
class ServiceStatus:
    name: ServiceName
    title: str
    address: str
    pid: int | None
    ready: bool
    detail: str
    log_file: Path


def ensure_up(
    settings: Settings | None = None,
    services: Iterable[ServiceName] = SERVICE_NAMES,
    *,
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> list[ServiceStatus]:
    """Start whichever of ``services`` is not running and wait until each answers; running ones are kept."""
    settings = settings or get_settings()
    names = _names(services)
    report = progress or (lambda _msg: None)
    layout = StateLayout.of(settings.state_dir)
    layout.create()
    limit_s = timeout_s if timeout_s is not None else settings.services_start_timeout_s
    deadline = time.monotonic() + limit_s
    with locked(layout.lock_file()):
        started: dict[ServiceName, int] = {}
        for name in names:
            pid = recorded_pid(layout.pid_file(name), str(layout.root))
            if pid is None:
                pid = _start(settings, layout, name, report)
            started[name] = pid
        for name, pid in started.items():
            _wait_ready(settings, layout, name, pid, deadline, limit_s, report)
            if name == "kafka":
                # Every start, so that a state folder made before a policy change gets the current ACLs.
                kafka.apply_service_acls(settings)
    return status(settings, names)


def stop(
    settings: Settings | None = None,
    services: Iterable[ServiceName] = SERVICE_NAMES,
    *,
    timeout_s: float = 45.0,
) -> list[ServiceName]:
    """Stop our processes of ``services`` (SIGTERM, SIGKILL after ``timeout_s``); returns those stopped."""
    settings = settings or get_settings()
    names = _names(services)
    layout = StateLayout.of(settings.state_dir)
    if not layout.run_dir().is_dir():
        return []
    with locked(layout.lock_file()):
        pids = {name: recorded_pid(layout.pid_file(name), str(layout.root)) for name in names}
        running = {name: pid for name, pid in pids.items() if pid is not None}
        terminate(list(running.values()), timeout_s)
        for name in names:
            layout.pid_file(name).unlink(missing_ok=True)
        if "neo4j" in names:
            neo4j.ready_file(layout).unlink(missing_ok=True)
    return list(running)


def start_service(
    settings: Settings | None, name: ServiceName, *, progress: Progress | None = None
) -> ServiceStatus:
    """Start one service (e.g. Neo4j again after a test stopped it) and wait until it answers."""
    return ensure_up(settings, (name,), progress=progress)[0]


def stop_service(settings: Settings | None, name: ServiceName, *, timeout_s: float = 45.0) -> bool:
    """Stop one service; True if it was running."""
    return bool(stop(settings, (name,), timeout_s=timeout_s))


def status(
    settings: Settings | None = None, services: Iterable[ServiceName] = SERVICE_NAMES
) -> list[ServiceStatus]:
    settings = settings or get_settings()
    layout = StateLayout.of(settings.state_dir)
    return [_status_of(settings, layout, name) for name in _names(services)]


def _names(services: Iterable[ServiceName]) -> list[ServiceName]:
    names = list(dict.fromkeys(services))
    for name in names:
        if name not in SERVICE_NAMES:
            raise ServiceError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    return names


def _endpoints(settings: Settings, name: ServiceName) -> list[tuple[str, Endpoint]]:
    if name == "kafka":
        return [
            ("HUB_KAFKA_BOOTSTRAP", kafka.endpoint(settings)),
            ("HUB_KAFKA_CONTROLLER_PORT", kafka.controller_endpoint(settings)),
        ]
    return [("HUB_NEO4J_URI", neo4j.endpoint(settings))]


def _address(settings: Settings, name: ServiceName) -> str:
    return settings.kafka_bootstrap if name == "kafka" else settings.neo4j_uri


def _start(settings: Settings, layout: StateLayout, name: ServiceName, report: Progress) -> int:
    title = TITLES[name]
    for key, ep in _endpoints(settings, name):
        if port_open(ep.host, ep.port):
            raise ServiceError(
                f"{title}: port {ep.port} ({key}) is already in use by a process this launcher did not start "
                f"(state folder {layout.root}). Stop that process or choose other ports via {key}."
            )
    java = java_executable()
    dist = distribution.ensure(settings, name, report)
    report(f"Starting {title} on {_address(settings, name)}")
    if name == "kafka":
        kafka.format_storage(java, dist, settings, layout)
        argv = kafka.command(java, dist, settings, layout)
        env = dict(os.environ)
    else:
        argv = neo4j.command(java, dist, settings, layout)
        env = neo4j.environment(settings)
    return spawn(
        argv,
        log_file=layout.log_file(name),
        pid_file=layout.pid_file(name),
        env=env,
        cwd=layout.service_dir(name),
    )


def _probe(settings: Settings, layout: StateLayout, name: ServiceName, timeout_s: float) -> None:
    if name == "kafka":
        kafka.probe(settings, timeout_s)
        return
    if not neo4j.ready_file(layout).is_file():
        raise ServiceError("Neo4j is still starting (password not yet set)")
    neo4j.probe(settings, timeout_s)


def _wait_ready(
    settings: Settings,
    layout: StateLayout,
    name: ServiceName,
    pid: int,
    deadline: float,
    limit_s: float,
    report: Progress,
) -> None:
    title = TITLES[name]
    log = layout.log_file(name)
    began = time.monotonic()
    last_error = "no answer yet"
    while True:
        if not alive(pid):
            code = exit_code(pid)
            how = "" if code is None else (f" with code {code}" if code >= 0 else f" by signal {-code}")
            raise ServiceError(
                f"{title} (pid {pid}) exited{how} while starting. "
                f"Last lines of {log}:\n{log_tail(log, _LOG_LINES)}"
            )
        try:
            _probe(settings, layout, name, timeout_s=3.0)
            return
        except ServiceError as exc:
            last_error = str(exc)
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"{title} (pid {pid}) did not become ready at {_address(settings, name)} within "
                f"{limit_s:.0f}s (HUB_SERVICES_START_TIMEOUT_S); "
                f"last check: {last_error}\n"
                f"It is left running; `hub services logs {name}` or `hub services down`. "
                f"Last lines of {log}:\n{log_tail(log, _LOG_LINES)}"
            )
        report(f"Waiting for {title} on {_address(settings, name)} ({time.monotonic() - began:.0f}s)")
        time.sleep(_POLL_S)


def _status_of(settings: Settings, layout: StateLayout, name: ServiceName) -> ServiceStatus:
    title = TITLES[name]
    log = layout.log_file(name)
    address = _address(settings, name)
    try:
        endpoints = _endpoints(settings, name)
    except ServiceError as exc:
        return ServiceStatus(name, title, address, None, False, str(exc), log)
    pid = recorded_pid(layout.pid_file(name), str(layout.root)) if layout.run_dir().is_dir() else None
    if pid is None:
        main = endpoints[0][1]
        if port_open(main.host, main.port):
            detail = "not started by this launcher, but something answers on its port"
        else:
            detail = "stopped"
        return ServiceStatus(name, title, address, None, False, detail, log)
    try:
        _probe(settings, layout, name, timeout_s=3.0)
    except ServiceError as exc:
        return ServiceStatus(name, title, address, pid, False, f"starting or unhealthy: {exc}", log)
    return ServiceStatus(name, title, address, pid, True, "ready", log)
