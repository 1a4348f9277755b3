"""Producers' HTTP ingest: ``POST /ingest`` validates events and writes them to the producer's own topic.

For producers that cannot run a Kafka client. The caller must be authenticated; the producers it may
publish as are those of its organisation (``hub.producers``: a configured producer's ``org``, else the
producer id itself is the organisation). Each event's ``source`` names the producer, so the topic is
``<ingest_topic_prefix><source>`` and the key is the event's mRID, exactly as a Kafka producer would write.

A request is one event object, a list of them, or ``{"events": [...]}``. The batch is all or nothing: if any
event is invalid the answer is 422 with the reason for each invalid one and nothing is written; otherwise
202 once Kafka has acknowledged every record.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from hub.auth import Authenticator, AuthError, audit_refusal, unauthorized
from hub.caller import Caller
from hub.labels import LabelError, parse
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import Settings
from hub.validation import EventRejected, validate_event
from ontology.model import Ontology

log = structlog.get_logger(__name__)

INGESTED = Counter("hub_api_ingest_events_total", "Events received over HTTP ingest", ["result"])

router = APIRouter()


class IngestService:
    """What the endpoint needs: settings, ontology, producer registry and a lazily started Kafka producer."""

    def __init__(self, settings: Settings, ontology: Ontology, authenticator: Authenticator) -> None:
        self.settings = settings
        self.ontology = ontology
        self.authenticator = authenticator
        self.registry = ProducerRegistry.from_settings(settings)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    client_id="hub-api-ingest",
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def may_publish_as(self, caller: Caller, producer_id: str) -> bool:
        if caller.anonymous or not caller.org:
            return False
        try:
            return self.registry.get(producer_id).org == caller.org
        except ProducerConfigError:
            return False


def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


def _caller(request: Request, service: Annotated[IngestService, Depends(_service)]) -> Caller:
    authorization = request.headers.get("authorization")
    client = request.client.host if request.client is not None else None
    try:
        caller = service.authenticator.authenticate(authorization)
        if caller.anonymous:
            raise AuthError("producers must authenticate to ingest events")
    except AuthError as exc:
        audit_refusal(exc, authorization, client=client, channel="http")
        raise unauthorized(exc) from None
    return caller


def _events_of(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return list(body["events"])
    if isinstance(body, dict):
        return [body]
    raise HTTPException(422, detail='body must be an event object, a list of events or {"events": [...]}')


@router.post("/ingest", status_code=202)
async def ingest(
    request: Request,
    caller: Annotated[Caller, Depends(_caller)],
    service: Annotated[IngestService, Depends(_service)],
) -> JSONResponse:
    raw = await request.body()
    if len(raw) > service.settings.max_event_bytes * max(1, service.settings.ingest_max_batch):
        raise HTTPException(413, detail=f"body of {len(raw)} bytes is too large")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(422, detail=f"body is not JSON: {exc}") from None
    events = _events_of(body)
    if not events:
        raise HTTPException(422, detail="no events in the request")
    if len(events) > service.settings.ingest_max_batch:
        raise HTTPException(
            413,
            detail=f"{len(events)} events exceed the batch limit "
            f"ingest_max_batch={service.settings.ingest_max_batch}",
        )
    accepted: list[tuple[str, bytes, bytes]] = []
    rejected: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            valid = validate_event(event, service.ontology, max_bytes=service.settings.max_event_bytes)
            source = valid.event.source
            if not service.may_publish_as(caller, source):
                raise EventRejected(
                    f"caller of organisation {caller.org!r} may not publish as this producer",
                    "source",
                    source,
                )
            if valid.event.label is not None:
                producer = service.registry.get(source)
                try:
                    label = parse(valid.event.label)
                except LabelError as exc:
                    raise EventRejected(
                        f"label does not parse: {exc.message}", "label", valid.event.label
                    ) from None
                if not producer.may_assign(label):
                    raise EventRejected(
                        "producer may not assign a label it does not satisfy itself",
                        "label",
                        valid.event.label,
                    )
        except EventRejected as exc:
            rejected.append(
                {
                    "index": index,
                    "reason": exc.reason,
                    "field": exc.field,
                    "value": exc.value
                    if isinstance(exc.value, str | int | float | bool)
                    else repr(exc.value),
                    "message": str(exc),
                }
            )
            continue
        value = json.dumps(
            event if isinstance(event, dict) else valid.event.to_json_dict(), separators=(",", ":")
        ).encode()
        accepted.append((service.settings.ingest_topic_prefix + source, valid.mrid.encode(), value))
    if rejected:
        INGESTED.labels("rejected").inc(len(rejected))
        log.info("http ingest rejected", subject=caller.subject, rejected=len(rejected), total=len(events))
        return JSONResponse({"accepted": 0, "rejected": rejected}, status_code=422)
    producer = await service.producer()
    futures = [await producer.send(topic, value=value, key=key) for topic, key, value in accepted]
    await asyncio.gather(*futures)
    INGESTED.labels("accepted").inc(len(accepted))
    topics = sorted({t for t, _, _ in accepted})
    log.info("http ingest accepted", subject=caller.subject, events=len(accepted), topics=topics)
    return JSONResponse({"accepted": len(accepted), "rejected": [], "topics": topics}, status_code=202)
