"""The README's demo-user table says exactly how many of the demo's objects each demo user sees.

The counts are computed here from the demo's network and labels, as the API decides visibility (the label
of each object against the user's claims); test_demo.py checks the same counts through the running API.
"""

from __future__ import annotations

import re
from pathlib import Path

from devstack.demo.network import DemoNetwork, build_network
from devstack.demo.producers import PRODUCER_CONFIG
from hub.auth import DEMO_USERS
from hub.labels import Authorizations, evaluate, parse
from ontology.loader import load_ontology

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `(?P<user>[a-z.]+)` \|[^|]*\|[^|]*\| (?P<seen>[0-9]+) of (?P<total>[0-9]+) \|", re.M)


def readme_counts() -> dict[str, tuple[int, int]]:
    """User -> (objects seen, of how many), from the README's demo-user table."""
    text = README.read_text(encoding="utf-8")
    return {m["user"]: (int(m["seen"]), int(m["total"])) for m in ROW.finditer(text)}


def visible(network: DemoNetwork, user: str) -> set[str]:
    """The demo's objects ``user`` may see: each object's label (in the event, else the producer's header
    or default label) evaluated against the user's claims."""
    u = next(d for d in DEMO_USERS if d.user == user)
    auths = Authorizations.from_claims(clearance=u.clearance, org=u.org, roles=u.roles, groups=u.groups)
    seen = set()
    for pid, events in network.events.items():
        for event in events:
            text = event.label or network.header_label(pid) or PRODUCER_CONFIG[pid]["default_label"]
            if evaluate(parse(text), auths):
                seen.add(event.subject)
    return seen


def test_the_readme_table_gives_each_demo_users_count_of_the_demos_objects() -> None:
    network = build_network(load_ontology())
    table = readme_counts()
    assert set(table) == {u.user for u in DEMO_USERS}
    computed = {u.user: (len(visible(network, u.user)), len(network.objects)) for u in DEMO_USERS}
    assert table == computed
    # What the table's words say: only the system operator sees everything, the administrator less.
    assert computed["ops.engineer"][0] == len(network.objects)
    assert computed["hub.admin"][0] < computed["ops.engineer"][0]
    assert computed["public.analyst"][0] < min(computed["grid.planner"][0], computed["gas.planner"][0])
