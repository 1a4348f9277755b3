"""ENTSO-E's MicroGrid (Belgium and the Netherlands) as hub events, its mRIDs prefixed per test run.

The model's mRIDs are fixed; a prefix keeps each test run's copy apart from every other copy in the same
Neo4j (ownership and versions are per mRID), so tests can load it again and again with labels of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MICROGRID = REPO / "devstack" / "demo" / "data" / "cgmes" / "MicroGrid-BaseCase"
# Equipment, geography, diagram layout and topology (lines' terminals reach their nodes in TP).
PROFILES = ("_EQ", "_GL", "_DL", "_TP")


def microgrid_files(profiles: Iterable[str] = PROFILES) -> list[Path]:
    wanted = tuple(profiles)
    return [p for p in sorted(MICROGRID.glob("*.xml")) if any(k in p.name for k in wanted)]


def _prefixed(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return prefix + value
    if isinstance(value, list):
        return [prefix + v for v in value]
    return value


def microgrid_events(source: str, prefix: str, label: str, profiles: Iterable[str] = PROFILES) -> list[Any]:
    """MicroGrid's objects as upsert events from ``source``, each mRID (and reference) prefixed."""
    from ingest.cgmes import convert_cgmes

    out = []
    for ev in convert_cgmes(microgrid_files(profiles), source=source, label=label):
        out.append(
            ev.model_copy(
                update={
                    "id": prefix + ev.id,
                    "subject": prefix + ev.subject,
                    "references": {k: _prefixed(v, prefix) for k, v in ev.references.items()},
                }
            )
        )
    return out
