"""``hub access export``: the access record (requests, decisions, expiries and uses of access grants) for a
period, read from the audit topic as the operator, one JSON object a line (see :mod:`hub.access_record`)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from hub.access_record import access_records
from hub.settings import get_settings
from hubcli.deadletters import parse_since

access_app = typer.Typer(help="The access record of access requests and grants.", no_args_is_help=True)


@access_app.command("export")
def export_command(
    start: Annotated[str, typer.Option("--from", help="Start (RFC 3339, or a duration back: 15m, 2h, 1d).")],
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write the audit topic's access.* records whose time is in [--from, --to) as JSON lines."""
    now = datetime.now(UTC)
    since = parse_since(start, now, "--from")
    until = parse_since(end, now, "--to") if end else now

    async def run() -> int:
        count = 0
        out = output.open("wb") if output else sys.stdout.buffer
        try:
            async for entry in access_records(get_settings(), since, until):
                out.write(orjson.dumps(entry) + b"\n")
                count += 1
        finally:
            if output:
                out.close()
            else:
                out.flush()
        return count

    count = asyncio.run(run())
    typer.echo(f"{count} access records", err=True)
