"""The access guard: the only door through which the API reads the graph.

Every node carries ``_label``, the id of its interned security label, and ``_owner``, the producer whose data
product it belongs to. Per request the guard works out which label ids the caller's token satisfies (each
distinct label evaluated once, see :mod:`hub.labels`), and, for each data product the caller holds a live
access grant for (:mod:`hub.grants`), which further label ids the token's attributes together with that
grant's satisfy: pairs ``[producer, label id]``. A node is visible when its label is in ``$visible``, or when
its ``[_owner, _label]`` is one of the ``$granted`` pairs: a grant opens its own product's objects and never
another producer's object that its attributes would also satisfy. Every read filters so for every node it
returns or traverses. Queries are written with the fragments below (:func:`visible`, :func:`all_visible`)
and run through :meth:`Guard.read`, which refuses a query that does not use ``$visible`` and binds both
parameters; no resolver writes its own filter.

Tombstones have ``_label = null``, and ``null IN $visible`` is never true (nor is a pair holding a null one
of ``$granted``), so they are hidden from everyone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, LiteralString, cast

import structlog
from neo4j import READ_ACCESS, AsyncDriver, Query, RoutingControl
from neo4j.exceptions import CypherSyntaxError, ServiceUnavailable, SessionExpired

from hub.graph_schema import LABEL, OWNER
from hub.labels import Authorizations, Label, LabelCache, evaluate, parse
from hub.one_record import ROWS, Columns, rows

log = structlog.get_logger(__name__)

VISIBLE_PARAM: Final = "visible"
GRANTED_PARAM: Final = "granted"

# How to send the statements read so far, by text (hub/one_record.py): a statement's columns depend on
# its text alone, and the texts are few, built from templates.
_COLUMNS: Final = Columns(2048)

# Per data product (by producer, sorted) the caller holds a live grant for: the token's authorizations
# widened by that grant's attributes.
Scoped = tuple[tuple[str, Authorizations], ...]


def visible(var: str) -> str:
    """Cypher predicate: node ``var`` is visible to the caller (by its token, or by a grant for the product
    the node belongs to)."""
    return f"({var}.{LABEL} IN ${VISIBLE_PARAM} OR [{var}.{OWNER}, {var}.{LABEL}] IN ${GRANTED_PARAM})"


# The grant half of :func:`visible`, as it writes it.
_GRANT_CLAUSE: Final = re.compile(rf" OR \[(\w+)\.{OWNER}, \1\.{LABEL}\] IN \${GRANTED_PARAM}\)")


@lru_cache(maxsize=2048)
def without_grants(cypher: str) -> str:
    """``cypher`` with the grant half of every :func:`visible` taken out, for a caller holding no grant:
    with ``$granted`` empty the half is always false, but Neo4j still reads ``_owner`` of every node the
    caller's labels exclude to find that out (a quarter more database reads on a filtered page)."""
    return _GRANT_CLAUSE.sub(")", cypher)


def all_visible(path_var: str) -> str:
    """Cypher predicate: every node on path ``path_var`` is visible (none reached through a hidden one)."""
    return f"all(x IN nodes({path_var}) WHERE {visible('x')})"


@dataclass(frozen=True, slots=True)
class Access:
    """What a caller may see with: its token's authorizations, and per data product it holds a live grant
    for, those the grant widens them to (applying to that product's objects only)."""

    auths: Authorizations
    scoped: Scoped = ()


class GuardViolation(RuntimeError):
    """A read that does not filter by the caller's visible labels: a programming error, never run."""


class LabelDirectory:
    """Every ``(:SecurityLabel {id, expr})`` node, read again after ``ttl_s`` or on an unknown id.

    Distinct labels are few (one per canonical expression), so the whole table is held in memory and shared
    by all requests of the process.
    """

    def __init__(self, driver: AsyncDriver, database: str, ttl_s: float) -> None:
        self._driver = driver
        self._database = database
        self._ttl_s = ttl_s
        self._labels: dict[int, str] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        # Bumped on every reload, so long-lived guards (subscriptions) know when to re-evaluate.
        self.generation = 0

    @property
    def labels(self) -> Mapping[int, str]:
        return self._labels

    def expr(self, label_id: int | None) -> str | None:
        return None if label_id is None else self._labels.get(label_id)

    async def current(self) -> Mapping[int, str]:
        if time.monotonic() - self._loaded_at > self._ttl_s:
            await self.reload()
        return self._labels

    async def reload(self, *, min_age_s: float = 0.0) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < min_age_s:
                return  # another task just reloaded
            records, _, _ = await self._driver.execute_query(
                "MATCH (l:SecurityLabel) RETURN l.id AS id, l.expr AS expr",
                database_=self._database,
                routing_=RoutingControl.READ,
            )
            self._labels = {int(r["id"]): str(r["expr"]) for r in records if r["id"] is not None}
            self._loaded_at = time.monotonic()
            self.generation += 1


@dataclass
class ReadStats:
    """What one request read: rows returned to the caller and objects the guard withheld (audit only)."""

    rows: int = 0
    withheld: int = 0
    queries: int = 0


@dataclass
class Guard:
    """One caller's view of the graph for one request (or one subscription)."""

    driver: AsyncDriver
    database: str
    directory: LabelDirectory
    auths: Authorizations
    timeout_s: float
    cache: LabelCache
    stats: ReadStats = field(default_factory=ReadStats)
    # Long-lived guards (subscriptions) follow the label table as it grows; a request keeps one view.
    follow_labels: bool = False
    # A long-lived guard's source of what the caller may see with as it stands now (the token's
    # authorizations and its live grants, see hub.grants): consulted at every read, re-evaluating when it
    # changed.
    auths_source: Callable[[], Access] | None = None
    # The access grants (request ids) that add to what the token alone gives: the operation's audit line
    # names them as used (see hub.grants).
    grants: tuple[str, ...] = ()
    # The same grants as (request id, product, attributes), to say per grant which returned objects it
    # made visible (see :meth:`granted_counts`).
    grant_scopes: tuple[tuple[str, str, frozenset[str]], ...] = ()
    # For a caller with grants only: (owner or None when the read did not return it, label id) -> the
    # mRIDs read that its token alone would not show.
    _through_grants: dict[tuple[str | None, int], set[str]] = field(default_factory=dict)
    # Per data product the caller holds a live grant for, the authorizations it sees that product's
    # objects with (see :class:`Access`).
    scoped: Scoped = ()
    _visible: frozenset[int] | None = None
    _visible_list: list[int] = field(default_factory=list)
    # (producer, label id) pairs visible through a grant only, and the same as lists for Cypher.
    _granted: frozenset[tuple[str, int]] = frozenset()
    _granted_list: list[list[Any]] = field(default_factory=list)
    _generation: int = -1

    @property
    def access(self) -> Access:
        return Access(self.auths, self.scoped)

    async def visible_ids(self) -> frozenset[int]:
        """Label ids this caller satisfies (each distinct label evaluated once per caller)."""
        if self._visible is None or self.follow_labels:
            labels = await self.directory.current()
            changed = False
            if self.auths_source is not None:
                now = self.auths_source()
                if now != self.access:
                    self.auths, self.scoped, changed = now.auths, now.scoped, True
            if self._visible is None or changed or self._generation != self.directory.generation:
                self._evaluate(labels)
        assert self._visible is not None
        return self._visible

    def _evaluate(self, labels: Mapping[int, str]) -> None:
        ids = self.cache.visible(labels, self.auths)
        granted: set[tuple[str, int]] = set()
        for producer, auths in self.scoped:
            granted.update((producer, lid) for lid in self.cache.visible(labels, auths) - ids)
        self._visible = ids
        self._visible_list = sorted(ids)
        self._granted = frozenset(granted)
        self._granted_list = [[p, lid] for p, lid in sorted(granted)]
        self._generation = self.directory.generation

    async def granted_pairs(self) -> frozenset[tuple[str, int]]:
        """``(producer, label id)``: the objects of that producer with that label are visible to the caller
        through a grant (and not by its token alone)."""
        await self.visible_ids()
        return self._granted

    def sees(self, label_id: int | None, owner: str | None) -> bool:
        """Whether a node with ``label_id`` belonging to ``owner`` passed the filter (after a read)."""
        if label_id is None:
            return False
        return (self._visible is not None and label_id in self._visible) or (
            owner is not None and (owner, label_id) in self._granted
        )

    def satisfies(self, label: Label, owner: str | None) -> bool:
        """Whether the caller may see something labelled ``label`` that belongs to ``owner`` (a data
        product's producer), decided in memory: for what is not a node, such as a dead letter."""
        if evaluate(label, self.auths):
            return True
        return any(producer == owner and evaluate(label, auths) for producer, auths in self.scoped)

    def hides(self, label_id: int | None, owner: str | None) -> bool:
        """Whether the caller certainly may not see a node with ``label_id`` belonging to ``owner``, decided
        in memory: its labels have been evaluated and the label is in the table. False when that is not
        known (nothing evaluated yet, or a label written since), for :meth:`may_see_label` to decide."""
        if label_id is None:
            return True
        if self._visible is None or self.directory.expr(label_id) is None:
            return False
        return not self.sees(label_id, owner)

    def regrant(self, access: Access) -> Guard | None:
        """Take ``access`` as what the caller sees with from now on (its grants changed); a guard that still
        holds the previous one is returned, to read what the caller could see until now (None when nothing
        changed)."""
        if access == self.access:
            return None
        before = Guard(self.driver, self.database, self.directory, self.auths, self.timeout_s, self.cache)
        before.scoped = self.scoped
        self.auths, self.scoped = access.auths, access.scoped
        self._visible = None
        return before

    async def refresh(self) -> frozenset[int]:
        """Re-read the label table (new labels may have been written) and re-evaluate."""
        # Always read: the label may have been committed after another task's most recent reload.
        await self.directory.reload()
        self._evaluate(self.directory.labels)
        return self._visible or frozenset()

    async def may_see_label(self, label_id: int | None, owner: str | None = None) -> bool:
        """Whether the caller may see an object carrying ``label_id`` that belongs to ``owner`` (the
        producer of its data product) now (used for change records)."""
        if label_id is None:
            return False
        await self.visible_ids()
        if self.sees(label_id, owner):
            return True
        if self.directory.expr(label_id) is None:
            # A label written after we last looked: read the table again before deciding.
            await self.refresh()
        return self.sees(label_id, owner)

    def label_text(self, label_id: int | None) -> str:
        """Canonical text of a label the caller can see (only called for nodes that passed the filter)."""
        text = self.directory.expr(label_id)
        return text if text is not None else ""

    async def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only query, ``$visible`` bound to the caller's label ids and ``$granted`` to the pairs
        its grants add, under the query timeout."""
        if f"${VISIBLE_PARAM}" not in cypher:
            raise GuardViolation(f"query does not filter by ${VISIBLE_PARAM}: {cypher[:200]!r}")
        await self.visible_ids()
        bound = dict(params or {})
        bound[VISIBLE_PARAM] = self._visible_list
        bound[GRANTED_PARAM] = self._granted_list
        if not self._granted_list:
            cypher = without_grants(cypher)
        self.stats.queries += 1
        query = Query(cast(LiteralString, cypher), timeout=self.timeout_s)
        try:
            rows = await self._run(query, bound)
        except (ServiceUnavailable, SessionExpired):
            # A pooled connection the server closed (a restart): once more, on a fresh one.
            rows = await self._run(query, bound)
        if self._granted_list:  # a caller without grants pays nothing more
            for row in rows:
                self._note(row.values(), 0)
        return rows

    async def _run(self, query: Query, bound: dict[str, Any]) -> list[dict[str, Any]]:
        # An auto-commit transaction: RUN and PULL in one round trip, where a managed one (``execute_query``)
        # adds BEGIN and COMMIT and its retry loop, for about 0.5-1 ms less per statement (measured in
        # bench/results/graphql-library-round3.md). The bookmarks are those the API's own writes leave
        # through ``execute_query``, so a read still comes after them.
        # Every row is read into the list below anyway: all of them in one PULL (fetch_size -1) rather than
        # a round trip per thousand (33,937 rows of a class load's geometry: 1.7 s against 2.1 s).
        # And once its columns are known, in one record (hub/one_record.py): a record costs the driver
        # some 60 us, a row of a list in one record some 3.
        prepared = _COLUMNS.prepared(query.text)
        async with self.driver.session(
            database=self.database,
            default_access_mode=READ_ACCESS,
            bookmark_manager=self.driver.execute_query_bookmark_manager,
            fetch_size=-1,
        ) as session:
            if prepared is None:
                result = await session.run(query, bound)
                found = [dict(r.items()) async for r in result]
                if not _COLUMNS.knows(query.text):
                    _COLUMNS.learn(query.text, result.keys())
                return found
            text, columns = prepared
            try:
                one = await session.run(Query(cast(LiteralString, text), timeout=query.timeout), bound)
                record = await one.single(strict=True)
            except CypherSyntaxError:
                # A form a subquery may not hold (the statement itself is valid: it ran as written):
                # read it as written from now on.
                log.warning("statement_not_wrapped", statement=query.text[:200])
                _COLUMNS.learn(query.text, ())
            else:
                return rows(record[ROWS], columns)
        return await self._run(query, bound)

    def _note(self, values: Any, depth: int) -> None:
        """Remember the objects among ``values`` (maps of nodes, nested a few levels) that only a grant
        shows. Six levels: a typed page's one row holds its objects two levels down (``page``, then
        ``{n, sort}``), and two levels of prefetched associations below them are noted, as in a row of
        its own."""
        if depth > 6:
            return
        for v in values:
            if isinstance(v, dict):
                lid, mrid = v.get(LABEL), v.get("mrid")
                if (
                    isinstance(lid, int)
                    and isinstance(mrid, str)
                    and self._visible is not None
                    and lid not in self._visible
                ):
                    owner = v.get(OWNER)
                    self._through_grants.setdefault(
                        (owner if isinstance(owner, str) else None, lid), set()
                    ).add(mrid)
                self._note(v.values(), depth + 1)
            elif isinstance(v, list):
                self._note(v, depth + 1)

    def granted_counts(self) -> dict[str, int]:
        """Per grant (request id), how many distinct objects read in this operation were visible only
        through that grant: of its product, with a label the token's attributes together with that grant's
        satisfy and the token's alone do not. An object read without its owner counts for the one product
        whose grants show its label (for ``"unattributed"`` when several could)."""
        counts = {rid: set[str]() for rid, _, _ in self.grant_scopes}
        for (owner, lid), mrids in self._through_grants.items():
            expr = self.directory.expr(lid)
            if expr is None:
                continue
            label = parse(expr)
            opening = [
                rid
                for rid, product, attrs in self.grant_scopes
                if (owner is None or owner == product)
                and evaluate(label, Authorizations(self.auths.classification, self.auths.attributes | attrs))
            ]
            if owner is None and len({p for rid, p, _ in self.grant_scopes if rid in opening}) > 1:
                counts.setdefault("unattributed", set()).update(mrids)
                continue
            for rid in opening:
                counts[rid].update(mrids)
        return {rid: len(m) for rid, m in sorted(counts.items())}
