"""The count key: a live object's class, security label id and owner as one string property, indexed.

Counting the objects of each class a caller may see needs, per object, its class, its label and its owner.
Read from each node's properties, that is three property reads per object: at 1,000,000 objects the
guarded count took 7x the unguarded one, which the class index answers alone (bench/results/scale-1m.md).
With the three in one indexed string, the count groups the index's entries by key without touching a node
(one index entry per object, as the unguarded count reads), and the guard then decides visibility once per
key, of which there are few (classes x labels x producers), not once per object.

The writer sets the key wherever it sets a node's class, label or owner (:mod:`hub.writer`); a tombstone
has none (it is nobody's to count). Only the key's text is defined here; values stay the node's own.

The keys in use are also listed, one ``(:CountKey {key, _class, _label, _owner})`` node each, written by
the writer in the transaction that first gives an object that key, so the list is never behind the graph.
A read of a class's objects can then start from the keys the caller may see (:func:`visible` on the
``CountKey`` nodes: the same decision as on the objects, which hold the same label and owner) and seek
their objects in the key's index: the label and owner of each object need not be read at all.
"""

from __future__ import annotations

from typing import Final

from hub.graph_schema import CLASS, COUNT_KEY, LABEL, OWNER

# Class names (ontology identifiers) and label ids (integers) never hold it; the owner, a configured
# producer's id, comes last and is taken whole, whatever it holds.
SEPARATOR: Final = "|"

# The list of keys in use (module docstring).
COUNT_KEY_NODE: Final = "CountKey"


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


def listed(var: str) -> str:
    """Cypher (ends a write part): the count keys of nodes ``var`` that are not yet listed, listed. The
    existence check reads without locking, so the batches of a worker (and of several) do not queue on
    the list's entries; only a new key's ``MERGE`` locks, and it is rare."""
    return (
        f"WITH DISTINCT {var}.{COUNT_KEY} AS key, {var}.{CLASS} AS c, {var}.{LABEL} AS l, {var}.{OWNER} AS o "
        f"WHERE key IS NOT NULL AND NOT EXISTS {{ MATCH (:{COUNT_KEY_NODE} {{key: key}}) }} "
        f"MERGE (k:{COUNT_KEY_NODE} {{key: key}}) ON CREATE SET k.{CLASS} = c, k.{LABEL} = l, k.{OWNER} = o"
    )


def listed_of(key_var: str, classes_param: str, stub_label_param: str) -> str:
    """Cypher predicate on ``CountKey`` nodes ``key_var``: a key of a class in ``$classes_param``, or a
    stub's (label id ``$stub_label_param``): a stub carries the labels of every class it is referenced
    as, whatever its own class, so the reader checks the class label on the objects."""
    return f"({key_var}.{CLASS} IN ${classes_param} OR {key_var}.{LABEL} = ${stub_label_param})"


def seek(var: str, key_var: str) -> str:
    """Cypher, after ``MATCH ({var}:Entity...)``: its objects of key ``key_var`` by the key's index."""
    return f" USING INDEX {var}:Entity({COUNT_KEY}) WHERE {var}.{COUNT_KEY} = {key_var}.key"
