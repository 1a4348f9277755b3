"""Loading: built once per process, then from the on-disk pickle without parsing any Turtle."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ontology import OntologyError, load_ontology, loader

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from pathlib import Path
from ontology.loader import load_ontology, cache_path
o = load_ontology(Path(sys.argv[1]))
print(json.dumps({
    "rdflib_imported": "rdflib" in sys.modules,
    "classes": len(o.classes),
    "cache": str(cache_path(Path(sys.argv[1]))),
    "r_key": o.attribute("ACLineSegment", "ACLineSegment.r").key,
}))
"""


def _probe(cache_dir: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cache_dir)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def test_same_object_within_a_process() -> None:
    assert load_ontology() is load_ontology()


def test_second_process_loads_the_pickle_without_parsing_turtle(tmp_path: Path) -> None:
    cold = _probe(tmp_path)
    assert cold["rdflib_imported"] is True  # the first load parsed the Turtle...
    assert Path(str(cold["cache"])).parent == tmp_path  # ...and left the pickle behind
    warm = _probe(tmp_path)
    assert warm["rdflib_imported"] is False  # the second never touched rdflib
    assert warm["classes"] == cold["classes"] and warm["r_key"] == "r"


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    first = loader.load_uncached(tmp_path)
    path = loader.cache_path(tmp_path)
    assert path is not None
    path.write_bytes(b"not a pickle")
    again = loader.load_uncached(tmp_path)
    assert set(again.classes) == set(first.classes)
    with path.open("rb") as fh:
        assert set(pickle.load(fh).classes) == set(first.classes)


def test_changed_owl_gives_a_new_cache_key(tmp_path: Path) -> None:
    owl = tmp_path / "owl"
    shutil.copytree(loader.OWL_DIR, owl)
    cache = tmp_path / "cache"
    before = loader.load_uncached(cache, owl)
    extra = owl / "zz-test.ttl"
    extra.write_text(
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "@prefix hub: <https://w3id.org/energy-hub/ontology#> .\n"
        "@prefix gas: <https://w3id.org/energy-hub/gas#> .\n"
        'gas:GasTestThing rdfs:subClassOf gas:GasObject ; hub:domain "Gas" ; hub:abstract false .\n'
    )
    after = loader.load_uncached(cache, owl)
    assert "GasTestThing" not in before.classes and "GasTestThing" in after.classes
    assert before.source_hash != after.source_hash
    assert len(list(cache.glob("ontology-*.pickle"))) == 1  # the stale pickle was replaced


def test_inconsistent_owl_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    owl = tmp_path / "owl"
    shutil.copytree(loader.OWL_DIR, owl)
    (owl / "zz-bad.ttl").write_text(
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "@prefix hub: <https://w3id.org/energy-hub/ontology#> .\n"
        "@prefix gas: <https://w3id.org/energy-hub/gas#> .\n"
        'gas:GasPipe.length2 rdfs:domain gas:GasPipe ; hub:key "length" ; hub:datatype "float" .\n'
    )
    with pytest.raises(OntologyError, match="'length'"):
        loader.load_uncached(tmp_path / "cache", owl)
