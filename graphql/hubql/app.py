"""The API process: GraphQL (queries over HTTP, subscriptions over websocket), HTTP ingest, health,
development tokens, and the planners' page when it has been built. Its Prometheus metrics are served on a
port of their own (``api_metrics_host:api_metrics_port``, loopback by default), never on the API's port.

Run with ``hub api`` (:func:`hubql.processes.run`, uvicorn). One app instance per process; ``hub api
--processes N`` runs N of them on one socket (:mod:`hubql.processes`, which says why each process's own
state is correct across them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from wsgiref.simple_server import WSGIServer

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import REGISTRY, CollectorRegistry
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from hub import audit
from hub.audit import AuditPublisher
from hub.auth import Authenticator, AuthError, dev_tokens
from hub.caller import Caller
from hub.data_products import DataProducts
from hub.feedback import FeedbackDesk, FlagStore
from hub.grants import RequestDesk, RequestStore
from hub.graph import ensure_schema_async, make_async_driver
from hub.guard import LabelDirectory
from hub.kafka_clients import API, aiokafka_options
from hub.metrics_server import metrics_server
from hub.quality import DeadLetterWindow, QualityMeter
from hub.settings import Settings, get_settings
from hubql.callers import identify
from hubql.catalog import Catalogue
from hubql.catalog import router as catalog_router
from hubql.ckan import CkanPortal
from hubql.ckan import router as ckan_router
from hubql.context import ApiServices, HubContext, get_context
from hubql.encoding import encode_json
from hubql.feedback import FeedbackSender
from hubql.http_ingest import IngestService
from hubql.http_ingest import router as ingest_router
from hubql.page import PageFiles, is_built, page_dir
from hubql.peers import Peers
from hubql.schema import build_schema
from hubql.serving import BodyLimit, server_config
from ontology.loader import load_ontology

log = structlog.get_logger(__name__)

# Young-generation collection threshold of the API process (Python's default is 700). A large result
# allocates tens of thousands of short-lived objects (rows, records, result maps) that all die with the
# request; at 700 they are traversed again and again by collections that free nothing.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Move what lives as long as the process (ontology, schema, types) out of the collector's sight and
    collect the young generation less often: full collections then traverse only request objects."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class AuthenticatingWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with the bearer token of ``connection_init`` verified before the ack.

    A bad token closes the socket with 4401 and the reason, the websocket counterpart of HTTP 401; so does
    the token's expiry (``exp`` plus the verifier's leeway), so no subscription outlives its token.
    """

    _expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_init_received:
            # A second connection_init must not swap the caller; the base handler closes with 4429.
            await super().handle_connection_init(message)
            return
        payload = message.get("payload") or {}
        context: HubContext = self.context
        try:
            caller = identify(
                context.services.authenticator, payload, channel="websocket", client=context.client
            )
        except AuthError as exc:
            await self.websocket.close(code=4401, reason=exc.reason[:120])
            return
        context.set_caller(caller, live=True)
        await super().handle_connection_init(message)
        if self.connection_acknowledged and caller.expires_at is not None:
            deadline = caller.expires_at + context.services.settings.oidc_leeway_s
            self._expiry = asyncio.get_running_loop().create_task(self._close_at(deadline, caller))

    async def _close_at(self, deadline: float, caller: Caller) -> None:
        await asyncio.sleep(max(0.0, deadline - time.time()))
        audit.record(
            "websocket.closed",
            subject=caller.subject,
            reason="token has expired",
            subscriptions=len(self.operations),
        )
        await self.websocket.close(code=4401, reason="token has expired")

    async def shutdown(self) -> None:
        expiry, self._expiry = self._expiry, None
        if expiry is not None and expiry is not asyncio.current_task():
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
        await super().shutdown()


class HubGraphQLRouter(GraphQLRouter[Any, Any]):
    graphql_transport_ws_handler_class = AuthenticatingWSHandler

    def encode_json(self, data: object) -> str:
        return encode_json(data)


async def audit_producer(settings: Settings) -> AIOKafkaProducer:
    """The Kafka producer of the audit topic, started. Every client the API builds for the audit trail
    comes from here, so how clients connect and authenticate is decided in one place."""
    producer = AIOKafkaProducer(**aiokafka_options(settings, API), acks="all")
    await producer.start()
    return producer


def serve_metrics(settings: Settings, registry: CollectorRegistry = REGISTRY) -> WSGIServer | None:
    """Serve the process's metrics (or ``registry``'s) on their own port (0: not served); the error
    names the setting."""
    if settings.api_metrics_port == 0:
        return None
    try:
        server = metrics_server(settings.api_metrics_port, settings.api_metrics_host, registry)
    except OSError as exc:
        raise RuntimeError(
            f"api_metrics_port = {settings.api_metrics_port} on api_metrics_host = "
            f"{settings.api_metrics_host!r} cannot be bound: {exc.strerror}"
        ) from None
    log.info("metrics served", host=settings.api_metrics_host, port=settings.api_metrics_port)
    return server


async def _ensure_schema(driver: Any, settings: Settings) -> None:
    """The graph's constraints and indexes, created if missing: reads hint at indexes (the quality pass,
    the name search), and a hint at an index that does not exist fails the read, as it did on a fresh
    database when the API started before any worker. Tried until Neo4j answers."""
    while True:
        try:
            await ensure_schema_async(driver, settings.neo4j_database)
        except Exception as exc:  # unreachable or still starting: the API serves on, and tries again
            log.warning(
                "graph schema not ensured yet", error=type(exc).__name__, retry_s=settings.api_schema_retry_s
            )
            await asyncio.sleep(settings.api_schema_retry_s)
        else:
            return


def create_app(
    settings: Settings | None = None,
    *,
    frontend_dist: Path | Literal["settings"] | None = "settings",
    metrics: bool = True,
    peers: Peers | None = None,
) -> FastAPI:
    """The API; it serves the built page at / from ``frontend_dist``.

    By default (``"settings"``) the page is wherever the settings say, looked for until it is built.
    ``metrics``: serve the process's metrics itself (not when it is one of several processes of
    ``hub api``, whose parent serves their sum, see :mod:`hubql.processes`); ``peers``: the other
    processes of such an API, asked for what this one does not hold (:mod:`hubql.peers`).
    """
    settings = settings or get_settings()
    ontology = load_ontology()
    schema, registry = build_schema(ontology, settings)
    authenticator = Authenticator(settings)
    # The data products, read from the contracts folder once (a folder that cannot be read stops the API
    # here, naming the file and clause).
    products = DataProducts(settings, ontology)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        driver = make_async_driver(settings, fail_fast=False)
        desk = RequestDesk(settings, RequestStore(driver, settings.neo4j_database), products)
        feedback_sender = FeedbackSender(settings)
        app.state.hub = ApiServices(
            settings=settings,
            ontology=ontology,
            driver=driver,
            registry=registry,
            directory=LabelDirectory(driver, settings.neo4j_database, settings.label_cache_ttl_s),
            authenticator=authenticator,
            desk=desk,
            products=products,
            meter=QualityMeter(settings, ontology, DeadLetterWindow(settings)),
            feedback=FeedbackDesk(
                settings, FlagStore(driver, settings.neo4j_database), products, feedback_sender.send
            ),
        )
        app.state.ingest = IngestService(settings, ontology, peers)
        if peers is not None:
            await peers.start(app.state.ingest.outcomes.status)
        producers: list[AIOKafkaProducer] = []

        async def audit_sender() -> AIOKafkaProducer:
            producer = await audit_producer(settings)
            producers.append(producer)
            return producer

        schema_ready = asyncio.create_task(_ensure_schema(driver, settings), name="graph-schema")
        publisher = AuditPublisher(settings.audit_topic, audit_sender)
        publisher.start()
        desk.start()
        metrics_served = serve_metrics(settings) if metrics else None
        tune_gc()
        log.info(
            "api started",
            neo4j=settings.neo4j_uri,
            kafka=settings.kafka_bootstrap,
            dev_mode=settings.dev_mode,
            anonymous_access=settings.anonymous_access,
        )
        if settings.dev_mode or settings.anonymous_access:
            log.warning(
                "insecure settings on: not for production",
                dev_mode=settings.dev_mode,
                anonymous_access=settings.anonymous_access,
            )
        try:
            yield
        finally:
            schema_ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schema_ready
            if peers is not None:
                await peers.stop()
            await app.state.hub.feed.stop()
            await desk.stop()
            await app.state.hub.meter.letters.close()
            if metrics_served is not None:
                metrics_served.shutdown()
                metrics_served.server_close()
            await publisher.stop()
            for producer in producers:
                await producer.stop()
            await app.state.ingest.close()
            await feedback_sender.close()
            await driver.close()

    app = FastAPI(
        title="Energy hub",
        lifespan=lifespan,
        docs_url="/docs" if settings.dev_mode else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.dev_mode else None,
    )
    graphql_router = HubGraphQLRouter(
        schema,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.dev_mode else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        allow_queries_via_get=False,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.include_router(graphql_router, prefix="/graphql")
    app.state.schema = schema
    # Read by the caller dependency (hubql.callers) of every route, GraphQL and HTTP ingest alike.
    app.state.authenticator = authenticator
    app.include_router(ingest_router)
    # The data products' catalogue.
    app.state.catalogue = Catalogue(settings, products)
    app.include_router(catalog_router)
    # The same products through CKAN's action API, for the clients of CKAN portals.
    app.state.ckan = CkanPortal(settings, products)
    app.include_router(ckan_router)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        services: ApiServices = request.app.state.hub
        try:
            await services.driver.verify_connectivity()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "neo4j": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    if settings.dev_mode:

        @app.get("/dev/tokens")
        async def tokens() -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": settings.oidc_issuer,
                    "audience": settings.oidc_audience,
                    "users": dev_tokens(settings),
                }
            )
    else:

        @app.get("/dev/tokens")
        async def no_tokens() -> None:
            raise HTTPException(404, detail="Not Found")

    if frontend_dist == "settings":
        app.mount("/", PageFiles(lambda: page_dir(settings)), name="frontend")
    elif frontend_dist is not None and is_built(frontend_dist):
        app.mount("/", StaticFiles(directory=frontend_dist, html=True), name="frontend")
    return app


def serve(settings: Settings) -> None:
    """Serve the API with uvicorn in this one process."""
    import uvicorn

    from hub.logging import configure_logging

    configure_logging(settings)
    app = create_app(settings)
    config = server_config(app, settings, host=settings.api_host, port=settings.api_port, log_config=None)
    uvicorn.Server(config).run()
