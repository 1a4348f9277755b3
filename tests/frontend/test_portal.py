"""The data products page (frontend/portal.html) against a real API on the test Neo4j and Kafka: the
catalogue lists the products the caller may know of and filters them by text, publisher, sensitivity and
class; a product page shows its contract, its quality as the caller may see it, lets the caller flag an
issue and shows the flag's status, and links into the graph explorer. Screenshots catalogue.png and
product-page.png go to test-artifacts/frontend/."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from hub.auth import mint_token
from ontology.loader import load_ontology
from tests.graphql.graphkit import Obj, delete_prefix, write_graph

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "frontend"


def contract(producer: str, name: str, cls: str, sensitivity: str) -> dict[str, Any]:
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:test:contract:{producer}",
        "name": name,
        "version": "1.2.0",
        "status": "active",
        "tenant": producer.rsplit("-", 1)[0],
        "description": {"purpose": f"{name} for the portal's test.", "limitations": "Test data only."},
        "team": {"name": f"{name} team"},
        "support": [{"channel": "email", "url": "mailto:data@example.test"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "d"},
            {"property": "latency", "value": 15, "unit": "m"},
        ],
        "customProperties": [
            {"property": "producer", "value": producer},
            {"property": "defaultLabel", "value": "org=ngt"},
            {"property": "maximumLabel", "value": "classification=OFFICIAL&org=ngt"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": sensitivity},
        ],
        "schema": [
            {
                "name": cls,
                "properties": [{"name": "IdentifiedObject.name", "logicalType": "string", "required": True}],
            }
        ],
    }


@dataclass
class Portal:
    base: str
    settings: Any
    pipes: str  # producer of the gas product
    lines: str  # producer of the electricity product

    def token(self, user: str, org: str | None, clearance: str) -> str:
        return mint_token(user, org, clearance, (), (), 3600, settings=self.settings)


@pytest.fixture(scope="module")
def portal(settings: Any, frontend_dist: Path, neo4j_driver: Any, tmp_path_factory: Any) -> Iterator[Portal]:
    from hubql.app import create_app
    from hubql.serving import server_config

    from devstack.services import kafka

    tag = uuid.uuid4().hex[:6]
    pipes, lines = f"gasco{tag}-pipes", f"gridco{tag}-lines"
    folder = tmp_path_factory.mktemp("contracts")
    (folder / "pipes.yaml").write_text(yaml.safe_dump(contract(pipes, "Gas pipes", "GasPipe", "OE-O")))
    (folder / "lines.yaml").write_text(
        yaml.safe_dump(contract(lines, "Power lines", "ACLineSegment", "OE-SB"))
    )
    ontology = load_ontology()
    write_graph(
        neo4j_driver,
        ontology,
        [Obj(f"{pipes}-{i}", "GasPipe", "classification=PUBLIC", f"Pipe {i}") for i in range(3)]
        + [Obj(f"{pipes}-own{i}", "GasPipe", "org=ngt", f"Own pipe {i}") for i in range(2)],
        [],
        producer=pipes,
        label_ttl_s=settings.label_cache_ttl_s,
    )
    write_graph(
        neo4j_driver,
        ontology,
        [Obj(f"{lines}-{i}", "ACLineSegment", "classification=PUBLIC", f"Line {i}") for i in range(4)],
        [],
        producer=lines,
        label_ttl_s=settings.label_cache_ttl_s,
    )
    producers = {p: {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{p}-"} for p in (pipes, lines)}
    api_settings = settings.model_copy(
        update={
            "contracts_dir": folder,
            "producers": producers,
            "api_metrics_port": 0,
            "feedback_topic": f"portal{tag}.feedback",
        }
    )
    kafka.apply_service_acls(api_settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(api_settings, frontend_dist=frontend_dist)
    server = uvicorn.Server(
        server_config(app, api_settings, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.05)
    try:
        yield Portal(f"http://127.0.0.1:{port}", api_settings, pipes, lines)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for p in (pipes, lines):
            delete_prefix(neo4j_driver, p)
            neo4j_driver.execute_query("MATCH (f:QualityFlag {product: $p}) DELETE f", p=p)


def open_as(page: Any, portal: Portal, token: str, path: str = "/portal.html") -> None:
    page.goto(f"{portal.base}{path}")
    page.evaluate("t => sessionStorage.setItem('hub.token', t)", token)
    page.reload()
    page.wait_for_selector("body[data-loaded='true']", timeout=30_000)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cards(page: Any) -> set[str]:
    ids = page.eval_on_selector_all(
        "[data-testid^='product-card-']", "els => els.map(e => e.dataset.testid.slice(13))"
    )
    return set(ids)


def test_catalogue_product_page_and_a_flag(bare_page: Any, portal: Portal) -> None:
    page = bare_page
    public = portal.token(f"reader-{uuid.uuid4().hex[:6]}", None, "PUBLIC")
    open_as(page, portal, public)
    listed = cards(page)
    assert {portal.pipes, portal.lines} <= listed

    # Filters: by text, publisher, sensitivity and class, each narrowing to what it names.
    page.get_by_test_id("portal-search").fill("power lines")
    assert cards(page) == {portal.lines}
    page.get_by_test_id("portal-search").fill("")
    page.get_by_test_id("filter-publisher").select_option(portal.pipes.rsplit("-", 1)[0])
    assert cards(page) == {portal.pipes}
    page.get_by_test_id("filter-publisher").select_option("")
    page.get_by_test_id("filter-class").select_option("ACLineSegment")
    assert portal.lines in cards(page) and portal.pipes not in cards(page)
    page.get_by_test_id("filter-class").select_option("")
    page.get_by_test_id("filter-sensitivity").select_option("OE-O")
    assert portal.pipes in cards(page) and portal.lines not in cards(page)
    page.get_by_test_id("filter-sensitivity").select_option("")
    # The figures of the list are the caller's: three public pipes, not the two ngt keeps to itself.
    card = page.get_by_test_id(f"product-card-{portal.pipes}")
    assert "3 objects you may see" in card.inner_text()
    assert "4 objects you may see" in page.get_by_test_id(f"product-card-{portal.lines}").inner_text()
    assert page.get_by_test_id("portal-user").inner_text().startswith("reader-")
    shot(page, "catalogue")

    # The product page: contract, quality, a flag raised and its status.
    card.click()
    page.wait_for_selector(f"body[data-product='{portal.pipes}']", timeout=30_000)
    assert page.get_by_test_id("product-title").inner_text() == "Gas pipes"
    assert "Creative Commons Attribution 4.0" in page.get_by_test_id("product-contract").inner_text()
    assert page.get_by_test_id("quality-objects").inner_text() == "3"
    assert page.get_by_test_id("quality-open-flags").inner_text() == "0"
    assert "3/3" in page.get_by_test_id("quality-completeness").inner_text()
    explore = page.get_by_test_id("explore-GasPipe")
    assert explore.get_attribute("href") == "./index.html?class=GasPipe"
    # A hidden object cannot be flagged: the page shows the same refusal as for a missing one.
    page.get_by_test_id("flag-subject").fill(f"{portal.pipes}-own0")
    page.get_by_test_id("flag-description").fill("Wrong diameter")
    page.get_by_test_id("flag-submit").click()
    page.get_by_test_id("portal-message").filter(has_text="no such object in this data product").wait_for(
        timeout=15_000
    )
    page.get_by_test_id("flag-subject").fill(f"{portal.pipes}-1")
    page.get_by_test_id("flag-submit").click()
    page.get_by_test_id("portal-message").filter(has_text="Flag sent to the producer").wait_for(
        timeout=15_000
    )
    flags = page.get_by_test_id("flags")
    assert "Wrong diameter" in flags.inner_text()
    assert flags.get_by_test_id("flag-status").inner_text() == "OPEN"
    assert page.get_by_test_id("quality-open-flags").inner_text() == "1"
    shot(page, "product-page")

    # "Open in the explorer" opens the graph explorer on the product's class.
    explore.click()
    page.wait_for_url("**/index.html?class=GasPipe", timeout=15_000)
    assert page.errors == []
