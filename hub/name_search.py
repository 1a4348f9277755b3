"""Name search: a Neo4j full-text index over the objects' identifying strings, and the queries sent to it.

The index (``FOR (n:Entity)``) is generated from the ontology: the string attributes of the root class
that name an object (``name``, ``shortName``, the EIC code...; not its id, which has its own unique index,
and not its free-text description) and every ``alias``. It is created with the schema
(:func:`hub.graph.ensure_schema`) and updated in the writing transaction, so a search sees what was just
written. Its name carries a digest of the property list: when the ontology changes the list, the next
start creates the new index and drops the old one.

A search text is split into words; every word must match, case-insensitively, the start of a word of one
of the indexed strings (``sub nor`` finds "Substation North"). ``fuzzy`` also accepts a word within one
edit (a character changed, added or dropped, or two neighbours swapped) of the start of an indexed word.

Nothing about the result may depend on objects the caller cannot see (the guard filters the index's hits
in the same query). So the hub never lets Lucene choose among the index's terms: a Lucene fuzzy query keeps
only the 50 closest terms of the whole index, hidden objects' terms included, and its scores use the
frequencies of all documents. Fuzzy words are sent instead as a regular expression that spells out every
one-edit variant (every matching term counts, none is dropped), and hits are ordered by the visible
object's own name and id, never by score.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from ontology.model import Ontology

INDEX_PREFIX: Final = "entity_names_"
ROOT_CLASS: Final = "IdentifiedObject"
# Of the root class's strings, these do not name an object: the id (unique index) and free text.
NOT_NAMES: Final = frozenset({"mRID", "mrid", "description"})
# Keys naming an object in any class (gas objects carry an ``alias``).
ALIAS_KEYS: Final = frozenset({"alias", "aliasName"})
ANALYZER: Final = "standard-no-stop-words"
# Words the index's tokenizer keeps whole: letters and digits, joined by a dot or apostrophe ("1.5").
_WORD: Final = re.compile(r"\w+(?:[.'\u2019]\w+)*")
# Fuzzy matching applies to words of these lengths (shorter ones: almost everything is one edit away;
# longer ones: the spelled-out variants grow quadratically). Others are matched as prefixes only.
FUZZY_MIN: Final = 3
FUZZY_MAX: Final = 24
# Words per search text: each is a clause of the Lucene query, which refuses more than 1,024 in all.
MAX_WORDS: Final = 32
# Characters Lucene's regular expressions treat specially.
_REGEX_SPECIAL: Final = frozenset('.?+*|{}[]()"\\#@&<>~/^$')


class SearchTextError(ValueError):
    """A search text the index cannot take; the message names the limit, never data."""


def name_properties(ontology: Ontology) -> list[str]:
    """The property keys the index covers, sorted."""
    keys: set[str] = set()
    if ROOT_CLASS in ontology.classes:
        keys.update(
            a.key
            for a in ontology.attributes_of(ROOT_CLASS).values()
            if a.datatype == "string" and a.key not in NOT_NAMES
        )
    keys.update(
        a.key
        for c in ontology.classes.values()
        for a in c.attributes.values()
        if a.datatype == "string" and a.key in ALIAS_KEYS
    )
    keys.add("name")
    return sorted(keys)


def index_name(properties: list[str]) -> str:
    return INDEX_PREFIX + hashlib.sha256("\0".join(properties).encode()).hexdigest()[:12]


def words(text: str) -> list[str]:
    """The words of a search text, lower case, as the index's tokenizer would cut them."""
    return [w.lower() for w in _WORD.findall(text)]


def _escape_term(word: str) -> str:
    return "".join("\\" + ch if ch in '+-&|!(){}[]^"~*?:\\/' else ch for ch in word)


def _regex_char(ch: str) -> str:
    return "\\" + ch if ch in _REGEX_SPECIAL else ch


def one_edit_regex(word: str) -> str:
    """A Lucene regular expression matching the words that start with ``word`` changed by at most one
    edit: a character substituted, inserted or deleted, or two neighbours transposed."""
    chars = [_regex_char(c) for c in word]
    n = len(chars)
    alts = {"".join(chars)}
    for i in range(n):
        alts.add("".join(chars[:i]) + "." + "".join(chars[i + 1 :]))  # substitute
        alts.add("".join(chars[:i]) + "".join(chars[i + 1 :]))  # delete
    for i in range(n + 1):
        alts.add("".join(chars[:i]) + "." + "".join(chars[i:]))  # insert
    for i in range(n - 1):
        alts.add("".join(chars[:i]) + chars[i + 1] + chars[i] + "".join(chars[i + 2 :]))  # transpose
    return "(" + "|".join(sorted(a for a in alts if a)) + ").*"


class NameSearch:
    """The index of one ontology and the Lucene queries for search texts."""

    def __init__(self, ontology: Ontology) -> None:
        self.properties = name_properties(ontology)
        self.index = index_name(self.properties)

    def create_statement(self) -> str:
        props = ", ".join(f"n.`{p}`" for p in self.properties)
        return (
            f"CREATE FULLTEXT INDEX `{self.index}` IF NOT EXISTS FOR (n:Entity) ON EACH [{props}] "
            f"OPTIONS {{indexConfig: {{`fulltext.analyzer`: '{ANALYZER}', "
            "`fulltext.eventually_consistent`: false}}"
        )

    def patterns(self, text: str, *, fuzzy: bool = False) -> list[str] | None:
        """Per word of ``text``, a regular expression (Cypher's ``=~``, matched against a whole lower-case
        string) that holds when a word of the string starts with it, as the index would match it
        (``fuzzy``: within one edit, as :meth:`query`); None when the text has no words. For strings the
        index does not hold (a scenario's states, hub/history.py). A word starts at the string's start
        or after a character that neither continues a word nor joins two (a dot or apostrophe between
        letters or digits), as the index's tokenizer cuts words."""
        found = words(text)
        if not found:
            return None
        if len(found) > MAX_WORDS:
            raise SearchTextError(f"text has {len(found)} words; a search takes at most {MAX_WORDS}")
        start = r"(?s).*?(?<![\p{L}\p{N}_])(?<![\p{L}\p{N}_][.'\u2019])"
        out = []
        for word in found:
            prefix = "".join(_regex_char(c) for c in word) + ".*"
            if fuzzy and FUZZY_MIN <= len(word) <= FUZZY_MAX:
                prefix = f"(?:{prefix}|{one_edit_regex(word)})"
            out.append(start + prefix)
        return out

    def query(self, text: str, *, fuzzy: bool = False) -> str | None:
        """The Lucene query for ``text`` (every word must match), or None when it has no words."""
        found = words(text)
        if not found:
            return None
        if len(found) > MAX_WORDS:
            raise SearchTextError(f"text has {len(found)} words; a search takes at most {MAX_WORDS}")
        clauses = []
        for word in found:
            prefix = f"{_escape_term(word)}*"
            if fuzzy and FUZZY_MIN <= len(word) <= FUZZY_MAX:
                clauses.append(f"({prefix} OR /{one_edit_regex(word)}/)")
            else:
                clauses.append(prefix)
        return " AND ".join(clauses)
