"""``hub token``: minting a token from the development issuer, or a demo user's, from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer import Typer
from typer.testing import CliRunner

from hub.auth import Authenticator
from hub.settings import Settings
from hubcli.tokens import token as token_command


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "oidc_issuer": "https://login.example.test/realms/energy",
        "oidc_audience": "energy-hub",
        "dev_mode": True,
        "jwks_file": None,
        "jwks_url": None,
        "anonymous_access": True,
        "oidc_leeway_s": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def cli() -> Typer:
    app = Typer()
    app.command("token")(token_command)

    # A second command keeps typer from collapsing the app into the single command.
    @app.command("noop")
    def noop() -> None:
        pass

    return app


def test_token_command_prints_a_verifiable_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Typer
) -> None:
    settings = make_settings(tmp_path)
    monkeypatch.setattr("hubcli.tokens.get_settings", lambda: settings)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "token",
            "--user",
            "fay",
            "--org",
            "ngt",
            "--clearance",
            "official",
            "--role",
            "planner",
            "--role",
            "operator",
            "--group",
            "g1",
            "--ttl",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    caller = Authenticator(settings).verify(token)
    assert (caller.subject, caller.org, caller.clearance, caller.roles, caller.groups) == (
        "fay",
        "ngt",
        "OFFICIAL",
        ("planner", "operator"),
        ("g1",),
    )
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert exp - time.time() <= 61

    demo = runner.invoke(cli, ["token", "--demo", "hub.admin"])
    assert demo.exit_code == 0
    assert Authenticator(settings).verify(demo.stdout.strip()).is_admin


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--user", "x", "--clearance", "TOP"], "--clearance"),
        (["--org", "ngt"], "--user is required"),
        (["--demo", "nobody"], "not a demo user"),
    ],
)
def test_token_command_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Typer, args: list[str], fragment: str
) -> None:
    monkeypatch.setattr("hubcli.tokens.get_settings", lambda: make_settings(tmp_path))
    result = CliRunner().invoke(cli, ["token", *args])
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stdout == ""
