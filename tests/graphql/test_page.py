"""Which built page the API serves: the setting's folder, else the package's, else the checkout's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hubql import page
from hubql.app import create_app
from hubql.page import page_dir

from hub.settings import Settings


def _built(folder: Path, marker: str) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(f"<!doctype html><title>{marker}</title>")
    return folder


def test_the_setting_wins_and_an_unbuilt_folder_is_no_page(tmp_path: Path) -> None:
    built = _built(tmp_path / "built", "mine")
    assert page_dir(Settings(frontend_dir=built)) == built
    assert page_dir(Settings(frontend_dir=tmp_path / "empty")) is None


def test_the_packaged_page_comes_before_the_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged, checkout = tmp_path / "packaged", _built(tmp_path / "checkout", "checkout")
    monkeypatch.setattr(page, "PACKAGED", packaged)
    monkeypatch.setattr(page, "SOURCE_TREE", checkout)
    assert page_dir(Settings()) == checkout
    _built(packaged, "packaged")
    assert page_dir(Settings()) == packaged


def test_in_a_checkout_the_fallback_is_frontend_dist() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert repo / "frontend" / "dist" == page.SOURCE_TREE
    assert not page.PACKAGED.exists(), "a built page inside graphql/hubql/ would shadow frontend/dist"


def test_the_api_serves_the_page_the_settings_name(tmp_path: Path) -> None:
    built = _built(tmp_path / "built", "served from the setting")
    # Without the app's lifespan: serving files needs neither Kafka nor Neo4j.
    client = TestClient(create_app(Settings(frontend_dir=built)))
    assert "served from the setting" in client.get("/").text


def test_a_page_built_after_the_api_started_is_served_without_a_restart(tmp_path: Path) -> None:
    later = tmp_path / "later"
    client = TestClient(create_app(Settings(frontend_dir=later)))
    first = client.get("/")
    assert first.status_code == 404 and "./dev.sh demo builds it" in first.text
    assert client.get("/assets/app.js").json() == {"detail": "Not Found"}
    _built(later, "built while the API ran")
    assert "built while the API ran" in client.get("/").text
