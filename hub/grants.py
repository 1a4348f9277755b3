"""Access requests, decisions and grants: a consumer asks a data product's owner, the owner decides, the API
obeys at query time, and every step is on the audit topic.

**The record.** Each request is one ``(:AccessRequest)`` node in Neo4j, apart from the network graph: it
carries no ``_label`` (so no network read, all of which filter on ``_label IN $visible``, can ever return
it), no relationship, and only the fixed property keys of :class:`AccessRequest`. Neo4j rather than a Kafka
log because a decision is a conditional state change (decide only a request that is still open; revoke only
a live grant), which one transaction under the node's write lock makes safe when several API processes
decide at once; a log would need every process to fold it and a second round to settle races. It survives
restarts with the graph. A ``(:AccessLedger)`` node holds a version that every change bumps, so a process
learns that the grants changed by reading one integer.

**Identity.** A request, and the grant it becomes, belong to the token's ``(iss, sub)``: a grant for
``sub`` from one issuer never applies to the same ``sub`` from another.

**Who sees what.** A request is seen by its requester, by the data officers of the product's owner
organisation (``org`` claim equal to the owner and the role ``grant_officer_role``, from an issuer in
``grant_officer_issuers`` when that is set) and by the hub's
operators (role ``grant_operator_role``); to anyone else it does not exist, with the same answer as an id
that was never issued (:func:`RequestDesk.find`). Only the owner's officers decide and revoke.

**What a grant gives.** The attribute tokens the product's labels need (its ``defaultLabel`` and
``maximumLabel``, classification aside: a grant never raises a clearance), or the subset the consumer asked
for and the officer approved, and only for that product's objects (those its producer owns, ``_owner``).
:class:`GrantBook` holds every live grant in memory; :meth:`GrantBook.access` gives, per product the caller
holds grants for, the token's attributes together with the grants' at query time (never written into the
token), again intersected with what the product's contract needs *now*; the guard (:mod:`hub.guard`) lets
those authorizations open that product's objects and no other's. So a grant can never give more than the
owner approved nor more than the product's labels, and a grant of ``org=ngt`` for one product does not open
another producer's object labelled ``org=neso|org=ngt``. Cost on the read path: one dict look-up by
``(iss, sub)`` and, for a caller holding grants, one label evaluation per granted product; no database
round trip. Each API process re-reads the ledger
version every ``grant_refresh_s`` (and the live grants when it moved), so a decision taken by another
process takes effect within that bound; expiry is checked against the clock at every look-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog

from hub import audit
from hub.caller import Caller
from hub.data_products import DataProduct, DataProducts
from hub.graph import SideStore
from hub.guard import Access
from hub.labels import Authorizations, Label, Or, Token, parse
from hub.settings import Settings

log = structlog.get_logger(__name__)

Status = Literal["pending", "info_requested", "rejected", "approved", "revoked"]
OPEN: Final[tuple[str, ...]] = ("pending", "info_requested")
MAX_TEXT: Final = 2000
MAX_LIST: Final = 200


class AccessError(ValueError):
    """A refused request or decision; the message is meant for the client and never describes a request the
    caller may not see."""


def grantable_attributes(product: DataProduct) -> frozenset[str]:
    """The attribute tokens a product's labels need (classification aside): for each of its labels one
    smallest set of tokens that satisfies it, preferring the alternative that names the owner
    (``org=<owner>``), so that a label such as ``org=genco|org=neso`` needs ``org=genco`` and never makes a
    grant of the generator's data a grant of everything labelled for the system operator."""
    c = product.contract
    owner = f"org={product.publisher}"
    found: set[str] = set()
    for text in (c.default_label, c.maximum_label):
        options = _satisfying(parse(text))
        found |= min(options, key=lambda o: (owner not in o, len(o), sorted(o)))
    return frozenset(found)


def _satisfying(label: Label) -> list[frozenset[str]]:
    """The token sets (classification tokens left out) each of which satisfies ``label``."""
    if isinstance(label, Token):
        return [frozenset() if label.level is not None else frozenset((label.text,))]
    if isinstance(label, Or):
        return [o for op in label.operands for o in _satisfying(op)]
    combined: list[frozenset[str]] = [frozenset()]
    for op in label.operands:
        combined = [a | b for a in combined for b in _satisfying(op)][:MAX_LIST]
    return combined


@dataclass(frozen=True)
class AccessRequest:
    """One request and, once decided, its decision and grant. Times are Unix seconds."""

    id: str
    issuer: str
    subject: str
    requester_org: str | None
    product: str
    owner: str
    attributes: tuple[str, ...]
    purpose: str
    licence: str
    requested_until: float
    created_at: float
    status: Status
    decided_at: float | None = None
    decided_by: str | None = None
    reason: str | None = None
    answer: str | None = None
    granted_attributes: tuple[str, ...] = ()
    granted_until: float | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None

    @classmethod
    def from_node(cls, props: Mapping[str, Any]) -> AccessRequest:
        return cls(
            id=str(props["id"]),
            issuer=str(props["issuer"]),
            subject=str(props["subject"]),
            requester_org=props.get("requester_org"),
            product=str(props["product"]),
            owner=str(props["owner"]),
            attributes=tuple(props.get("attributes") or ()),
            purpose=str(props.get("purpose") or ""),
            licence=str(props.get("licence") or ""),
            requested_until=float(props["requested_until"]),
            created_at=float(props["created_at"]),
            status=props["status"],
            decided_at=props.get("decided_at"),
            decided_by=props.get("decided_by"),
            reason=props.get("reason"),
            answer=props.get("answer"),
            granted_attributes=tuple(props.get("granted_attributes") or ()),
            granted_until=props.get("granted_until"),
            revoked_at=props.get("revoked_at"),
            revoked_by=props.get("revoked_by"),
        )

    def state(self, now: float) -> str:
        """The status as the caller is told it: an approved grant past its end is ``expired``."""
        if self.status == "approved" and self.granted_until is not None and self.granted_until <= now:
            return "expired"
        return self.status

    def live(self, now: float) -> bool:
        return self.state(now) == "approved"


# ------------------------------------------------------------------------------------------------ store

_RETURN: Final = "RETURN r {.*} AS r"
# Takes the request's write lock before its state is read, so two processes deciding at once are serialised
# and the second sees the first's decision (the property is set and removed in the same statement).
_LOCKED: Final = "MATCH (r:AccessRequest {id: $id}) SET r._lock = true REMOVE r._lock WITH r "
_BUMP: Final = (
    "WITH collect(r) AS rs WHERE size(rs) > 0 MERGE (v:AccessLedger {id: 'grants'}) "
    "SET v.version = coalesce(v.version, 0) + 1 WITH rs UNWIND rs AS r "
)


class RequestStore(SideStore):
    """The requests in Neo4j (see the module's text); every statement is parameterised."""

    async def ensure_schema(self) -> None:
        await self._run(
            "CREATE CONSTRAINT access_request_id IF NOT EXISTS FOR (r:AccessRequest) REQUIRE r.id IS UNIQUE",
            write=True,
        )
        await self._run(
            "CREATE CONSTRAINT access_ledger_id IF NOT EXISTS FOR (v:AccessLedger) REQUIRE v.id IS UNIQUE",
            write=True,
        )

    async def create(self, props: Mapping[str, Any]) -> AccessRequest:
        rows = await self._run(
            f"CREATE (r:AccessRequest) SET r = $props {_BUMP}{_RETURN}", write=True, props=props
        )
        return AccessRequest.from_node(rows[0]["r"])

    async def get(self, request_id: str) -> AccessRequest | None:
        rows = await self._run(f"MATCH (r:AccessRequest {{id: $id}}) {_RETURN}", write=False, id=request_id)
        return AccessRequest.from_node(rows[0]["r"]) if rows else None

    async def visible(
        self,
        issuer: str | None,
        subject: str,
        officer_of: Sequence[str],
        operator: bool,
        where: str = "",
        limit: int = 1000,
    ) -> list[AccessRequest]:
        """Requests the caller may see: its own, its organisation's as an officer, all as an operator; then
        ``where`` (a fixed fragment over ``r``), the newest ``limit``."""
        rows = await self._run(
            "MATCH (r:AccessRequest) WHERE ((r.issuer = $issuer AND r.subject = $subject) "
            "OR r.owner IN $officer_of OR $operator) "
            f"{where} {_RETURN} ORDER BY r.created_at DESC, r.id LIMIT $limit",
            limit=limit,
            write=False,
            issuer=issuer,
            subject=subject,
            officer_of=list(officer_of),
            operator=operator,
        )
        return [AccessRequest.from_node(r["r"]) for r in rows]

    async def transition(
        self,
        request_id: str,
        from_statuses: Sequence[str],
        changes: Mapping[str, Any],
        *,
        live_at: float | None = None,
    ) -> AccessRequest | None:
        """Set ``changes`` on the request if its status is one of ``from_statuses`` (and, with ``live_at``,
        its grant runs past that time), under its write lock; None if it was not."""
        live = "AND r.granted_until > $live_at " if live_at is not None else ""
        rows = await self._run(
            f"{_LOCKED}WHERE r.status IN $statuses {live}SET r += $changes {_BUMP}{_RETURN}",
            write=True,
            id=request_id,
            changes=dict(changes),
            live_at=live_at,
            statuses=list(from_statuses),
        )
        return AccessRequest.from_node(rows[0]["r"]) if rows else None

    async def version(self) -> int:
        rows = await self._run("MATCH (v:AccessLedger {id: 'grants'}) RETURN v.version AS v", write=False)
        return int(rows[0]["v"]) if rows else 0

    async def live_grants(self, now: float) -> list[AccessRequest]:
        rows = await self._run(
            f"MATCH (r:AccessRequest) WHERE r.status = 'approved' AND r.granted_until > $now {_RETURN}",
            write=False,
            now=now,
        )
        return [AccessRequest.from_node(r["r"]) for r in rows]

    async def claim_expired(self, now: float, trail: str) -> list[AccessRequest]:
        """Grants past their end whose expiry the audit trail ``trail`` has no record of yet, claimed for
        it: one process writes each expiry to each trail, however many processes write to that trail.

        Keyed by trail, not by process: API deployments with their own audit topics may share one graph,
        and a claim by one of them must not leave another's trail without the record."""
        rows = await self._run(
            "MATCH (r:AccessRequest) WHERE r.status = 'approved' AND r.granted_until <= $now "
            "AND NOT $trail IN coalesce(r.expiry_recorded_in, []) "
            "SET r._lock = true REMOVE r._lock "
            "WITH r WHERE NOT $trail IN coalesce(r.expiry_recorded_in, []) "
            "SET r.expiry_recorded_in = coalesce(r.expiry_recorded_in, []) + $trail "
            f"{_BUMP}{_RETURN}",
            write=True,
            now=now,
            trail=trail,
        )
        return [AccessRequest.from_node(r["r"]) for r in rows]


# ------------------------------------------------------------------------------------------- grant book


@dataclass(frozen=True, slots=True)
class LiveGrant:
    request_id: str
    product: str  # the producer whose objects it opens
    attributes: frozenset[str]
    until: float


@dataclass
class GrantBook:
    """Every live grant, by ``(issuer, subject)``, held by one API process (see the module's text)."""

    grantable: Mapping[str, frozenset[str]]  # product -> the attributes its labels need
    _by_principal: dict[tuple[str, str], tuple[LiveGrant, ...]] = field(default_factory=dict)
    version: int = -1

    def load(self, grants: Iterable[AccessRequest], version: int) -> None:
        by: dict[tuple[str, str], list[LiveGrant]] = {}
        for g in grants:
            live = self._live(g)
            if live is not None:
                by.setdefault((g.issuer, g.subject), []).append(live)
        self._by_principal = {k: tuple(v) for k, v in by.items()}
        self.version = version

    def _live(self, g: AccessRequest) -> LiveGrant | None:
        if g.status != "approved" or g.granted_until is None:
            return None
        # Never more than the product's labels need now (a contract may have narrowed since).
        attrs = frozenset(g.granted_attributes) & self.grantable.get(g.product, frozenset())
        return LiveGrant(g.id, g.product, attrs, g.granted_until) if attrs else None

    def put(self, g: AccessRequest) -> None:
        """Apply one request's new state at once (this process decided it)."""
        key = (g.issuer, g.subject)
        kept = [x for x in self._by_principal.get(key, ()) if x.request_id != g.id]
        live = self._live(g)
        if live is not None:
            kept.append(live)
        if kept:
            self._by_principal[key] = tuple(kept)
        else:
            self._by_principal.pop(key, None)

    def live(self, caller: Caller, now: float | None = None) -> tuple[LiveGrant, ...]:
        """The caller's live grants."""
        if caller.issuer is None:
            return ()
        grants = self._by_principal.get((caller.issuer, caller.subject), ())
        t = time.time() if now is None else now
        return tuple(g for g in grants if g.until > t)

    def granted(self, caller: Caller, now: float | None = None) -> frozenset[str]:
        """Attributes the caller's live grants add (empty for callers without grants)."""
        if caller.issuer is None:
            return frozenset()
        grants = self._by_principal.get((caller.issuer, caller.subject))
        if not grants:
            return frozenset()
        t = time.time() if now is None else now
        out: set[str] = set()
        for g in grants:
            if g.until > t:
                out |= g.attributes
        return frozenset(out)

    def access(self, caller: Caller, now: float | None = None) -> Access:
        """What the caller sees with at this moment: the token's authorizations for every object and, for
        the objects of each product it holds live grants for, the token's attributes together with those
        grants' (never for another product's objects, see :mod:`hub.guard`)."""
        base = caller.authorizations
        grants = self.live(caller, now)
        if not grants:
            return Access(base)
        by_product: dict[str, set[str]] = {}
        for g in grants:
            by_product.setdefault(g.product, set()).update(g.attributes)
        scoped = tuple(
            (product, Authorizations(base.classification, base.attributes | extra))
            for product, extra in sorted(by_product.items())
            if not extra <= base.attributes
        )
        return Access(base, scoped)

    def adding(self, caller: Caller, now: float | None = None) -> tuple[str, ...]:
        """The caller's live grants (request ids) that add to what its token alone gives."""
        base = caller.authorizations.attributes
        return tuple(sorted(g.request_id for g in self.live(caller, now) if not g.attributes <= base))


# ------------------------------------------------------------------------------------------------ desk


def _text(value: str, name: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise AccessError(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise AccessError(f"{name} is longer than {MAX_TEXT} characters")
    return value


def _who(caller: Caller) -> str:
    return f"{caller.issuer} {caller.subject}"


class RequestDesk:
    """The one place where requests are made, seen, decided and revoked, and the live grants kept."""

    def __init__(self, settings: Settings, store: RequestStore, products: DataProducts) -> None:
        self.settings = settings
        self.store = store
        self.products = products
        self.book = GrantBook({p: grantable_attributes(d) for p, d in products.products.items()})
        self._task: asyncio.Task[None] | None = None

    # who may do what

    def is_operator(self, caller: Caller) -> bool:
        return not caller.anonymous and self.settings.grant_operator_role in caller.roles

    def officer_of(self, caller: Caller) -> list[str]:
        """Organisations whose requests the caller decides (its own, when it holds the officer role from an
        issuer that ``grant_officer_issuers`` allows)."""
        s = self.settings
        if caller.anonymous or caller.org is None or s.grant_officer_role not in caller.roles:
            return []
        if s.grant_officer_issuers and caller.issuer not in s.grant_officer_issuers:
            return []
        return [caller.org]

    def may_see(self, caller: Caller, r: AccessRequest) -> bool:
        own = caller.issuer is not None and (r.issuer, r.subject) == (caller.issuer, caller.subject)
        return own or r.owner in self.officer_of(caller) or self.is_operator(caller)

    async def find(self, caller: Caller, request_id: str) -> AccessRequest | None:
        """The request; None alike when there is none and when the caller may not see it."""
        found = await self.store.get(request_id)
        return found if found is not None and self.may_see(caller, found) else None

    async def _seen(self, caller: Caller, request_id: str) -> AccessRequest:
        found = await self.find(caller, request_id)
        if found is None:
            raise AccessError(f"no access request {request_id!r}")
        return found

    async def visible(self, caller: Caller, where: str = "") -> list[AccessRequest]:
        if caller.anonymous:
            return []
        return await self.store.visible(
            caller.issuer,
            caller.subject,
            self.officer_of(caller),
            self.is_operator(caller),
            where,
            self.settings.max_page_size,
        )

    async def my_grants(self, caller: Caller) -> list[AccessRequest]:
        """The caller's own grants (live, expired and revoked), newest first."""
        if caller.anonymous or caller.issuer is None:
            return []
        return await self.store.visible(
            caller.issuer,
            caller.subject,
            [],
            False,
            "AND r.issuer = $issuer AND r.subject = $subject AND r.status IN ['approved', 'revoked']",
            self.settings.max_page_size,
        )

    async def grants_held(self, caller: Caller) -> list[AccessRequest]:
        """Grants to the products of the caller's organisation (officers), or all of them (operators)."""
        if not (self.officer_of(caller) or self.is_operator(caller)):
            return []
        return await self.store.visible(
            None,
            caller.subject,
            self.officer_of(caller),
            self.is_operator(caller),
            "AND r.status IN ['approved', 'revoked']",
            self.settings.max_page_size,
        )

    # the steps

    async def request(
        self,
        caller: Caller,
        product_id: str,
        purpose: str,
        licence: str,
        until: float,
        attributes: Sequence[str] | None = None,
    ) -> AccessRequest:
        if caller.anonymous or caller.issuer is None:
            raise AccessError("sign in to request access")
        product = self.products.find(product_id, caller)
        if product is None:
            raise AccessError(f"no data product {product_id!r}")
        needed = grantable_attributes(product)
        if not needed:
            raise AccessError(f"data product {product_id!r} needs no attribute beyond a clearance")
        if attributes is None:
            wanted = needed
        else:
            if len(attributes) > MAX_LIST:
                raise AccessError(f"attributes has more than {MAX_LIST} entries")
            wanted = frozenset(attributes)
            outside = sorted(wanted - needed)
            if outside or not wanted:
                raise AccessError(
                    f"attributes must be a non-empty subset of what {product_id!r} needs "
                    f"({', '.join(sorted(needed))}); not needed: {', '.join(outside)}"
                )
        if licence.strip() != product.contract.licence:
            raise AccessError(f"licence must be the product's licence, {product.contract.licence}")
        now = time.time()
        if until <= now:
            raise AccessError("until must be in the future")
        if until - now > self.settings.grant_max_period_s:
            raise AccessError(
                f"the period is longer than grant_max_period_s = {self.settings.grant_max_period_s:g} s"
            )
        created = await self.store.create(
            {
                "id": uuid.uuid4().hex,
                "issuer": caller.issuer,
                "subject": caller.subject,
                "requester_org": caller.org,
                "product": product.producer,
                "owner": product.publisher,
                "attributes": sorted(wanted),
                "purpose": _text(purpose, "purpose"),
                "licence": product.contract.licence,
                "requested_until": float(until),
                "created_at": now,
                "status": "pending",
            }
        )
        self._audit("access.requested", created, caller)
        return created

    async def _decidable(self, caller: Caller, request_id: str) -> AccessRequest:
        found = await self._seen(caller, request_id)
        if found.owner not in self.officer_of(caller):
            raise AccessError(f"only a data officer of {found.owner!r} may decide or revoke this request")
        return found

    async def _transition(
        self,
        caller: Caller,
        found: AccessRequest,
        from_statuses: Sequence[str],
        changes: Mapping[str, Any],
        *,
        live_at: float | None = None,
    ) -> AccessRequest:
        done = await self.store.transition(found.id, from_statuses, changes, live_at=live_at)
        if done is None:
            current = await self.store.get(found.id)
            state = current.state(time.time()) if current is not None else "gone"
            raise AccessError(f"access request {found.id!r} is {state}")
        self.book.put(done)
        return done

    async def approve(
        self,
        caller: Caller,
        request_id: str,
        until: float | None = None,
        attributes: Sequence[str] | None = None,
    ) -> AccessRequest:
        found = await self._decidable(caller, request_id)
        now = time.time()
        end = found.requested_until if until is None else min(until, found.requested_until)
        if end <= now:
            raise AccessError("until must be in the future")
        granted = frozenset(found.attributes)
        if attributes is not None:
            narrower = frozenset(attributes)
            if not narrower or not narrower <= granted:
                raise AccessError(
                    "attributes must be a non-empty subset of those requested "
                    f"({', '.join(found.attributes)})"
                )
            granted = narrower
        done = await self._transition(
            caller,
            found,
            OPEN,
            {
                "status": "approved",
                "decided_at": now,
                "decided_by": _who(caller),
                "granted_attributes": sorted(granted),
                "granted_until": float(end),
            },
        )
        self._audit("access.approved", done, caller)
        return done

    async def reject(self, caller: Caller, request_id: str, reason: str) -> AccessRequest:
        found = await self._decidable(caller, request_id)
        done = await self._transition(
            caller,
            found,
            OPEN,
            {
                "status": "rejected",
                "decided_at": time.time(),
                "decided_by": _who(caller),
                "reason": _text(reason, "reason"),
            },
        )
        self._audit("access.rejected", done, caller)
        return done

    async def ask(self, caller: Caller, request_id: str, question: str) -> AccessRequest:
        found = await self._decidable(caller, request_id)
        done = await self._transition(
            caller,
            found,
            ("pending",),
            {
                "status": "info_requested",
                "decided_at": time.time(),
                "decided_by": _who(caller),
                "reason": _text(question, "question"),
            },
        )
        self._audit("access.info_requested", done, caller)
        return done

    async def answer(self, caller: Caller, request_id: str, answer: str) -> AccessRequest:
        found = await self._seen(caller, request_id)
        if (found.issuer, found.subject) != (caller.issuer, caller.subject):
            raise AccessError("only the requester may answer its request")
        done = await self._transition(
            caller, found, ("info_requested",), {"status": "pending", "answer": _text(answer, "answer")}
        )
        self._audit("access.answered", done, caller)
        return done

    async def revoke(self, caller: Caller, request_id: str, reason: str) -> AccessRequest:
        found = await self._decidable(caller, request_id)
        now = time.time()
        done = await self._transition(
            caller,
            found,
            ("approved",),
            {
                "status": "revoked",
                "revoked_at": now,
                "revoked_by": _who(caller),
                "reason": _text(reason, "reason"),
            },
            live_at=now,
        )
        self._audit("access.revoked", done, caller)
        return done

    def _audit(self, action: str, r: AccessRequest, caller: Caller | None) -> None:
        audit.record(
            action,
            subject=r.subject,
            issuer=r.issuer,
            request=r.id,
            product=r.product,
            owner=r.owner,
            attributes=list(r.granted_attributes or r.attributes),
            until=r.granted_until or r.requested_until,
            by=None if caller is None else _who(caller),
        )

    # keeping the book

    async def refresh(self) -> None:
        """Record expiries nobody recorded yet, then re-read the live grants if the ledger moved."""
        now = time.time()
        for r in await self.store.claim_expired(now, self.settings.audit_topic):
            self._audit("access.expired", r, None)
        version = await self.store.version()
        if version != self.book.version:
            self.book.load(await self.store.live_grants(now), version)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        schema = False
        while True:
            try:
                if not schema:
                    await self.store.ensure_schema()
                    schema = True
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The book keeps what it had; expiry is still checked against the clock at every look-up.
                log.warning("grants not refreshed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.settings.grant_refresh_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
