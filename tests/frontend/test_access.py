"""The data access page (frontend/access.html) against a real API on the test Neo4j and Kafka: a consumer
requests access to a data product from the catalogue, the owner's data officer approves it on the decision
screen, and both see the grant on the evidence page. Screenshots of the three screens go to
test-artifacts/frontend/."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from devstack.demo.producers import PRODUCER_CONFIG
from hub.auth import mint_token

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "devstack" / "demo" / "contracts"
ARTIFACTS = REPO / "test-artifacts" / "frontend"
# ngt's default label in the test of narrower grants: its product then needs two attributes.
NARROW_DEFAULT = "classification=OFFICIAL|(org=ngt&group=grid-planning)"


@dataclass
class AccessApi:
    base: str
    settings: Any

    def token(self, user: str, org: str, roles: tuple[str, ...] = ()) -> str:
        return mint_token(user, org, "OFFICIAL", roles, (), 3600, settings=self.settings)

    def me(self, token: str) -> dict[str, Any]:
        body = httpx.post(
            f"{self.base}/graphql",
            json={"query": "{ me { subject granted } }"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert "errors" not in body, body
        me: dict[str, Any] = body["data"]["me"]
        return me


@pytest.fixture(scope="module")
def access_api(settings: Any, frontend_dist: Path) -> Iterator[AccessApi]:
    """The API with the demo's data products, serving the built page."""
    with serve(settings, frontend_dist, CONTRACTS) as api:
        yield api


@pytest.fixture(scope="module")
def narrow_api(
    settings: Any, frontend_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessApi]:
    """The API with the demo's data products, except that ngt's default label also admits its
    organisation together with a group, so that its product needs two attributes and an officer can grant
    fewer than requested (a producer may only assign labels it satisfies itself, so its maximum label
    names its organisation alone)."""
    contracts = tmp_path_factory.mktemp("contracts")
    for source in CONTRACTS.glob("*.yaml"):
        text = source.read_text(encoding="utf-8")
        if source.name == "ngt.yaml":
            old = "- property: defaultLabel\n  value: classification=OFFICIAL\n"
            assert old in text
            text = text.replace(old, f"- property: defaultLabel\n  value: {NARROW_DEFAULT}\n")
        (contracts / source.name).write_text(text, encoding="utf-8")
    producers = {**PRODUCER_CONFIG, "ngt": {**PRODUCER_CONFIG["ngt"], "default_label": NARROW_DEFAULT}}
    with serve(settings, frontend_dist, contracts, producers) as api:
        yield api


@contextlib.contextmanager
def serve(
    settings: Any, frontend_dist: Path, contracts: Path, producers: Any = PRODUCER_CONFIG
) -> Iterator[AccessApi]:
    from hubql.app import create_app
    from hubql.serving import server_config

    from devstack.services import kafka

    api_settings = settings.model_copy(
        update={
            "contracts_dir": contracts,
            "producers": producers,
            "api_metrics_port": 0,
            "audit_topic": f"access-page-{uuid.uuid4().hex[:8]}.audit",
        }
    )
    kafka.apply_service_acls(api_settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(api_settings, frontend_dist=frontend_dist)
    config = server_config(app, api_settings, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.05)
    try:
        yield AccessApi(f"http://127.0.0.1:{port}", api_settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def open_as(page: Any, api: AccessApi, token: str) -> None:
    """The access page, signed in with ``token`` (kept in the tab's session storage, as the explorer does)."""
    page.goto(f"{api.base}/access.html")
    page.evaluate("t => sessionStorage.setItem('hub.token', t)", token)
    page.reload()
    page.wait_for_selector("body[data-loaded='true']", timeout=30_000)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_request_approve_and_evidence_on_the_access_page(bare_page: Any, access_api: AccessApi) -> None:
    page = bare_page
    tag = uuid.uuid4().hex[:8]
    consumer = access_api.token(f"gas-analyst-{tag}", "nggt")
    officer = access_api.token(f"grid-officer-{tag}", "ngt", ("data-officer",))
    assert access_api.me(consumer)["granted"] == []

    # The consumer picks ngt's product from the catalogue, gives a purpose, accepts the licence.
    open_as(page, access_api, consumer)
    assert page.get_by_test_id("tab-decide").is_hidden()
    page.get_by_test_id("request-product").select_option("ngt")
    assert "ngt" in page.get_by_test_id("request-product-info").inner_text()
    page.get_by_test_id("request-purpose").fill("Gas-to-power planning study, winter 2027")
    page.get_by_test_id("request-licence").check()
    page.get_by_test_id("request-period").select_option("90")
    page.get_by_test_id("request-submit").click()
    mine = page.locator("[data-testid='my-request'][data-product='ngt']")
    mine.wait_for(timeout=15_000)
    assert mine.get_by_test_id("status").inner_text() == "PENDING"
    shot(page, "access-request-form")
    assert access_api.me(consumer)["granted"] == []  # pending changes nothing

    # The owner's data officer sees it on the decision screen and approves it.
    open_as(page, access_api, officer)
    page.get_by_test_id("tab-decide").click()
    card = page.locator("[data-testid='pending-request']", has_text=f"gas-analyst-{tag}")
    card.wait_for(timeout=15_000)
    assert "Gas-to-power planning study" in card.inner_text()
    card.scroll_into_view_if_needed()
    shot(page, "access-decision-screen")
    card.get_by_test_id("approve").click()
    page.get_by_test_id("access-message").filter(has_text="Approved").wait_for(timeout=15_000)
    assert card.count() == 0
    assert access_api.me(consumer)["granted"] == ["org=ngt"]

    # The officer's evidence: who holds grants to its data.
    page.get_by_test_id("tab-evidence").click()
    held = page.locator("[data-testid='held-grant']", has_text=f"gas-analyst-{tag}")
    assert held.get_by_test_id("status").inner_text() == "APPROVED"

    # The consumer's evidence: its grant and when it ends.
    open_as(page, access_api, consumer)
    page.get_by_test_id("tab-evidence").click()
    grant = page.locator("[data-testid='my-grant'][data-product='ngt']")
    grant.wait_for(timeout=15_000)
    assert grant.get_by_test_id("status").inner_text() == "APPROVED"
    assert "UTC" in grant.get_by_test_id("grant-until").inner_text()
    assert "d left" in grant.inner_text()
    shot(page, "access-evidence")
    assert page.errors == []


def test_an_officer_grants_fewer_attributes_than_requested(bare_page: Any, narrow_api: AccessApi) -> None:
    page = bare_page
    tag = uuid.uuid4().hex[:8]
    consumer = narrow_api.token(f"planner-{tag}", "nggt")
    officer = narrow_api.token(f"grid-officer-{tag}", "ngt", ("data-officer",))

    open_as(page, narrow_api, consumer)
    page.get_by_test_id("request-product").select_option("ngt")
    page.get_by_test_id("request-purpose").fill("Boundary study")
    page.get_by_test_id("request-licence").check()
    page.get_by_test_id("request-submit").click()
    page.locator("[data-testid='my-request'][data-product='ngt']").wait_for(timeout=15_000)

    # The decision screen offers each requested attribute, all ticked; the officer grants only one.
    open_as(page, narrow_api, officer)
    page.get_by_test_id("tab-decide").click()
    card = page.locator("[data-testid='pending-request']", has_text=f"planner-{tag}")
    card.wait_for(timeout=15_000)
    boxes = card.get_by_test_id("decision-attribute")
    assert sorted(boxes.nth(i).get_attribute("data-attribute") or "" for i in range(boxes.count())) == [
        "group=grid-planning",
        "org=ngt",
    ]
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    card.locator("[data-attribute='group=grid-planning']").uncheck()
    card.scroll_into_view_if_needed()
    shot(page, "access-decision-narrower")
    card.get_by_test_id("approve").click()
    page.get_by_test_id("access-message").filter(has_text="Approved").wait_for(timeout=15_000)
    assert narrow_api.me(consumer)["granted"] == ["org=ngt"]

    # The consumer's evidence shows what was granted, not what was asked.
    open_as(page, narrow_api, consumer)
    page.get_by_test_id("tab-evidence").click()
    grant = page.locator("[data-testid='my-grant'][data-product='ngt']")
    grant.wait_for(timeout=15_000)
    assert "org=ngt" in grant.inner_text() and "group=grid-planning" not in grant.inner_text()
    assert page.errors == []
