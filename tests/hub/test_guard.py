"""The guard's statement for a caller without grants: the grant half of each visibility check is taken out,
and nothing else (what such a caller may see is unchanged; the leak tests in tests/graphql/ check that through
the API, for callers with grants and without)."""

from __future__ import annotations

import re

from hub.graph_schema import LABEL
from hub.guard import GRANTED_PARAM, VISIBLE_PARAM, all_visible, visible, without_grants


def _label_only(var: str) -> str:
    return f"({var}.{LABEL} IN ${VISIBLE_PARAM})"


def test_every_grant_half_is_taken_out_and_nothing_else() -> None:
    statement = (
        f"MATCH p = (n)-[*1..2]-(m) WHERE {visible('n')} AND {all_visible('p')} "
        f"RETURN n, CASE WHEN {visible('m')} THEN m END AS m, $granted AS kept"
    )
    expected = (
        f"MATCH p = (n)-[*1..2]-(m) WHERE {_label_only('n')} AND all(x IN nodes(p) WHERE {_label_only('x')}) "
        f"RETURN n, CASE WHEN {_label_only('m')} THEN m END AS m, $granted AS kept"
    )
    assert without_grants(statement) == expected


def test_the_readers_statements_keep_no_grant_half() -> None:
    # Statements written with the fragments, as modules hold them: with the grant half out, $granted is
    # gone from each.
    import hub.history
    import hub.name_search
    import hub.quality
    import hub.scenarios

    checked = 0
    for module in (hub.history, hub.name_search, hub.quality, hub.scenarios):
        for text in vars(module).values():
            if isinstance(text, str) and f"${VISIBLE_PARAM}" in text:
                assert not re.search(rf"\${GRANTED_PARAM}\b", without_grants(text)), text
                checked += 1
    assert checked >= 3
