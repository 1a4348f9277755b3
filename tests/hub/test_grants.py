"""Access requests and grants against the real Neo4j: random sequences of requests, decisions, revocations and
expiries, checked at every step against an oracle of each caller's token attributes and live grants.

Two desks share the store, as two API processes do: the one that takes each step and another that learns of
it only through :meth:`RequestDesk.refresh`. After every step each caller's authorizations in both (what the
guard filters with), and the requests each caller may see, are exactly what the oracle says.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devstack.demo.producers import PRODUCER_CONFIG
from hub.caller import Caller
from hub.data_products import DataProducts
from hub.grants import AccessError, RequestDesk, RequestStore, grantable_attributes
from hub.graph import make_async_driver
from hub.labels import Authorizations, evaluate, parse
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"
ISSUERS = ("https://issuer-a.example/", "https://issuer-b.example/")
PRODUCTS = ("ngt", "nggt", "genco", "dno")
# Labels the demo's objects carry (and a few more): what the oracle's authorizations must decide alike.
LABELS = [
    parse(t)
    for t in (
        "classification=PUBLIC",
        "classification=OFFICIAL",
        "classification=OFFICIAL&org=ngt",
        "classification=OFFICIAL&org=nggt",
        "classification=OFFICIAL&org=genco",
        "org=genco|org=neso",
        "org=neso|org=ngt",
        "classification=SECRET&org=ngt",
        "org=dno",
    )
]


@dataclass
class Oracle:
    principal: int
    product: str
    owner: str
    attributes: frozenset[str]
    requested_until: float
    status: str = "pending"
    granted: frozenset[str] = frozenset()
    granted_until: float = 0.0
    id: str = ""

    def live(self, now: float) -> bool:
        return self.status == "approved" and self.granted_until > now


@dataclass
class World:
    tag: str
    principals: list[Caller] = field(default_factory=list)
    officers: list[Caller] = field(default_factory=list)
    operator: Caller | None = None
    requests: list[Oracle] = field(default_factory=list)


def world() -> World:
    tag = uuid.uuid4().hex[:8]
    w = World(tag)
    # Two callers with the same subject from two issuers, and another at a third organisation.
    w.principals = [
        Caller(subject=f"alice-{tag}", org="nggt", clearance="OFFICIAL", issuer=ISSUERS[0]),
        Caller(subject=f"alice-{tag}", org="nggt", clearance="OFFICIAL", issuer=ISSUERS[1]),
        Caller(subject=f"bob-{tag}", org="neso", clearance="SECRET", issuer=ISSUERS[0]),
    ]
    w.officers = [
        Caller(
            subject=f"officer-{org}-{tag}", org=org, clearance="OFFICIAL", roles=("data-officer",), issuer=iss
        )
        for org in ("ngt", "nggt", "genco")
        for iss in ISSUERS[:1]
    ]
    w.operator = Caller(
        subject=f"operator-{tag}", org="hub", clearance="SECRET", roles=("admin",), issuer=ISSUERS[0]
    )
    return w


step = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2), st.sampled_from(PRODUCTS), st.sampled_from([0.6, 60.0])),
    st.tuples(st.just("approve"), st.integers(0, 7), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("reject"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("ask"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("answer"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("revoke"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.sampled_from([0.2, 0.7])),
)

MARGIN = 0.15


async def run(settings: Any, steps: list[tuple[Any, ...]]) -> None:
    products = DataProducts(
        settings.model_copy(update={"contracts_dir": CONTRACTS, "producers": PRODUCER_CONFIG}),
        load_ontology(),
    )
    needed = {p: grantable_attributes(d) for p, d in products.products.items()}
    driver = make_async_driver(settings, fail_fast=False)
    try:
        store = RequestStore(driver, settings.neo4j_database)
        await store.ensure_schema()
        here, there = RequestDesk(settings, store, products), RequestDesk(settings, store, products)
        w = world()
        for s in steps:
            await take(here, w, s)
            await there.refresh()
            await check(here, there, w, needed)
    finally:
        await driver.close()


async def attempt(call: Any) -> Any:
    try:
        return await call
    except AccessError:
        return None


async def take(desk: RequestDesk, w: World, s: tuple[Any, ...]) -> None:
    kind = s[0]
    if kind == "wait":
        await asyncio.sleep(s[1])
        return
    if kind == "request":
        _, who, product, ttl = s
        caller = w.principals[who]
        done = await desk.request(
            caller, product, "a study", desk.products.products[product].contract.licence, time.time() + ttl
        )
        assert done.status == "pending" and (done.issuer, done.subject) == (caller.issuer, caller.subject)
        w.requests.append(
            Oracle(who, product, done.owner, frozenset(done.attributes), done.requested_until, id=done.id)
        )
        return
    if not w.requests:
        return
    r = w.requests[s[1] % len(w.requests)]
    # 0: an officer of the owner (when it has one); else an officer of some organisation.
    owners = [o for o in w.officers if o.org == r.owner]
    officer = owners[0] if s[2] == 0 and owners else w.officers[s[2]]
    may_decide = officer.org == r.owner
    before = time.time()
    if kind == "approve":
        narrow = s[3]
        until = min(r.requested_until, before + 0.5) if narrow else None
        done = await attempt(desk.approve(officer, r.id, until))
        expect = (
            may_decide and r.status in ("pending", "info_requested") and (until or r.requested_until) > before
        )
        if abs((until or r.requested_until) - before) < MARGIN:
            expect = done is not None  # at the boundary of the clock: either answer is right
        assert (done is not None) == expect, (s, r)
        if done is not None:
            r.status, r.granted, r.granted_until = (
                "approved",
                frozenset(done.granted_attributes),
                done.granted_until,
            )
            assert r.granted == r.attributes and r.granted_until <= r.requested_until
    elif kind == "reject":
        done = await attempt(desk.reject(officer, r.id, "no"))
        assert (done is not None) == (may_decide and r.status in ("pending", "info_requested")), (s, r)
        if done is not None:
            r.status = "rejected"
    elif kind == "ask":
        done = await attempt(desk.ask(officer, r.id, "why?"))
        assert (done is not None) == (may_decide and r.status == "pending"), (s, r)
        if done is not None:
            r.status = "info_requested"
    elif kind == "answer":
        # The requester answers (s[2] picks the requester or a namesake from another issuer).
        caller = w.principals[r.principal] if s[2] == 0 else w.principals[(r.principal + 1) % 3]
        done = await attempt(desk.answer(caller, r.id, "this"))
        assert (done is not None) == (s[2] == 0 and r.status == "info_requested"), (s, r)
        if done is not None:
            r.status = "pending"
    elif kind == "revoke":
        done = await attempt(desk.revoke(officer, r.id, "over"))
        expect = may_decide and r.live(before)
        if r.status == "approved" and abs(r.granted_until - before) < MARGIN:
            expect = done is not None
        assert (done is not None) == expect, (s, r)
        if done is not None:
            r.status = "revoked"
    event(f"{kind}: {'done' if done is not None else 'refused'}")


async def check(here: RequestDesk, there: RequestDesk, w: World, needed: dict[str, frozenset[str]]) -> None:
    now = time.time()
    for i, caller in enumerate(w.principals):
        mine = [r for r in w.requests if r.principal == i]
        if any(r.status == "approved" and abs(r.granted_until - now) < MARGIN for r in mine):
            continue  # expiring at this very moment: the two clocks may read either side of it
        # Per product the caller holds live grants for: the token's attributes and those grants'.
        extra: dict[str, set[str]] = {}
        for r in mine:
            if r.live(now):
                extra.setdefault(r.product, set()).update(r.granted & needed[r.product])
        token = caller.authorizations
        scoped = {
            p: Authorizations(caller.clearance, token.attributes | a)
            for p, a in extra.items()
            if not a <= token.attributes
        }
        for desk in (here, there):
            got = desk.book.access(caller, now)
            assert got.auths == token
            assert dict(got.scoped) == scoped
            # What each object would show, by its label and its owner: the token's authorizations decide for
            # every object, a grant only for its own product's objects (an ngt grant never opens neso's
            # object labelled org=neso|org=ngt).
            for owner in (*PRODUCTS, "neso", None):
                for label in LABELS:
                    want = evaluate(label, token) or (owner in scoped and evaluate(label, scoped[owner]))
                    scope = dict(got.scoped).get(owner) if owner is not None else None
                    seen = evaluate(label, got.auths) or (scope is not None and evaluate(label, scope))
                    assert seen == want, (owner, label)
    ids = {r.id for r in w.requests}
    assert w.operator is not None
    seers: list[tuple[Caller, set[str]]] = [(w.operator, ids)]
    for i, caller in enumerate(w.principals):
        seers.append((caller, {r.id for r in w.requests if r.principal == i}))
    for officer in w.officers:
        seers.append((officer, {r.id for r in w.requests if r.owner == officer.org}))
    for caller, want_ids in seers:
        assert {r.id for r in await here.visible(caller)} & ids == want_ids
        for r in w.requests:
            assert (await here.find(caller, r.id) is not None) == (r.id in want_ids)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=2, max_size=14))
def test_every_caller_holds_exactly_its_token_and_its_live_grants(
    settings: Any, steps: list[tuple[Any, ...]]
) -> None:
    asyncio.run(run(settings, steps))


async def officers_of_primary_issuer(settings: Any) -> None:
    products = DataProducts(
        settings.model_copy(update={"contracts_dir": CONTRACTS, "producers": PRODUCER_CONFIG}),
        load_ontology(),
    )
    driver = make_async_driver(settings, fail_fast=False)
    try:
        store = RequestStore(driver, settings.neo4j_database)
        await store.ensure_schema()
        only_a = settings.model_copy(update={"grant_officer_issuers": [ISSUERS[0]]})
        desk = RequestDesk(only_a, store, products)
        tag = uuid.uuid4().hex[:8]
        consumer = Caller(subject=f"carol-{tag}", org="nggt", clearance="OFFICIAL", issuer=ISSUERS[1])
        primary, other = (
            Caller(subject=f"officer-{tag}", org="ngt", roles=("data-officer",), issuer=i) for i in ISSUERS
        )
        licence = products.products["ngt"].contract.licence
        asked = await desk.request(consumer, "ngt", "study", licence, time.time() + 60)
        # The other issuer's officer claim makes no officer: to it the request does not exist.
        assert desk.officer_of(other) == [] and await desk.find(other, asked.id) is None
        with pytest.raises(AccessError, match="no access request"):
            await desk.approve(other, asked.id)
        approved = await desk.approve(primary, asked.id)
        assert approved.status == "approved" and desk.book.live(consumer)
    finally:
        await driver.close()


def test_only_the_configured_issuers_make_data_officers(settings: Any) -> None:
    asyncio.run(officers_of_primary_issuer(settings))


async def decide_at_once(settings: Any) -> list[str]:
    products = DataProducts(
        settings.model_copy(update={"contracts_dir": CONTRACTS, "producers": PRODUCER_CONFIG}),
        load_ontology(),
    )
    driver = make_async_driver(settings, fail_fast=False)
    try:
        store = RequestStore(driver, settings.neo4j_database)
        await store.ensure_schema()
        one, two = RequestDesk(settings, store, products), RequestDesk(settings, store, products)
        w = world()
        consumer, officer = w.principals[0], w.officers[0]
        licence = products.products["ngt"].contract.licence
        outcomes = []
        for _ in range(5):
            r = await one.request(consumer, "ngt", "a study", licence, time.time() + 60)
            done = await asyncio.gather(
                attempt(one.approve(officer, r.id)),
                attempt(two.reject(officer, r.id, "no")),
                attempt(two.approve(officer, r.id)),
            )
            assert sum(d is not None for d in done) == 1, done
            final = await store.get(r.id)
            assert final is not None
            winner = next(d for d in done if d is not None)
            assert final.status == winner.status
            outcomes.append(final.status)
        return outcomes
    finally:
        await driver.close()


def test_two_processes_deciding_at_once_settle_on_one_decision(settings: Any) -> None:
    outcomes = asyncio.run(decide_at_once(settings))
    assert set(outcomes) <= {"approved", "rejected"} and len(outcomes) == 5
