"""The count key: a live object's class, security label id and owner as one string property, indexed.

Counting the objects of each class a caller may see needs, per object, its class, its label and its owner.
Read from each node's properties, that is three property reads per object: at 1,000,000 objects the
guarded count took 7x the unguarded one, which the class index answers alone (bench/results/scale-1m.md).
With the three in one indexed string, the count groups the index's entries by key without touching a node
(one index entry per object, as the unguarded count reads), and the guard then decides visibility once per
key, of which there are few (classes x labels x producers), not once per object.

The writer sets the key wherever it sets a node's class, label or owner (:mod:`hub.writer`); a tombstone
has none (it is nobody's to count). Only the key's text is defined here; values stay the node's own.
"""

from __future__ import annotations

from typing import Final

from hub.graph_schema import CLASS, COUNT_KEY, LABEL, OWNER

# Class names (ontology identifiers) and label ids (integers) never hold it; the owner, a configured
# producer's id, comes last and is taken whole, whatever it holds.
SEPARATOR: Final = "|"


def expression(var: str) -> str:
    """Cypher: the count key of node ``var`` from its class, label id and owner (a stub has no owner)."""
    sep = f" + '{SEPARATOR}' + "
    return f"{var}.{CLASS}{sep}toString({var}.{LABEL}){sep}coalesce({var}.{OWNER}, '')"


def assignment(var: str) -> str:
    """Cypher ``SET`` item: node ``var``'s count key, from what it now holds."""
    return f"{var}.{COUNT_KEY} = {expression(var)}"


def unpacked(key: str, parts: str) -> str:
    """Cypher: from the key ``key`` and its ``split`` ``parts``, a map with the node's class, label id
    and owner under their bookkeeping keys (so the guard's :func:`hub.guard.visible` applies to it as to
    a node)."""
    owner = f"substring({key}, size({parts}[0]) + size({parts}[1]) + 2)"
    return f"{{{CLASS}: {parts}[0], {LABEL}: toInteger({parts}[1]), {OWNER}: {owner}}}"


def key(class_name: str, label_id: int, owner: str | None) -> str:
    """The count key of an object, as :func:`expression` computes it in Cypher."""
    return SEPARATOR.join((class_name, str(label_id), owner or ""))
