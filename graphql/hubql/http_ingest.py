"""Producers' HTTP ingest: ``POST /ingest`` validates events and writes them to the producer's own topic.

For producers that cannot run a Kafka client. The caller must be authenticated and hold the role
``producer:<id>`` of a configured producer (:mod:`hub.producers`) to publish as it; an organisation
claim alone is not enough. Each event's ``source`` names the producer, so the topic is
``<ingest_topic_prefix><source>`` and the key is the event's mRID, exactly as a Kafka producer would write.

The write check (:mod:`hub.write_policy`) runs here on what the API knows, so refusals come back at once:
the producer's mRID range, and the new label (the event's, else the producer's default) must be satisfied
by both the caller and the producer. The object's stored label is judged by the worker, which knows it:
every record carries the caller's rights in ``Hub-Writer-*`` headers, and the worker requires the write
to pass under them as well as under the producer's, so nothing changes between this check and the write.
A caller may widen who sees an object only with the role ``declassifier:<id>`` (or ``declassifier``, for
every producer it may publish as), and only if the producer itself is configured to declassify. Every
refused event is an audit record (``ingest.refused``) with its reason.

The producer's data contract (:mod:`hub.contracts`) is checked here too, as far as it can be without the
stored state (class promised, ranges, enumerations, required attributes not removed, label within the
maximum), so that a breach is answered at once with its clause (field ``contract``); whether an upsert
creates its object, and so must carry the required attributes, only the worker knows.

A request is one event object, a list of them, or ``{"events": [...]}``. The batch is all or nothing: if any
event is invalid the answer is 422 with the reason for each invalid one and nothing is written; otherwise
202 once Kafka has acknowledged every record, with ``Location: /ingest/batches/{id}`` (and the same in the
body's ``status``): there the caller who posted the batch, and nobody else, reads what the worker made of
each event (:mod:`hubql.batch_status`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter

from hub import audit
from hub.caller import Caller
from hub.contracts import Breach, ContractBook
from hub.kafka_clients import API, aiokafka_options
from hub.labels import LabelError, intern, parse
from hub.outcomes import Tracked
from hub.producers import Producer, ProducerConfigError, ProducerRegistry, producer_role
from hub.settings import Settings
from hub.validation import EventRejected, validate_event
from hub.write_policy import WriteRights, check_all, encode_rights
from hubql.batch_status import STATUS_PATH, BatchOutcomes
from hubql.callers import RequestCaller, refused
from hubql.peers import Peers
from ontology.model import Ontology

log = structlog.get_logger(__name__)

INGESTED = Counter("hub_api_ingest_events_total", "Events received over HTTP ingest", ["result"])

router = APIRouter()

DECLASSIFIER_ROLE = "declassifier"


def caller_rights(caller: Caller, producer_id: str) -> WriteRights:
    """The caller's write rights when publishing as ``producer_id``."""
    roles = set(caller.roles)
    declassify = DECLASSIFIER_ROLE in roles or f"{DECLASSIFIER_ROLE}:{producer_id}" in roles
    return WriteRights(caller.authorizations, declassify)


class IngestService:
    """What the endpoint needs: settings, ontology, producer registry and a lazily started Kafka producer."""

    def __init__(self, settings: Settings, ontology: Ontology, peers: Peers | None = None) -> None:
        self.settings = settings
        # The other processes of this API, which may hold a batch this one was asked about.
        self.peers = peers
        self.ontology = ontology
        self.registry = ProducerRegistry.from_settings(settings)
        # As the worker holds them (a folder that does not lint stops the API, naming every problem).
        self.contracts = (
            ContractBook.from_folder(settings.contracts_dir, ontology, self.registry)
            if settings.contracts_enforce and settings.contracts_dir is not None
            else None
        )
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self.outcomes = BatchOutcomes(settings, peers.prefix if peers is not None else "")

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **aiokafka_options(self.settings, API),
                    acks="all",
                    enable_idempotence=True,
                    client_id="hub-api-ingest",
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        await self.outcomes.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def publisher(self, caller: Caller, producer_id: str) -> Producer:
        """The producer ``caller`` publishes as; :class:`EventRejected` saying why it may not."""
        try:
            producer = self.registry.get(producer_id)
        except ProducerConfigError as exc:
            raise EventRejected(str(exc), "source", producer_id) from None
        if caller.anonymous or producer_role(producer_id) not in caller.roles:
            raise EventRejected(
                f"caller {caller.subject!r} does not hold the role {producer_role(producer_id)!r} "
                "needed to publish as this producer",
                "source",
                producer_id,
            )
        return producer


def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


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
    identified: RequestCaller,
    service: Annotated[IngestService, Depends(_service)],
) -> JSONResponse:
    if identified is None or identified.anonymous:
        raise refused(request, "producers must authenticate to ingest events")
    caller = identified
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
    accepted: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
    sent: list[Tracked] = []
    rejected: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            valid = validate_event(event, service.ontology, max_bytes=service.settings.max_event_bytes)
            source = valid.event.source
            producer = service.publisher(caller, source)
            if not producer.may_own(valid.mrid):
                raise EventRejected(
                    f"producer {source!r} may only write mRIDs starting {producer.owns!r}",
                    "subject",
                    valid.mrid,
                )
            rights = caller_rights(caller, source)
            if valid.event.type.value == "upsert":
                if valid.event.label is not None:
                    try:
                        label = parse(valid.event.label)
                    except LabelError as exc:
                        raise EventRejected(
                            f"label does not parse: {exc.message}", "label", valid.event.label
                        ) from None
                else:
                    label = producer.default_label
                # The object's current label is the worker's to judge; the new one is known here.
                verdict = check_all((producer.rights, rights), None, label)
                if verdict.reason is not None:
                    raise EventRejected(
                        verdict.reason, "label", valid.event.label or producer.default_label_text
                    )
            else:
                label = None
            enforcer = service.contracts.enforcer(source) if service.contracts is not None else None
            if enforcer is not None:
                rules = enforcer.rules(valid.class_name)
                breach = rules if isinstance(rules, Breach) else rules.check(valid.properties)
                if breach is None and label is not None:
                    breach = enforcer.label(intern(label)[0], label)
                if breach is not None:
                    raise EventRejected(breach.reason, "contract", breach.clause)
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
            audit.record(
                "ingest.refused",
                subject=caller.subject,
                index=index,
                reason=exc.reason,
                field=exc.field,
                value=rejected[-1]["value"],
            )
            continue
        value = json.dumps(
            event if isinstance(event, dict) else valid.event.to_json_dict(), separators=(",", ":")
        ).encode()
        accepted.append(
            (
                service.settings.ingest_topic_prefix + source,
                valid.mrid.encode(),
                value,
                encode_rights(rights, caller.subject),
            )
        )
        sent.append(
            Tracked(
                valid.event.id,
                valid.event.subject,
                valid.mrid,
                valid.class_name,
                valid.event.version,
                topic=service.settings.ingest_topic_prefix + source,
                producer=source,
            )
        )
    if rejected:
        INGESTED.labels("rejected").inc(len(rejected))
        log.info("http ingest rejected", subject=caller.subject, rejected=len(rejected), total=len(events))
        return JSONResponse({"accepted": 0, "rejected": rejected}, status_code=422)
    kafka = await service.producer()
    # The outcome reader starts before the first record goes out, and waits for the batch's places.
    async with service.outcomes.sending():
        futures = [
            await kafka.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in accepted
        ]
        for tracked, meta in zip(sent, await asyncio.gather(*futures), strict=True):
            tracked.partition, tracked.offset = meta.partition, meta.offset
        batch_id = service.outcomes.record(caller.subject, sent)
    INGESTED.labels("accepted").inc(len(accepted))
    topics = sorted({t for t, _, _, _ in accepted})
    status = STATUS_PATH + batch_id
    log.info(
        "http ingest accepted", subject=caller.subject, events=len(accepted), topics=topics, batch=batch_id
    )
    return JSONResponse(
        {"accepted": len(accepted), "rejected": [], "topics": topics, "batch": batch_id, "status": status},
        status_code=202,
        headers={"Location": status},
    )


# One answer for a batch that does not exist and for one that is another caller's.
_NO_SUCH_BATCH = b'{"detail":"no such batch"}'


@router.get(STATUS_PATH + "{batch_id}")
async def batch_status(
    batch_id: str,
    identified: RequestCaller,
    service: Annotated[IngestService, Depends(_service)],
) -> Response:
    """What became of each event of a batch this caller posted (see :mod:`hubql.batch_status`)."""
    subject = None if identified is None or identified.anonymous else identified.subject
    found = service.outcomes.status(subject, batch_id) if subject is not None else None
    if found is None and subject is not None and service.peers is not None:
        found = await service.peers.batch_status(subject, batch_id)
    if found is None:
        return Response(_NO_SUCH_BATCH, status_code=404, media_type="application/json")
    return JSONResponse(found)
