"""Per-request context of the GraphQL API, built by a FastAPI dependency.

``ApiServices`` holds what lives as long as the app (Neo4j driver, label directory, generated types);
``HubContext`` is one caller's request: their guard, a reader over it, and the batch loaders for
association fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from hub.auth import Authenticator, AuthError
from hub.caller import Caller
from hub.data_products import DataProduct, DataProducts
from hub.feedback import FeedbackDesk
from hub.geography import DiagramPoint, Geography, Geometry
from hub.grants import RequestDesk
from hub.graph import AsyncDriver
from hub.guard import Guard, LabelDirectory
from hub.labels import LabelCache
from hub.network_level import NetworkLevel, NetworkLevels
from hub.quality import ProductQuality, QualityMeter
from hub.reader import Fields, Prefetch, Reader
from hub.settings import Settings
from hubql.callers import RequestCaller, client_address
from hubql.change_feed import ChangeFeed
from hubql.cursors import CursorCodec, cursor_key
from ontology.model import Ontology

# What the batch of derived fields is asked for, per object: its geometry or its network level.
GEOMETRY = "geometry"
LEVEL = "level"

if TYPE_CHECKING:
    from hubql.types import TypeRegistry


@dataclass
class ApiServices:
    """Process-wide parts of the API."""

    settings: Settings
    ontology: Ontology
    driver: AsyncDriver
    registry: TypeRegistry
    directory: LabelDirectory
    authenticator: Authenticator
    # Access requests and the process's book of live grants (hub.grants).
    desk: RequestDesk
    # The data products (hub.data_products) and the meter of their quality (hub.quality).
    products: DataProducts
    meter: QualityMeter
    # Consumers' data-quality flags and the producers' answers (hub.feedback).
    feedback: FeedbackDesk
    label_cache: LabelCache = field(default_factory=LabelCache)
    extras: dict[str, Any] = field(default_factory=dict)
    # The change subscriptions' shared reader and the codec of their cursors (see hubql.subscriptions).
    feed: ChangeFeed = field(init=False)
    cursors: CursorCodec = field(init=False)

    def __post_init__(self) -> None:
        self.feed = ChangeFeed(self.settings)
        self.cursors = CursorCodec(cursor_key(self.settings))

    def guard(self, caller: Caller, *, follow_labels: bool = False, follow_grants: bool = True) -> Guard:
        """The caller's guard: the token's authorizations and, per granted product, its live grants, as they
        stand now;
        a long-lived guard (``follow_labels``: a websocket) follows them as grants are made, expire and are
        revoked, as it follows the label table, unless its owner does that itself (``follow_grants``
        False: a subscription, which tells its subscriber what the change shows or hides)."""
        s = self.settings
        book = self.desk.book
        access = book.access(caller)
        return Guard(
            driver=self.driver,
            database=s.neo4j_database,
            directory=self.directory,
            auths=access.auths,
            scoped=access.scoped,
            grants=(adding := book.adding(caller) if access.scoped else ()),
            grant_scopes=tuple(
                (g.request_id, g.product, g.attributes) for g in book.live(caller) if g.request_id in adding
            ),
            timeout_s=s.query_timeout_s,
            cache=self.label_cache,
            follow_labels=follow_labels,
            auths_source=(lambda: book.access(caller)) if follow_labels and follow_grants else None,
        )

    async def quality(self, guard: Guard, product: DataProduct) -> ProductQuality:
        """``product``'s quality as the guard's caller may be told it, the one source of every view's
        figures (GraphQL, the catalogue, CKAN), so that none can count what another leaves out."""
        measured = await self.meter.measure(guard, product.contract)
        open_flags = await self.feedback.open_count(guard, product.producer)
        return ProductQuality(measured, open_flags)

    def reader(self, guard: Guard) -> Reader:
        s = self.settings
        return Reader(
            guard,
            self.ontology,
            max_page_size=s.max_page_size,
            max_depth=s.max_neighbourhood_depth,
            max_path_length=s.max_path_length,
            max_subgraph_nodes=s.max_subgraph_nodes,
        )


class HubContext(BaseContext):
    """One caller's request (or websocket connection, once ``connection_init`` authenticated it)."""

    def __init__(self, services: ApiServices, caller: Caller | None, client: str | None = None) -> None:
        super().__init__()
        self.services = services
        # The connection's peer address (a trusted proxy's X-Forwarded-For only when so configured).
        self.client = client
        self.registry = services.registry
        self.operation_name: str | None = None
        self._loaders: dict[tuple[str, str, str, Fields], DataLoader[str, list[dict[str, Any]]]] = {}
        self.caller: Caller | None = None
        # Change subscriptions open on this websocket (capped by max_subscriptions_per_socket).
        self.subscriptions = 0
        if caller is not None:
            self.set_caller(caller)

    def set_caller(self, caller: Caller, *, live: bool = False) -> None:
        """``live``: the context lasts as long as a websocket, so its guard follows labels and grants."""
        self.caller = caller
        self.guard = self.services.guard(caller, follow_labels=live)
        self.reader = self.services.reader(self.guard)
        self._loaders.clear()
        # Derived geometry, diagram points and network levels: one batch of queries per request level
        # for every object selected there, each through this caller's guard; geometry and levels share
        # one statement. Not cached: a websocket context lives as long as its connection, and a change may
        # move an object or its container.
        geography = Geography(self.guard, self.services.ontology)
        levels = NetworkLevels(self.guard, self.services.ontology)

        async def load_derived(keys: list[tuple[str, str]]) -> list[Geometry | NetworkLevel | None]:
            places, found = await geography.with_levels(
                [m for kind, m in keys if kind == GEOMETRY], [m for kind, m in keys if kind == LEVEL], levels
            )
            return [places.get(m) if kind == GEOMETRY else found.get(m) for kind, m in keys]

        async def load_diagram_points(mrids: list[str]) -> list[list[DiagramPoint]]:
            found = await geography.diagram_points(mrids)
            return [found.get(m, []) for m in mrids]

        self._derived: DataLoader[tuple[str, str], Geometry | NetworkLevel | None] = DataLoader(
            load_fn=load_derived, cache=False
        )
        self.diagram_points: DataLoader[str, list[DiagramPoint]] = DataLoader(
            load_fn=load_diagram_points, cache=False
        )

    async def geometry(self, mrid: str) -> Geometry | None:
        """The object's derived geometry (:meth:`hub.geography.Geography.geometries`), batched per level."""
        found = await self._derived.load((GEOMETRY, mrid))
        return found if isinstance(found, Geometry) else None

    async def level(self, mrid: str) -> NetworkLevel | None:
        """The object's network level (:mod:`hub.network_level`), batched with the geometries."""
        found = await self._derived.load((LEVEL, mrid))
        return found if isinstance(found, NetworkLevel) else None

    def require_caller(self) -> Caller:
        if self.caller is None:  # a websocket operation before connection_init: the handler prevents it
            raise AuthError("authentication required")
        return self.caller

    def row(self, props: dict[str, Any], prefetch: Sequence[Prefetch] = ()) -> dict[str, Any]:
        return self.registry.row(props, self.guard.label_text, prefetch)

    def rows(
        self, props: Sequence[dict[str, Any]], prefetch: Sequence[Prefetch] = ()
    ) -> list[dict[str, Any]]:
        make, label_text = self.registry.row, self.guard.label_text
        return [make(p, label_text, prefetch) for p in props]

    def related(
        self, rel_type: str, direction: str, other: str, fields: Fields = None
    ) -> DataLoader[str, list[dict[str, Any]]]:
        """Batch loader of the objects on the other end of one association, by source mRID, reading
        ``fields`` of them (one loader per selection of properties)."""
        key = (rel_type, direction, other, fields)
        loader = self._loaders.get(key)
        if loader is None:
            reader = self.reader

            async def load(mrids: list[str]) -> list[list[dict[str, Any]]]:
                found = await reader.related(mrids, rel_type, direction, other, fields)
                return [self.rows(found.get(m, [])) for m in mrids]

            loader = self._loaders[key] = DataLoader(load_fn=load)
        return loader


async def get_context(connection: HTTPConnection, caller: RequestCaller) -> HubContext:
    """FastAPI dependency: the GraphQL context of this request (the caller from :mod:`hubql.callers`).

    Over a websocket the token arrives in ``connection_init``; the handler authenticates it there.
    """
    services: ApiServices = connection.app.state.hub
    return HubContext(services, caller, client_address(connection))
