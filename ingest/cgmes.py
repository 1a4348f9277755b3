"""CGMES (IEC 61970-552 CIM RDF/XML) full models to hub events.

A CGMES model comes as a set of profile files (EQ, TP, SSH, SV, GL, DL, DY, boundary). One object is
defined in one file (``rdf:ID="_x"``) and extended in others (``rdf:about="#_x"``), so the converter reads
every file as a stream, keeps a single index of mRID -> merged parts, and emits one ``upsert`` per object
once all files are read. No file is ever held as a tree: each top-level element is dropped as soon as
its properties are copied into the index, so memory grows with the number of objects, not file size.

CGMES 2.4.15 (CIM16) and 3.0 (CIM100) names are mapped onto the ontology's names with
``Ontology.canonical_class`` / ``canonical_qname``; classes or properties the ontology does not know are
left out of the events and counted in :class:`ConversionStats`, so what reaches Kafka is valid.

A defect of the files costs no more than it must (:mod:`ingest.defects`): a property value the ontology
refuses is left out and its object kept, an element without a usable mRID is skipped, and references run
together in one ``rdf:resource`` or a date run into its time are repaired; each is recorded in
``ConversionStats.defects`` with its file, line, object and property. Only a file that cannot be read
or parsed at all stops the conversion.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lxml import etree

from hub.events import MRID_PATTERN, Event, EventType, normalise_mrid
from ingest.defects import DefectKind, Defects, check_value, split_references

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ontology.model import Ontology

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MD_NS = "http://iec.ch/TC57/61970-552/ModelDescription/1#"
DM_NS = "http://iec.ch/TC57/61970-552/DifferenceModel/1#"
CIM16_NS = "http://iec.ch/TC57/2013/CIM-schema-cim16#"
CIM100_NS = "http://iec.ch/TC57/CIM100#"

RDF_ID = f"{{{RDF_NS}}}ID"
RDF_ABOUT = f"{{{RDF_NS}}}about"
RDF_RESOURCE = f"{{{RDF_NS}}}resource"
RDF_DESCRIPTION = f"{{{RDF_NS}}}Description"
MD_FULL_MODEL = f"{{{MD_NS}}}FullModel"
DM_DIFFERENCE_MODEL = f"{{{DM_NS}}}DifferenceModel"
DM_FORWARD = f"{{{DM_NS}}}forwardDifferences"
DM_REVERSE = f"{{{DM_NS}}}reverseDifferences"

# Event ids are uuid5 in this namespace, so re-converting the same model gives the same ids (dedupe).
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c9a-3b7e-5a51-9a53-6e9b0c1d2e47")

Section = Literal["model", "forward", "reverse"]


class ConversionError(ValueError):
    """A file cannot be converted; the message names the file, the key and the value."""


class OntologyNames(Protocol):
    """The part of :class:`ontology.model.Ontology` the converters use."""

    def canonical_class(self, name: str, namespace: str) -> str | None: ...

    def canonical_qname(self, qname: str, namespace: str) -> str | None: ...

    def is_a(self, name: str, other: str) -> bool: ...


def default_ontology() -> Ontology:
    from ontology.loader import load_ontology

    return load_ontology()


_EVENT_ID_PREFIX = EVENT_ID_NAMESPACE.bytes


def event_id(source: str, mrid: str, version: int, kind: EventType) -> str:
    """Deterministic event id: the same object, version and producer always give the same id.

    The value is ``uuid5(EVENT_ID_NAMESPACE, "source/mrid/version/type")``, computed without building
    ``uuid.UUID`` objects because it runs once per event and the standard route costs more than the
    rest of making the event.
    """
    digest = bytearray(
        hashlib.sha1(_EVENT_ID_PREFIX + f"{source}/{mrid}/{version}/{kind.value}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def split_tag(tag: str) -> tuple[str, str]:
    """``{ns}Local`` -> (ns, Local); ns keeps its trailing ``#``."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


@dataclass(slots=True)
class ModelHeader:
    """The ``md:FullModel`` or ``dm:DifferenceModel`` header of one file (not an object of the network)."""

    mrid: str
    kind: str
    path: Path
    properties: dict[str, list[str]] = field(default_factory=dict)

    @property
    def profiles(self) -> list[str]:
        return self.properties.get("Model.profile", [])


@dataclass(slots=True)
class CimObject:
    """One object's parts merged across files, with names already mapped onto the ontology."""

    mrid: str
    tags: list[str]  # class tags seen for this object, the defining one (rdf:ID) first
    defined: bool  # True once an rdf:ID (or a typed rdf:about in a difference model) names the object
    attributes: dict[str, Any] = field(default_factory=dict)  # qname -> str | list[str] | None
    references: dict[str, list[str]] = field(default_factory=dict)  # qname -> target mRIDs
    # qname -> (file, line) of a property given more than one value, to locate a defect found when the
    # class is known; made only when needed (most objects have none).
    where: dict[str, tuple[str, int | None]] | None = None

    def locate(self, qname: str, path: Path, line: int | None) -> None:
        if self.where is None:
            self.where = {}
        self.where[qname] = (str(path), line)


@dataclass
class ConversionStats:
    """What a conversion saw and left out: the report a producer shows its operator."""

    files: int = 0
    elements: int = 0  # top-level object elements read (parts, before merging)
    objects: int = 0  # events emitted
    classes: Counter[str] = field(default_factory=Counter)  # emitted objects per ontology class
    headers: list[ModelHeader] = field(default_factory=list)
    # referenced mRID -> {(referrer mRID, qname)} for targets defined nowhere in the file set
    dangling: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    skipped_classes: Counter[str] = field(default_factory=Counter)  # "{ns}Class" unknown to the ontology
    skipped_properties: Counter[str] = field(default_factory=Counter)  # "Class: {ns}prop" unknown
    undefined: int = 0  # objects only extended (rdf:about) but never typed anywhere; emitted if typed
    defects: Defects = field(default_factory=Defects)  # what was left out or repaired, and where


class CimNameMap:
    """Maps file names (namespace + local name) to ontology names, cached per distinct tag."""

    def __init__(self, ontology: OntologyNames | None) -> None:
        self._ontology = ontology
        self._classes: dict[str, str | None] = {}
        self._props: dict[str, str | None] = {}
        self._members: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {}
        self._owners: dict[str, str | None] = {}
        # rdf:resource text -> normalised, checked mRID; references repeat (containers, base voltages)
        self.targets: dict[str, str] = {}

    def class_name(self, tag: str) -> str | None:
        try:
            return self._classes[tag]
        except KeyError:
            pass
        namespace, local = split_tag(tag)
        name: str | None
        if tag == RDF_DESCRIPTION:
            name = None
        elif self._ontology is None:
            name = local
        else:
            name = self._ontology.canonical_class(local, namespace)
        self._classes[tag] = name
        return name

    def qname(self, tag: str) -> str | None:
        try:
            return self._props[tag]
        except KeyError:
            pass
        namespace, local = split_tag(tag)
        name = local if self._ontology is None else self._ontology.canonical_qname(local, namespace)
        self._props[tag] = name
        return name

    def members(self, class_name: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """(attribute qnames, association qnames, to-many association qnames) of a class, inherited incl."""
        cached = self._members.get(class_name)
        if cached is not None:
            return cached
        onto: Any = self._ontology
        if onto is None:
            result: tuple[frozenset[str], frozenset[str], frozenset[str]] = (
                frozenset(),
                frozenset(),
                frozenset(),
            )
        else:
            attributes = frozenset(onto.attributes_of(class_name))
            associations = onto.associations_of(class_name)
            many = frozenset(q for q, a in associations.items() if a.many)
            result = (attributes, frozenset(associations), many)
        self._members[class_name] = result
        return result

    def more_specific(self, a: str, b: str) -> str:
        """Of two class names given for one object, the one that is the other's subclass (else ``a``)."""
        if self._ontology is None or a == b:
            return a
        if self._ontology.is_a(b, a):
            return b
        return a

    @property
    def checks_members(self) -> bool:
        return self._ontology is not None

    @property
    def ontology(self) -> Any:
        return self._ontology

    def owner(self, qname: str) -> str | None:
        """The class that declares attribute ``qname`` ("ACLineSegment.r" -> "ACLineSegment"), whose
        datatype is the attribute's wherever it is inherited; None if there is nothing to check it by."""
        try:
            return self._owners[qname]
        except KeyError:
            pass
        onto: Any = self._ontology
        owner: str | None = qname.partition(".")[0]
        if onto is None or owner not in onto.classes or onto.attribute(owner, qname) is None:
            owner = None
        self._owners[qname] = owner
        return owner


def iter_elements(path: Path) -> Iterator[tuple[Section | ModelHeader, Any]]:
    """Stream the object elements of one RDF/XML file.

    Yields ``(section, element)`` for each object element (``section`` is ``"model"`` for a full model,
    ``"forward"``/``"reverse"`` inside a difference model) and ``(header, None)`` once per model header.
    Each element is cleared after the consumer's turn and earlier siblings are deleted, so the tree never
    holds more than the element being read.
    """
    try:
        context = etree.iterparse(str(path), events=("end",), huge_tree=True, remove_comments=True)
        dm_header: ModelHeader | None = None
        for _event, element in context:
            parent = element.getparent()
            if parent is None:
                continue  # the rdf:RDF root itself
            grand = parent.getparent()
            tag = element.tag
            if grand is None:
                if tag == MD_FULL_MODEL:
                    header = read_header(element, "FullModel", path)
                    yield header, None
                elif tag == DM_DIFFERENCE_MODEL:
                    if dm_header is not None:
                        dm_header.mrid = _about_mrid(element, path)
                        yield dm_header, None
                        dm_header = None
                else:
                    yield "model", element
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
            elif parent.tag == DM_FORWARD or parent.tag == DM_REVERSE:
                yield ("forward" if parent.tag == DM_FORWARD else "reverse"), element
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
            elif parent.tag == DM_DIFFERENCE_MODEL and tag != DM_FORWARD and tag != DM_REVERSE:
                if dm_header is None:
                    dm_header = ModelHeader(mrid="", kind="DifferenceModel", path=path)
                _, local = split_tag(tag)
                value = element.get(RDF_RESOURCE)
                dm_header.properties.setdefault(local, []).append(
                    value if value is not None else (element.text or "").strip()
                )
    except etree.XMLSyntaxError as exc:
        raise ConversionError(f"{path}: not well-formed XML: {exc}") from exc
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read: {exc}") from exc


def _about_mrid(element: Any, path: Path) -> str:
    raw = element.get(RDF_ABOUT) or element.get(RDF_ID) or ""
    return normalise_mrid(raw)


def read_header(element: Any, kind: str, path: Path) -> ModelHeader:
    header = ModelHeader(mrid=_about_mrid(element, path), kind=kind, path=path)
    for child in element:
        _, local = split_tag(child.tag)
        value = child.get(RDF_RESOURCE)
        header.properties.setdefault(local, []).append(
            value if value is not None else (child.text or "").strip()
        )
    return header


def element_mrid(element: Any, path: Path) -> tuple[str, bool]:
    """(normalised mRID, is a definition) of an object element; errors name the file and the value."""
    raw = element.get(RDF_ID)
    defined = raw is not None
    if raw is None:
        raw = element.get(RDF_ABOUT)
    if raw is None:
        raise ConversionError(f"{path}: element {element.tag} has neither rdf:ID nor rdf:about")
    mrid = normalise_mrid(raw)
    if not MRID_PATTERN.match(mrid):
        raise ConversionError(f"{path}: rdf:{'ID' if defined else 'about'} {raw!r} is not a well-formed mRID")
    return mrid, defined


def is_reference(resource: str) -> bool:
    """``#_x`` and ``urn:uuid:x`` point at objects; ``http://...#Enum.literal`` is an enumeration value."""
    return resource.startswith("#") or resource.startswith("urn:uuid:")


def _odd_targets(
    resource: str, qname: str, obj: CimObject, path: Path, line: int | None, defects: Defects
) -> list[str]:
    """The targets of an ``rdf:resource`` that is not one well-formed mRID: several run together are
    split (recovered), anything else is reported and gives none."""
    parts = split_references(resource)
    targets = [normalise_mrid(part) for part in parts] if parts is not None else []
    if targets and all(MRID_PATTERN.match(t) for t in targets):
        defects.add(
            path,
            line,
            obj.mrid,
            qname,
            DefectKind.JOINED_REFERENCES,
            f"rdf:resource {resource!r} holds {len(targets)} references; read as {len(targets)}",
            recovered=True,
        )
        obj.locate(qname, path, line)
        return list(dict.fromkeys(targets))
    defects.add(
        path,
        line,
        obj.mrid,
        qname,
        DefectKind.BAD_REFERENCE,
        f"rdf:resource {resource!r} is not a well-formed mRID",
    )
    return []


def read_properties(
    element: Any,
    names: CimNameMap,
    obj: CimObject,
    skipped: Counter[str],
    path: Path,
    defects: Defects,
) -> None:
    """Copy an element's property children into ``obj`` (merging, later wins).

    A value the ontology refuses is left out and recorded in ``defects``, as is a reference that names
    no object; references run together and dates run into their times are repaired and recorded.
    """
    qname_of = names.qname
    targets_of = names.targets
    owner_of = names.owner
    ontology = names.ontology
    attributes = obj.attributes
    references = obj.references
    seen: set[str] = set()
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # processing instruction or entity
        qname = qname_of(tag)
        if qname is None:
            skipped[tag] += 1
            continue
        resource = child.get(RDF_RESOURCE)
        if resource is not None and is_reference(resource):
            target = targets_of.get(resource)
            if target is None:
                target = normalise_mrid(resource)
                if MRID_PATTERN.match(target):
                    targets_of[resource] = target
                    found = [target]
                else:
                    found = _odd_targets(resource, qname, obj, path, child.sourceline, defects)
                    if not found:
                        continue
            else:
                found = [target]
            targets = references.get(qname)
            if targets is None or qname not in seen:
                # A later file restating a reference replaces it, the same element repeating it adds.
                references[qname] = found
            else:
                for target in found:
                    if target not in targets:
                        targets.append(target)
                obj.locate(qname, path, child.sourceline)
        else:
            value: Any = resource if resource is not None else (child.text or "")
            owner = owner_of(qname)
            if owner is not None:
                kind, value, reason = check_value(ontology, owner, qname, value)
                if kind is not None:
                    recovered = kind is DefectKind.DATE_SEPARATOR
                    defects.add(path, child.sourceline, obj.mrid, qname, kind, reason, recovered=recovered)
                    if not recovered:
                        continue
            if qname in seen and qname in attributes:
                previous = attributes[qname]
                attributes[qname] = [*previous, value] if isinstance(previous, list) else [previous, value]
                obj.locate(qname, path, child.sourceline)
            else:
                attributes[qname] = value
        seen.add(qname)


def object_mrid(element: Any, path: Path, defects: Defects) -> tuple[str, bool] | None:
    """:func:`element_mrid`, or None (the element reported as a defect) when it has no usable mRID."""
    try:
        return element_mrid(element, path)
    except ConversionError as exc:
        raw = element.get(RDF_ID) or element.get(RDF_ABOUT)
        reason = str(exc).removeprefix(f"{path}: ")
        defects.add(path, element.sourceline, raw, None, DefectKind.BAD_OBJECT, reason)
        return None


class CgmesConverter:
    """Converts one CGMES file set (or difference model) into events; ``stats`` tells what it saw."""

    def __init__(
        self,
        *,
        source: str,
        version: int = 1,
        time: datetime | None = None,
        label: str | None = None,
        ontology: OntologyNames | None = None,
        raw_names: bool = False,
    ) -> None:
        if version < 1:
            raise ConversionError(f"version {version!r} must be a positive integer")
        self.source = source
        self.version = version
        self.time = time if time is not None else datetime.now(UTC)
        if self.time.tzinfo is None:
            raise ConversionError(f"time {self.time.isoformat()!r} has no time zone")
        self.label = label
        if raw_names:
            self.names = CimNameMap(None)
        else:
            self.names = CimNameMap(ontology if ontology is not None else default_ontology())
        self.stats = ConversionStats()
        self.index: dict[str, CimObject] = {}

    # -- reading -------------------------------------------------------------------------------

    def read(self, paths: Iterable[Path | str]) -> None:
        """Merge every object part of the files into the index."""
        index = self.index
        stats = self.stats
        for raw_path in paths:
            path = Path(raw_path)
            stats.files += 1
            for section, element in iter_elements(path):
                if isinstance(section, ModelHeader):
                    stats.headers.append(section)
                    continue
                if section != "model":
                    raise ConversionError(
                        f"{path}: is a difference model; convert it with ingest.difference.convert_difference"
                    )
                stats.elements += 1
                named = object_mrid(element, path, stats.defects)
                if named is None:
                    continue
                mrid, defined = named
                obj = index.get(mrid)
                tag = element.tag
                if obj is None:
                    obj = CimObject(mrid=mrid, tags=[tag] if tag != RDF_DESCRIPTION else [], defined=defined)
                    index[mrid] = obj
                elif tag != RDF_DESCRIPTION and tag not in obj.tags:
                    if defined:
                        obj.tags.insert(0, tag)
                    else:
                        obj.tags.append(tag)
                if defined:
                    obj.defined = True
                read_properties(element, self.names, obj, stats.skipped_properties, path, stats.defects)

    # -- emitting ------------------------------------------------------------------------------

    def resolve_class(self, obj: CimObject) -> str | None:
        """The ontology class of an object: the defining tag's, refined by a more specific extending tag."""
        chosen: str | None = None
        for tag in obj.tags:
            name = self.names.class_name(tag)
            if name is None:
                continue
            chosen = name if chosen is None else self.names.more_specific(chosen, name)
        if chosen is None and obj.tags:
            self.stats.skipped_classes[obj.tags[0]] += 1
        return chosen

    def make_event(
        self,
        kind: EventType,
        mrid: str,
        class_name: str,
        attributes: dict[str, Any],
        references: dict[str, list[str]],
        where: dict[str, tuple[str, int | None]] | None = None,
    ) -> Event:
        names = self.names
        attrs: dict[str, Any]
        refs: dict[str, str | list[str]] = {}
        if names.checks_members:
            known_attributes, known_associations, many = names.members(class_name)
            attrs = {}
            skipped = self.stats.skipped_properties
            for qname, value in attributes.items():
                if qname not in known_attributes:
                    skipped[f"{class_name}: {qname}"] += 1
                elif isinstance(value, list):
                    self._defect(
                        mrid, qname, where, DefectKind.BAD_VALUE, f"{qname} takes one value, got {value!r}"
                    )
                else:
                    attrs[qname] = value
            for qname, targets in references.items():
                if qname not in known_associations:
                    skipped[f"{class_name}: {qname}"] += 1
                elif qname in many or not targets:
                    refs[qname] = list(targets)
                elif len(targets) == 1:
                    refs[qname] = targets[0]
                else:
                    self._defect(
                        mrid,
                        qname,
                        where,
                        DefectKind.TOO_MANY_TARGETS,
                        f"{qname} refers to one object of {class_name}, got {len(targets)}: {targets!r}",
                    )
        else:
            attrs = dict(attributes)
            for qname, targets in references.items():
                refs[qname] = targets[0] if len(targets) == 1 else list(targets)
        return Event.model_validate(
            {
                "id": event_id(self.source, mrid, self.version, kind),
                "source": self.source,
                "type": kind,
                "subject": mrid,
                "time": self.time,
                "version": self.version,
                "class": class_name,
                "attributes": attrs,
                "references": refs,
                "label": self.label,
            }
        )

    def _defect(
        self,
        mrid: str,
        qname: str,
        where: dict[str, tuple[str, int | None]] | None,
        kind: DefectKind,
        reason: str,
    ) -> None:
        file, line = (where or {}).get(qname, ("(merged model)", None))
        self.stats.defects.add(file, line, mrid, qname, kind, reason)

    def emit(self) -> Iterator[Event]:
        """One upsert per object of the index that has a known class, in first-seen order."""
        index = self.index
        stats = self.stats
        for mrid, obj in index.items():
            class_name = self.resolve_class(obj)
            if class_name is None:
                if not obj.tags:
                    stats.undefined += 1
                continue
            for qname, targets in obj.references.items():
                for target in targets:
                    if target not in index:
                        stats.dangling[target].add((mrid, qname))
            stats.objects += 1
            stats.classes[class_name] += 1
            yield self.make_event(
                EventType.UPSERT, mrid, class_name, obj.attributes, obj.references, obj.where
            )

    def convert(self, paths: Iterable[Path | str]) -> Iterator[Event]:
        self.read(paths)
        yield from self.emit()


def convert_cgmes(
    paths: Iterable[Path | str],
    *,
    source: str,
    version: int = 1,
    time: datetime | None = None,
    label: str | None = None,
    ontology: OntologyNames | None = None,
    stats: ConversionStats | None = None,
) -> Iterator[Event]:
    """Events for a CGMES file set: one ``upsert`` per object, its parts merged across the files.

    Pass a :class:`ConversionStats` to learn the headers, dangling references and what the ontology
    did not know; the events themselves only ever carry ontology names.
    """
    converter = CgmesConverter(source=source, version=version, time=time, label=label, ontology=ontology)
    if stats is not None:
        converter.stats = stats
    return converter.convert(paths)
