"""Consumers' data-quality flags on data products and their objects, and the producers' answers.

A consumer flags a product, or one of its objects, with a description of what is wrong
(:meth:`FeedbackDesk.flag`). The flag is kept in Neo4j (``(:QualityFlag)``, apart from the graph's objects:
linked to nothing, never an ``Entity``) and sent to the product's producer on a topic of its own,
``settings.producer_feedback_topic(producer)``, which that producer's principal may read; every change of
status is sent there too, each record keyed by the flag's id and holding its whole state. Only a caller
acting for the producer (role ``producer:<id>``) moves a flag's status: ``open`` to ``acknowledged``,
``resolved`` or ``rejected`` (with a reason), ``acknowledged`` to ``resolved`` or ``rejected``. The consumer
who raised it sees its status; the producer sees every flag on its product.

Hidden means absent here as everywhere:

* a product the caller may not know of, and an object it may not see (or that is not the product's), are
  refused with exactly the words of one that does not exist (:data:`NO_PRODUCT`, :data:`NO_OBJECT`), so a
  flag can neither be raised on a hidden object nor confirm that it exists;
* a flag the caller may not see (not its own, not on its product) is answered as a missing one
  (:data:`NO_FLAG`), by every query and every mutation;
* a product's count of open flags (:meth:`FeedbackDesk.open_count`) counts product-wide flags and those on
  objects the caller may see, through its guard.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

from hub.caller import Caller
from hub.data_products import DataProducts
from hub.graph import SideStore
from hub.graph_schema import cypher
from hub.guard import Guard, visible
from hub.producers import producer_role
from hub.settings import Settings

NO_PRODUCT: Final = "no such data product"
NO_OBJECT: Final = "no such object in this data product"
NO_FLAG: Final = "no such quality flag"
MAX_TEXT: Final = 4000


class FlagStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    rejected = "rejected"


# Where each status may go next.
MOVES: Final[dict[FlagStatus, frozenset[FlagStatus]]] = {
    FlagStatus.open: frozenset({FlagStatus.acknowledged, FlagStatus.resolved, FlagStatus.rejected}),
    FlagStatus.acknowledged: frozenset({FlagStatus.resolved, FlagStatus.rejected}),
    FlagStatus.resolved: frozenset(),
    FlagStatus.rejected: frozenset(),
}
OPEN: Final = (FlagStatus.open.value, FlagStatus.acknowledged.value)


class FeedbackError(ValueError):
    """A refused flag or answer; the message is meant for the caller and names nothing hidden."""


@dataclass(frozen=True, slots=True)
class Flag:
    id: str
    product: str
    subject: str | None  # the object's mRID; None for the product as a whole
    description: str
    status: FlagStatus
    reason: str | None  # why it was rejected (or any note with the last move)
    reporter_issuer: str | None
    reporter_subject: str
    reporter_org: str | None
    created_at: float
    updated_at: float
    updated_by: str | None

    @staticmethod
    def from_node(node: Mapping[str, Any]) -> Flag:
        return Flag(
            id=str(node["id"]),
            product=str(node["product"]),
            subject=node.get("subject"),
            description=str(node["description"]),
            status=FlagStatus(node["status"]),
            reason=node.get("reason"),
            reporter_issuer=node.get("reporter_issuer"),
            reporter_subject=str(node["reporter_subject"]),
            reporter_org=node.get("reporter_org"),
            created_at=float(node["created_at"]),
            updated_at=float(node["updated_at"]),
            updated_by=node.get("updated_by"),
        )

    def record(self, action: str) -> bytes:
        """The feedback topic's record of this state after ``action`` (``flag.raised``, ``flag.<status>``)."""
        body = asdict(self)
        body["status"] = self.status.value
        return json.dumps({"action": action, "flag": body}, sort_keys=True).encode()


class FlagStore(SideStore):
    """The flags in Neo4j; every statement parameterised."""

    async def ensure_schema(self) -> None:
        await self._run(
            "CREATE CONSTRAINT quality_flag_id IF NOT EXISTS FOR (f:QualityFlag) REQUIRE f.id IS UNIQUE",
            write=True,
        )
        await self._run(
            "CREATE INDEX quality_flag_product IF NOT EXISTS FOR (f:QualityFlag) ON (f.product)", write=True
        )

    async def create(self, props: Mapping[str, Any]) -> Flag:
        rows = await self._run("CREATE (f:QualityFlag) SET f = $props RETURN f", write=True, props=props)
        return Flag.from_node(rows[0]["f"])

    async def get(self, flag_id: str) -> Flag | None:
        rows = await self._run("MATCH (f:QualityFlag {id: $id}) RETURN f", write=False, id=flag_id)
        return Flag.from_node(rows[0]["f"]) if rows else None

    async def move(
        self, flag_id: str, before: str, after: str, reason: str | None, by: str, at: float
    ) -> Flag | None:
        """Set the status when it is still ``before`` (None: another answer came first)."""
        rows = await self._run(
            "MATCH (f:QualityFlag {id: $id}) WHERE f.status = $before "
            "SET f.status = $after, f.reason = $reason, f.updated_by = $by, f.updated_at = $at RETURN f",
            write=True,
            id=flag_id,
            before=before,
            after=after,
            reason=reason,
            by=by,
            at=at,
        )
        return Flag.from_node(rows[0]["f"]) if rows else None

    async def listed(
        self, issuer: str | None, subject: str, products: Sequence[str], product: str | None, limit: int
    ) -> list[Flag]:
        """The caller's own flags and every flag on ``products`` (those it answers for), newest first."""
        rows = await self._run(
            "MATCH (f:QualityFlag) WHERE ($product IS NULL OR f.product = $product) AND "
            "((f.reporter_subject = $subject AND f.reporter_issuer = $issuer) OR f.product IN $products) "
            "RETURN f ORDER BY f.created_at DESC, f.id LIMIT $limit",
            write=False,
            issuer=issuer,
            subject=subject,
            products=list(products),
            product=product,
            limit=limit,
        )
        return [Flag.from_node(r["f"]) for r in rows]


# The object ``$mrid`` if the caller may see it and it is ``$producer``'s.
_OBJECT: Final = cypher(
    "OPTIONAL MATCH (n:Entity {mrid: $mrid}) "
    f"RETURN n IS NOT NULL AND coalesce({visible('n')}, false) AND n.@owner = $producer AS found"
)
# Open flags of ``$producer``: product-wide ones, and those on objects the caller may see.
_OPEN: Final = cypher(
    "MATCH (f:QualityFlag {product: $producer}) WHERE f.status IN $open "
    "OPTIONAL MATCH (n:Entity {mrid: f.subject}) "
    f"WITH f, n WHERE f.subject IS NULL OR (n IS NOT NULL AND {visible('n')}) "
    "RETURN count(f) AS open"
)

Publish = Callable[[str, bytes, bytes], Awaitable[None]]


class FeedbackDesk:
    """Raising flags, answering them and reading them back (see the module's text)."""

    def __init__(
        self, settings: Settings, store: FlagStore, products: DataProducts, publish: Publish
    ) -> None:
        self.settings = settings
        self.store = store
        self.products = products
        self.publish = publish
        self._schema_ready = False

    async def _ready(self) -> None:
        if not self._schema_ready:
            await self.store.ensure_schema()
            self._schema_ready = True

    def answers_for(self, caller: Caller) -> list[str]:
        """The products whose flags ``caller`` answers (it holds their producer role)."""
        if caller.anonymous:
            return []
        return [p for p in self.products.products if producer_role(p) in caller.roles]

    async def flag(
        self, caller: Caller, guard: Guard, product: str, subject: str | None, description: str
    ) -> Flag:
        if caller.anonymous:
            raise FeedbackError("flagging a data-quality issue needs a signed-in caller")
        text = description.strip()
        if not text or len(text) > MAX_TEXT:
            raise FeedbackError(f"description must be 1 to {MAX_TEXT} characters")
        if self.products.find(product, caller) is None:
            raise FeedbackError(NO_PRODUCT)
        if subject is not None:
            rows = await guard.read(_OBJECT, {"mrid": subject, "producer": product})
            if not rows or not rows[0]["found"]:
                raise FeedbackError(NO_OBJECT)
        await self._ready()
        now = time.time()
        flag = await self.store.create(
            {
                "id": str(uuid.uuid4()),
                "product": product,
                "subject": subject,
                "description": text,
                "status": FlagStatus.open.value,
                "reason": None,
                "reporter_issuer": caller.issuer,
                "reporter_subject": caller.subject,
                "reporter_org": caller.org,
                "created_at": now,
                "updated_at": now,
                "updated_by": caller.subject,
            }
        )
        await self._send(flag, "flag.raised")
        return flag

    async def move(self, caller: Caller, flag_id: str, status: FlagStatus, reason: str | None) -> Flag:
        await self._ready()
        found = await self.store.get(flag_id)
        if found is None or found.product not in self.answers_for(caller):
            raise FeedbackError(NO_FLAG)
        note = (reason or "").strip() or None
        if status == FlagStatus.rejected and note is None:
            raise FeedbackError("rejecting a flag needs a reason")
        if note is not None and len(note) > MAX_TEXT:
            raise FeedbackError(f"reason must be at most {MAX_TEXT} characters")
        if status not in MOVES[found.status]:
            raise FeedbackError(f"a flag that is {found.status.value} cannot become {status.value}")
        moved = await self.store.move(
            flag_id, found.status.value, status.value, note, caller.subject, time.time()
        )
        if moved is None:
            raise FeedbackError("the flag was answered meanwhile; read it again")
        await self._send(moved, f"flag.{status.value}")
        return moved

    async def find(self, caller: Caller, flag_id: str) -> Flag | None:
        await self._ready()
        found = await self.store.get(flag_id)
        return found if found is not None and self._may_see(caller, found) else None

    async def listed(self, caller: Caller, product: str | None = None) -> list[Flag]:
        await self._ready()
        return await self.store.listed(
            caller.issuer, caller.subject, self.answers_for(caller), product, self.settings.max_page_size
        )

    async def open_count(self, guard: Guard, product: str) -> int:
        await self._ready()
        rows = await guard.read(_OPEN, {"producer": product, "open": list(OPEN)})
        return int(rows[0]["open"]) if rows else 0

    def _may_see(self, caller: Caller, flag: Flag) -> bool:
        own = flag.reporter_subject == caller.subject and flag.reporter_issuer == caller.issuer
        return (own and not caller.anonymous) or flag.product in self.answers_for(caller)

    async def _send(self, flag: Flag, action: str) -> None:
        topic = self.settings.producer_feedback_topic(flag.product)
        await self.publish(topic, flag.id.encode(), flag.record(action))
