"""A read's rows carried back in one record.

The Python driver hands rows over one record at a time, and each record costs far more than unpacking
one entry of a list: 5,000 rows of three columns took 323 ms as records and 16 ms as one record holding a
list of rows, 30,000 rows 1,828 ms against 110 ms (medians of 7, the same Neo4j, ``fetch_size=-1`` both;
docs/performance.md, "Rows in one record"). So a read statement whose columns are known is sent wrapped,
``CALL () { <statement> } RETURN collect([<columns>])``, and its rows are rebuilt from that one list.

The columns of a statement are learned from its first run, made as written: its text is the key, and the
statements are few (built from templates), so a bounded map holds them. Rows keep their order: the
subquery's rows reach ``collect`` in the order the statement gives them (one argument row, so the outer
``Apply`` passes them through as they come; no runtime of Neo4j Community runs them in parallel).
Statements asked to explain or profile themselves, those with options ahead of them other than
``CYPHER`` ones, and those returning an expression without a name (``RETURN n.mrid``: a subquery may not
return one) are never wrapped.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

# Leading ``CYPHER option=value ...`` settings apply to the whole statement, so they stay in front.
_OPTIONS: Final = re.compile(r"\A\s*(CYPHER(?:[ \t]+[\w.]+=[\w.]+)*[ \t]*\n?)", re.IGNORECASE)
# What may not be put inside a subquery: EXPLAIN and PROFILE answer with a plan, not rows.
_UNWRAPPABLE: Final = re.compile(r"\A\s*(EXPLAIN|PROFILE|USE)\b", re.IGNORECASE)

ROWS: Final = "__rows"
# Neo4j names an expression returned without ``AS`` by its text (``n.mrid``, ``count(*)``): not an
# identifier, and not written after ``AS`` in backquotes either, as a column so named would be.
_IDENTIFIER: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def _named(column: str, statement: str) -> bool:
    return bool(_IDENTIFIER.match(column)) or f"AS {_name(column)}" in statement


def _name(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def wrapped(statement: str, columns: Sequence[str]) -> str | None:
    """``statement`` returning its rows, as lists of ``columns`` in that order, in one record's ``__rows``;
    None when it cannot be wrapped (see the module's text)."""
    options = _OPTIONS.match(statement)
    head = options.group(1) if options else ""
    body = statement[len(head) :]
    if not columns or _UNWRAPPABLE.match(body) or not all(_named(c, body) for c in columns):
        return None
    if head and not head.endswith("\n"):
        head += "\n"
    listed = ", ".join(_name(c) for c in columns)
    return f"{head}CALL () {{\n{body}\n}}\nRETURN collect([{listed}]) AS {ROWS}"


def rows(collected: list[list[Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a wrapped statement's ``__rows``, as maps by column, in order."""
    return [dict(zip(columns, row, strict=True)) for row in collected]


class Columns:
    """Statement text -> how to send it, learned from its first run: the wrapped text and its columns
    (built once, not on every read), or nothing for a statement read as written. At most ``size``
    statements (the least recently used one is forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._known: OrderedDict[str, tuple[str, tuple[str, ...]] | None] = OrderedDict()

    def knows(self, statement: str) -> bool:
        return statement in self._known

    def prepared(self, statement: str) -> tuple[str, tuple[str, ...]] | None:
        """The text to send for ``statement`` and its columns, once learned and wrappable (else None:
        send it as written)."""
        found = self._known.get(statement)
        if found is not None:
            self._known.move_to_end(statement)
        return found

    def learn(self, statement: str, columns: Sequence[str]) -> None:
        """``statement``'s columns, from a run as written (none: always read it as written)."""
        if self.size <= 0:
            return
        text = wrapped(statement, columns)
        self._known[statement] = None if text is None else (text, tuple(columns))
        self._known.move_to_end(statement)
        while len(self._known) > self.size:
            self._known.popitem(last=False)

    def answer(
        self, statement: str, prepared: tuple[str, tuple[str, ...]] | None, keys: Sequence[str], records: Any
    ) -> list[dict[str, Any]]:
        """The rows of ``statement`` from the records of what was sent (``prepared``, as :meth:`prepared`
        gave it), learning its columns (``keys``) when it was sent as written for the first time."""
        if prepared is None:
            if not self.knows(statement):
                self.learn(statement, keys)
            return [dict(r.items()) for r in records]
        return rows(records[0][ROWS], prepared[1])
