"""The ``hub`` command: a thin root that registers each area's sub-app or command."""

from __future__ import annotations

import typer
from hubql.cli import schema_app

from hub.app import api_command
from hub.demo.orchestrator import demo as demo_command
from hub.producers_cli import app as producers_app
from hub.services.cli import app as services_app
from hub.token_cli import token as token_command
from ingest.produce_cli import produce as produce_command
from ingest.worker import worker_command

app = typer.Typer(help="The energy knowledge-graph hub.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(schema_app, name="schema")
app.add_typer(producers_app, name="producers")
app.command("api")(api_command)
app.command("token")(token_command)
app.command("produce")(produce_command)
app.command("demo")(demo_command)
app.command("worker")(worker_command)


if __name__ == "__main__":
    app()
