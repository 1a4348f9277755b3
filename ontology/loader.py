"""Load the ontology from the OWL (Turtle) files, once: in-process and through an on-disk pickle.

Parsing the Turtle takes seconds; the worker and the API call :func:`load_ontology` at start-up, so the
built :class:`~ontology.model.Ontology` is pickled next to the OWL files, keyed by a hash of the OWL files
and of the code that interprets them. A warm start unpickles it in milliseconds and parses no Turtle.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import tempfile
from pathlib import Path

from ontology.model import (
    Association,
    Attribute,
    Datatype,
    Domain,
    OntClass,
    Ontology,
)
from ontology.vocabulary import (
    ENUMERATION,
    GRAPHQL_NAME,
    HUB,
    P_ABSTRACT,
    P_CIM100_NAME,
    P_DATATYPE,
    P_DOMAIN,
    P_GASLIB_NAME,
    P_INVERSE_KEY,
    P_KEY,
    P_MANY,
    P_REL_TYPE,
    P_UNIT,
    RESERVED_FIELDS,
)

HERE = Path(__file__).resolve().parent
OWL_DIR = HERE / "owl"
DEFAULT_CACHE_DIR = HERE / ".cache"
# Bump when the pickled structure changes in a way the source hash would not notice.
CACHE_FORMAT = 1
_CODE_FILES = ("model.py", "loader.py", "vocabulary.py")
DATATYPES: frozenset[str] = frozenset({"float", "int", "bool", "string", "datetime", "enum"})


class OntologyError(ValueError):
    """The OWL files are inconsistent (unknown parent, colliding keys, bad names...)."""


def owl_files(owl_dir: Path = OWL_DIR) -> list[Path]:
    return sorted(owl_dir.glob("*.ttl"))


def source_hash(owl_dir: Path = OWL_DIR) -> str:
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    for path in owl_files(owl_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in _CODE_FILES:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


@functools.cache
def load_ontology(cache_dir: Path | None = None) -> Ontology:
    """The ontology, built once per process; from the pickle cache when the OWL files are unchanged."""
    return load_uncached(cache_dir)


def load_uncached(cache_dir: Path | None = None, owl_dir: Path = OWL_DIR) -> Ontology:
    digest = source_hash(owl_dir)
    for directory in _cache_dirs(cache_dir):
        cached = _read_cache(directory / f"ontology-{digest[:24]}.pickle", digest)
        if cached is not None:
            return cached
    ontology = build_ontology(owl_dir, digest)
    for directory in _cache_dirs(cache_dir):
        if _write_cache(directory, f"ontology-{digest[:24]}.pickle", ontology):
            break
    return ontology


def cache_path(cache_dir: Path | None = None) -> Path | None:
    """Where the pickle of the current OWL files is, if one has been written."""
    digest = source_hash()
    for directory in _cache_dirs(cache_dir):
        path = directory / f"ontology-{digest[:24]}.pickle"
        if path.exists():
            return path
    return None


def _cache_dirs(cache_dir: Path | None) -> list[Path]:
    if cache_dir is not None:
        return [cache_dir]
    # An installed package may sit in a read-only tree; the temp dir is the fallback.
    return [DEFAULT_CACHE_DIR, Path(tempfile.gettempdir()) / f"energy-hub-ontology-{os.getuid()}"]


def _read_cache(path: Path, digest: str) -> Ontology | None:
    try:
        with path.open("rb") as fh:
            ontology = pickle.load(fh)
    except Exception:
        # Whatever is wrong with a cache file (truncated, written by other code), rebuilding fixes it.
        return None
    if not isinstance(ontology, Ontology) or ontology.source_hash != digest:
        return None
    return ontology


def _write_cache(directory: Path, name: str, ontology: Ontology) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ontology-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(ontology, fh, protocol=pickle.HIGHEST_PROTOCOL)
        # Atomic, so concurrent workers starting together never read half a pickle.
        os.replace(tmp, directory / name)
    except OSError:
        return False
    for old in directory.glob("ontology-*.pickle"):
        if old.name != name:
            with contextlib.suppress(OSError):
                old.unlink()
    return True


# --- building from Turtle ---------------------------------------------------------------------------


def _local(iri: object) -> str:
    text = str(iri)
    return text.rpartition("#")[2] if "#" in text else text.rpartition("/")[2]


def build_ontology(owl_dir: Path = OWL_DIR, digest: str | None = None) -> Ontology:
    import rdflib  # only needed on a cold start
    from rdflib.namespace import RDF, RDFS

    graph = rdflib.Graph()
    for path in owl_files(owl_dir):
        graph.parse(path, format="turtle")
    if digest is None:
        digest = source_hash(owl_dir)

    hub = rdflib.Namespace(HUB)

    def one(subject: rdflib.term.Node, predicate: rdflib.term.Node) -> str | None:
        values = sorted(str(v) for v in graph.objects(subject, predicate))
        if len(values) > 1:
            raise OntologyError(f"{_local(subject)!r} has several {_local(predicate)!r}: {values}")
        return values[0] if values else None

    def boolean(subject: rdflib.term.Node, predicate: rdflib.term.Node, default: bool) -> bool:
        value = one(subject, predicate)
        return default if value is None else value.lower() == "true"

    def comment(subject: rdflib.term.Node) -> str:
        return " ".join(sorted(str(c) for c in graph.objects(subject, RDFS.comment)))

    enum_nodes = set(graph.subjects(RDF.type, hub[ENUMERATION]))
    class_nodes = {s for s in graph.subjects(hub[P_DOMAIN], None)} - enum_nodes
    names: dict[rdflib.term.Node, str] = {}
    for node in class_nodes:
        name = _local(node)
        if name in names.values():
            raise OntologyError(f"class name {name!r} is declared in two namespaces")
        names[node] = name

    literals: dict[str, tuple[str, ...]] = {}
    for enum_node in enum_nodes:
        found = []
        for individual in graph.subjects(RDF.type, enum_node):
            label = one(individual, RDFS.label)
            found.append(label if label is not None else _local(individual).rpartition(".")[2])
        literals[_local(enum_node)] = tuple(sorted(found))

    attributes: dict[str, dict[str, Attribute]] = {name: {} for name in names.values()}
    associations: dict[str, dict[str, Association]] = {name: {} for name in names.values()}
    aliases: dict[tuple[str, str], str] = {}
    gaslib_classes: dict[str, str] = {}
    gaslib_members: dict[str, dict[str, str]] = {}

    for node in sorted(set(graph.subjects(hub[P_KEY], None)), key=str):
        qname = _local(node)
        owner_node = one(node, RDFS.domain)
        owner = _local(owner_node) if owner_node else ""
        if owner not in attributes:
            raise OntologyError(f"{qname!r} has domain {owner!r}, which is not a class of the ontology")
        key = one(node, hub[P_KEY]) or ""
        datatype = one(node, hub[P_DATATYPE])
        rel_type = one(node, hub[P_REL_TYPE])
        if datatype is not None:
            if datatype not in DATATYPES:
                raise OntologyError(f"attribute {qname!r} has unknown datatype {datatype!r}")
            enum = _local(one(node, RDFS.range) or "") if datatype == "enum" else None
            if enum is not None and enum not in literals:
                raise OntologyError(f"enum attribute {qname!r} ranges over {enum!r}, which is no enumeration")
            attributes[owner][qname] = Attribute(
                qname=qname,
                owner=owner,
                key=key,
                datatype=_as_datatype(datatype),
                enum=enum,
                literals=literals[enum] if enum else (),
                unit=one(node, hub[P_UNIT]),
                description=comment(node),
            )
        elif rel_type is not None:
            target_node = one(node, RDFS.range)
            target = _local(target_node) if target_node else ""
            associations[owner][qname] = Association(
                qname=qname,
                owner=owner,
                key=key,
                rel_type=rel_type,
                target=target,
                many=boolean(node, hub[P_MANY], False),
                inverse_key=one(node, hub[P_INVERSE_KEY]) or "",
                description=comment(node),
            )
        else:
            raise OntologyError(f"{qname!r} has a key but neither a datatype nor a relationship type")
        for alias in graph.objects(node, hub[P_CIM100_NAME]):
            aliases[("cim100", str(alias))] = qname
        for alias in graph.objects(node, hub[P_GASLIB_NAME]):
            gaslib_members.setdefault(owner, {})[str(alias)] = qname

    classes: dict[str, OntClass] = {}
    for node, name in names.items():
        domain = one(node, hub[P_DOMAIN])
        if domain not in ("Electricity", "Gas"):
            raise OntologyError(f"class {name!r} has domain {domain!r}; expected Electricity or Gas")
        parents = tuple(sorted(_local(p) for p in graph.objects(node, RDFS.subClassOf) if p in names))
        classes[name] = OntClass(
            name=name,
            parents=parents,
            domain=_as_domain(domain),
            abstract=boolean(node, hub[P_ABSTRACT], False),
            description=comment(node),
            attributes=attributes[name],
            associations=associations[name],
        )
        for alias in graph.objects(node, hub[P_CIM100_NAME]):
            aliases[("cim100", str(alias))] = name
        for alias in graph.objects(node, hub[P_GASLIB_NAME]):
            gaslib_classes[str(alias)] = name

    try:
        ontology = Ontology(classes, aliases, gaslib_classes, gaslib_members, digest)
    except ValueError as exc:
        raise OntologyError(str(exc)) from exc
    check_keys(ontology)
    return ontology


def _as_datatype(value: str) -> Datatype:
    return value  # type: ignore[return-value]  # checked against DATATYPES by the caller


def _as_domain(value: str) -> Domain:
    return value  # type: ignore[return-value]  # checked by the caller


def check_keys(ontology: Ontology) -> None:
    """Keys, inverse keys and relationship types must be unique along every class's ancestry."""
    for name in ontology.classes:
        seen: dict[str, str] = {}

        def claim(key: str, what: str, cls: str = name, taken: dict[str, str] = seen) -> None:
            if not GRAPHQL_NAME.match(key):
                raise OntologyError(f"{what}: key {key!r} is not a GraphQL name without a leading '_'")
            if key in taken:
                raise OntologyError(f"class {cls!r}: key {key!r} of {what} collides with {taken[key]}")
            if key in RESERVED_FIELDS:
                raise OntologyError(f"class {cls!r}: key {key!r} of {what} is a reserved field")
            taken[key] = what

        rels: dict[str, str] = {}
        for attr in ontology.attributes_of(name).values():
            claim(attr.key, f"attribute {attr.qname}")
        for assoc in ontology.associations_of(name).values():
            claim(assoc.key, f"association {assoc.qname}")
            if assoc.rel_type in rels:
                raise OntologyError(
                    f"class {name!r}: relationship type {assoc.rel_type!r} of {assoc.qname} collides with "
                    f"{rels[assoc.rel_type]}"
                )
            rels[assoc.rel_type] = assoc.qname
        for assoc in ontology.incoming_of(name):
            claim(assoc.inverse_key, f"inverse of {assoc.qname}")
