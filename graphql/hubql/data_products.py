"""Data products in the schema: ``dataProducts`` and ``dataProduct(id)``, each with its live quality.

A product whose metadata label the caller does not satisfy is absent from the list and ``null`` by id,
exactly as one that does not exist (:class:`hub.data_products.DataProducts`). Its quality is measured when
selected, through the caller's guard (:mod:`hub.quality`): counts, completeness, coverage and the
time-based figures cover only what the caller may see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types.info import Info

from hub.data_products import DataProduct
from hub.quality import ProductQuality


@strawberry.type(
    description="How many of a promised class's objects you may see carry one promised attribute."
)
class AttributeCompleteness:
    class_name: str
    attribute: str = strawberry.field(description="The attribute's CIM qualified name.")
    present: int
    total: int
    ratio: float | None = strawberry.field(description="present / total; null when there are none.")


@strawberry.type(description="How many objects of a promised class (or its subclasses) you may see.")
class ProductClassCount:
    class_name: str
    count: int


@strawberry.type(description="A dead-letter reason: its class and, for a contract breach, the clause broken.")
class DeadLetterReason:
    reason: str
    count: int


@strawberry.type(description="A box in WGS84 degrees.")
class BoundingBox:
    west: float
    south: float
    east: float
    north: float


@strawberry.type(
    description="A data product's quality, measured now over what you may see: the time-based figures over "
    "the last window (an hour by default) from the kept history and the dead-letter topic; counts, "
    "completeness, last update and coverage from the current graph."
)
class DataProductQuality:
    window_seconds: float
    events: int = strawberry.field(description="Events applied in the window whose result you may see.")
    events_per_minute: float
    freshness_p50_seconds: float | None = strawberry.field(
        description="Median time from an event's time to its commit in the graph (nearest rank); null "
        "without events."
    )
    freshness_p99_seconds: float | None
    freshness_sla_seconds: float = strawberry.field(description="The contract's freshness promise.")
    dead_letters: int = strawberry.field(
        description="Events of the stream dead-lettered in the window on the event alone (not against the "
        "graph's stored state)."
    )
    dead_letters_per_minute: float
    dead_letter_rate: float | None = strawberry.field(
        description="deadLetters / (events + deadLetters); null when the window saw neither."
    )
    top_dead_letter_reasons: list[DeadLetterReason]
    completeness: list[AttributeCompleteness]
    object_counts: list[ProductClassCount]
    objects: int = strawberry.field(description="Objects of any promised class you may see.")
    last_update: datetime | None
    temporal_start: datetime | None = strawberry.field(description="Earliest event time of the objects.")
    temporal_end: datetime | None
    bbox: BoundingBox | None = strawberry.field(description="The box around the objects' point coordinates.")
    open_flags: int = strawberry.field(
        description="Consumers' data-quality flags still open or acknowledged: on the product, and on "
        "objects you may see."
    )


def quality_view(pq: ProductQuality, product: DataProduct) -> DataProductQuality:
    q = pq.measured
    box = q.coverage.bbox
    return DataProductQuality(
        window_seconds=q.window_s,
        events=q.events,
        events_per_minute=q.events_per_minute,
        freshness_p50_seconds=q.freshness_p50_s,
        freshness_p99_seconds=q.freshness_p99_s,
        freshness_sla_seconds=product.contract.freshness.seconds,
        dead_letters=q.dead_letters,
        dead_letters_per_minute=q.dead_letters_per_minute,
        dead_letter_rate=q.dead_letter_rate,
        top_dead_letter_reasons=[DeadLetterReason(reason=r.reason, count=r.count) for r in q.top_reasons],
        completeness=[
            AttributeCompleteness(
                class_name=c.class_name,
                attribute=c.attribute,
                present=c.present,
                total=c.total,
                ratio=c.ratio,
            )
            for c in q.completeness
        ],
        object_counts=[ProductClassCount(class_name=c.class_name, count=c.count) for c in q.counts],
        objects=q.objects,
        last_update=q.last_update,
        temporal_start=q.coverage.start,
        temporal_end=q.coverage.end,
        bbox=BoundingBox(west=box[0], south=box[1], east=box[2], north=box[3]) if box else None,
        open_flags=pq.open_flags,
    )


@strawberry.type(
    name="DataProduct",
    description="A producer's stream as a data product: its data contract (ODCS), and its quality as you "
    "may see it.",
)
class DataProductView:
    id: strawberry.ID = strawberry.field(description="The producer's id.")
    name: str
    description: str = strawberry.field(description="The contract's purpose.")
    limitations: str
    publisher: str
    owner: str
    contacts: list[str]
    licence: str = strawberry.field(description="The licence's URL.")
    licence_title: str
    sensitivity: str = strawberry.field(description="Open Energy's sensitivity class (OE-O ... OE-C).")
    sensitivity_name: str
    access_rights: str = strawberry.field(description="PUBLIC, RESTRICTED or NON_PUBLIC (EU access rights).")
    contract_id: str
    version: str
    status: str
    classes: list[str]
    domains: list[str]
    update_frequency_seconds: float
    product: strawberry.Private[DataProduct]

    @strawberry.field(description="The quality, measured now over what you may see.")
    async def quality(self, info: Info) -> DataProductQuality:
        measured = await info.context.services.quality(info.context.guard, self.product)
        return quality_view(measured, self.product)


def view(p: DataProduct) -> DataProductView:
    c = p.contract
    return DataProductView(
        id=strawberry.ID(p.producer),
        name=c.name,
        description=c.purpose,
        limitations=c.limitations,
        publisher=p.publisher,
        owner=c.owner,
        contacts=list(c.contacts),
        licence=c.licence,
        licence_title=p.licence_title,
        sensitivity=c.sensitivity,
        sensitivity_name=p.sensitivity_name,
        access_rights=p.access_right,
        contract_id=c.id,
        version=c.version,
        status=c.status,
        classes=list(p.classes),
        domains=list(p.domains),
        update_frequency_seconds=c.frequency.seconds,
        product=p,
    )


async def data_products(info: Info) -> list[DataProductView]:
    return [view(p) for p in info.context.services.products.visible(info.context.require_caller())]


async def data_product(info: Info, id: strawberry.ID) -> DataProductView | None:
    found = info.context.services.products.find(str(id), info.context.require_caller())
    return view(found) if found is not None else None


QUERIES: dict[str, Any] = {
    "data_products": strawberry.field(
        resolver=data_products, description="The data products you may know of, by producer id."
    ),
    "data_product": strawberry.field(
        resolver=data_product,
        description="One data product by its producer's id; null when there is none or you may not know "
        "of it.",
    ),
}
