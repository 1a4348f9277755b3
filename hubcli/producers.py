"""``hub producers add``: give a new producer its Kafka account, topic, ACLs and configuration in one step."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from hub.labels import LEVELS
from hub.settings import get_settings
from ingest.producer_onboarding import add_producer

app = typer.Typer(help="Producers: who may publish to the hub.", no_args_is_help=True)
_console = Console()


@app.command("add")
def add(
    producer_id: Annotated[str, typer.Argument(help="Producer id; its topic is <prefix><id>.")],
    org: Annotated[str | None, typer.Option(help="Organisation (default: the id).")] = None,
    clearance: Annotated[str | None, typer.Option(help=f"Clearance: one of {', '.join(LEVELS)}.")] = None,
    default_label: Annotated[
        str | None, typer.Option(help="Label of events that carry none (default: org=<org>).")
    ] = None,
    owns: Annotated[str | None, typer.Option(help="mRID prefix the producer may write.")] = None,
) -> None:
    """Create producer-<id> (SCRAM credentials kept in the state folder), its topic and its dead-letter
    topic, its ACLs (write its topic, read its own dead letters), and its entry in the producers file."""
    settings = get_settings()
    try:
        added = asyncio.run(
            add_producer(
                settings, producer_id, org=org, clearance=clearance, default_label=default_label, owns=owns
            )
        )
    except Exception as exc:
        _console.print(f"[red]error:[/red] adding producer {producer_id!r} failed: {exc}", highlight=False)
        raise typer.Exit(1) from None
    _console.print(
        f"Producer {added.producer_id!r}: principal {added.principal}, topic {added.topic}, "
        f"dead letters {added.deadletter_topic}\n"
        f"  credentials: {added.credentials_file}\n  configuration: {added.producers_file}",
        highlight=False,
    )
