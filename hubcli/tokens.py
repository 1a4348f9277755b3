"""``hub token``: mint a development bearer token (prints only the token, so ``$(hub token ...)`` works)."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer
from rich.console import Console

from hub.auth import DEMO_USERS, mint_token
from hub.labels import LEVELS, canonical_level
from hub.settings import get_settings

_err = Console(stderr=True)


def token(
    user: Annotated[str | None, typer.Option(help="Subject (user name) of the token.")] = None,
    org: Annotated[str | None, typer.Option(help="Organisation claim, e.g. ngt.")] = None,
    clearance: Annotated[str, typer.Option(help=f"Clearance: one of {', '.join(LEVELS)}.")] = "PUBLIC",
    role: Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="Group (repeatable).")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 8 * 3600,
    demo: Annotated[
        str | None,
        typer.Option(help=f"Use a demo user instead: {', '.join(u.user for u in DEMO_USERS)}."),
    ] = None,
) -> None:
    """Mint a token from the development issuer (keys in the state folder, created on first use)."""
    settings = get_settings()
    if demo is not None:
        found = next((u for u in DEMO_USERS if u.user == demo), None)
        if found is None:
            names = ", ".join(u.user for u in DEMO_USERS)
            _err.print(f"[red]--demo {demo!r} is not a demo user; choose one of: {names}[/red]")
            raise typer.Exit(2)
        user, org, clearance = found.user, found.org, found.clearance
        roles, groups = list(found.roles), list(found.groups)
    else:
        if not user:
            _err.print("[red]--user is required (or pick a --demo user)[/red]")
            raise typer.Exit(2)
        roles, groups = list(role or []), list(group or [])
    try:
        canonical_level(clearance)
    except ValueError as exc:
        _err.print(f"[red]--clearance: {exc}[/red]")
        raise typer.Exit(2) from None
    if not settings.dev_mode or settings.jwks_file is not None or settings.jwks_url:
        _err.print(
            "[yellow]note: the API verifies tokens against the configured JWKS, not the development "
            "issuer, unless dev_mode is on and no jwks_file/jwks_url is set[/yellow]"
        )
    # Anything logged while minting (e.g. creating the issuer key) must not end up in $(hub token ...).
    with contextlib.redirect_stdout(sys.stderr):
        minted = mint_token(user, org, clearance, roles, groups, ttl, settings=settings)
    typer.echo(minted)
