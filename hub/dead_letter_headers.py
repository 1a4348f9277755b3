"""The headers of a dead letter, and a dead letter read back from its topic.

The worker writes them (:mod:`ingest.dead_letters`); ``hub deadletters``, ``hub produce --wait`` and the
API's batch outcomes (:mod:`hub.outcomes`) read them. Kept in the core so that the worker, the API and the
command read one definition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hub.contracts import CONTRACT_CLAUSE_HEADER, CONTRACT_ID_HEADER, CONTRACT_VERSION_HEADER

REASON: Final = "reason"
REASON_CLASS: Final = "reason-class"
SOURCE_TOPIC: Final = "source-topic"
SOURCE_PARTITION: Final = "source-partition"
SOURCE_OFFSET: Final = "source-offset"
OMITTED: Final = "omitted"
# What the worker decided the refusal on: the event alone (``event``), or the event against the graph's
# stored state (``graph``: the object's owner or label, or the graph's own refusal), whose occurrence may
# depend on objects a reader of the figures cannot see (see hub/quality.py).
DECIDED_ON: Final = "decided-on"
DECIDED_ON_EVENT: Final = "event"
DECIDED_ON_GRAPH: Final = "graph"

# What a sender is told instead of the worker's reason when the write was refused against the object's
# stored state, whose label and owner the sender may not be able to see: its producer's own copy of the
# dead letter and HTTP ingest's batch status carry these; the operator's copy has the full reason.
SENDER_REASONS: Final = {
    "label": "label: the write is not allowed under the object's current label and the writer's rights",
    "ownership": "ownership: the mRID belongs to another producer",
}


@dataclass(frozen=True, slots=True)
class Received:
    """A dead letter as read back from its topic: why the worker refused the event, and where it was.

    ``source`` is None for a record without the source headers (written by something other than the
    worker); ``cut`` says the key or value is not the original's whole (see :mod:`ingest.dead_letters`).
    """

    reason: str
    reason_class: str
    source: tuple[str, int, int] | None
    key: bytes | None
    value: bytes | None
    cut: bool
    # The contract an event broke: {"id", "version", "clause"} (reason class ``contract``), else None.
    contract: dict[str, str] | None = None


def read(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Received:
    """The dead letter of a consumed record's key, value and headers."""
    found = {name: data.decode("utf-8", "replace") for name, data in headers}
    source: tuple[str, int, int] | None = None
    # A record without them is not one of the worker's: it is still shown, without its origin.
    with contextlib.suppress(KeyError, ValueError):
        source = (found[SOURCE_TOPIC], int(found[SOURCE_PARTITION]), int(found[SOURCE_OFFSET]))
    cut = OMITTED in found or any(name.endswith("-truncated") for name in found)
    contract: dict[str, str] | None = None
    if CONTRACT_ID_HEADER in found:
        contract = {
            "id": found[CONTRACT_ID_HEADER],
            "version": found.get(CONTRACT_VERSION_HEADER, ""),
            "clause": found.get(CONTRACT_CLAUSE_HEADER, ""),
        }
    return Received(found.get(REASON, ""), found.get(REASON_CLASS, ""), source, key, value, cut, contract)
