"""The README's first command on a fresh clone: ``./dev.sh demo`` alone installs, builds the page and serves
it at ``/`` (no npm step by hand, no restart). Kafka and Neo4j are the test session's, which the demo finds
running and leaves running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.services import kafka, launcher

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parents[2]
# Installing from the locks into a new .venv, npm ci, the build and the demo's start, on a busy machine.
DEMO_START_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_sh_demo_on_a_fresh_clone_serves_the_page(settings: Any, bare_page: Any, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    assert not (clone / "frontend" / "dist").exists(), "a fresh clone carries no built page"

    run = uuid.uuid4().hex[:8]
    port = _free_port()
    isolated = settings.model_copy(
        update={
            "ingest_topic_prefix": f"readme{run}.ingest.",
            "changes_topic": f"readme{run}.changes",
            "deadletter_topic": f"readme{run}.deadletter",
        }
    )
    kafka.apply_service_acls(isolated)  # the worker's and API's principals, for this run's topics
    env = {
        **os.environ,
        "HUB_STATE_DIR": str(settings.state_dir),
        "HUB_API_PORT": str(port),
        "HUB_WORKER_ID": f"readme-{run}",
        "HUB_WORKER_WEB_PORT": str(_free_port()),
        "HUB_METRICS_PORT": str(_free_port()),
        "HUB_INGEST_TOPIC_PREFIX": isolated.ingest_topic_prefix,
        "HUB_CHANGES_TOPIC": isolated.changes_topic,
        "HUB_DEADLETTER_TOPIC": isolated.deadletter_topic,
        "HUB_PRODUCERS_FILE": str(tmp_path / "producers.json"),
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)  # the clone runs its own code, not the checkout running the tests
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "dev.sh", "demo", "--no-simulate", "--duration", "600"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + DEMO_START_TIMEOUT_S
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"{base}/", timeout=5)
            except httpx.TransportError:
                page = None
            if page is not None and (page.status_code == 200 or "Page:" in log.read_text(errors="replace")):
                break  # served; or the demo is up and says where its page is, so what / answers is final
            time.sleep(2)
        tail = log.read_text(errors="replace")[-4000:]
        assert page is not None and page.status_code == 200, f"no page at {base}/:\n{tail}"
        assert 'data-testid="app"' in page.text, page.text[:500]
        assert (clone / "frontend" / "dist" / "index.html").is_file()
        # The page itself, in Chromium (its screenshot is saved under test-artifacts/frontend/).
        bare_page.goto(f"{base}/")
        bare_page.wait_for_selector('[data-testid="graph"]', timeout=30_000)
        assert not bare_page.errors
        # The demo turns the insecure settings on for itself only, and says so: what it prints is what
        # its API does (development tokens are served; GraphQL answers without a token).
        said = ""
        deadline = time.monotonic() + 60
        while "Never run a hub with these settings" not in said and time.monotonic() < deadline:
            time.sleep(1)
            said = " ".join(log.read_text(errors="replace").split())  # the console wraps long lines
        assert "Demo only:" in said and "HUB_DEV_MODE=true, HUB_ANONYMOUS_ACCESS=true" in said, said[-3000:]
        assert httpx.get(f"{base}/dev/tokens", timeout=10).status_code == 200
        anonymous = httpx.post(f"{base}/graphql", json={"query": "{ me { subject } }"}, timeout=10)
        assert anonymous.status_code == 200 and "errors" not in anonymous.json()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a person would
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(clone / ".venv", ignore_errors=True)
    # The demo stopped only what it started: the session's services still answer.
    assert all(s.ready for s in launcher.status(settings)), "the demo stopped services it had not started"
