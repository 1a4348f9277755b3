"""Where the launcher keeps each service's configuration, data, logs and pid under one state folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ServiceName = Literal["kafka", "neo4j"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("kafka", "neo4j")


@dataclass(frozen=True)
class StateLayout:
    """Paths under the state folder; every path a service's command line mentions lies below ``root``,
    which is what lets ``down`` (and ``pgrep -f <state folder>``) find exactly our processes."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path) -> StateLayout:
        return cls(state_dir.expanduser().resolve())

    def service_dir(self, name: ServiceName) -> Path:
        return self.root / name

    def config_dir(self, name: ServiceName) -> Path:
        return self.service_dir(name) / "config"

    def data_dir(self, name: ServiceName) -> Path:
        return self.service_dir(name) / "data"

    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log_file(self, name: ServiceName) -> Path:
        return self.logs_dir() / f"{name}.log"

    def run_dir(self) -> Path:
        return self.root / "run"

    def pid_file(self, name: ServiceName) -> Path:
        return self.run_dir() / f"{name}.pid"

    def lock_file(self) -> Path:
        return self.run_dir() / "launcher.lock"

    def create(self) -> None:
        for path in (self.logs_dir(), self.run_dir()):
            path.mkdir(parents=True, exist_ok=True)
