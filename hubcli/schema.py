"""``hub schema export``: write the GraphQL schema (SDL) that the ontology generates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from hubql.schema import SCHEMA_FILE, export_sdl
from rich.console import Console

schema_app = typer.Typer(help="The GraphQL schema generated from the ontology.", no_args_is_help=True)
console = Console(stderr=True)


@schema_app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the SDL.")] = SCHEMA_FILE,
    check: Annotated[bool, typer.Option("--check", help="Only check that the file is up to date.")] = False,
) -> None:
    """Write the schema to graphql/schema.graphql (or --output); --check fails when the file is stale."""
    sdl = export_sdl()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != sdl:
            console.print(f"[red]{output} is stale[/red]: run `hub schema export`")
            raise typer.Exit(1)
        console.print(f"{output} is up to date")
        return
    output.write_text(sdl, encoding="utf-8")
    console.print(f"wrote {output} ({len(sdl.splitlines())} lines)")
