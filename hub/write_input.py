"""What the writer takes (:mod:`hub.writer`, and the scenario overlay in :mod:`hub.scenarios`): each event
as it reaches the graph (:class:`Accepted`), the part of the ontology the writer needs
(:class:`OntologyView`) and the security labels the worker has learned (:class:`LabelBook`). Apart from the
writer so that the overlay, which the writer calls, can name them without importing the writer back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.contracts import CreateTerms
from hub.labels import Label, LabelError, parse
from hub.write_policy import WriteRights


class OntologyView(Protocol):
    """What the writer needs from :class:`ontology.model.Ontology`."""

    def neo4j_labels(self, name: str) -> tuple[str, ...]: ...

    def ancestors(self, name: str) -> tuple[str, ...]: ...

    def domain(self, name: str) -> str: ...


@dataclass(slots=True)
class Accepted:
    """A valid, authorised event, reduced to what the graph needs.

    ``props`` maps ontology property keys (plus ``_x``/``_y`` for a point) to values, ``None`` removing.
    ``rels`` maps a relationship type to (target class, target mRIDs) and replaces that type's edges.
    ``ref`` is an opaque handle the caller uses to find the source message again.
    """

    mrid: str
    kind: str
    version: int
    cls: str
    props: dict[str, Any]
    rels: dict[str, tuple[str, list[str]]]
    label_id: int | None
    label_text: str | None
    producer: str
    event_id: str
    event_time: datetime
    ref: Any = None
    # Where the event was read: "<topic>#<partition>" and its offset there (None: no replay check).
    source: str | None = None
    offset: int = -1
    # Every writer the write must be allowed for: the topic's producer and, for HTTP ingest, the caller it
    # publishes for (hub/write_policy.py). None at all is a refusal.
    rights: tuple[WriteRights, ...] = ()
    # The HTTP caller's subject the event was published for (audit only).
    on_behalf_of: str | None = None
    # What the producer's contract requires of the upsert that creates the object (hub/contracts.py):
    # only the fold knows whether an upsert does.
    on_create: CreateTerms | None = None
    # The scenario the event is written into (hub/scenarios.py), None: the live graph.
    scenario: str | None = None


class LabelBook:
    """Security label texts and parsed trees by id, as the worker learns them (from events and from the
    graph): the write check needs each stored label's expression. Ids are hashes of the canonical text,
    so an id's entry never changes; like the API's table of labels, the whole set is held."""

    def __init__(self) -> None:
        self._texts: dict[int, str] = {}
        self._trees: dict[int, Label | None] = {}

    def learn(self, lid: int, text: str) -> None:
        self._texts.setdefault(lid, text)

    def __contains__(self, lid: object) -> bool:
        return lid in self._texts

    def known(self) -> list[int]:
        return list(self._texts)

    def text(self, lid: int | None) -> str | None:
        return None if lid is None else self._texts.get(lid)

    def tree(self, lid: int) -> Label | None:
        """The parsed label, None when the id is unknown or its text does not parse (refused by the
        caller: a label the worker cannot read protects something it cannot judge)."""
        if lid in self._trees:
            return self._trees[lid]
        text = self._texts.get(lid)
        tree: Label | None = None
        if text is not None:
            try:
                tree = parse(text)
            except LabelError:
                tree = None
            self._trees[lid] = tree
        return tree
