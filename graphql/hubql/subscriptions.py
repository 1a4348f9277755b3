"""The ``changes`` subscription: the ``cim.changes`` topic, filtered per subscriber through the access guard.

Subscriptions share the process's one reader of the topic (:mod:`hubql.change_feed`); a subscription that
resumes from an older cursor reads the gap first with a short-lived catch-up reader. Order is Kafka's:
per partition, hence per object (the record key is the mRID).

A record is delivered only if the subscriber may see its label *now* (the label table is followed while
the subscription lives, and a label id never seen before makes the guard read the table again). An
object the subscriber could see under its previous label and cannot see under the new one is reported
exactly as a delete is (same fields, same values); objects it never could see are not reported at all.

The cursor (:mod:`hubql.cursors`) is sealed and bound to the caller, and moves only past delivered
records, so it never reflects how many hidden changes went by; resuming from it re-reads the records
after it and delivers exactly those the subscriber may see, none twice.

The shared reader checks each record against each subscription's filter and, in memory, its labels: a
subscription's queue holds only records it may be told of (those whose label, or previous label, it may
see; a label not yet in the table is queued and decided on delivery, with a read of the table).

A subscriber that cannot keep up never holds the others back: when ``subscription_queue_size`` changes
it may be told of are waiting for it, it receives a marker (``change: "gap"``, with the cursor of the last
change delivered and no object), and the subscription reads on from that cursor with a catch-up reader of
its own, at the subscriber's pace, until it rejoins the shared reader.
Nothing is lost and nothing is delivered twice.

A socket holds at most ``max_subscriptions_per_socket`` subscriptions and a caller at most
``max_subscriptions_per_caller`` across the process's sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from hub import audit
from hub.caller import Caller
from hub.changes import ChangeRecord
from hub.graph_schema import CLASS
from hub.guard import Access, Guard
from hub.reader import Reader, ReadError
from hubql.change_feed import ChangeFeed, Item, SubscriberTooSlow, Tap
from hubql.context import HubContext
from hubql.cursors import CursorCodec
from hubql.generic import graph_node

log = structlog.get_logger(__name__)

# The ``change`` of the marker a subscriber that fell behind receives (beside the record kinds).
GAP = "gap"


@dataclass(frozen=True)
class ChangeFilter:
    classes: frozenset[str] | None
    domain: str | None
    mrids: frozenset[str] | None

    def matches(self, record: ChangeRecord, domain_of: Mapping[str, str]) -> bool:
        if self.mrids is not None and record.mrid not in self.mrids:
            return False
        if self.classes is not None and record.class_ not in self.classes:
            return False
        return self.domain is None or domain_of.get(record.class_) == self.domain


def make_filter(
    ctx: HubContext, class_names: Sequence[str] | None, domain: str | None, mrids: Sequence[str] | None
) -> ChangeFilter:
    ontology = ctx.services.ontology
    classes: set[str] | None = None
    if class_names is not None:
        classes = set()
        for name in class_names:
            if name not in ontology.classes:
                raise ReadError(f"classNames contains {name!r}, which is not a class of the ontology")
            classes |= ontology.descendants(name)
    return ChangeFilter(
        classes=frozenset(classes) if classes is not None else None,
        domain=domain,
        mrids=frozenset(mrids) if mrids is not None else None,
    )


class SubscriptionLimit(ReadError):
    """Over a subscription cap; the message names the setting and its value."""


def _admit(ctx: HubContext, feed: ChangeFeed, caller: Caller) -> None:
    s = ctx.services.settings
    if ctx.subscriptions >= s.max_subscriptions_per_socket:
        reason = (
            f"max_subscriptions_per_socket = {s.max_subscriptions_per_socket}: this connection has "
            f"{ctx.subscriptions} subscriptions open"
        )
    elif feed.per_caller.get(caller.principal, 0) >= s.max_subscriptions_per_caller:
        reason = (
            f"max_subscriptions_per_caller = {s.max_subscriptions_per_caller}: you have "
            f"{feed.per_caller[caller.principal]} subscriptions open"
        )
    else:
        ctx.subscriptions += 1
        feed.per_caller[caller.principal] = feed.per_caller.get(caller.principal, 0) + 1
        return
    audit.record("subscription.refused", subject=caller.subject, reason=reason)
    raise SubscriptionLimit(reason)


def _release(ctx: HubContext, feed: ChangeFeed, caller: Caller) -> None:
    ctx.subscriptions -= 1
    left = feed.per_caller.get(caller.principal, 1) - 1
    if left > 0:
        feed.per_caller[caller.principal] = left
    else:
        feed.per_caller.pop(caller.principal, None)


class _Delivery:
    """Turns one subscriber's records into ``Change`` rows and keeps its cursor."""

    def __init__(
        self,
        codec: CursorCodec,
        topic: str,
        caller: Caller,
        guard: Guard,
        reader: Reader,
        delivered: dict[int, int],
        with_node: bool,
        flt: ChangeFilter,
        access: Callable[[], Access],
        reader_of: Callable[[Guard], Reader],
    ) -> None:
        self.codec, self.topic, self.principal = codec, topic, caller.principal
        self.guard, self.reader = guard, reader
        self.flt = flt
        # What the caller sees with as it stands now (token and live grants, see hub.grants), and a reader
        # over any guard.
        self.access, self.reader_of = access, reader_of
        # Offset after the last record delivered, per partition (the start position where none was).
        self.delivered = delivered
        # Whether the subscriber selected ``node``: only then is the graph read at all.
        self.with_node = with_node

    async def _change(self, item: Item) -> str | None:
        """The change as this subscriber is told it; None: it may not learn of it."""
        record = item.record
        guard = self.guard
        # The record's producer owns the object (only the owner writes it, see hub.writer): a grant for its
        # product may open it.
        visible = await guard.may_see_label(record.label_id, record.producer)
        was_visible = record.prev_label_id is not None and await guard.may_see_label(
            record.prev_label_id, record.producer
        )
        if record.change == "delete":
            if not (visible or was_visible):
                guard.stats.withheld += 1
                return None
            return "delete"
        if not visible:
            if not was_visible:
                guard.stats.withheld += 1
                return None
            # Relabelled away from this subscriber: to it the object is gone, told as a delete is.
            return "delete"
        return record.change

    def gap(self) -> dict[str, Any]:
        """The marker told to a subscriber that fell behind: no object, and the cursor of the last change
        delivered, from which the subscription (or a new one, after a disconnect) reads on."""
        return {
            "cursor": self.codec.seal(self.topic, self.principal, self.delivered),
            "mrid": "",
            "class_name": "",
            "change": GAP,
            "version": 0,
            "time": datetime.now(UTC),
            "node": None,
        }

    async def regranted(self) -> list[dict[str, Any]]:
        """When the caller's grants changed (made, expired, revoked): the objects within the filter that
        it could see and no longer may, each told as a delete, and those it may now see and could not, each
        told as an upsert with its current version; exactly as if they had been relabelled."""
        before = self.guard.regrant(self.access())
        if before is None:
            return []
        # The token's authorizations do not change, only what the grants add per product.
        was, now = await before.granted_pairs(), await self.guard.granted_pairs()
        lost, gained = was - now, now - was
        f = self.flt
        rows: list[dict[str, Any]] = []
        told: list[tuple[str, dict[str, Any]]] = []
        if lost:
            gone = await self.reader_of(before).labelled(lost, f.classes, f.domain, f.mrids)
            told += [("delete", n) for n in gone]
        if gained:
            shown = await self.reader.labelled(gained, f.classes, f.domain, f.mrids)
            told += [("upsert", n) for n in shown]
        at = datetime.now(UTC)
        # The cursor does not move: these are not records of the topic.
        cursor = self.codec.seal(self.topic, self.principal, self.delivered)
        for change, n in told:
            self.guard.stats.rows += 1
            rows.append(
                {
                    "cursor": cursor,
                    "mrid": n["mrid"],
                    "class_name": n.get(CLASS) or "",
                    "change": change,
                    "version": int(n.get("version") or 0),
                    "time": at,
                    "node": graph_node(n, self.guard.label_text)
                    if change != "delete" and self.with_node
                    else None,
                }
            )
        return rows

    async def rows(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        """Change rows for ``items`` (in order), the nodes of all of them read in one query; first what a
        change of the caller's grants showed or hid."""
        regranted = await self.regranted()
        told = [(item, change) for item in items if (change := await self._change(item)) is not None]
        nodes: dict[str, dict[str, Any]] = {}
        if self.with_node:
            wanted = {item.record.mrid for item, change in told if change != "delete"}
            if wanted:
                nodes = await self.reader.nodes_lite(sorted(wanted))
        out = regranted
        for item, change in told:
            record = item.record
            found = nodes.get(record.mrid) if change != "delete" else None
            self.guard.stats.rows += 1
            self.delivered[item.partition] = item.offset + 1
            out.append(
                {
                    "cursor": self.codec.seal(self.topic, self.principal, self.delivered),
                    "mrid": record.mrid,
                    "class_name": record.class_,
                    "change": change,
                    "version": record.version,
                    "time": record.time,
                    "node": graph_node(found, self.guard.label_text) if found is not None else None,
                }
            )
        return out


async def change_stream(
    ctx: HubContext,
    class_names: Sequence[str] | None,
    domain: str | None,
    mrids: Sequence[str] | None,
    after: str | None,
    with_node: bool = True,
) -> AsyncIterator[dict[str, Any]]:
    """Change rows (dicts for the ``Change`` type) this subscriber may see, until it leaves.
    ``with_node``: the subscriber selected ``node`` (else the graph is not read)."""
    services = ctx.services
    topic = services.settings.changes_topic
    caller = ctx.require_caller()
    flt = make_filter(ctx, class_names, domain, mrids)
    codec, feed = services.cursors, services.feed
    start = codec.open(after, topic, caller.principal) if after else None
    domain_of = {name: c.domain for name, c in services.ontology.classes.items()}
    tap: Tap | None = None
    delivery: _Delivery | None = None

    def wants(record: ChangeRecord) -> bool:
        if not flt.matches(record, domain_of):
            return False
        # The labels too, in memory: a subscription's queue holds only changes it may be told of (under
        # the label now or the one before), so when its subscriber falls behind (a gap marker) depends on
        # those alone, never on how many hidden changes went by. What cannot be decided here (a label not
        # yet in the table) is queued, and decided on delivery.
        guard = delivery.guard if delivery is not None else None
        return guard is None or not (
            guard.hides(record.label_id, record.producer)
            and guard.hides(record.prev_label_id, record.producer)
        )

    _admit(ctx, feed, caller)
    try:
        await feed.start()
        # The delivery follows the caller's grants itself, so that it can tell what they show or hide.
        guard = services.guard(caller, follow_labels=True, follow_grants=False)
        book = services.desk.book
        delivery = _Delivery(
            codec,
            topic,
            caller,
            guard,
            services.reader(guard),
            dict(feed.positions) if start is None else start,
            with_node,
            flt,
            lambda: book.access(caller),
            services.reader,
        )
        log.info("subscription started", subject=caller.subject, topic=topic, resumed=start is not None)
        if start is None:
            tap = feed.register(wants, None)
        else:
            # The catch-up reader advances its own copy; the cursor moves only with deliveries.
            async with aclosing(feed.catch_up(dict(start), wants)) as gap:
                async for got in gap:
                    if isinstance(got, Tap):
                        tap = got
                        break
                    for row in await delivery.rows([got]):
                        yield row
        assert tap is not None
        # A subscription with nothing to deliver still wakes four times per grant_refresh_s (a dict look-up
        # each), to tell its subscriber what a change of its grants showed or hid: within grant_refresh_s
        # of the process learning of the change, plus a quarter of it.
        idle_s = services.settings.grant_refresh_s / 4
        while True:
            try:
                try:
                    items = await asyncio.wait_for(tap.get_many(), idle_s)
                except TimeoutError:
                    items = []
            except SubscriberTooSlow:
                # Fallen behind the shared reader by a whole queue: the subscriber is told, and the
                # subscription reads on from its own position with a reader of its own, at its own pace,
                # then rejoins the shared reader; nothing is lost and nobody else waits.
                feed.unregister(tap)
                tap = None
                log.info("subscription fell behind", subject=caller.subject, queue=feed.queue_size)
                yield delivery.gap()
                async with aclosing(feed.catch_up(dict(delivery.delivered), wants)) as gap:
                    async for got in gap:
                        if isinstance(got, Tap):
                            tap = got
                            break
                        for row in await delivery.rows([got]):
                            yield row
                assert tap is not None
                continue
            for row in await delivery.rows(items):
                yield row
    finally:
        if tap is not None:
            feed.unregister(tap)
        _release(ctx, feed, caller)
        if delivery is not None:
            # The subscription's own count (the operation's audit line cannot see its guard).
            log.info(
                "subscription ended",
                subject=caller.subject,
                rows=delivery.guard.stats.rows,
                withheld=delivery.guard.stats.withheld,
            )
