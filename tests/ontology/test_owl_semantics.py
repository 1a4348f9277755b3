"""The ontology as any OWL tool reads it agrees with what the hub's loader reads from it.

The loader reads the hub's own annotations (``hub:many``, ``hub:domain``, ...) beside the OWL axioms;
tools outside the hub (reasoners, editors, other projects' loaders) read only the axioms. Owlready2, an
independent OWL reader, loads the same files here, and every class's parents, every association's
target and cardinality must mean the same to both.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import owlready2
import pytest
import rdflib

from ontology import Ontology
from ontology.loader import load_uncached, owl_files


@pytest.fixture(scope="module")
def ours() -> Ontology:
    return load_uncached()


@pytest.fixture(scope="module")
def owl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[owlready2.World]:
    # Owlready2 reads RDF/XML, OWL/XML and N-Triples, not Turtle: the same triples go through N-Triples.
    graph = rdflib.Graph()
    for path in owl_files():
        graph.parse(path, format="turtle")
    triples: Path = tmp_path_factory.mktemp("owl") / "hub.nt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "always UTF-8": which is what we want
        graph.serialize(triples, format="nt", encoding="utf-8")
    world = owlready2.World()
    world.get_ontology(triples.as_uri()).load()
    yield world
    world.close()


def _classes_by_name(world: owlready2.World) -> dict[str, owlready2.ThingClass]:
    found: dict[str, owlready2.ThingClass] = {}
    for cls in world.classes():
        assert cls.name not in found, (
            f"class name {cls.name!r} is declared twice: {found[cls.name].iri}, {cls.iri}"
        )
        found[cls.name] = cls
    return found


def test_every_class_has_the_same_parents(ours: Ontology, owl: owlready2.World) -> None:
    theirs = _classes_by_name(owl)
    assert set(ours.classes) <= set(theirs), sorted(set(ours.classes) - set(theirs))
    for name, cls in ours.classes.items():
        named_parents = {p.name for p in theirs[name].is_a if isinstance(p, owlready2.ThingClass)}
        # The loader keeps only parents that are classes of the hub (never owl:Thing).
        assert tuple(sorted(named_parents & set(ours.classes))) == cls.parents, name
        assert named_parents - set(ours.classes) <= {"Thing"}, (name, named_parents)


def test_every_association_has_the_same_target_and_cardinality(ours: Ontology, owl: owlready2.World) -> None:
    props = {p.iri.rpartition("#")[2]: p for p in owl.object_properties()}
    checked = 0
    for cls in ours.classes.values():
        for qname, assoc in cls.associations.items():
            prop = props.get(qname)
            assert prop is not None, f"association {qname!r} of {cls.name!r} is no owl:ObjectProperty"
            assert [d.name for d in prop.domain] == [assoc.owner], (qname, prop.domain)
            assert [r.name for r in prop.range] == [assoc.target], (qname, prop.range)
            functional = owlready2.FunctionalProperty in prop.is_a
            assert functional == (not assoc.many), (
                f"{qname!r}: many={assoc.many}, owl:FunctionalProperty={functional}"
            )
            checked += 1
    assert checked > 100, checked
