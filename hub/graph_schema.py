"""The graph's bookkeeping property keys: what the hub keeps on every node beside the ontology's attributes.

Each key is defined here once; the writer, the reader, the access guard, the API's types, the test kit
and the benchmarks name them through these constants. The leading underscore keeps them apart from the
ontology's property keys, which never start with one (see :mod:`hub.validation`).

Cypher text names them through :func:`cypher`, which expands ``@name`` placeholders (``n.@version``) to
the keys: a statement stays readable, and a placeholder that names no key fails when its module is
imported, not when the statement first runs. Only the keys come from here; values are always parameters.
"""

from __future__ import annotations

import re
from typing import Final

# Id of the node's interned security label (null on a tombstone: nobody sees it).
LABEL: Final = "_label"
# The node's ontology class, and that class's domain (electricity, gas, coupling).
CLASS: Final = "_class"
DOMAIN: Final = "_domain"
# The version of the last event applied; events not newer are stale.
VERSION: Final = "_version"
# The first producer to publish the mRID (never changes), and the last one to write it.
OWNER: Final = "_owner"
PRODUCER: Final = "_producer"
# The last applied event's id and observation time, and when the graph last changed the node.
EVENT_ID: Final = "_event_id"
EVENT_TIME: Final = "_event_time"
UPDATED: Final = "_updated"
# A located object's coordinates (a point in the event becomes these two).
X: Final = "_x"
Y: Final = "_y"
# History (hub/history.py): a version node's valid-from time (its event's time), when the hub recorded
# it (the write's transaction time), whether it is a delete, and its references as two parallel lists
# (relationship type, target mRID).
VALID_FROM: Final = "_valid_from"
RECORDED: Final = "_recorded"
DELETED: Final = "_deleted"
REF_TYPES: Final = "_ref_types"
REF_TARGETS: Final = "_ref_targets"
# Measurement history (hub/measurement_history.py): a sample's observation time, and the start of the
# interval it stands for in epoch milliseconds (one sample per measured object and interval).
TIME: Final = "_time"
BUCKET: Final = "_bucket"
# A live object's class, label id and owner in one string (hub/count_keys.py): counts per class as each
# caller may see them are read from its index alone, not from each node's label and owner.
COUNT_KEY: Final = "_count_key"
# Never stored: the writer sets and removes it at once to take a node's write lock before it reads the
# node's state (see hub.writer, "Locks").
LOCK: Final = "_lock"

# Placeholder name (as written after ``@`` in Cypher text) -> property key.
KEYS: Final[dict[str, str]] = {
    "label": LABEL,
    "class": CLASS,
    "domain": DOMAIN,
    "version": VERSION,
    "owner": OWNER,
    "producer": PRODUCER,
    "event_id": EVENT_ID,
    "event_time": EVENT_TIME,
    "updated": UPDATED,
    "x": X,
    "y": Y,
    "lock": LOCK,
    "count_key": COUNT_KEY,
    "valid_from": VALID_FROM,
    "recorded": RECORDED,
    "deleted": DELETED,
    "ref_types": REF_TYPES,
    "ref_targets": REF_TARGETS,
    "time": TIME,
    "bucket": BUCKET,
}
BOOKKEEPING: Final = frozenset(KEYS.values())

_PLACEHOLDER: Final = re.compile(r"@([a-z_]+)")


def cypher(text: str) -> str:
    """``text`` with every ``@name`` replaced by its bookkeeping key; ``KeyError`` naming an unknown one."""

    def key(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in KEYS:
            raise KeyError(f"Cypher placeholder @{name} names no bookkeeping key (known: {sorted(KEYS)})")
        return KEYS[name]

    return _PLACEHOLDER.sub(key, text)
