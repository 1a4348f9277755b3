"""One typed settings object for the whole hub, read from ``HUB_*`` environment variables."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    # Where the launcher keeps downloaded distributions, data, logs and pids; default: `.hub` in the
    # directory the process starts in (never inside the installed package).
    state_dir: Path = Field(default_factory=lambda: Path.cwd() / ".hub")
    # Downloaded Kafka/Neo4j jars; shared between state folders so tests and demo download once.
    cache_dir: Path = Field(default=Path.home() / ".cache" / "energy-hub")
    # How long `hub services up` waits for a service to answer before giving up.
    services_start_timeout_s: float = 300.0

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    kafka_version: str = "3.9.1"
    kafka_heap: str = "1g"
    ingest_topic_prefix: str = "cim.ingest."
    # Every refused event, for the operator; a configured producer's refused events also go to
    # `<deadletter_topic>.<producer id>`, which that producer may read (see ingest/dead_letters.py).
    deadletter_topic: str = "cim.deadletter"
    changes_topic: str = "cim.changes"
    # Every security decision (refusals, label changes, ownership) as JSON records; see hub/audit.py.
    audit_topic: str = "hub.audit"
    # Consumers' data-quality flags go to each product's producer on `<feedback_topic>.<producer id>`
    # (hub/feedback.py), which that producer may read.
    feedback_topic: str = "hub.feedback"
    topic_partitions: int = 4
    # How clients reach Kafka: "sasl_ssl" (TLS, SCRAM-SHA-512 principals, ACLs; what the launcher runs) or
    # "plaintext" (no encryption, no authentication: only for comparison runs). See hub/kafka_clients.py.
    kafka_security: Literal["sasl_ssl", "plaintext"] = "sasl_ssl"
    # CA certificate clients trust for the broker; default: the launcher's, <state_dir>/kafka/tls/ca.pem.
    kafka_ca_file: Path | None = None
    # A deployment's process runs as one principal: these override the credentials the launcher keeps in
    # the state folder for every client of the process.
    kafka_username: str | None = None
    kafka_password: str | None = None

    # Neo4j
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = "hub-dev-password"
    neo4j_database: str = "neo4j"
    neo4j_version: str = "5.26.30"
    neo4j_heap: str = "2g"
    neo4j_pagecache: str = "1g"

    # Worker
    worker_id: str = "hub-worker"
    worker_web_port: int = 6066
    batch_size: int = 500
    batch_timeout_s: float = 0.5
    max_event_bytes: int = 1_000_000
    metrics_port: int = 9108
    # Address the worker's metrics bind; loopback unless an operator opens it (HUB_METRICS_HOST).
    metrics_host: str = "127.0.0.1"
    # How often the worker looks for new ingest topics (a new producer needs no restart).
    topic_discovery_interval_s: float = 2.0
    # How often acknowledged offsets are committed to Kafka (only ever after the graph commit).
    worker_commit_interval_s: float = 1.0
    # Upper bound of the back-off between retries of a batch while Neo4j is unavailable.
    worker_retry_max_backoff_s: float = 5.0
    # How long a worker stopped by SIGTERM or SIGINT may take to close before it exits regardless
    # (see ingest/worker.py: shutdown_deadline). A batch still being written then is not acknowledged
    # and is delivered again, which its idempotent writes make harmless.
    worker_shutdown_timeout_s: float = 6.0
    # A batch whose write transaction takes this long is logged as a warning with its database time
    # (a 500-event batch takes tens of milliseconds; a bad plan made it 17 s).
    worker_slow_write_s: float = 2.0
    # A worker that died without leaving the group is replaced after this long.
    worker_session_timeout_s: float = 10.0
    # Events the worker buffers ahead of its batches. Faust stops fetching a partition when the buffer is
    # 80% full and fetches again only once it is down to 40%; with every partition stopped it looks
    # again only a second later. The 40% must outlast that second at full speed, or the worker runs dry
    # behind a backlog (at 16,384 it did, for up to 0.3 s every few seconds).
    worker_buffer_events: int = 32_768
    # Objects whose stored state the worker keeps between batches while it is the graph's only writer
    # (it holds every partition), sparing their look-ups; 0 turns the cache off. See hub/state_cache.py.
    # With history on, an entry also holds the object's latest kept version (its attributes and
    # references), so the next version is built without reading it back: about 0.2 KB an entry without,
    # 0.9 KB with five short attributes (docs/performance.md, "Kept history").
    worker_state_cache: int = 200_000
    # The worker's asyncio event loop: "uvloop" (libuv; less CPU per event) or "asyncio" (the standard one).
    worker_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # JSON object: producer id -> {"org": ..., "default_label": ..., "declassify": false}; only these may
    # publish. See hub/producers.py
    producers: dict[str, dict[str, str | bool]] = Field(default_factory=dict)
    # Producers added with `hub producers add` (JSON, same shape as HUB_PRODUCERS, which wins on a clash);
    # default: <state_dir>/producers.json.
    producers_file: Path | None = None
    # The operator's folder of data contracts, one ODCS v3 YAML file per producer stream (hub/contracts.py);
    # unset: no contracts. `hub contracts check` lints it; the worker loads it at start and refuses to
    # start on a contract that does not lint.
    contracts_dir: Path | None = None
    # Whether the worker dead-letters events that break their producer's contract (class not promised,
    # required attribute missing on create, value out of range or enumeration, label above the maximum).
    contracts_enforce: bool = True
    # Data product quality (hub/quality.py): the window the time-based figures cover (freshness, events
    # per minute, dead letters), and how long one reading of the dead-letter topic serves every caller.
    quality_window_s: float = Field(default=3600.0, gt=0)
    quality_dead_letter_cache_s: float = Field(default=5.0, ge=0)

    # API
    api_host: str = "127.0.0.1"
    # The built planners' page the API serves at /; unset: the page shipped in the package, else (in a
    # source checkout) frontend/dist. See graphql/hubql/page.py.
    frontend_dir: Path | None = None
    api_port: int = 8000
    # Processes of `hub api`, uvicorn processes sharing its one listening socket (graphql/hubql/processes.py):
    # 0 sizes it to the machine, one per core available up to four; 1 is a single process as before.
    api_processes: int = 0
    # How long each of those processes has to answer its supervisor's health check (seconds; a start
    # imports the API and builds its schema first); one that does not answer is killed and replaced.
    api_process_healthcheck_s: int = 60
    # The API creates the graph's indexes itself when it starts (the reads' index hints need them, and an
    # API may start before any worker has run); while Neo4j cannot be reached it tries again this often.
    api_schema_retry_s: float = Field(default=5.0, gt=0)
    # Development mode serves /dev/tokens (admin tokens for anyone), GraphiQL, introspection and the dev
    # issuer's keys; off unless turned on (`hub demo` turns it on for its own API and says so).
    dev_mode: bool = False
    # The API's Prometheus metrics are served on their own port, bound to loopback, never on the API's
    # port: what the API counts may depend on data a caller may not see. 0: not served.
    api_metrics_host: str = "127.0.0.1"
    api_metrics_port: int = 9109
    # Request limits enforced before the API reads a request: body bytes (413), request line plus
    # headers (431) and one websocket message.
    api_max_body_bytes: int = 4 * 1024 * 1024
    api_max_header_bytes: int = 16 * 1024
    api_max_ws_message_bytes: int = 1024 * 1024
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses, as
    # uvicorn's forwarded_allow_ips); empty: none, the client address is the connection's.
    api_forwarded_allow_ips: str = ""
    max_page_size: int = 5000
    max_query_depth: int = 12
    query_timeout_s: float = 10.0
    # How long the schema set-up waits for the name search's full-text index to come online (a new index
    # reads every object once; on a million objects that takes a while).
    search_index_wait_s: float = 600.0
    # GraphQL guard rails: aliases and tokens per document, traversal sizes, and how long the table of
    # security labels is trusted before it is read again (new labels appear as producers write).
    max_aliases: int = 30
    max_tokens: int = 10_000
    max_neighbourhood_depth: int = 4
    max_path_length: int = 16
    max_subgraph_nodes: int = 5000
    label_cache_ttl_s: float = 2.0
    ingest_max_batch: int = 1000
    # Outcomes of HTTP ingest batches (GET /ingest/batches/{id}, see graphql/hubql/batch_status.py): how
    # long a batch is kept after it was accepted, and how many are kept at most (the oldest go first).
    ingest_batch_ttl_s: float = 900.0
    ingest_max_batches: int = 1000
    # Change subscriptions: the AES-256 key that seals their cursors (base64url of 32 bytes; unset: kept
    # in the state folder in dev mode, else a random one per `hub api`, shared by its processes, see
    # graphql/hubql/cursors.py), caps per websocket and per caller (across the process's sockets), and how
    # many changes may wait for one subscriber before it falls back to a reader of its own (a gap marker
    # tells it).
    cursor_key: SecretStr | None = None
    max_subscriptions_per_socket: int = 8
    max_subscriptions_per_caller: int = 32
    subscription_queue_size: int = 1000
    # Entries in one list argument (after duplicates are dropped); larger lists are refused.
    max_list_items: int = 5000
    # Cost budget of one GraphQL document (each field's cost, every alias counted; see hubql/cost.py).
    max_operation_cost: int = 250
    # Typed queries' where filters (see hub/filters.py): how deep relationship filters (some / none / all /
    # single) may nest, and how many comparisons and relationship filters one filter may hold.
    max_filter_depth: int = 3
    max_filter_terms: int = 50
    # GraphQL operations one caller may have running at once (queries and mutations over HTTP).
    max_concurrent_operations: int = 4
    # GraphQL operations the API process runs at once, all callers together (0: no cap), and how long
    # an operation waits for a place before it is refused with 503 and Retry-After (its deadline,
    # query_timeout_s, counts the wait). Sized so that the admitted operations keep the database busy
    # without queueing behind each other in it, nor in the event loop: between its reads an operation's
    # Python work runs without a pause, and every admitted operation's turn comes before a subscription's
    # next record. With 20 closed-loop clients and 20 subscribers on the demo (2 cores), 16 gave request
    # p99s of 1.3-2.6 s and delivery lag p99s up to 5.6 s; 4 gave 0.41-0.58 s and 0.13-0.31 s at the same
    # requests/s, none refused (bench/results/load-admission.md; see graphql/hubql/admission.py).
    api_max_running_operations: int = 4
    api_admission_wait_s: float = 1.0
    # Access requests and grants (hub/grants.py): the role claim of an owner organisation's data officers
    # (who decide requests for its products), the role of the hub's operators (who see every request), how
    # often each API process re-reads the live grants (a decision taken by another process takes effect
    # within this, plus one query), and the longest period a grant may run. ``grant_officer_issuers``: the
    # issuers whose tokens may make a data officer (their ``org`` and officer role claims); empty, any
    # issuer the API trusts. Set it to the hub's primary issuer(s) where replicas trust other issuers too.
    grant_officer_role: str = "data-officer"
    grant_officer_issuers: list[str] = []
    grant_operator_role: str = "admin"
    grant_refresh_s: float = 1.0
    grant_max_period_s: float = 366 * 86400.0

    # Auth (OIDC bearer tokens)
    oidc_issuer: str = "http://127.0.0.1:8000/dev-issuer"
    oidc_audience: str = "energy-hub"
    jwks_file: Path | None = None
    jwks_url: str | None = None
    claim_clearance: str = "clearance"
    claim_org: str = "org"
    claim_roles: str = "roles"
    claim_groups: str = "groups"
    # Requests without a token are refused unless this is on (`hub demo` turns it on for its own API).
    anonymous_access: bool = False
    # Clock skew tolerated on exp/nbf/iat, and how long a fetched JWKS is trusted before refetching.
    oidc_leeway_s: float = 30.0
    jwks_cache_s: float = 300.0
    # A verified token is believed again without a new signature check for this long (never past its
    # expiry, nor once its key leaves the key set), so a client sending the same token on every request
    # pays the check about once a minute; 0 checks every time. At most ``token_cache_size`` tokens kept.
    token_cache_s: float = 60.0
    token_cache_size: int = 4096

    # The writer's statements keep the plan Neo4j made first (CYPHER replan=skip, see hub/writer.py);
    # off, Neo4j plans them again whenever its statistics have moved enough.
    writer_replan_skip: bool = True
    # Every applied upsert and delete is also kept as a version node (hub/history.py), in the same write
    # statement as the current graph; off, only the current graph is written (as-of queries then see
    # only the versions written while it was on).
    writer_history: bool = True
    # Measurement history (hub/measurement_history.py): the writer keeps one sample per measured object
    # and interval of measurement_history_interval_s (the last reading in it wins), the worker deletes
    # samples older than measurement_history_retention_s every measurement_history_prune_s, so an object
    # holds at most retention / interval samples (plus one prune period's worth). Interval 0: no samples.
    measurement_history_interval_s: float = 10.0
    measurement_history_retention_s: float = 26 * 3600.0
    measurement_history_prune_s: float = 60.0
    # The most points one measurements query returns per measured value (the server downsamples).
    measurement_history_max_points: int = 2000
    # Shims over library internals, each measured and pinned (docs/performance.md). Turning one off falls
    # back to the library's public path: the same results, more CPU.
    # The worker's consumer hands each fetched message to the buffer without mode's four tasks per
    # message (ingest/consumer.py; overrides mode's Service.wait_first).
    worker_eager_consumer: bool = True
    # New ingest topics are subscribed after topic_discovery_interval_s instead of Faust's 45 s (sets
    # the conductor's private _resubscribe_sleep_lock_seconds).
    worker_fast_resubscribe: bool = True
    # The API reads plain scalar fields straight from the row and completes prefetched associations (and
    # fields holding rows) without their resolvers (graphql/hubql/execution.py; subclasses graphql-core's
    # ExecutionContext as Strawberry configures it). Off: graphql-core's executor, with the same answers.
    api_leaf_fast_path: bool = True
    # Compress websocket messages (permessage-deflate) when the client offers it. Off by default: the
    # change feed sends one small message per record and subscriber, and compressing each cost the API
    # process about a tenth of its CPU under load (docs/performance.md); on, for clients on slow links.
    api_ws_compression: bool = False
    # Each field is described once, where it is declared, not again in every type that inherits it
    # (graphql/hubql/schema.py; edits the graphql-core schema Strawberry keeps in Schema._schema). Off,
    # the SDL repeats inherited descriptions and differs from the checked-in graphql/schema.graphql.
    api_trim_inherited_descriptions: bool = True

    # Logging
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _merge_producers_file(self) -> Settings:
        # Producers added at run time (`hub producers add`) are kept in a file so that every process
        # started afterwards knows them; an entry given in HUB_PRODUCERS wins.
        path = self.producers_file or self.state_dir / "producers.json"
        if not path.is_file():
            return self
        try:
            added = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"producers_file={str(path)!r} cannot be read as JSON: {exc}") from None
        if not isinstance(added, dict):
            raise ValueError(
                f"producers_file={str(path)!r} must hold a JSON object, got {type(added).__name__}"
            )
        self.producers = {**added, **self.producers}
        return self

    def producer_feedback_topic(self, producer_id: str) -> str:
        """The topic of the quality flags on ``producer_id``'s data product, which it may read."""
        return f"{self.feedback_topic}.{producer_id}"

    def producer_deadletter_topic(self, producer_id: str) -> str:
        """The dead-letter topic only ``producer_id`` (and the operator) may read."""
        return f"{self.deadletter_topic}.{producer_id}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
