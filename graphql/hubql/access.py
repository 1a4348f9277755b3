"""Access requests, decisions and grants in the schema: thin resolvers over :class:`hub.grants.RequestDesk`.

A request the caller may not see is answered exactly as one that does not exist: ``null`` from
``accessRequest``, absent from every list, and the same error text from every mutation.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types.info import Info

from hub.grants import AccessError, AccessRequest, RequestDesk
from hub.reader import ReadError


class AccessRefused(ReadError):
    """A refused request or decision (its message is meant for the client)."""


@strawberry.enum(description="Where an access request stands.")
class AccessStatus(Enum):
    PENDING = "pending"
    INFO_REQUESTED = "info_requested"
    REJECTED = "rejected"
    APPROVED = "approved"
    EXPIRED = "expired"
    REVOKED = "revoked"


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@strawberry.type(
    name="AccessRequest",
    description="A consumer's request for access to a data product and, once decided, the decision and the "
    "grant. Seen by the requester, the owner's data officers and the hub's operators only.",
)
class AccessRequestView:
    id: strawberry.ID
    product: str = strawberry.field(description="The data product (its producer id).")
    owner: str = strawberry.field(description="The organisation that owns the product and decides.")
    requester_issuer: str
    requester_subject: str
    requester_org: str | None
    purpose: str
    licence: str = strawberry.field(description="The licence the requester accepted (its URL).")
    attributes: list[str] = strawberry.field(description="The label attributes requested.")
    requested_until: datetime
    created_at: datetime
    status: AccessStatus
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None = strawberry.field(
        description="The rejection's reason, the question asked, or the revocation's reason."
    )
    answer: str | None = strawberry.field(description="The requester's answer to a question.")
    granted_attributes: list[str] = strawberry.field(description="The label attributes granted.")
    granted_until: datetime | None = strawberry.field(description="When the grant ends (expires).")
    revoked_at: datetime | None
    revoked_by: str | None


def view(r: AccessRequest) -> AccessRequestView:
    return AccessRequestView(
        id=strawberry.ID(r.id),
        product=r.product,
        owner=r.owner,
        requester_issuer=r.issuer,
        requester_subject=r.subject,
        requester_org=r.requester_org,
        purpose=r.purpose,
        licence=r.licence,
        attributes=list(r.attributes),
        requested_until=datetime.fromtimestamp(r.requested_until, UTC),
        created_at=datetime.fromtimestamp(r.created_at, UTC),
        status=AccessStatus(r.state(time.time())),
        decided_at=_time(r.decided_at),
        decided_by=r.decided_by,
        reason=r.reason,
        answer=r.answer,
        granted_attributes=list(r.granted_attributes),
        granted_until=_time(r.granted_until),
        revoked_at=_time(r.revoked_at),
        revoked_by=r.revoked_by,
    )


def _desk(info: Info) -> RequestDesk:
    desk: RequestDesk = info.context.services.desk
    return desk


async def _guarded(call: Any) -> AccessRequestView:
    try:
        return view(await call)
    except AccessError as exc:
        raise AccessRefused(str(exc)) from None


# -------------------------------------------------------------------------------------------- queries


async def access_request(info: Info, id: strawberry.ID) -> AccessRequestView | None:
    found = await _desk(info).find(info.context.require_caller(), str(id))
    return view(found) if found is not None else None


async def access_requests(info: Info, status: AccessStatus | None = None) -> list[AccessRequestView]:
    rows = [view(r) for r in await _desk(info).visible(info.context.require_caller())]
    return [r for r in rows if status is None or r.status == status]


async def my_grants(info: Info) -> list[AccessRequestView]:
    return [view(r) for r in await _desk(info).my_grants(info.context.require_caller())]


async def grants_held(info: Info) -> list[AccessRequestView]:
    return [view(r) for r in await _desk(info).grants_held(info.context.require_caller())]


# ------------------------------------------------------------------------------------------ mutations


async def request_access(
    info: Info,
    product: str,
    purpose: str,
    licence: str,
    until: datetime,
    attributes: list[str] | None = None,
) -> AccessRequestView:
    return await _guarded(
        _desk(info).request(
            info.context.require_caller(), product, purpose, licence, until.timestamp(), attributes
        )
    )


async def approve_access_request(
    info: Info, id: strawberry.ID, until: datetime | None = None, attributes: list[str] | None = None
) -> AccessRequestView:
    return await _guarded(
        _desk(info).approve(
            info.context.require_caller(),
            str(id),
            None if until is None else until.timestamp(),
            attributes,
        )
    )


async def reject_access_request(info: Info, id: strawberry.ID, reason: str) -> AccessRequestView:
    return await _guarded(_desk(info).reject(info.context.require_caller(), str(id), reason))


async def ask_about_access_request(info: Info, id: strawberry.ID, question: str) -> AccessRequestView:
    return await _guarded(_desk(info).ask(info.context.require_caller(), str(id), question))


async def answer_access_request(info: Info, id: strawberry.ID, answer: str) -> AccessRequestView:
    return await _guarded(_desk(info).answer(info.context.require_caller(), str(id), answer))


async def revoke_grant(info: Info, id: strawberry.ID, reason: str) -> AccessRequestView:
    return await _guarded(_desk(info).revoke(info.context.require_caller(), str(id), reason))


QUERIES: dict[str, Any] = {
    "access_request": strawberry.field(
        resolver=access_request,
        description="One access request by id; null when there is none or you may not see it.",
    ),
    "access_requests": strawberry.field(
        resolver=access_requests,
        description="Access requests you may see (your own; your organisation's as its data officer; all "
        "as an operator), newest first, at most the server's page size.",
    ),
    "my_grants": strawberry.field(
        resolver=my_grants, description="Your grants (approved requests), live, expired and revoked."
    ),
    "grants_held": strawberry.field(
        resolver=grants_held,
        description="Grants others hold to your organisation's data products (data officers; operators: "
        "all).",
    ),
}

MUTATIONS: dict[str, Any] = {
    "request_access": strawberry.mutation(
        resolver=request_access,
        description="Ask a data product's owner for access: your purpose, the product's licence URL (which "
        "you accept), until when, and optionally which of the attributes its labels need.",
    ),
    "approve_access_request": strawberry.mutation(
        resolver=approve_access_request,
        description="Approve a request (data officers of the owner), possibly for a shorter period or fewer "
        "attributes; the grant takes effect at once.",
    ),
    "reject_access_request": strawberry.mutation(
        resolver=reject_access_request, description="Reject a request, with a reason (data officers)."
    ),
    "ask_about_access_request": strawberry.mutation(
        resolver=ask_about_access_request,
        description="Ask the requester for more information (data officers).",
    ),
    "answer_access_request": strawberry.mutation(
        resolver=answer_access_request,
        description="Answer the owner's question (the requester); the request is pending again.",
    ),
    "revoke_grant": strawberry.mutation(
        resolver=revoke_grant,
        description="Revoke a live grant, with a reason (data officers); it stops applying at once.",
    ),
}
