"""The ingest worker's registrations on its Faust app: the agent, the audit task, the topic discovery
timer and the rebalance handlers, each delegating to one :class:`ingest.pipeline.IngestProcess`.

The work itself (batches through their stages, invariants, state diagram) is :mod:`ingest.pipeline`'s.
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT
from mode import CrashingSupervisor
from mode.types.signals import BaseSignalT

from ingest.app import IngestApp
from ingest.pipeline import IngestProcess


def register(ingest_app: IngestApp) -> IngestProcess:
    """Build the process's pipeline, audit publisher and topic watch, and register them on the app."""
    process = IngestProcess(ingest_app)
    app, settings = ingest_app.app, ingest_app.settings

    @app.task
    async def publish_audit() -> None:
        """Audit records go to the audit topic while the worker runs (the process exiting ends it)."""
        process.audit.start()

    # A failed agent ends the process, with an error status. Faust's default restarts the agent, but the
    # restarted one is handed no events (the conductor feeds the stream it had), so the worker would run
    # on reading nothing, its last batch unacknowledged. Started again (by whoever runs it: the demo
    # reports it, a service manager restarts it), it reads on from the last acknowledged events.
    @app.agent(ingest_app.ingest_topic, supervisor_strategy=CrashingSupervisor)
    async def ingest(stream: StreamT) -> None:
        await process.ingest(stream)

    @app.on_partitions_revoked.connect
    def on_revoked(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        process.reassigned(None)

    @app.on_partitions_assigned.connect
    def on_assigned(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        process.reassigned(set(app.consumer.assignment()))

    @app.timer(interval=settings.topic_discovery_interval_s)
    async def discover() -> None:
        await process.discover()

    @app.timer(interval=settings.measurement_history_prune_s)
    async def prune_measurements() -> None:
        await process.prune_measurements()

    return process
