"""``hub contracts check``: exit codes and messages naming the clause, against a folder or a git revision."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from devstack.demo.producers import producers_json
from hub.settings import Settings
from hubcli.contracts import EXIT_BREAKING, EXIT_INVALID
from hubcli.main import app

DEMO_CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HUB_PRODUCERS", producers_json())
    found = Settings(state_dir=tmp_path / "state", contracts_dir=DEMO_CONTRACTS)
    monkeypatch.setattr("hubcli.contracts.get_settings", lambda: found)
    return found


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["contracts", "check", *args])


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def gas_pipe(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in doc["schema"] if o["name"] == "GasPipe")
    return found


def test_the_demo_contracts_pass(settings: Settings) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert "5 contract(s) in" in result.output and "lint cleanly" in result.output
    assert "nggt 1.0.0" in result.output


def test_a_contract_that_does_not_lint_fails_naming_file_and_clause(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(DEMO_CONTRACTS, folder)
    edit(folder / "nggt.yaml", lambda d: gas_pipe(d)["properties"][0].update(logicalType="integer"))
    result = run(str(folder))
    assert result.exit_code == EXIT_INVALID
    assert (
        f"{folder}/nggt.yaml: schema[GasPipe].properties[GasPipe.diameter].logicalType: "
        "'integer' does not fit GasPipe.diameter (float)"
    ) in result.output
    (folder / "neso.yaml").write_text("apiVersion: v3.2.0\nkind: DataContract\n")
    result = run(str(folder))
    assert result.exit_code == EXIT_INVALID
    assert f"{folder}/neso.yaml: id: missing (ODCS requires it)" in result.output


def test_a_breaking_version_is_refused_unless_it_is_major(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(DEMO_CONTRACTS, folder)

    def drop_length(doc: dict[str, Any]) -> None:
        pipe = gas_pipe(doc)
        pipe["properties"] = [p for p in pipe["properties"] if p["name"] != "GasPipe.length"]
        doc["version"] = "1.1.0"

    edit(folder / "nggt.yaml", drop_length)
    result = run(str(folder), "--previous", str(DEMO_CONTRACTS))
    assert result.exit_code == EXIT_BREAKING, result.output
    assert (
        f"{folder}/nggt.yaml: schema[GasPipe].properties[GasPipe.length]: "
        "attribute 'GasPipe.length' of GasPipe was removed: "
        "a breaking change needs a new major version (from 1.0.0 to 2.0.0), not 1.1.0"
    ) in result.output
    edit(folder / "nggt.yaml", lambda d: d.update(version="2.0.0"))
    result = run(str(folder), "--previous", str(DEMO_CONTRACTS))
    assert result.exit_code == 0, result.output
    assert f"compatible with {DEMO_CONTRACTS}" in result.output


def test_the_previous_version_may_be_a_git_revision(settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    folder = repo / "ops" / "contracts"
    shutil.copytree(DEMO_CONTRACTS, folder)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "contracts 1.0.0")

    def tighten(doc: dict[str, Any]) -> None:
        for prop in gas_pipe(doc)["properties"]:
            if prop["name"] == "GasPipe.roughness":
                prop["logicalTypeOptions"] = {"minimum": 0, "maximum": 0.01}
        doc["version"] = "1.0.1"

    edit(folder / "nggt.yaml", tighten)
    result = run(str(folder), "--previous", "HEAD")
    assert result.exit_code == EXIT_BREAKING, result.output
    assert (
        "HEAD:ops/contracts/nggt.yaml" not in result.output  # the new file is named, not the old one
        and f"{folder}/nggt.yaml: schema[GasPipe].properties[GasPipe.roughness].logicalTypeOptions.maximum: "
        "a bound maximum=0.01 was added"
        in result.output
    )
    result = run(str(folder), "--previous", "no-such-branch")
    assert result.exit_code == EXIT_INVALID
    assert "'no-such-branch' is neither a folder nor a git revision" in result.output
