"""Finds or starts the real Kafka and Neo4j for the tests.

Order, per service: an address given in the environment (HUB_KAFKA_BOOTSTRAP / HUB_NEO4J_URI); else
official images through testcontainers when a Docker engine answers; else the hub's own launcher with the
state folder ``.hub-test/`` and test ports, so a running demo is never touched. HUB_TEST_SERVICES=docker
or =launcher forces one of the last two. A service that cannot be reached fails the tests that need it.

The launcher's services are left running after the session for fast reruns, unless
HUB_TEST_STOP_SERVICES=1 (``./dev.sh test`` sets it) and no other test session is using them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Helpers shared by several test folders (the reference model of the write rules) sit in this folder;
# with importlib import mode it is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_STATE_DIR = REPO_ROOT / ".hub-test"
# Overridable so that two checkouts can run their suites side by side on one machine.
TEST_KAFKA_PORT = int(os.environ.get("HUB_TEST_KAFKA_PORT", "19092"))
TEST_CONTROLLER_PORT = int(os.environ.get("HUB_TEST_CONTROLLER_PORT", "19093"))
TEST_BOLT_PORT = int(os.environ.get("HUB_TEST_BOLT_PORT", "17687"))
KAFKA_IMAGE = "apache/kafka:3.9.1"
NEO4J_IMAGE = "neo4j:5.26-community"

# Which services the environment pointed at before this file set test defaults (decided once, at start).
_EXTERNAL: dict[str, bool] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point every ``get_settings()`` in this process at the test services before any test module runs."""
    _EXTERNAL["kafka"] = bool(os.environ.get("HUB_KAFKA_BOOTSTRAP"))
    _EXTERNAL["neo4j"] = bool(os.environ.get("HUB_NEO4J_URI"))
    os.environ["HUB_STATE_DIR"] = os.environ.get("HUB_TEST_STATE_DIR", str(TEST_STATE_DIR))
    if not _EXTERNAL["kafka"]:
        os.environ["HUB_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{TEST_KAFKA_PORT}"
        os.environ["HUB_KAFKA_CONTROLLER_PORT"] = str(TEST_CONTROLLER_PORT)
    if not _EXTERNAL["neo4j"]:
        os.environ["HUB_NEO4J_URI"] = f"bolt://127.0.0.1:{TEST_BOLT_PORT}"
    # The hub's defaults are secure (no dev tokens, no anonymous callers). Most tests mint tokens from the
    # development issuer and some call without a token, so they turn both on here, explicitly; the tests
    # of the defaults themselves (tests/security/) set them back. APIs started in tests serve metrics only
    # where a test asks for them, so that two checkouts' suites never contend for the metrics port.
    os.environ["HUB_DEV_MODE"] = "true"
    os.environ["HUB_ANONYMOUS_ACCESS"] = "true"
    os.environ["HUB_API_METRICS_PORT"] = "0"
    from hub.settings import get_settings

    get_settings.cache_clear()


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _choose_provider() -> str:
    wanted = os.environ.get("HUB_TEST_SERVICES", "auto").strip().lower()
    if wanted not in {"auto", "docker", "launcher"}:
        pytest.fail(f"HUB_TEST_SERVICES={wanted!r}: expected auto, docker or launcher", pytrace=False)
    if wanted == "auto":
        return "docker" if _docker_answers() else "launcher"
    return wanted


def _start_containers(settings: Any, names: list[str]) -> list[Any]:
    from testcontainers.core.container import DockerContainer

    containers: list[Any] = []
    if "kafka" in names:
        kafka = (
            DockerContainer(KAFKA_IMAGE)
            .with_bind_ports(TEST_KAFKA_PORT, TEST_KAFKA_PORT)
            .with_envs(
                KAFKA_NODE_ID="1",
                KAFKA_PROCESS_ROLES="broker,controller",
                KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{TEST_KAFKA_PORT},CONTROLLER://localhost:9093",
                KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{TEST_KAFKA_PORT}",
                KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
                KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
                KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
                KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
                KAFKA_NUM_PARTITIONS=str(settings.topic_partitions),
                KAFKA_AUTO_CREATE_TOPICS_ENABLE="true",
            )
        )
        containers.append(kafka.start())
    if "neo4j" in names:
        if settings.neo4j_user != "neo4j":
            pytest.fail(
                f"HUB_NEO4J_USER={settings.neo4j_user!r}: the Neo4j image only sets up the user 'neo4j'",
                pytrace=False,
            )
        neo = (
            DockerContainer(NEO4J_IMAGE)
            .with_bind_ports(7687, TEST_BOLT_PORT)
            .with_envs(NEO4J_AUTH=f"neo4j/{settings.neo4j_password}", NEO4J_server_http_enabled="false")
        )
        containers.append(neo.start())
    return containers


def _wait_until_answering(settings: Any, names: list[str], timeout_s: float) -> None:
    import time

    from devstack.services import kafka, neo4j
    from devstack.services.errors import ServiceError

    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            try:
                if name == "kafka":
                    kafka.probe(settings)
                else:
                    neo4j.probe(settings)
                break
            except ServiceError as exc:
                if time.monotonic() >= deadline:
                    pytest.fail(f"{name} is not reachable: {exc}", pytrace=False)
                time.sleep(1)


def _lease_dir(settings: Any) -> Path:
    return Path(settings.state_dir).expanduser().resolve() / "run" / "leases"


def _other_live_leases(lease_dir: Path) -> list[int]:
    """Pids of other test sessions still using the launcher's services; stale leases are removed."""
    from devstack.services.process import command_line

    live: list[int] = []
    for lease in lease_dir.glob("*"):
        with contextlib.suppress(ValueError):
            pid = int(lease.name)
            cmdline = command_line(pid)
            # A pid reused by an unrelated process does not keep the services alive.
            if cmdline is not None and "python" in cmdline:
                live.append(pid)
            else:
                lease.unlink(missing_ok=True)
    return live


@pytest.fixture(scope="session")
def _services() -> Iterator[None]:
    from devstack.services import launcher
    from devstack.services.errors import ServiceError
    from hub.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    local = [name for name in ("kafka", "neo4j") if not _EXTERNAL.get(name, False)]
    containers: list[Any] = []
    lease: Path | None = None
    if local:
        provider = _choose_provider()
        if provider == "docker":
            try:
                containers = _start_containers(settings, local)
            except Exception as exc:
                pytest.fail(f"could not start {', '.join(local)} with Docker: {exc!r}", pytrace=False)
        else:
            lease_dir = _lease_dir(settings)
            lease_dir.mkdir(parents=True, exist_ok=True)
            lease = lease_dir / str(os.getpid())
            lease.write_text("")
            try:
                launcher.ensure_up(settings, local)  # type: ignore[arg-type]
            except ServiceError as exc:
                pytest.fail(f"the local services did not start: {exc}", pytrace=False)
    _wait_until_answering(settings, ["kafka", "neo4j"], settings.services_start_timeout_s)
    yield
    for container in containers:
        with contextlib.suppress(Exception):
            container.stop()
    if lease is not None:
        lease.unlink(missing_ok=True)
        if os.environ.get("HUB_TEST_STOP_SERVICES") == "1" and not _other_live_leases(lease.parent):
            launcher.stop(settings, local)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(_services: None) -> Any:
    """The Settings the test services run with (also what ``get_settings()`` returns in tests)."""
    from hub.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Any) -> str:
    return str(settings.kafka_bootstrap)


@pytest.fixture(scope="session")
def neo4j_driver(settings: Any) -> Iterator[Any]:
    from neo4j import GraphDatabase

    driver = GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    try:
        driver.verify_connectivity()
    except Exception as exc:
        driver.close()
        pytest.fail(f"Neo4j at {settings.neo4j_uri} is not reachable: {exc!r}", pytrace=False)
    yield driver
    driver.close()


async def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from hub.kafka_clients import admin_options
    from hub.kafka_topics import ensure_topics, topic_admin

    async with topic_admin(admin_options(bootstrap)) as admin:
        # Waits until every partition has a leader: producing earlier would fail.
        await ensure_topics(admin, names, partitions)


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    from hub.kafka_clients import admin_options
    from hub.kafka_topics import delete_topics, topic_admin

    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, names)


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """``make(prefix="test", partitions=1) -> name``: creates a uniquely named topic, deleted afterwards.

    Synchronous so that both plain and async tests can call it."""
    from devstack.services.async_run import run_coroutine

    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 1) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        run_coroutine(_create_topics(kafka_bootstrap, [name], partitions))
        created.append(name)
        return name

    yield make
    if created:
        # Leftover topics only cost disk in the test state folder, so a failed delete is not a failure.
        with contextlib.suppress(Exception):
            run_coroutine(_delete_topics(kafka_bootstrap, created))


@pytest.fixture
def fresh_topic(topic_factory: Callable[..., str]) -> str:
    """A new single-partition topic with a unique name."""
    return topic_factory()


def _wipe(driver: Any, database: str, batch: int) -> int:
    total = 0
    while True:
        records, _, _ = driver.execute_query(
            "MATCH (n) WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted",
            batch=batch,
            database_=database,
        )
        deleted = int(records[0]["deleted"])
        total += deleted
        if deleted == 0:
            return total


@pytest.fixture
def wipe_graph(neo4j_driver: Any, settings: Any) -> Callable[..., int]:
    """``wipe(batch=10_000) -> deleted``: delete every node and relationship, in batches so a large graph
    does not need one huge transaction. Constraints and indexes are kept."""

    def wipe(batch: int = 10_000) -> int:
        return _wipe(neo4j_driver, settings.neo4j_database, batch)

    return wipe


@pytest.fixture
def clean_graph(neo4j_driver: Any, wipe_graph: Callable[..., int]) -> Any:
    """An empty Neo4j database for this test; returns the driver."""
    wipe_graph()
    return neo4j_driver


# ------------------------------------------------------------------------------------- the built page
# The planners' page, built once per session: the browser tests serve it, the packaging test ships it.

FRONTEND = REPO_ROOT / "frontend"


@pytest.fixture(scope="session")
def frontend_dist() -> Path:
    """frontend/dist, built from a clean checkout (``npm ci``, ``npm run build``) when missing or stale."""
    from devstack.page_build import PageBuildError, ensure_page

    try:
        return ensure_page(FRONTEND)
    except PageBuildError as exc:
        pytest.fail(str(exc), pytrace=False)
