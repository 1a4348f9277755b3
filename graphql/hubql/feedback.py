"""Data-quality flags in the schema: thin resolvers over :class:`hub.feedback.FeedbackDesk`, and the Kafka
sender that takes each flag to its producer's feedback topic.

A flag, product or object the caller may not see is answered exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from aiokafka import AIOKafkaProducer
from strawberry.types.info import Info

from hub.feedback import FeedbackDesk, FeedbackError, Flag, FlagStatus
from hub.kafka_clients import API, aiokafka_options
from hub.kafka_topics import ensure_topics, topic_admin
from hub.reader import ReadError
from hub.settings import Settings


class FeedbackRefused(ReadError):
    """A refused flag or answer (its message is meant for the client)."""


@strawberry.enum(description="Where a data-quality flag stands; the producer moves it.")
class QualityFlagStatus(Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REJECTED = "rejected"


@strawberry.type(
    name="QualityFlag",
    description="A consumer's data-quality flag on a data product or one of its objects, and the "
    "producer's answer.",
)
class QualityFlagView:
    id: strawberry.ID
    product: strawberry.ID = strawberry.field(description="The data product's producer id.")
    subject: str | None = strawberry.field(description="The flagged object's mRID; null: the whole product.")
    description: str
    status: QualityFlagStatus
    reason: str | None = strawberry.field(description="The producer's reason (required when rejected).")
    reporter: str
    reporter_org: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


def view(f: Flag) -> QualityFlagView:
    return QualityFlagView(
        id=strawberry.ID(f.id),
        product=strawberry.ID(f.product),
        subject=f.subject,
        description=f.description,
        status=QualityFlagStatus(f.status.value),
        reason=f.reason,
        reporter=f.reporter_subject,
        reporter_org=f.reporter_org,
        created_at=datetime.fromtimestamp(f.created_at, UTC),
        updated_at=datetime.fromtimestamp(f.updated_at, UTC),
        updated_by=f.updated_by,
    )


class FeedbackSender:
    """Sends flag records to the producers' feedback topics (created on first use), as the API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._topics: set[str] = set()
        self._lock = asyncio.Lock()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        async with self._lock:
            if topic not in self._topics:
                async with topic_admin(aiokafka_options(self.settings, API)) as admin:
                    await ensure_topics(admin, [topic], 1)
                self._topics.add(topic)
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **aiokafka_options(self.settings, API), acks="all", client_id="hub-api-feedback"
                )
                await producer.start()
                self._producer = producer
        await self._producer.send_and_wait(topic, value, key=key)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def _desk(info: Info) -> FeedbackDesk:
    desk: FeedbackDesk = info.context.services.feedback
    return desk


async def _answer(call: Any) -> QualityFlagView:
    try:
        return view(await call)
    except FeedbackError as exc:
        raise FeedbackRefused(str(exc)) from None


async def quality_flag(info: Info, id: strawberry.ID) -> QualityFlagView | None:
    found = await _desk(info).find(info.context.require_caller(), str(id))
    return view(found) if found is not None else None


async def quality_flags(info: Info, product: strawberry.ID | None = None) -> list[QualityFlagView]:
    caller = info.context.require_caller()
    wanted = None if product is None else str(product)
    return [view(f) for f in await _desk(info).listed(caller, wanted)]


async def flag_data_quality(
    info: Info, product: strawberry.ID, description: str, subject: str | None = None
) -> QualityFlagView:
    caller = info.context.require_caller()
    return await _answer(_desk(info).flag(caller, info.context.guard, str(product), subject, description))


async def set_quality_flag_status(
    info: Info, id: strawberry.ID, status: QualityFlagStatus, reason: str | None = None
) -> QualityFlagView:
    caller = info.context.require_caller()
    return await _answer(_desk(info).move(caller, str(id), FlagStatus(status.value), reason))


QUERIES: dict[str, Any] = {
    "quality_flag": strawberry.field(
        resolver=quality_flag,
        description="One data-quality flag by id; null when there is none or you may not see it (yours, or "
        "on a product you answer for as its producer).",
    ),
    "quality_flags": strawberry.field(
        resolver=quality_flags,
        description="Your flags and, for a producer, every flag on its product; newest first.",
    ),
}

MUTATIONS: dict[str, Any] = {
    "flag_data_quality": strawberry.mutation(
        resolver=flag_data_quality,
        description="Flag a data-quality issue on a data product or (subject: its mRID) one of its objects "
        "you may see; it goes to the producer on its feedback topic, with status OPEN.",
    ),
    "set_quality_flag_status": strawberry.mutation(
        resolver=set_quality_flag_status,
        description="Answer a flag on your product (role producer:<id>): ACKNOWLEDGED, RESOLVED, or REJECTED "
        "with a reason.",
    ),
}
