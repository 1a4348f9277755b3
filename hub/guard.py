"""The access guard: the only door through which the API reads the graph.

Every node carries ``_label``, the id of its interned security label. Per request the guard works out which
label ids the caller satisfies (each distinct label evaluated once, see :mod:`hub.labels`) and every read
filters on ``x._label IN $visible`` for every node it returns or traverses. Queries are written with the
fragments below (:func:`visible`, :func:`all_visible`) and run through :meth:`Guard.read`, which refuses a
query that does not use ``$visible``; no resolver writes its own filter.

Tombstones have ``_label = null``, and ``null IN $visible`` is never true, so they are hidden from everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, LiteralString, cast

import structlog
from neo4j import AsyncDriver, Query, RoutingControl

from hub.graph_schema import LABEL
from hub.labels import Authorizations, LabelCache

log = structlog.get_logger(__name__)

VISIBLE_PARAM: Final = "visible"


def visible(var: str) -> str:
    """Cypher predicate: node ``var`` is visible to the caller."""
    return f"{var}.{LABEL} IN ${VISIBLE_PARAM}"


def all_visible(path_var: str) -> str:
    """Cypher predicate: every node on path ``path_var`` is visible (none reached through a hidden one)."""
    return f"all(x IN nodes({path_var}) WHERE x.{LABEL} IN ${VISIBLE_PARAM})"


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
    # A long-lived guard's source of the caller's authorizations as they stand now (the token's merged
    # with its live grants, see hub.grants): consulted at every read, re-evaluating when they changed.
    auths_source: Callable[[], Authorizations] | None = None
    # The access grants (request ids) whose attributes these authorizations hold beyond the token's: the
    # operation's audit line names them as used (see hub.grants).
    grants: tuple[str, ...] = ()
    _visible: frozenset[int] | None = None
    _visible_list: list[int] = field(default_factory=list)
    _generation: int = -1

    async def visible_ids(self) -> frozenset[int]:
        """Label ids this caller satisfies (each distinct label evaluated once per caller)."""
        if self._visible is None or self.follow_labels:
            labels = await self.directory.current()
            changed = False
            if self.auths_source is not None:
                now = self.auths_source()
                if now != self.auths:
                    self.auths, changed = now, True
            if self._visible is None or changed or self._generation != self.directory.generation:
                self._set_visible(self.cache.visible(labels, self.auths))
        assert self._visible is not None
        return self._visible

    def _set_visible(self, ids: frozenset[int]) -> None:
        self._visible = ids
        self._visible_list = sorted(ids)
        self._generation = self.directory.generation

    def regrant(self, auths: Authorizations) -> Guard | None:
        """Take ``auths`` as the caller's authorizations from now on (its grants changed); a guard that
        still holds the previous ones is returned, to read what the caller could see until now (None when
        nothing changed)."""
        if auths == self.auths:
            return None
        before = Guard(self.driver, self.database, self.directory, self.auths, self.timeout_s, self.cache)
        self.auths = auths
        self._visible = None
        return before

    async def refresh(self) -> frozenset[int]:
        """Re-read the label table (new labels may have been written) and re-evaluate."""
        # Always read: the label may have been committed after another task's most recent reload.
        await self.directory.reload()
        self._set_visible(self.cache.visible(self.directory.labels, self.auths))
        return self._visible or frozenset()

    async def may_see_label(self, label_id: int | None) -> bool:
        """Whether the caller may see an object carrying ``label_id`` now (used for change records)."""
        if label_id is None:
            return False
        ids = await self.visible_ids()
        if label_id in ids:
            return True
        if self.directory.expr(label_id) is None:
            # A label written after we last looked: read the table again before deciding.
            ids = await self.refresh()
        return label_id in ids

    def label_text(self, label_id: int | None) -> str:
        """Canonical text of a label the caller can see (only called for nodes that passed the filter)."""
        text = self.directory.expr(label_id)
        return text if text is not None else ""

    async def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only query, ``$visible`` bound to the caller's label ids, under the query timeout."""
        if f"${VISIBLE_PARAM}" not in cypher:
            raise GuardViolation(f"query does not filter by ${VISIBLE_PARAM}: {cypher[:200]!r}")
        await self.visible_ids()
        bound = dict(params or {})
        bound[VISIBLE_PARAM] = self._visible_list
        self.stats.queries += 1
        query = Query(cast(LiteralString, cypher), timeout=self.timeout_s)
        records, _, _ = await self.driver.execute_query(
            query, bound, database_=self.database, routing_=RoutingControl.READ
        )
        return [dict(r.items()) for r in records]
