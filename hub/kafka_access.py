"""Who may do what on Kafka: the ACLs of each principal and SCRAM users, applied through the admin principal.

The policy (deny unless allowed; only ``admin`` is a super user):

- ``worker``: read every ingest topic (prefix) in its consumer group (prefix ``HUB_WORKER_ID``); write and
  create the change feed, the dead-letter and the audit topics, and every producer's dead-letter topic
  (prefix ``<HUB_DEADLETTER_TOPIC>.``); describe the cluster. It cannot write an ingest topic, so it
  cannot pose as a producer.
- ``api``: write (and create) every ingest topic (HTTP ingest publishes on behalf of the producers its
  callers belong to; the API checks that), read the change feed and the shared dead-letter topic without
  a group or in its own groups (prefix ``hub-api``), see the worker group's committed offsets (HTTP
  ingest tells each batch's outcome: see ``hubql.batch_status``), write (and create) the audit topic. It
  cannot read the raw ingest topics.
- ``producer-<id>``: write (and describe) its own topic ``<prefix><id>``; read (and describe) its own
  dead-letter topic ``<HUB_DEADLETTER_TOPIC>.<id>``, in no group or in the group of that same name; nothing
  else. It cannot create topics, so the admin creates both when the producer is added.

The worker therefore learns a record's producer from the topic, which only that producer can write.

aiokafka's admin client has no call for ACLs or SCRAM users, so the two requests are sent with its
protocol layer: CreateAcls (one binding per request, as aiokafka builds it) and AlterUserScramCredentials,
whose request and response are defined here from the Kafka protocol (API key 51, version 0).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from hub.kafka_clients import ADMIN, API, WORKER, aiokafka_options, producer_principal
from hub.settings import Settings

API_GROUP_PREFIX = "hub-api"
CLUSTER_RESOURCE = "kafka-cluster"
SCRAM_ITERATIONS = 8192
_SCRAM_SHA_512 = 2  # the protocol's mechanism code


class AccessError(RuntimeError):
    """The broker refused to store an ACL or a SCRAM user; the message names it and the broker's answer."""


class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


_ALLOW = 3


@dataclass(frozen=True)
class Grant:
    principal: str  # the SCRAM user name, without "User:"
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = Pattern.LITERAL


def _topic_grants(principal: str, topics: Iterable[str], *ops: Operation) -> list[Grant]:
    return [Grant(principal, op, Resource.TOPIC, topic) for topic in topics for op in ops]


def service_grants(settings: Settings) -> list[Grant]:
    """The ACLs of the worker and the API (the launcher applies them whenever it starts Kafka)."""
    prefix = settings.ingest_topic_prefix
    outputs = [settings.changes_topic, settings.deadletter_topic, settings.audit_topic]
    # The producers' own dead-letter topics; the dot ends the prefix, so it covers no other topic whose
    # name merely starts like the shared one.
    producer_letters = f"{settings.deadletter_topic}."
    return [
        Grant(WORKER, Operation.READ, Resource.TOPIC, prefix, Pattern.PREFIXED),
        Grant(WORKER, Operation.DESCRIBE, Resource.TOPIC, prefix, Pattern.PREFIXED),
        Grant(WORKER, Operation.READ, Resource.GROUP, settings.worker_id, Pattern.PREFIXED),
        *_topic_grants(WORKER, outputs, Operation.WRITE, Operation.DESCRIBE, Operation.CREATE),
        *[
            Grant(WORKER, op, Resource.TOPIC, producer_letters, Pattern.PREFIXED)
            for op in (Operation.WRITE, Operation.DESCRIBE, Operation.CREATE)
        ],
        Grant(WORKER, Operation.DESCRIBE, Resource.CLUSTER, CLUSTER_RESOURCE),
        Grant(WORKER, Operation.IDEMPOTENT_WRITE, Resource.CLUSTER, CLUSTER_RESOURCE),
        Grant(API, Operation.WRITE, Resource.TOPIC, prefix, Pattern.PREFIXED),
        Grant(API, Operation.DESCRIBE, Resource.TOPIC, prefix, Pattern.PREFIXED),
        # HTTP ingest may be the first to publish for a configured producer whose topic is not there yet.
        Grant(API, Operation.CREATE, Resource.TOPIC, prefix, Pattern.PREFIXED),
        # Subscriptions may start before any worker has created the change feed; the API's reader then
        # creates it, as the broker's auto-creation does for any client allowed to.
        *_topic_grants(API, [settings.changes_topic], Operation.READ, Operation.DESCRIBE, Operation.CREATE),
        # The API may be the first to publish an audit record, so it may create that topic.
        *_topic_grants(API, [settings.audit_topic], Operation.WRITE, Operation.DESCRIBE, Operation.CREATE),
        Grant(API, Operation.READ, Resource.GROUP, API_GROUP_PREFIX, Pattern.PREFIXED),
        # HTTP ingest's batch outcomes: the refused events (the shared topic holds them all) and how far
        # the worker has committed (offset fetch needs DESCRIBE on the group).
        *_topic_grants(API, [settings.deadletter_topic], Operation.READ, Operation.DESCRIBE),
        Grant(API, Operation.DESCRIBE, Resource.GROUP, settings.worker_id),
        Grant(API, Operation.IDEMPOTENT_WRITE, Resource.CLUSTER, CLUSTER_RESOURCE),
        # Consumers' quality flags, sent to each product's producer on its own feedback topic.
        *[
            Grant(API, op, Resource.TOPIC, f"{settings.feedback_topic}.", Pattern.PREFIXED)
            for op in (Operation.WRITE, Operation.DESCRIBE, Operation.CREATE)
        ],
    ]


def producer_grants(settings: Settings, producer_id: str) -> list[Grant]:
    """A producer writes its own topic only (idempotent producing needs no more since Kafka 2.8) and reads
    its own dead letters and its consumers' quality flags only, with or without a consumer group (named
    as the topic, so that it is its own)."""
    principal = producer_principal(producer_id)
    feedback = settings.producer_feedback_topic(producer_id)
    return [
        *_stream_grants(settings, producer_id),
        *_topic_grants(principal, [feedback], Operation.READ, Operation.DESCRIBE),
        Grant(principal, Operation.READ, Resource.GROUP, feedback),
    ]


def _stream_grants(settings: Settings, producer_id: str) -> list[Grant]:
    """The producer's own ingest topic to write, and its own dead letters to read."""
    principal = producer_principal(producer_id)
    topic = f"{settings.ingest_topic_prefix}{producer_id}"
    letters = settings.producer_deadletter_topic(producer_id)
    return [
        *_topic_grants(principal, [topic], Operation.WRITE, Operation.DESCRIBE),
        *_topic_grants(principal, [letters], Operation.READ, Operation.DESCRIBE),
        Grant(principal, Operation.READ, Resource.GROUP, letters),
    ]


async def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**aiokafka_options(settings, ADMIN), request_timeout_ms=15_000)
    await admin.start()
    return admin


async def _send(admin: AIOKafkaAdminClient, request: Any) -> Any:
    # Any broker takes these requests and forwards them to the controller.
    client = admin._client
    return await client.send(client.get_random_node(), request)


async def grant(admin: AIOKafkaAdminClient, grants: Iterable[Grant]) -> None:
    """Create the ACLs (creating one that exists changes nothing)."""
    for g in grants:
        request = CreateAclsRequest(
            int(g.resource), g.name, int(g.pattern), f"User:{g.principal}", "*", int(g.operation), _ALLOW
        )
        response = await _send(admin, request)
        for error_code, message in response.creation_responses:
            if error_code:
                raise AccessError(
                    f"the broker refused ACL {g.operation.name} on {g.resource.name} {g.name!r} "
                    f"({g.pattern.name}) for User:{g.principal}: error {error_code} {message}"
                )


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


_ScramStruct: TypeAlias = AlterUserScramCredentialsRequest_v0


class AlterUserScramCredentialsRequest(Request[_ScramStruct]):
    API_KEY = 51

    def __init__(self, user: str, password: str) -> None:
        self._user = user
        # The broker stores keys derived from the salted password; the password itself never travels.
        self._salt = secrets.token_bytes(32)
        self._salted = hashlib.pbkdf2_hmac("sha512", password.encode(), self._salt, SCRAM_ITERATIONS)

    def build(self, request_struct_class: type[_ScramStruct]) -> _ScramStruct:
        return request_struct_class(
            [], [(self._user, _SCRAM_SHA_512, SCRAM_ITERATIONS, self._salt, self._salted, {})], {}
        )


async def set_scram_user(admin: AIOKafkaAdminClient, user: str, password: str) -> None:
    """Create or replace the SCRAM-SHA-512 credential of ``user``."""
    response = await _send(admin, AlterUserScramCredentialsRequest(user, password))
    for name, error_code, message, _tags in response.results:
        if error_code:
            raise AccessError(f"the broker refused SCRAM user {name!r}: error {error_code} {message}")
